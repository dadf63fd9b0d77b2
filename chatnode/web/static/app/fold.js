// What a conversation looks like on screen, derived from its append-only log: edits, reactions
// and deletions are events with their own seq, folded here onto the messages they target.
// Sends still in the outbox are folded in too, so the screen shows them at once.

const SHOWN_KINDS = new Set(['text', 'media', 'system']);

// entries: the log entries this device has (any order); pending: outbox entries.
export function foldConversation(entries, pending) {
  const sorted = [...entries].sort((a, b) => a.seq - b.seq);
  const items = [];
  const bySeq = new Map();
  for (const entry of sorted) {
    if (SHOWN_KINDS.has(entry.kind)) {
      const item = { ...entry, edited: false, deleted: false, reactions: new Map(), pending: false };
      items.push(item);
      bySeq.set(entry.seq, item);
    } else {
      applyEvent(bySeq, entry);
    }
  }
  for (const entry of [...pending].sort((a, b) => a.created - b.created)) {
    if (SHOWN_KINDS.has(entry.kind)) {
      items.push({ ...entry, seq: undefined, ts: entry.created, edited: false, deleted: false,
        reactions: new Map(), pending: true });
    } else if (!entry.failed) {
      applyEvent(bySeq, entry);
    }
  }
  return { items, bySeq };
}

function applyEvent(bySeq, event) {
  const target = bySeq.get(event.target);
  if (!target) return;
  // Only the author edits or deletes a message (the server checks too); anyone may react.
  if (event.kind !== 'reaction' && target.sender_id !== event.sender_id) return;
  if (event.kind === 'edit' && !target.deleted) {
    target.body = event.body;
    target.edited = true;
  } else if (event.kind === 'delete') {
    target.deleted = true;
    target.body = '';
    target.media_id = undefined;
  } else if (event.kind === 'reaction') {
    // One reaction per user per message; an empty body takes it back.
    if (event.body) target.reactions.set(event.sender_id, event.body);
    else target.reactions.delete(event.sender_id);
  }
}

// emoji -> [user_id], in first-seen order: the chips under a message.
export function groupReactions(reactions) {
  const grouped = new Map();
  for (const [userId, emoji] of reactions) {
    if (!grouped.has(emoji)) grouped.set(emoji, []);
    grouped.get(emoji).push(userId);
  }
  return grouped;
}

// The tick of one of the viewer's own messages, from the conversation's two markers only.
export function tickOf(item, conversation) {
  if (item.failed) return 'failed';
  if (item.pending) return 'sending';
  if (item.seq <= conversation.last_read_seq) return 'read';
  if (item.seq <= conversation.last_delivered_seq) return 'delivered';
  return 'sent';
}
