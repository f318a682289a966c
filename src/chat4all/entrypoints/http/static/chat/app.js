// The web chat: logs in, then keeps the conversation list and the open conversation up to date
// from the user's live events.

import { Api, clearSession, loadSession, logIn, saveSession } from "./api.js";
import { ConversationList } from "./list.js";
import { LiveEvents } from "./live.js";
import { Thread } from "./thread.js";

const $ = (id) => document.getElementById(id);

class App {
  constructor() {
    this.session = loadSession();
    $("login-form").addEventListener("submit", (event) => this.submitLogin(event));
    $("logout").addEventListener("click", () => this.logOut());
    this.list = new ConversationList((id) => this.open(id));
    this.thread = new Thread(this.list, () => this.closeThread());
    if (this.session) this.enter();
    else this.showLogin();
  }

  showLogin(reason = "") {
    $("chat-view").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = reason;
    $("username").focus();
  }

  async submitLogin(event) {
    event.preventDefault();
    const button = event.submitter;
    button.disabled = true;
    try {
      this.session = await logIn($("username").value.trim(), $("password").value);
      saveSession(this.session);
      $("password").value = "";
      await this.enter();
    } catch (error) {
      $("login-error").textContent = `Login failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }

  async enter() {
    const session = this.session;
    this.api = new Api(session.token, () => this.expired());
    $("login-view").hidden = true;
    $("chat-view").hidden = false;
    $("whoami").textContent = session.username;
    this.list.start(this.api, session);
    this.thread.start(this.api, session);
    try {
      // The log's head first, then the state over REST: resuming from that head then misses
      // nothing, and an event the REST answers already showed is recognised by its message id.
      const head = await this.api.get("/v1/events?timeout=0");
      await this.list.load();
      this.startLive(head.next);
    } catch (error) {
      if (error.status !== 401) $("connection").textContent = `Could not load: ${error.message}`;
    }
  }

  startLive(since) {
    this.live = new LiveEvents(this.session.token, since, {
      onEvent: (frame) => this.handle(frame),
      onTyping: (frame) => this.thread.typing(frame.data),
      onResync: (frame) => this.resync(frame),
      onState: (text) => this.connectionState(text),
      onAuthLost: () => this.expired(),
    });
    this.thread.live = this.live;
    this.live.start();
  }

  connectionState(text) {
    $("connection").textContent = text;
    if (!text) this.thread.flushOutbox(); // connected again: what could not be sent goes now
  }

  handle(frame) {
    const data = frame.data;
    if (frame.type === "message.created") this.thread.messageCreated(data);
    else if (frame.type === "message.status") this.thread.messageStatus(data);
    else if (frame.type === "conversation.read") this.thread.conversationRead(data);
    this.list.changed(frame);
  }

  async resync(frame) {
    // Events past our cursor are no longer kept: reload the state, then go on from where it stands.
    await this.list.load();
    if (this.thread.openId) await this.thread.open(this.thread.openId);
    if (frame.reason === "cursor_expired") this.live.resumeFrom(frame.resume_from);
  }

  open(conversationId) {
    $("chat-view").classList.add("in-thread");
    $("pick-hint").hidden = true;
    this.thread.open(conversationId);
  }

  closeThread() {
    $("chat-view").classList.remove("in-thread");
    $("pick-hint").hidden = false;
    this.thread.close();
    this.list.select(null);
  }

  expired() {
    this.leave("Your session has ended: log in again.");
  }

  async logOut() {
    try {
      await this.api.request("POST", "/auth/logout");
    } catch {
      // Logged out here whatever the server said; the token expires on its own.
    }
    this.leave("");
  }

  leave(reason) {
    if (this.live) this.live.stop();
    this.thread.close();
    this.live = null;
    clearSession();
    this.session = null;
    $("conversation-list").replaceChildren();
    this.showLogin(reason);
  }
}

new App();
