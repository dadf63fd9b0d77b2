// The client's model of the chat: it applies the server's frames, keeps the IndexedDB cache in
// step, owns the outbox, and tells the UI when something changed. Ticks and unread counts are
// derived from the two cumulative markers per conversation, never from per-message events.

import { Api } from './api.js';
import { Connection } from './connection.js';
import { openCache } from './db.js';
import { conversationTitle, preview } from './format.js';
import { notify, subscribeToPush, unsubscribeFromPush } from './notify.js';

const TYPING_SEND_EVERY_MS = 2000; // PROTOCOL.md: repeat `typing` at most every 2 s
const TYPING_SHOWN_MS = 6000; // the server sends typing:false after 5 s; this is a fallback
const DELIVERED_DEBOUNCE_MS = 100; // one cumulative `delivered` per burst
const SAVE_DEBOUNCE_MS = 50; // one IndexedDB transaction per burst of frames
const HISTORY_PAGE = 50;
const HISTORY_PAGE_MAX = 200; // the node's largest page: what a jump to a search hit loads by

// crypto.randomUUID exists only in secure contexts (https, localhost); a family server on plain
// http in the LAN still needs ids, and getRandomValues is available everywhere.
export function newClientMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class ChatState {
  constructor() {
    this.cache = null;
    this.api = new Api();
    this.connection = null;
    this.booted = false;
    this.me = null; // { user_id, username, display_name, device_id, token }
    this.conversations = new Map(); // id -> record, as cached (see conversationFor)
    this.messages = new Map(); // id -> Map(seq -> log entry)
    this.loaded = new Set(); // conversations whose cached messages are in memory
    this.historyDone = new Set(); // conversations with nothing older to fetch
    this.historyLoading = new Set();
    this.outbox = new Map(); // client_msg_id -> entry, in IndexedDB until `sent`
    this.inflight = new Set(); // outbox ids sent on the current connection
    this.users = new Map();
    this.presence = new Map(); // user_id -> { online, last_seen }
    this.typing = new Map(); // conversation id -> Map(user_id -> timer)
    this.status = 'offline'; // connection: 'connecting' | 'online' | 'offline'
    this.synced = false;
    this.openId = null;
    this.highlight = null; // { conversationId, seq }: a search hit to scroll to, once shown
    this.notice = null; // a one-line message for the user, e.g. a refused send
    this.invite = null; // the token of the invite link this page was opened with (ui/invite.js)
    this.pendingDelivered = new Map();
    this.wantRead = new Map(); // conversation id -> seq the user has seen, not yet sent
    this.lastTypingSent = new Map();
    this.fetchingUsers = new Set();
    this.fetchingConversations = new Set();
    this.dirtyMessages = [];
    this.dirtyConversations = new Set();
    this.deletedOutbox = [];
    this.saveTimer = null;
    this.deliveredTimer = null;
    this.listeners = new Set();
    this.renderQueued = false;
    this.version = 0; // counts changes, so a component can tell it missed one (useChat)
  }

  // --- the UI's side --------------------------------------------------------------------------

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    this.version += 1;
    if (this.renderQueued) return;
    this.renderQueued = true;
    queueMicrotask(() => {
      this.renderQueued = false;
      for (const listener of this.listeners) listener();
    });
  }

  unread(conversation) {
    const read = Math.max(conversation.my_read_seq, this.wantRead.get(conversation.conversation_id) ?? 0);
    return Math.max(0, conversation.last_seq - read);
  }

  // Latest activity first (the server's time of the last log entry); a conversation with no
  // messages yet sorts by when it appeared here.
  sortedConversations() {
    const activity = (c) => c.last_message?.ts ?? c.appeared ?? 0;
    return [...this.conversations.values()].sort((a, b) => activity(b) - activity(a));
  }

  entriesOf(conversationId) {
    return this.messages.get(conversationId)?.values() ?? [];
  }

  pendingOf(conversationId) {
    return [...this.outbox.values()].filter((e) => e.conversation_id === conversationId);
  }

  // --- session --------------------------------------------------------------------------------

  async boot() {
    this.cache = await openCache();
    const session = await this.cache.get('kv', 'session');
    if (session) await this.restore(session);
    this.booted = true;
    this.changed();
  }

  async restore(session) {
    this.me = session;
    this.api = new Api(session.token);
    for (const c of await this.cache.all('conversations')) this.conversations.set(c.conversation_id, c);
    for (const u of await this.cache.all('users')) this.users.set(u.user_id, u);
    for (const o of await this.cache.all('outbox')) this.outbox.set(o.client_msg_id, o);
    this.connect();
    this.changed();
    subscribeToPush(this.api);
    this.refreshMe();
  }

  // The account as the node has it now: a setting may have changed on another device.
  async refreshMe() {
    try {
      await this.rememberMe({ avatar: undefined, ...await this.api.me() });
    } catch { /* offline: the cached account stands */ }
  }

  async rememberMe(me) {
    this.me = { ...this.me, ...me };
    await this.cache.put('kv', this.me, 'session');
    this.changed();
  }

  async login(username, password, { register = false, invite, displayName } = {}) {
    const anonymous = new Api();
    const auth = register ? await anonymous.register(username, password, { invite, displayName })
      : await anonymous.login(username, password);
    this.invite = null;
    const me = await new Api(auth.token).me();
    // The cache of the previous user stays only if the same user logs back in (their outbox).
    if ((await this.cache.get('kv', 'owner')) !== me.user_id) await this.cache.clear();
    const session = { ...me, token: auth.token, device_id: auth.device_id };
    await this.cache.put('kv', me.user_id, 'owner');
    await this.cache.put('kv', session, 'session');
    await this.cache.put('users', me);
    await this.restore(session);
  }

  async logout() {
    this.connection?.stop();
    await unsubscribeFromPush();
    try {
      await this.api.logout();
    } catch { /* the token dies with the cache either way */ }
    await this.cache.seal();
    location.hash = '';
    location.reload();
  }

  // The token was revoked (logged out elsewhere, account disabled): ask to log in again. The
  // cache stays, so the same user finds their unsent messages after logging back in.
  async sessionEnded() {
    this.connection?.stop();
    this.connection = null;
    await this.cache.delete('kv', 'session');
    this.me = null;
    this.notice = 'Your session ended. Please log in again.';
    this.changed();
  }

  connect() {
    this.connection = new Connection({
      hello: () => ({ type: 'hello', token: this.me.token, sync: this.syncMap(),
        client: 'chatnode-web' }),
      onFrame: (frame) => this.onFrame(frame),
      onState: (status) => {
        this.synced = false;
        this.inflight.clear();
        this.status = status;
        this.changed();
      },
      onAuthFailed: () => this.sessionEnded(),
    });
    this.connection.start();
  }

  // What this device already has: the server sends only what comes after, and the latest
  // messages of conversations the cache does not know.
  syncMap() {
    const sync = {};
    for (const c of this.conversations.values()) if (c.have_seq > 0) sync[c.conversation_id] = c.have_seq;
    return sync;
  }

  // --- frames from the server -----------------------------------------------------------------

  onFrame(frame) {
    switch (frame.type) {
      case 'message': this.onMessage(frame); break;
      case 'sent': this.onSent(frame); break;
      case 'status_update': this.onStatus(frame); break;
      case 'conversation': this.onConversation(frame); break;
      case 'presence': this.onPresence(frame); break;
      case 'typing': this.onTyping(frame); break;
      case 'user_updated': this.onUserUpdated(frame); break;
      case 'synced': this.onSynced(); break;
      case 'error': this.onError(frame); break;
      default: break; // welcome, pong, and frames a newer server may add
    }
    this.changed();
  }

  // The record of a conversation, created on first sight (a message can arrive before the
  // conversation's details, e.g. when someone adds us to a group); its details are fetched.
  conversationFor(id) {
    let c = this.conversations.get(id);
    if (!c) {
      c = { conversation_id: id, kind: 'direct', name: null, members: [], last_seq: 0,
        last_delivered_seq: 0, last_read_seq: 0, my_read_seq: 0, last_message: null,
        have_seq: 0, appeared: Date.now(), stub: true };
      this.conversations.set(id, c);
      this.fetchConversation(id);
    }
    return c;
  }

  addEntries(id, entries) {
    let bySeq = this.messages.get(id);
    if (!bySeq) this.messages.set(id, bySeq = new Map());
    for (const entry of entries) bySeq.set(entry.seq, entry);
    this.dirtyMessages.push(...entries);
    this.save();
  }

  // "Delete for everyone": the server blanked the target's stored body; so does this cache.
  blankDeleted(conversationId, event) {
    const blank = (entry) => ({ ...entry, body: '', media_id: undefined });
    const target = this.messages.get(conversationId)?.get(event.target);
    if (target) {
      this.addEntries(conversationId, [blank(target)]);
      return;
    }
    this.cache.get('messages', [conversationId, event.target]).then((cached) => {
      if (cached) this.cache.put('messages', blank(cached));
    });
  }

  // A log entry that is new for this conversation's summary (last seq, preview and so order).
  advance(c, entry) {
    if (entry.kind === 'delete') this.blankDeleted(c.conversation_id, entry);
    c.last_seq = Math.max(c.last_seq, entry.seq);
    if (!c.last_message || entry.seq >= c.last_message.seq) c.last_message = entry;
    // The server moves a sender's own markers up to their message (PROTOCOL.md, own messages).
    if (entry.sender_id === this.me.user_id) c.my_read_seq = Math.max(c.my_read_seq, entry.seq);
    this.dirtyConversations.add(c.conversation_id);
  }

  onMessage(m) {
    const c = this.conversationFor(m.conversation_id);
    const known = this.messages.get(m.conversation_id)?.has(m.seq);
    this.addEntries(m.conversation_id, [m]);
    // Live and catch-up messages come with no gaps, so the highest one is what we "have".
    c.have_seq = Math.max(c.have_seq, m.seq);
    this.advance(c, m);
    if (m.sender_id === this.me.user_id) return;
    this.queueDelivered(m.conversation_id, m.seq);
    this.stopTyping(m.conversation_id, m.sender_id);
    if (this.synced && !known && (m.kind === 'text' || m.kind === 'media')) {
      notify(conversationTitle(c, this.users, this.me.user_id), preview(m, this.users),
        m.conversation_id, () => this.open(m.conversation_id));
    }
  }

  onSent(frame) {
    const entry = this.outbox.get(frame.client_msg_id);
    if (!entry) return; // a repeated `sent` for a retry we already settled
    const { created, failed, ...fields } = entry;
    const message = { ...fields, seq: frame.seq, ts: frame.ts };
    this.outbox.delete(entry.client_msg_id);
    this.inflight.delete(entry.client_msg_id);
    this.deletedOutbox.push(entry.client_msg_id);
    this.addEntries(frame.conversation_id, [message]);
    const c = this.conversationFor(frame.conversation_id);
    c.have_seq = Math.max(c.have_seq, frame.seq);
    this.advance(c, message);
  }

  onStatus(s) {
    const c = this.conversationFor(s.conversation_id);
    c.last_seq = Math.max(c.last_seq, s.last_seq);
    c.last_delivered_seq = Math.max(c.last_delivered_seq, s.last_delivered_seq);
    c.last_read_seq = Math.max(c.last_read_seq, s.last_read_seq);
    c.my_read_seq = Math.max(c.my_read_seq, s.my_read_seq);
    if ((this.wantRead.get(c.conversation_id) ?? 0) <= c.my_read_seq) this.wantRead.delete(c.conversation_id);
    this.dirtyConversations.add(c.conversation_id);
    this.save();
  }

  onConversation(frame) {
    const c = this.conversationFor(frame.conversation_id);
    Object.assign(c, { kind: frame.kind, name: frame.name, members: frame.members });
    c.last_seq = Math.max(c.last_seq, frame.last_seq);
    for (const m of frame.members) this.ensureUser(m.user_id);
    if (!frame.members.some((m) => m.user_id === this.me.user_id)) this.forget(c.conversation_id);
    this.dirtyConversations.add(c.conversation_id);
    this.save();
  }

  onPresence(frame) {
    this.presence.set(frame.user_id, { online: frame.online, last_seen: frame.last_seen });
    this.ensureUser(frame.user_id);
    if (!frame.online) for (const id of this.typing.keys()) this.stopTyping(id, frame.user_id);
  }

  // Someone who shares a conversation (or this user, on another device) changed their name
  // or avatar.
  onUserUpdated(frame) {
    const { type, ...user } = frame;
    this.rememberUser({ avatar: undefined, ...user });
    if (frame.user_id === this.me.user_id) {
      this.rememberMe({ display_name: frame.display_name, avatar: frame.avatar });
    }
  }

  onTyping(frame) {
    if (frame.user_id === this.me.user_id) return;
    if (!frame.typing) {
      this.stopTyping(frame.conversation_id, frame.user_id);
      return;
    }
    let who = this.typing.get(frame.conversation_id);
    if (!who) this.typing.set(frame.conversation_id, who = new Map());
    clearTimeout(who.get(frame.user_id));
    who.set(frame.user_id, setTimeout(() => {
      this.stopTyping(frame.conversation_id, frame.user_id);
      this.changed();
    }, TYPING_SHOWN_MS));
    this.ensureUser(frame.user_id);
  }

  stopTyping(conversationId, userId) {
    const who = this.typing.get(conversationId);
    if (!who?.has(userId)) return;
    clearTimeout(who.get(userId));
    who.delete(userId);
  }

  // The catch-up is over: now the outbox goes out (original ids, so a send that reached the
  // server before the connection dropped is answered with its original `sent`), then the
  // acknowledgements, and the conversation details are refreshed.
  onSynced() {
    this.synced = true;
    this.status = 'online';
    for (const entry of [...this.outbox.values()].sort((a, b) => a.created - b.created)) {
      if (!entry.failed) this.transmit(entry);
    }
    this.flushDelivered();
    for (const [id, seq] of this.wantRead) this.markRead(id, seq, true);
    this.refreshConversations();
  }

  onError(frame) {
    const entry = frame.ref && this.outbox.get(frame.ref);
    if (!entry) {
      this.notice = frame.message;
      return;
    }
    this.inflight.delete(entry.client_msg_id);
    if (frame.code === 'rate_limited') {
      // Nothing was stored: the same id again after the pause is the right retry.
      setTimeout(() => this.transmit(entry), frame.retry_after_ms ?? 1000);
      return;
    }
    entry.failed = frame.message;
    this.cache.put('outbox', entry);
  }

  // --- what the user does ---------------------------------------------------------------------

  async enqueue(conversationId, fields) {
    const entry = { client_msg_id: newClientMsgId(), conversation_id: conversationId,
      sender_id: this.me.user_id, kind: 'text', body: '', created: Date.now(), ...fields };
    this.outbox.set(entry.client_msg_id, entry);
    this.changed();
    await this.cache.put('outbox', entry); // on disk before it may go out
    if (this.synced) this.transmit(entry);
  }

  transmit(entry) {
    if (this.inflight.has(entry.client_msg_id) || !this.outbox.has(entry.client_msg_id)) return;
    const frame = { type: 'send', conversation_id: entry.conversation_id,
      client_msg_id: entry.client_msg_id, kind: entry.kind, body: entry.body };
    for (const key of ['media_id', 'reply_to', 'target']) {
      if (entry[key] !== undefined && entry[key] !== null) frame[key] = entry[key];
    }
    if (this.connection?.send(frame)) this.inflight.add(entry.client_msg_id);
  }

  sendText(conversationId, body, replyTo) {
    const fields = { body };
    if (replyTo) fields.reply_to = replyTo;
    return this.enqueue(conversationId, fields);
  }

  react(conversationId, target, emoji) {
    return this.enqueue(conversationId, { kind: 'reaction', target, body: emoji });
  }

  edit(conversationId, target, body) {
    return this.enqueue(conversationId, { kind: 'edit', target, body });
  }

  remove(conversationId, target) {
    return this.enqueue(conversationId, { kind: 'delete', target });
  }

  // Uploads need the node; the message itself then goes through the outbox like any other.
  async sendFile(conversationId, file, caption) {
    const media = await this.api.upload(file);
    await this.cache.put('media', file, media.media_id);
    return this.enqueue(conversationId,
      { kind: 'media', media_id: media.media_id, body: caption || file.name });
  }

  discard(clientMsgId) {
    this.outbox.delete(clientMsgId);
    this.cache.delete('outbox', clientMsgId);
    this.changed();
  }

  retry(clientMsgId) {
    const entry = this.outbox.get(clientMsgId);
    if (!entry) return;
    delete entry.failed;
    this.cache.put('outbox', entry);
    if (this.synced) this.transmit(entry);
    this.changed();
  }

  typingIn(conversationId) {
    const now = Date.now();
    if (now - (this.lastTypingSent.get(conversationId) ?? 0) < TYPING_SEND_EVERY_MS) return;
    if (this.connection?.send({ type: 'typing', conversation_id: conversationId })) {
      this.lastTypingSent.set(conversationId, now);
    }
  }

  // Cumulative: everything up to `seq` has been on screen while the tab was visible.
  // `again`: after a reconnect, repeat a read the server may not have seen.
  markRead(conversationId, seq, again = false) {
    const c = this.conversations.get(conversationId);
    if (!c) return;
    seq = Math.min(seq, c.last_seq);
    if (seq <= c.my_read_seq || (!again && seq <= (this.wantRead.get(conversationId) ?? 0))) return;
    this.wantRead.set(conversationId, seq);
    if (this.synced) this.connection.send({ type: 'read', conversation_id: conversationId, seq });
    this.changed();
  }

  queueDelivered(conversationId, seq) {
    this.pendingDelivered.set(conversationId,
      Math.max(seq, this.pendingDelivered.get(conversationId) ?? 0));
    if (this.synced && !this.deliveredTimer) {
      this.deliveredTimer = setTimeout(() => this.flushDelivered(), DELIVERED_DEBOUNCE_MS);
    }
  }

  flushDelivered() {
    clearTimeout(this.deliveredTimer);
    this.deliveredTimer = null;
    for (const [id, seq] of this.pendingDelivered) {
      if (!this.connection?.send({ type: 'delivered', conversation_id: id, seq })) return;
      this.pendingDelivered.delete(id);
    }
  }

  async open(conversationId) {
    this.openId = conversationId;
    if (conversationId && location.hash !== `#${conversationId}`) location.hash = conversationId;
    this.changed();
    if (!conversationId || this.loaded.has(conversationId)) return;
    this.loaded.add(conversationId);
    const cached = await this.cache.messagesOf(conversationId);
    const bySeq = this.messages.get(conversationId) ?? new Map();
    for (const entry of cached) if (!bySeq.has(entry.seq)) bySeq.set(entry.seq, entry);
    this.messages.set(conversationId, bySeq);
    this.changed();
    if (bySeq.size < HISTORY_PAGE) await this.loadOlder(conversationId);
  }

  // Open a conversation at a search hit. The messages held in memory stay one unbroken run up
  // to the newest, so older pages are loaded down to the hit rather than a window around it.
  async jumpTo(conversationId, seq) {
    this.highlight = { conversationId, seq };
    await this.open(conversationId);
    for (;;) {
      const have = this.messages.get(conversationId);
      if (have?.has(seq) || this.historyDone.has(conversationId)
          || this.highlight?.seq !== seq) break;
      if (this.historyLoading.has(conversationId)) { // a page is on its way already
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const size = have?.size ?? 0;
      await this.loadOlder(conversationId, HISTORY_PAGE_MAX);
      const grew = (this.messages.get(conversationId)?.size ?? 0) > size;
      if (!grew && !this.historyDone.has(conversationId)) break; // offline: the cache is all
    }
    this.changed();
  }

  // The page before the oldest message this device has, from REST.
  async loadOlder(conversationId, limit = HISTORY_PAGE) {
    if (this.historyDone.has(conversationId) || this.historyLoading.has(conversationId)) return;
    const c = this.conversations.get(conversationId);
    const seqs = [...(this.messages.get(conversationId)?.keys() ?? [])];
    const before = seqs.length ? Math.min(...seqs) : (c?.last_seq ?? 0) + 1;
    if (before <= 1) {
      this.historyDone.add(conversationId);
      return;
    }
    this.historyLoading.add(conversationId);
    try {
      const page = await this.api.history(conversationId, before, limit);
      this.addEntries(conversationId, page.messages);
      if (!page.has_more) this.historyDone.add(conversationId);
    } catch {
      // Offline: the cache is all there is for now; scrolling up again retries.
    } finally {
      this.historyLoading.delete(conversationId);
      this.changed();
    }
  }

  async startDirect(username) {
    const user = await this.api.userByName(username.trim());
    this.rememberUser(user);
    return this.adopt(await this.api.createConversation('direct', [user.user_id]));
  }

  async createGroup(name, usernames) {
    const users = await Promise.all(usernames.map((u) => this.api.userByName(u)));
    users.forEach((u) => this.rememberUser(u));
    return this.adopt(await this.api.createConversation('group', users.map((u) => u.user_id),
      name));
  }

  async addMember(conversationId, username) {
    const user = await this.api.userByName(username.trim());
    this.rememberUser(user);
    await this.api.addMember(conversationId, user.user_id);
  }

  async leave(conversationId) {
    await this.api.removeMember(conversationId, this.me.user_id);
    this.forget(conversationId);
    this.open(null);
  }

  // --- details from REST ----------------------------------------------------------------------

  adopt(info) {
    const c = this.conversationFor(info.conversation_id);
    const { unread, ...fields } = info;
    const lastMessage = c.last_message;
    Object.assign(c, fields, { stub: false });
    for (const key of ['last_seq', 'last_delivered_seq', 'last_read_seq', 'my_read_seq']) {
      c[key] = Math.max(c[key] ?? 0, info[key]);
    }
    if (lastMessage && (!info.last_message || lastMessage.seq > info.last_message.seq)) {
      c.last_message = lastMessage;
    }
    for (const m of info.members) this.learnMember(m);
    this.dirtyConversations.add(c.conversation_id);
    this.save();
    this.changed();
    return info.conversation_id;
  }

  async fetchConversation(id) {
    if (this.fetchingConversations.has(id) || !this.me) return;
    this.fetchingConversations.add(id);
    try {
      this.adopt(await this.api.conversation(id));
    } catch { /* retried by the refresh after the next `synced` */ } finally {
      this.fetchingConversations.delete(id);
    }
  }

  async refreshConversations() {
    let list;
    try {
      list = (await this.api.conversations()).conversations;
    } catch {
      return;
    }
    const current = new Set(list.map((c) => c.conversation_id));
    for (const id of [...this.conversations.keys()]) if (!current.has(id)) this.forget(id);
    for (const info of list) this.adopt(info);
  }

  forget(id) {
    this.conversations.delete(id);
    this.messages.delete(id);
    this.cache.delete('conversations', id);
    if (this.openId === id) this.openId = null;
  }

  // REST lists members with their current name and avatar: a `user_updated` missed while
  // offline is made good here.
  learnMember(member) {
    const known = this.users.get(member.user_id);
    if (!member.display_name) {
      this.ensureUser(member.user_id);
      return;
    }
    if (known && known.display_name === member.display_name && known.avatar === member.avatar) return;
    this.rememberUser({ ...known, user_id: member.user_id, display_name: member.display_name,
      avatar: member.avatar });
  }

  rememberUser(user) {
    this.users.set(user.user_id, user);
    this.cache.put('users', user);
  }

  async ensureUser(userId) {
    if (this.users.has(userId) || this.fetchingUsers.has(userId)) return;
    this.fetchingUsers.add(userId);
    try {
      this.rememberUser(await this.api.userById(userId));
      this.changed();
    } catch { /* shown as "…" until the next try */ } finally {
      this.fetchingUsers.delete(userId);
    }
  }

  // An avatar's bytes never change under its id, so the cache keeps them like media.
  async avatarUrl(avatarId) {
    const key = `avatar:${avatarId}`;
    let blob = await this.cache.get('media', key);
    if (!blob) {
      blob = await this.api.avatar(avatarId);
      this.cache.put('media', blob, key);
    }
    return URL.createObjectURL(blob);
  }

  // --- my account -----------------------------------------------------------------------------

  async setDisplayName(name) {
    await this.rememberMe({ avatar: undefined, ...await this.api.setDisplayName(name) });
  }

  async setAvatar(file) {
    await this.rememberMe({ avatar: undefined, ...await this.api.setAvatar(await avatarImage(file)) });
  }

  async removeAvatar() {
    await this.rememberMe({ avatar: undefined, ...await this.api.removeAvatar() });
  }

  async changePassword(current, next, logOutOthers) {
    return this.api.changePassword(current, next, logOutOthers);
  }

  async mediaUrl(mediaId) {
    let blob = await this.cache.get('media', mediaId);
    if (!blob) {
      blob = await this.api.media(mediaId);
      this.cache.put('media', blob, mediaId);
    }
    return { url: URL.createObjectURL(blob), type: blob.type };
  }

  // --- the cache ------------------------------------------------------------------------------

  save() {
    if (!this.saveTimer) this.saveTimer = setTimeout(() => this.flushSave(), SAVE_DEBOUNCE_MS);
  }

  // Messages, conversation records and settled outbox entries in one transaction, so a
  // message never leaves the outbox without landing in the log.
  async flushSave() {
    this.saveTimer = null;
    const messages = this.dirtyMessages.splice(0);
    const conversations = [...this.dirtyConversations].map((id) => this.conversations.get(id))
      .filter(Boolean);
    this.dirtyConversations.clear();
    const settled = this.deletedOutbox.splice(0);
    await this.cache.run(['messages', 'conversations', 'outbox'], 'readwrite', (tx) => {
      for (const m of messages) tx.objectStore('messages').put(m);
      for (const c of conversations) tx.objectStore('conversations').put(c);
      for (const id of settled) tx.objectStore('outbox').delete(id);
    });
  }
}

// A picture made small before it goes up: the node keeps avatars as they come (up to 1 MiB)
// and shows them at a few dozen pixels, so a phone photo is scaled to AVATAR_PX square first.
const AVATAR_PX = 256;

async function avatarImage(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file; // not a picture the browser reads: the node says what is wrong with it
  }
  const side = Math.min(bitmap.width, bitmap.height);
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = Math.min(AVATAR_PX, side);
  canvas.getContext('2d').drawImage(bitmap, (bitmap.width - side) / 2,
    (bitmap.height - side) / 2, side, side, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(blob ?? file), 'image/png'));
}
