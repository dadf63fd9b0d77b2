// The REST half of the protocol (/api/v1): login, conversations, history and media.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0: the node could not be reached
    this.code = code;
  }
}

export class Api {
  constructor(token = null) {
    this.token = token;
  }

  async request(method, path, { json, body, contentType, blob } = {}) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (contentType) {
      headers['Content-Type'] = contentType;
    }
    let response;
    try {
      response = await fetch(`/api/v1${path}`, { method, headers, body });
    } catch (err) {
      throw new ApiError(0, 'network', 'cannot reach the server');
    }
    if (!response.ok) {
      let error = { code: 'internal', message: `HTTP ${response.status}` };
      try {
        error = (await response.json()).error ?? error;
      } catch { /* not our error body: keep the status */ }
      throw new ApiError(response.status, error.code, error.message);
    }
    if (blob) return response.blob();
    return response.status === 204 ? null : response.json();
  }

  login(username, password) {
    return this.request('POST', '/login',
      { json: { username, password, device_name: deviceName() } });
  }

  // `invite`: the token of an invite link; `displayName`: optional (the username otherwise).
  register(username, password, { invite, displayName } = {}) {
    return this.request('POST', '/register',
      { json: { username, password, invite, display_name: displayName } });
  }

  logout() { return this.request('POST', '/logout'); }
  me() { return this.request('GET', '/me'); }
  setPushPreview(pushPreview) {
    return this.request('PATCH', '/me', { json: { push_preview: pushPreview } });
  }
  setDisplayName(displayName) {
    return this.request('PATCH', '/me', { json: { display_name: displayName } });
  }
  changePassword(current, next, logOutOthers) {
    return this.request('POST', '/me/password', { json: { current_password: current,
      new_password: next, log_out_others: logOutOthers } });
  }
  setAvatar(blob) { return this.request('PUT', '/me/avatar', { body: blob, contentType: blob.type }); }
  removeAvatar() { return this.request('DELETE', '/me/avatar'); }
  avatar(avatarId) { return this.request('GET', `/avatars/${avatarId}`, { blob: true }); }
  devices() { return this.request('GET', '/devices'); }
  logOutDevice(deviceId) { return this.request('DELETE', `/devices/${encodeURIComponent(deviceId)}`); }
  pushKey() { return this.request('GET', '/push/key'); }
  setPushTarget(target) { return this.request('PUT', '/devices/me/push', { json: target }); }
  userByName(username) { return this.request('GET', `/users/${encodeURIComponent(username)}`); }
  userById(userId) { return this.request('GET', `/users/by-id/${encodeURIComponent(userId)}`); }
  conversations() { return this.request('GET', '/conversations'); }
  conversation(id) { return this.request('GET', `/conversations/${id}`); }

  createConversation(kind, members, name) {
    return this.request('POST', '/conversations', { json: { kind, members, name } });
  }

  addMember(conversationId, userId) {
    return this.request('POST', `/conversations/${conversationId}/members`,
      { json: { user_id: userId } });
  }

  removeMember(conversationId, userId) {
    return this.request('DELETE', `/conversations/${conversationId}/members/${userId}`);
  }

  history(conversationId, before, limit = 50) {
    return this.request('GET',
      `/conversations/${conversationId}/messages?before=${before}&limit=${limit}`);
  }

  // Messages matching `q`, newest first; `before` is the previous page's next_before.
  search(q, before = null) {
    const params = new URLSearchParams({ q });
    if (before !== null) params.set('before', before);
    return this.request('GET', `/search?${params}`);
  }

  upload(file) {
    return this.request('POST', '/media',
      { body: file, contentType: file.type || 'application/octet-stream' });
  }

  // The node's admins only (403 for anyone else).
  invites() { return this.request('GET', '/invites'); }
  createInvite(options) { return this.request('POST', '/invites', { json: options }); }
  revokeInvite(inviteId) {
    return this.request('DELETE', `/invites/${encodeURIComponent(inviteId)}`);
  }
  users() { return this.request('GET', '/users'); }
  updateUser(userId, change) {
    return this.request('PATCH', `/users/by-id/${encodeURIComponent(userId)}`, { json: change });
  }
  resetPassword(userId, newPassword) {
    return this.request('POST', `/users/by-id/${encodeURIComponent(userId)}/password`,
      { json: { new_password: newPassword } });
  }

  media(mediaId) { return this.request('GET', `/media/${mediaId}`, { blob: true }); }
}

function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Firefox/.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge'
    : /Chrom/.test(ua) ? 'Chromium' : /Safari/.test(ua) ? 'Safari' : 'Browser';
  return `${browser} (web)`;
}
