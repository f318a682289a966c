// The open conversation: its history (older pages load as you scroll up), new messages as they
// come, the composer (Enter sends), per-message ticks and the typing indicator. A message is
// shown once whatever way it arrives (sent here, a live event, a history page): by its id.

import { Files } from "./files.js";
import { MessageView } from "./message_view.js";

const $ = (id) => document.getElementById(id);
const PAGE = 30;
const TYPING_EVERY_MS = 2000;

export class Thread {
  constructor(list, onClose) {
    this.list = list;
    this.openId = null;
    this.live = null;
    this.files = new Files(this);
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendText();
    });
    $("message-input").addEventListener("keydown", (event) => this.keydown(event));
    $("back").addEventListener("click", onClose);
    $("leave").addEventListener("click", () => this.leave(onClose));
    $("messages").addEventListener("scroll", () => this.maybeLoadOlder());
  }

  start(api, session) {
    this.api = api;
    this.me = session.userId;
    this.session = session;
    this.outbox = new Map();
    this.view = new MessageView($("messages"), session.userId, (id) => this.list.username(id), this);
  }

  async open(conversationId) {
    this.openId = conversationId;
    this.before = null;
    this.view.clear();
    this.list.select(conversationId);
    const conversation = this.list.get(conversationId);
    $("thread").hidden = false;
    $("thread-title").textContent = conversation ? this.list.title(conversation) : "Conversation";
    $("leave").hidden = !conversation || conversation.type !== "group";
    $("typing").textContent = "";
    $("thread-error").textContent = "";
    this.files.showFor(conversationId);
    $("message-input").focus();
    try {
      await this.loadLatest(conversationId);
    } catch (error) {
      $("thread-error").textContent = `Could not load the messages: ${error.message}`;
    }
  }

  close() {
    this.openId = null;
    $("thread").hidden = true;
  }

  async loadLatest(conversationId) {
    const path = `/v1/conversations/${conversationId}/messages`;
    const head = await this.api.get(`${path}?limit=1`);
    const page = await this.api.get(`${path}?limit=${PAGE}&offset=${Math.max(0, head.total - PAGE)}`);
    if (conversationId !== this.openId) return;
    this.before = page.offset > 0 ? page.before : null;
    this.view.prepend(page.messages);
    this.view.historyState(this.before ? "" : "Start of the conversation");
    this.view.scrollToEnd();
    this.markRead();
  }

  async maybeLoadOlder() {
    if (!this.before || this.loadingOlder || $("messages").scrollTop > 80) return;
    const conversationId = this.openId;
    this.loadingOlder = true;
    this.view.historyState("Loading older messages…");
    try {
      const page = await this.api.get(`/v1/conversations/${conversationId}/messages?limit=${PAGE}&before=${this.before}`);
      if (conversationId !== this.openId) return;
      this.before = page.offset > 0 ? page.before : null;
      this.view.prepend(page.messages);
      this.view.historyState(this.before ? "" : "Start of the conversation");
    } catch (error) {
      this.view.historyState(`Could not load older messages: ${error.message}`);
    } finally {
      this.loadingOlder = false;
    }
  }

  keydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.sendText();
      return;
    }
    const now = Date.now();
    const writes = event.key.length === 1 || event.key === "Backspace" || event.key === "Delete";
    if (writes && this.live && this.openId && now - (this.typingSentAt || 0) > TYPING_EVERY_MS) {
      this.typingSentAt = now;
      this.live.sendTyping(this.openId);
    }
  }

  sendText() {
    const input = $("message-input");
    const text = input.value.trim();
    if (!text || !this.openId) return;
    input.value = "";
    this.send({ type: "text", text }, crypto.randomUUID());
  }

  // Shown at once; a message that could not leave for want of network goes when the network is
  // back, with the same id (the server takes a repeat of the same message as the same message).
  // `shown`: what to show of the payload until the server's copy comes (a file's name and size).
  async send(payload, messageId, shown = payload) {
    const message = {
      message_id: messageId,
      conversation_id: this.openId,
      from: this.me,
      channels: ["all"],
      payload,
    };
    this.view.add({ ...message, payload: shown, status: "sending", created_at: new Date().toISOString() });
    this.outbox.set(messageId, message);
    await this.post(message);
  }

  async sendTo(conversationId, payload, messageId, shown) {
    if (conversationId === this.openId) return this.send(payload, messageId, shown);
    const message = { message_id: messageId, conversation_id: conversationId, from: this.me, channels: ["all"], payload };
    return this.api.post("/v1/messages", message);
  }

  async post(message) {
    try {
      await this.api.post("/v1/messages", message);
      this.outbox.delete(message.message_id);
      this.view.setStatus(message.message_id, "accepted");
    } catch (error) {
      if (error.network) {
        this.view.setStatus(message.message_id, "queued");
        return;
      }
      this.outbox.delete(message.message_id);
      this.view.setStatus(message.message_id, "failed", `not sent: ${error.message}`);
      this.view.markNotSent(message.message_id);
    }
  }

  flushOutbox() {
    for (const message of [...this.outbox.values()]) this.post(message);
  }

  messageCreated(message) {
    if (message.conversation_id !== this.openId) return;
    this.view.add(message);
    if (message.from !== this.me) {
      this.clearTyping(message.from);
      this.markRead();
    }
  }

  // Our ticks move on the server's word alone: a `message.status` for each channel outcome, and
  // one when everyone has read the message. A channel that failed says why.
  messageStatus(data) {
    if (data.channel?.status === "failed") this.view.channelFailed(data.message_id, data.channel.name, data.channel.detail);
    this.view.setStatus(data.message_id, data.status);
  }

  conversationRead() {
    // Our own tick turns to read on the `message.status` event the server writes for it.
  }

  async markRead() {
    const last = this.view.lastFromServer();
    if (!last || document.visibilityState !== "visible") return;
    try {
      await this.api.post(`/v1/conversations/${this.openId}/read`, { up_to: last });
    } catch {
      // Still unread on the server; the next message or visit marks it.
    }
  }

  typing(data) {
    if (data.conversation_id !== this.openId || data.user_id === this.me) return;
    const until = Date.parse(data.until);
    $("typing").textContent = `${this.list.username(data.user_id)} is typing…`;
    this.typingUser = data.user_id;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.clearTyping(data.user_id), Math.max(until - Date.now(), 1000));
  }

  clearTyping(userId) {
    if (this.typingUser !== userId) return;
    $("typing").textContent = "";
    this.typingUser = null;
  }

  async leave(onClose) {
    const conversationId = this.openId;
    try {
      await this.api.request("DELETE", `/v1/conversations/${conversationId}/members/me`);
      this.list.forget(conversationId);
      onClose();
    } catch (error) {
      $("thread-error").textContent = `Could not leave: ${error.message}`;
    }
  }
}
