// A chunked, resumable upload. The file is read once, in order: each chunk goes into the SHA-256
// as it is read and, unless the server has it already, to one of a few concurrent senders. The
// upload's id is kept in localStorage under the file's name, size and modification time, so after
// a reload, picking the same file again asks the server which chunks it is missing and sends only
// those. The server checks the SHA-256 at completion.

// hash-wasm's SHA-256, loaded by the page before this module (vendor/hash-wasm).
const { createSHA256 } = window.hashwasm;
const PARALLEL = 3;
const RETRIES = 5;
const STATE_PREFIX = "chat4all.upload.";
const RETRYABLE = new Set([0, 408, 429, 502, 503, 504]);

function stateKey(userId, file) {
  return `${STATE_PREFIX}${userId}:${file.name}:${file.size}:${file.lastModified}`;
}

export function unfinishedUploads(userId) {
  const found = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key.startsWith(`${STATE_PREFIX}${userId}:`)) continue;
    try {
      found.push(JSON.parse(localStorage.getItem(key)));
    } catch {
      localStorage.removeItem(key);
    }
  }
  return found;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Upload {
  constructor(api, userId, conversationId, file, onChange) {
    this.api = api;
    this.file = file;
    this.key = stateKey(userId, file);
    this.conversationId = conversationId;
    this.onChange = onChange;
    this.paused = false;
    this.resumeWaiters = [];
    this.confirmedBytes = 0;
    this.sentBytes = 0; // this session only: the rate counts what went over the wire now
    this.hashSeconds = 0;
    this.error = null;
    this.state = "starting";
  }

  // Runs to the end; resolves with the completed file's status, rejects with an ApiError.
  async run() {
    this.startedAt = performance.now();
    const upload = await this.resumeOrInitiate();
    this.upload = upload;
    this.messageId = upload.message_id;
    if (upload.completed) {
      this.confirmedBytes = this.file.size;
      this.setState("done");
      return upload.completed; // done before a reload; only its message may be left to send
    }
    const have = new Set(upload.received);
    this.chunksResent = 0;
    const hasher = await createSHA256();
    hasher.init();
    const inFlight = new Set();
    for (let index = 0; index < upload.total_chunks; index++) {
      if (this.paused) await this.untilResumed();
      const start = index * upload.chunk_size;
      const chunk = this.file.slice(start, Math.min(start + upload.chunk_size, this.file.size));
      const bytes = new Uint8Array(await chunk.arrayBuffer());
      const hashStarted = performance.now();
      hasher.update(bytes);
      this.hashSeconds += (performance.now() - hashStarted) / 1000;
      if (have.has(index)) {
        this.confirmed(chunk.size);
        continue;
      }
      // The slice, not the bytes read: the browser sends it from the file itself, no copy of ours.
      const sending = this.sendChunk(index, chunk).finally(() => inFlight.delete(sending));
      inFlight.add(sending);
      if (inFlight.size >= PARALLEL) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    this.checksum = hasher.digest("hex");
    this.setState("verifying");
    const completed = await this.api.post("/v1/files/complete", { file_id: upload.file_id, checksum: this.checksum });
    this.setState("done");
    this.announce(completed);
    return completed;
  }

  async resumeOrInitiate() {
    const saved = JSON.parse(localStorage.getItem(this.key) || "null");
    if (saved) {
      try {
        const status = await this.api.get(`/v1/files/${saved.file_id}`);
        if (status.status === "completed") return { ...saved, completed: status };
        const missing = new Set(status.missing_chunks);
        const received = [...Array(status.total_chunks).keys()].filter((index) => !missing.has(index));
        this.resumed = received.length;
        return { ...saved, chunk_size: status.chunk_size, total_chunks: status.total_chunks, received };
      } catch (error) {
        if (![404, 410, 403].includes(error.status)) throw error;
        localStorage.removeItem(this.key); // expired or gone: start afresh
      }
    }
    const started = await this.api.post("/v1/files/initiate", {
      filename: this.file.name,
      file_size: this.file.size,
      content_type: this.file.type || undefined,
    });
    const state = {
      file_id: started.file_id,
      chunk_size: started.chunk_size,
      total_chunks: started.total_chunks,
      filename: this.file.name,
      file_size: this.file.size,
      conversation_id: this.conversationId,
      message_id: crypto.randomUUID(),
    };
    localStorage.setItem(this.key, JSON.stringify(state));
    this.resumed = 0;
    return { ...state, received: [] };
  }

  async sendChunk(index, chunk) {
    const path = `/v1/files/upload?file_id=${this.upload.file_id}&chunk_id=${index}`;
    for (let attempt = 0; ; attempt++) {
      if (this.paused) await this.untilResumed();
      try {
        await this.api.request("PATCH", path, { body: chunk, headers: { "Content-Type": "application/octet-stream" } });
        this.sentBytes += chunk.size;
        this.confirmed(chunk.size);
        return;
      } catch (error) {
        if (!RETRYABLE.has(error.status) || attempt >= RETRIES) throw error;
        this.setState(error.network ? "waiting for the network" : "server busy, retrying");
        await (error.network && !navigator.onLine ? untilOnline() : sleep(500 * 2 ** attempt));
        this.setState("uploading");
      }
    }
  }

  // What the upload cost, for whoever measures the page (benchmarks/browser_upload.py listens).
  announce(completed) {
    const detail = {
      file_id: completed.file_id,
      checksum: this.checksum,
      bytes_sent: this.sentBytes,
      seconds: (performance.now() - this.startedAt) / 1000,
      hash_seconds: this.hashSeconds,
    };
    window.dispatchEvent(new CustomEvent("chat4all:upload-completed", { detail }));
  }

  confirmed(size) {
    this.confirmedBytes += size;
    this.setState(this.paused ? "paused" : "uploading");
  }

  setState(state) {
    this.state = state;
    this.onChange(this);
  }

  // Bytes per second sent in this session, and the seconds left at that rate.
  get rate() {
    const seconds = (performance.now() - this.startedAt) / 1000;
    return seconds > 0.2 ? this.sentBytes / seconds : 0;
  }

  get secondsLeft() {
    const rate = this.rate;
    return rate > 0 ? (this.file.size - this.confirmedBytes) / rate : null;
  }

  pause() {
    this.paused = true;
    this.setState("paused");
  }

  resume() {
    this.paused = false;
    for (const wake of this.resumeWaiters.splice(0)) wake();
    this.setState("uploading");
  }

  untilResumed() {
    return new Promise((resolve) => this.resumeWaiters.push(resolve));
  }
}

function untilOnline() {
  return new Promise((resolve) => window.addEventListener("online", resolve, { once: true }));
}

// Once its message is sent (or the user gives up on it), an upload is nothing to resume.
export function forget(upload) {
  localStorage.removeItem(upload.key);
}
