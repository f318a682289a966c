// The user's live events over /v1/events/ws. It reconnects by itself (at once when the browser
// says the network is back, else with back-off) and resumes after the last seq it handed on, so
// nothing is missed; a seq it has seen already is never handed on twice.

const PING_EVERY_MS = 10000;
const PONG_WITHIN_MS = 5000;
const MAX_BACKOFF_MS = 10000;

export class LiveEvents {
  constructor(token, since, handlers) {
    this.token = token;
    this.since = since;
    this.handlers = handlers; // {onEvent(frame), onTyping(frame), onResync(frame), onState(text), onAuthLost()}
    this.socket = null;
    this.backoff = 500;
    this.stopped = false;
    this.timers = [];
    this.reconnectNow = () => this.reconnect(0);
    this.dropNow = () => this.drop("offline");
    window.addEventListener("online", this.reconnectNow);
    window.addEventListener("offline", this.dropNow);
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.reconnectNow);
    window.removeEventListener("offline", this.dropNow);
    this.clearTimers();
    if (this.socket) this.socket.close(1000);
    this.socket = null;
  }

  sendTyping(conversationId) {
    this.send({ type: "typing", conversation_id: conversationId });
  }

  resumeFrom(seq) {
    this.since = seq;
    this.send({ type: "resume", since: seq });
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  connect() {
    if (this.stopped) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/events/ws`;
    const socket = new WebSocket(url);
    this.socket = socket;
    this.handlers.onState("connecting…");
    socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token: this.token }));
    socket.onmessage = (message) => this.receive(socket, JSON.parse(message.data));
    socket.onclose = (closed) => this.closed(socket, closed.code);
  }

  receive(socket, frame) {
    if (socket !== this.socket) return;
    this.lastHeard = Date.now();
    if (frame.type === "ready") {
      this.backoff = 500;
      this.handlers.onState("");
      socket.send(JSON.stringify({ type: "resume", since: this.since }));
      this.keepAlive(socket);
    } else if (typeof frame.seq === "number") {
      if (this.since !== null && frame.seq <= this.since) return;
      this.since = frame.seq;
      this.handlers.onEvent(frame);
    } else if (frame.type === "typing") {
      this.handlers.onTyping(frame);
    } else if (frame.type === "resync") {
      this.handlers.onResync(frame);
    }
  }

  closed(socket, code) {
    if (socket !== this.socket || this.stopped) return;
    this.clearTimers();
    this.socket = null;
    if (code === 4401) {
      this.handlers.onAuthLost();
      return;
    }
    this.handlers.onState("offline: reconnecting…");
    const wait = navigator.onLine ? this.backoff : MAX_BACKOFF_MS;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.timers.push(setTimeout(() => this.connect(), wait));
  }

  drop(reason) {
    if (!this.socket) return;
    const socket = this.socket;
    this.closed(socket, 1006);
    socket.close(4000, reason);
  }

  reconnect(delay) {
    if (this.stopped) return;
    this.drop("reconnecting");
    this.clearTimers();
    this.timers.push(setTimeout(() => this.connect(), delay));
  }

  keepAlive(socket) {
    // A socket can stay "open" on a dead network for minutes: a missing pong finds out sooner.
    this.timers.push(
      setInterval(() => {
        if (Date.now() - this.lastHeard > PING_EVERY_MS + PONG_WITHIN_MS) this.reconnect(0);
        else this.send({ type: "ping" });
      }, PING_EVERY_MS),
    );
  }

  clearTimers() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
  }
}
