// The message list (an ARIA log): one element per message id, ticks that only move forward (a
// late or repeated status, from an event or a history page, never takes one back).

const TICKS = {
  sending: ["🕓", "sending"],
  queued: ["🕓", "waiting for the network"],
  accepted: ["✓", "sent"],
  routed: ["✓", "sent"],
  delivered: ["✓✓", "delivered"],
  read: ["✓✓", "read"],
  failed: ["!", "failed"],
};
const RANK = { sending: 0, queued: 0, accepted: 1, routed: 2, delivered: 3, failed: 3, read: 4 };
const NEAR_END_PX = 120;

export function formatSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

export class MessageView {
  constructor(log, me, username, thread) {
    this.log = log;
    this.me = me;
    this.username = username;
    this.thread = thread;
    this.clear();
  }

  clear() {
    this.elements = new Map();
    this.statuses = new Map(); // shown, or told by an event before its message was on the page
    this.failures = new Map(); // message id → Map(channel → why it failed there)
    this.log.replaceChildren(this.log.querySelector("#history-state") || document.createElement("p"));
  }

  historyState(text) {
    this.log.querySelector("#history-state").textContent = text;
  }

  // Older messages, oldest first, above what is shown; the reader's place stays where it was.
  prepend(messages) {
    const fromBottom = this.log.scrollHeight - this.log.scrollTop;
    const anchor = this.log.querySelector("#history-state").nextSibling;
    for (const message of messages) {
      if (this.elements.has(message.message_id)) continue;
      this.log.insertBefore(this.render(message), anchor);
    }
    this.log.scrollTop = this.log.scrollHeight - fromBottom;
  }

  add(message) {
    if (this.elements.has(message.message_id)) {
      this.setStatus(message.message_id, message.status);
      return;
    }
    const nearEnd = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < NEAR_END_PX;
    this.log.append(this.render(message));
    if (nearEnd || message.from === this.me) this.scrollToEnd();
  }

  scrollToEnd() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  // The newest message the server has (one still being sent from here is not yet a place to read up to).
  lastFromServer() {
    const ids = [...this.elements.keys()];
    for (let i = ids.length - 1; i >= 0; i--) {
      if (!["sending", "queued"].includes(this.statuses.get(ids[i])) && !this.elements.get(ids[i]).dataset.local) {
        return ids[i];
      }
    }
    return null;
  }

  markNotSent(messageId) {
    this.elements.get(messageId).dataset.local = "true";
  }

  render(message) {
    const mine = message.from === this.me;
    const element = document.createElement("div");
    element.className = mine ? "message mine" : "message";
    element.dataset.id = message.message_id;
    const meta = document.createElement("p");
    meta.className = "meta";
    const author = document.createElement("span");
    author.textContent = mine ? "You" : this.username(message.from);
    const time = document.createElement("time");
    time.dateTime = message.created_at;
    time.textContent = new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    meta.append(author, time);
    element.append(meta, this.body(message.payload));
    if (mine) {
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.setAttribute("role", "img");
      meta.append(tick);
    }
    this.elements.set(message.message_id, element);
    for (const [channel, outcome] of Object.entries(message.deliveries || {})) {
      if (outcome === "failed") this.channelFailed(message.message_id, channel, null);
    }
    // An event may have told more while the history page was on its way: the furthest shows.
    const told = this.statuses.get(message.message_id);
    const status = message.status || "accepted";
    this.paint(message.message_id, told !== undefined && RANK[told] > RANK[status] ? told : status);
    return element;
  }

  body(payload) {
    if (payload.type !== "file") {
      const text = document.createElement("p");
      text.className = "text";
      text.textContent = payload.text;
      return text;
    }
    const wrapper = document.createElement("p");
    wrapper.className = "file";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    const size = payload.file_size ? ` (${formatSize(payload.file_size)})` : "";
    button.textContent = `Download ${payload.filename || "file"}${size}`;
    button.addEventListener("click", () => this.thread.files.download(payload.file_id, payload.filename, button));
    wrapper.append(button);
    return wrapper;
  }

  // A channel that failed, and why when a `message.status` event said it (a history page says
  // which channels failed, not why): shown under the message once it has failed.
  channelFailed(messageId, channel, detail) {
    if (!this.failures.has(messageId)) this.failures.set(messageId, new Map());
    const reasons = this.failures.get(messageId);
    reasons.set(channel, detail ?? reasons.get(channel) ?? null);
  }

  failureOf(messageId) {
    const reasons = [...(this.failures.get(messageId) || [])].map(([channel, why]) => (why ? `${channel}: ${why}` : channel));
    return reasons.length ? `not delivered on ${reasons.join("; ")}` : "not delivered";
  }

  setStatus(messageId, status, failure) {
    const current = this.statuses.get(messageId);
    if (!status || (current !== undefined && RANK[status] < RANK[current])) return;
    this.statuses.set(messageId, status);
    if (this.elements.has(messageId)) this.paint(messageId, status, failure);
  }

  paint(messageId, status, failure = status === "failed" ? this.failureOf(messageId) : null) {
    const element = this.elements.get(messageId);
    this.statuses.set(messageId, status);
    element.dataset.status = status;
    const tick = element.querySelector(".tick");
    if (tick) {
      const [symbol, label] = TICKS[status] || ["", status];
      tick.textContent = symbol;
      tick.dataset.status = status;
      tick.setAttribute("aria-label", label);
      tick.title = label;
    }
    element.querySelector(".failure")?.remove();
    if (failure) {
      const reason = document.createElement("p");
      reason.className = "failure";
      reason.setAttribute("role", "alert");
      reason.textContent = failure;
      element.append(reason);
    }
  }
}
