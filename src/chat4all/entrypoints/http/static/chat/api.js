// The REST API as the page uses it: same origin, a bearer token, errors with the server's reason.

const SESSION_KEY = "chat4all.session";

export class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body.error_code || "http_error";
  }

  get network() {
    return this.status === 0;
  }
}

// The session (token and user) lives in this tab's sessionStorage: readable by this origin only,
// kept across a reload (an upload resumes after one), gone when the tab closes or on logout.
export function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

export class Api {
  constructor(token, onExpired) {
    this.token = token;
    this.onExpired = onExpired;
  }

  async request(method, path, { json, body, headers = {}, signal } = {}) {
    const sent = { ...headers };
    if (this.token) sent.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      sent["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(path, { method, headers: sent, body, signal, cache: "no-store" });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, { detail: "the hub cannot be reached (network down?)", error_code: "network" });
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new ApiError(response.status, data || {});
      if (response.status === 401 && this.token && this.onExpired) this.onExpired(error);
      throw error;
    }
    return data;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, json) {
    return this.request("POST", path, { json });
  }
}

export async function logIn(username, password) {
  const api = new Api(null);
  const issued = await api.post("/auth/token", { username, password });
  const me = await new Api(issued.access_token).get("/v1/users/me");
  return { token: issued.access_token, userId: me.user_id, username: me.username };
}
