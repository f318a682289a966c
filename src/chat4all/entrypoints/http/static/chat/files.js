// Attaching a file (the uploads' progress rows, pause and resume) and downloading one.

import { formatSize } from "./message_view.js";
import { Upload, forget, unfinishedUploads } from "./upload.js";

const $ = (id) => document.getElementById(id);

function formatSeconds(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return "…";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
}

export class Files {
  constructor(thread) {
    this.thread = thread;
    this.active = new Map(); // state key -> {upload, row}
    $("attach").addEventListener("click", () => $("file-input").click());
    $("file-input").addEventListener("change", () => {
      const file = $("file-input").files[0];
      $("file-input").value = "";
      if (file) this.attach(file);
    });
  }

  get api() {
    return this.thread.api;
  }

  // The uploads of this conversation: those running, and those a reload interrupted (to resume
  // one, pick the same file again).
  showFor(conversationId) {
    const rows = [];
    for (const { upload, row } of this.active.values()) if (upload.conversationId === conversationId) rows.push(row);
    const running = new Set([...this.active.values()].map(({ upload }) => upload.upload?.file_id));
    for (const saved of unfinishedUploads(this.thread.me)) {
      if (saved.conversation_id !== conversationId || running.has(saved.file_id)) continue;
      const row = document.createElement("li");
      row.className = "interrupted";
      row.textContent = `${saved.filename} (${formatSize(saved.file_size)}) was interrupted: attach it again to resume.`;
      rows.push(row);
    }
    $("uploads").replaceChildren(...rows);
  }

  async attach(file) {
    const conversationId = this.thread.openId;
    const upload = new Upload(this.api, this.thread.me, conversationId, file, () => this.paint(upload));
    const running = this.active.get(upload.key);
    if (running && running.upload.state !== "failed") return;
    const row = this.row(upload);
    this.active.set(upload.key, { upload, row });
    this.showFor(this.thread.openId);
    try {
      const completed = await upload.run();
      const saved = JSON.parse(localStorage.getItem(upload.key) || "null");
      const target = saved?.conversation_id || conversationId;
      const payload = { type: "file", file_id: completed.file_id };
      const shown = { ...payload, filename: completed.filename, file_size: completed.file_size };
      await this.thread.sendTo(target, payload, upload.messageId, shown);
      forget(upload);
      this.active.delete(upload.key);
    } catch (error) {
      upload.error = error.message;
      upload.setState("failed");
    }
    this.showFor(this.thread.openId);
  }

  row(upload) {
    const row = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `${upload.file.name} (${formatSize(upload.file.size)})`;
    const bar = document.createElement("progress");
    bar.max = upload.file.size;
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${upload.file.name}`);
    const line = document.createElement("div");
    line.className = "row";
    const text = document.createElement("span");
    text.className = "upload-status";
    text.setAttribute("aria-live", "polite");
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "secondary";
    toggle.textContent = "Pause";
    toggle.addEventListener("click", () => (upload.paused ? upload.resume() : upload.pause()));
    line.append(text, toggle);
    row.append(name, bar, line);
    row.parts = { bar, text, toggle };
    return row;
  }

  paint(upload) {
    const entry = this.active.get(upload.key);
    if (!entry) return;
    const { bar, text, toggle } = entry.row.parts;
    bar.value = upload.confirmedBytes;
    const done = `${formatSize(upload.confirmedBytes)} of ${formatSize(upload.file.size)}`;
    const resumed = upload.resumed ? ` · resumed: ${upload.resumed} chunks were already on the server` : "";
    const states = {
      uploading: `${done} · ${formatSize(upload.rate)}/s · ${formatSeconds(upload.secondsLeft)} left${resumed}`,
      paused: `${done} · paused`,
      verifying: "checking the SHA-256 on the server…",
      done: "uploaded and verified",
      failed: `failed: ${upload.error}`,
    };
    text.textContent = states[upload.state] || `${done} · ${upload.state}`;
    entry.row.dataset.state = upload.state;
    toggle.textContent = upload.paused ? "Resume" : "Pause";
    toggle.hidden = ["verifying", "done", "failed"].includes(upload.state);
  }

  // Through the page so the token goes in a header, never a URL; saved under the file's own name.
  // A store that hands out its own URLs (S3) is sent to directly.
  async download(fileId, filename, button) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "Downloading…";
    try {
      const status = await this.api.get(`/v1/files/${fileId}`);
      const direct = status.download_url && new URL(status.download_url, location.href).origin !== location.origin;
      if (direct) {
        save(status.download_url, filename);
      } else {
        const response = await fetch(`/v1/files/${fileId}/content`, {
          headers: { Authorization: `Bearer ${this.thread.session.token}` },
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const url = URL.createObjectURL(await response.blob());
        save(url, filename);
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      }
      button.textContent = label;
    } catch (error) {
      button.textContent = `${label}: failed (${error.message})`;
    } finally {
      button.disabled = false;
    }
  }
}

function save(url, filename) {
  const link = document.createElement("a");
  link.href = url;
  link.download = filename || "download";
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
}
