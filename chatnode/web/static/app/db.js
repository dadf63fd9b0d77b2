// The device's cache in IndexedDB: the session, conversations, messages, the outbox of sends
// not yet acknowledged, known users and media blobs. Everything shown before the network answers
// comes from here, and the outbox survives reloads, so an offline message is never lost.

const NAME = 'chatnode';
const VERSION = 1;
const STORES = ['kv', 'conversations', 'messages', 'outbox', 'users', 'media'];

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export async function openCache() {
  const request = indexedDB.open(NAME, VERSION);
  request.onupgradeneeded = () => {
    const db = request.result;
    db.createObjectStore('kv');
    db.createObjectStore('conversations', { keyPath: 'conversation_id' });
    db.createObjectStore('messages', { keyPath: ['conversation_id', 'seq'] });
    db.createObjectStore('outbox', { keyPath: 'client_msg_id' });
    db.createObjectStore('users', { keyPath: 'user_id' });
    db.createObjectStore('media');
  };
  return new LocalCache(await done(request));
}

class LocalCache {
  constructor(db) {
    this.db = db;
    this.sealed = false;
  }

  // One transaction; resolves when it has committed, with what `work` returned. Once sealed
  // (logged out), writes are dropped.
  run(stores, mode, work) {
    if (this.sealed && mode === 'readwrite') return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(stores, mode);
      let result;
      Promise.resolve(work(tx)).then((value) => { result = value; }, reject);
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  get(store, key) {
    return this.run([store], 'readonly', (tx) => done(tx.objectStore(store).get(key)));
  }

  all(store) {
    return this.run([store], 'readonly', (tx) => done(tx.objectStore(store).getAll()));
  }

  put(store, value, key) {
    return this.run([store], 'readwrite', (tx) => { tx.objectStore(store).put(value, key); });
  }

  putMany(store, values) {
    if (!values.length) return Promise.resolve();
    return this.run([store], 'readwrite', (tx) => {
      const os = tx.objectStore(store);
      for (const value of values) os.put(value);
    });
  }

  delete(store, key) {
    return this.run([store], 'readwrite', (tx) => { tx.objectStore(store).delete(key); });
  }

  messagesOf(conversationId) {
    const range = IDBKeyRange.bound([conversationId, 0], [conversationId, Infinity]);
    return this.run(['messages'], 'readonly',
      (tx) => done(tx.objectStore('messages').getAll(range)));
  }

  // Another user logging in leaves nothing of the last user behind.
  clear() {
    return this.run(STORES, 'readwrite', (tx) => {
      for (const store of STORES) tx.objectStore(store).clear();
    });
  }

  // Logging out: clear everything and accept no write after it, so a save or a fetch that was
  // still under way cannot put the user's data back. (Transactions run in the order they were
  // made, and this one spans every store, so those made before it are cleared by it.)
  seal() {
    const cleared = this.clear();
    this.sealed = true;
    return cleared;
  }
}
