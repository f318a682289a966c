// The conversation list (newest activity first, unread counts, last message) and the form that
// starts a conversation. The server's list is the truth: an event updates the list at once where
// it can, then the list is fetched again (once per burst of events) for the exact counts.

const $ = (id) => document.getElementById(id);
const REFRESH_AFTER_MS = 150;

export function describePayload(payload) {
  if (!payload) return "";
  return payload.type === "file" ? `📎 ${payload.filename || "file"}` : payload.text || "";
}

export class ConversationList {
  constructor(onOpen) {
    this.onOpen = onOpen;
    this.conversations = [];
    this.selected = null;
    $("new-conversation").addEventListener("submit", (event) => this.submitNew(event));
  }

  start(api, session) {
    this.api = api;
    this.me = session.userId;
    this.names = new Map([[session.userId, session.username]]);
    this.conversations = [];
  }

  async load() {
    await this.loadUsers();
    const page = await this.api.get("/v1/conversations?limit=100");
    this.conversations = page.conversations;
    this.render();
  }

  async loadUsers() {
    const found = await this.api.get("/v1/users?limit=100");
    for (const user of found.users) this.names.set(user.user_id, user.username);
  }

  username(userId) {
    return this.names.get(userId) || "someone";
  }

  get(conversationId) {
    return this.conversations.find((each) => each.conversation_id === conversationId);
  }

  title(conversation) {
    if (conversation.metadata && conversation.metadata.name) return conversation.metadata.name;
    const others = conversation.members.filter((member) => member !== this.me);
    return others.map((member) => this.username(member)).join(", ") || "(only you)";
  }

  changed(frame) {
    const data = frame.data;
    if (frame.type === "message.created") {
      const conversation = this.get(data.conversation_id);
      if (conversation) {
        conversation.last_message = data;
        this.conversations = [conversation, ...this.conversations.filter((each) => each !== conversation)];
        this.render();
      }
    }
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(frame.type === "conversation.created"), REFRESH_AFTER_MS);
  }

  async refresh(withUsers) {
    try {
      if (withUsers) await this.loadUsers();
      const page = await this.api.get("/v1/conversations?limit=100");
      this.conversations = page.conversations;
      this.render();
    } catch {
      // The next event, or the next reconnection, refreshes it.
    }
  }

  select(conversationId) {
    this.selected = conversationId;
    this.render();
  }

  forget(conversationId) {
    this.conversations = this.conversations.filter((each) => each.conversation_id !== conversationId);
    this.render();
  }

  render() {
    const list = $("conversation-list");
    const hadFocus = list.contains(document.activeElement) ? document.activeElement.dataset.id : null;
    list.replaceChildren(...this.conversations.map((conversation) => this.item(conversation)));
    $("no-conversations").hidden = this.conversations.length > 0;
    if (hadFocus) list.querySelector(`button[data-id="${hadFocus}"]`)?.focus();
  }

  item(conversation) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.id = conversation.conversation_id;
    button.setAttribute("aria-current", String(conversation.conversation_id === this.selected));
    const name = span("name", this.title(conversation));
    const unread = conversation.conversation_id === this.selected ? 0 : conversation.unread_count;
    const badge = span("unread", unread ? String(unread) : "");
    badge.hidden = !unread;
    badge.setAttribute("aria-label", `${unread} unread`);
    const last = conversation.last_message;
    const preview = last ? `${this.username(last.from)}: ${describePayload(last.payload)}` : "No messages yet";
    button.append(name, badge, span("preview", preview));
    button.addEventListener("click", () => this.onOpen(conversation.conversation_id));
    li.append(button);
    return li;
  }

  async submitNew(event) {
    event.preventDefault();
    const error = $("new-error");
    error.textContent = "";
    const usernames = $("new-members").value.split(/[\s,]+/).filter(Boolean);
    const groupName = $("group-name").value.trim();
    try {
      const members = [this.me, ...(await Promise.all(usernames.map((name) => this.userId(name))))];
      const group = usernames.length > 1 || groupName;
      const body = { type: group ? "group" : "private", members: [...new Set(members)] };
      if (groupName) body.metadata = { name: groupName };
      const conversation = await this.api.post("/v1/conversations", body);
      $("new-members").value = "";
      $("group-name").value = "";
      await this.refresh(false);
      this.onOpen(conversation.conversation_id);
    } catch (failure) {
      error.textContent = `Could not start it: ${failure.message}`;
    }
  }

  async userId(username) {
    const found = await this.api.get(`/v1/users?username=${encodeURIComponent(username)}`);
    if (!found.users.length) throw new Error(`no user named ${username}`);
    this.names.set(found.users[0].user_id, username);
    return found.users[0].user_id;
  }
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}
