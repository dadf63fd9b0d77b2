// Names, times and one-line previews, as people expect to read them.

export function displayName(users, userId) {
  const user = users.get(userId);
  return user ? (user.display_name || user.username) : '…';
}

export function conversationTitle(conversation, users, myId) {
  if (conversation.kind === 'group') return conversation.name || 'Group';
  const other = conversation.members.find((m) => m.user_id !== myId);
  return other ? displayName(users, other.user_id) : 'Just you';
}

export function otherMember(conversation, myId) {
  if (conversation.kind !== 'direct') return null;
  return conversation.members.find((m) => m.user_id !== myId)?.user_id ?? null;
}

const sameDay = (a, b) => a.toDateString() === b.toDateString();

export function clockTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function shortTime(ts) {
  const date = new Date(ts);
  if (sameDay(date, new Date())) return clockTime(ts);
  return date.toLocaleDateString([], { day: 'numeric', month: 'short' });
}

export function lastSeen(ts) {
  if (!ts) return 'offline';
  const date = new Date(ts);
  const yesterday = new Date(Date.now() - 86_400_000);
  if (sameDay(date, new Date())) return `last seen today at ${clockTime(ts)}`;
  if (sameDay(date, yesterday)) return `last seen yesterday at ${clockTime(ts)}`;
  return `last seen ${date.toLocaleDateString([], { day: 'numeric', month: 'short' })}`;
}

export function systemText(body, users) {
  let event;
  try {
    event = JSON.parse(body);
  } catch {
    return body;
  }
  const who = event.user_id ? displayName(users, event.user_id) : '';
  switch (event.event) {
    case 'member_added': return `${who} joined`;
    case 'member_removed': return `${who} was removed`;
    case 'member_left': return `${who} left`;
    case 'renamed': return `Group renamed to “${event.name}”`;
    case 'role_changed': return `${who} is now ${event.role}`;
    case 'group_created': return 'Group created';
    default: return event.event ?? body;
  }
}

export function preview(message, users) {
  if (!message) return '';
  switch (message.kind) {
    case 'media': return `📎 ${message.body || 'attachment'}`;
    case 'reaction': return message.body ? `reacted ${message.body}` : 'removed a reaction';
    case 'edit': return `✎ ${message.body}`;
    case 'delete': return 'message deleted';
    case 'system': return systemText(message.body, users);
    default: return message.body;
  }
}
