// The WebSocket half of the protocol: hello with the cache's sync map, keep-alive, and
// reconnection with exponential backoff and jitter. It knows nothing of what the frames mean.

const SUBPROTOCOL = 'chatnode.v1.json';
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
const AUTH_FAILED = 4001;

export class Connection {
  // onFrame(frame), onState('connecting' | 'online' | 'offline'), onAuthFailed(),
  // hello() -> the hello frame to send (built fresh each time: the sync map moves).
  constructor({ hello, onFrame, onState, onAuthFailed }) {
    Object.assign(this, { hello, onFrame, onState, onAuthFailed });
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.stopped = false;
    this.welcomed = false;
    this.lastHeard = 0;
    // Back online, or back on screen (phones freeze background tabs): try now, not after the
    // rest of the backoff.
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => document.visibilityState === 'visible' && this.reconnectNow();
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  // True when the frame went out; false when there is no authenticated session right now
  // (the caller keeps it, e.g. in the outbox, and sends it after the next `synced`).
  send(frame) {
    if (!this.ws || !this.welcomed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // The browser says the network is back, or the user asked: skip the rest of the backoff.
  reconnectNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    this.onState('connecting');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    const ws = new WebSocket(url, SUBPROTOCOL);
    this.ws = ws;
    this.welcomed = false;
    ws.onopen = () => ws.send(JSON.stringify(this.hello()));
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not ours to interpret; the server never sends this
      }
      if (frame.type === 'welcome') this.welcomed = true;
      if (frame.type === 'welcome') this.startHeartbeat(frame.heartbeat_s);
      if (frame.type === 'synced') this.attempt = 0;
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.welcomed = false;
      clearInterval(this.pingTimer);
      if (this.stopped) return;
      if (event.code === AUTH_FAILED) {
        this.onState('offline');
        this.onAuthFailed();
        return;
      }
      this.onState('offline');
      this.retryTimer = setTimeout(() => this.open(), this.nextDelay());
    };
  }

  // "Equal jitter": half the exponential delay, plus a random part of the other half, so a node
  // restart is not met by every browser at the same instant, and no retry comes at once.
  nextDelay() {
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  // A ping every heartbeat/2 keeps the session alive; silence from the node for two heartbeats
  // means the connection is dead even if the browser has not noticed (e.g. a laptop lid).
  startHeartbeat(heartbeatS) {
    clearInterval(this.pingTimer);
    const periodMs = Math.max(1, heartbeatS) * 500;
    this.lastHeard = Date.now();
    this.pingTimer = setInterval(() => {
      if (!this.ws) return;
      if (Date.now() - this.lastHeard > 4 * periodMs) {
        this.ws.close(4000);
        this.ws.onclose({ code: 4000 });
        return;
      }
      this.send({ type: 'ping' });
    }, periodMs);
  }
}
