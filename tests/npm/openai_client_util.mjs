// Helpers for openai_client_test.mjs: environment, raw HTTP, /metrics parsing, stream collection,
// deterministic random prompts. Loopback only: every URL comes from the environment.
import assert from "node:assert/strict";
import OpenAI from "openai";

// QWEN3_TIME_SCALE=k (the ThreadSanitizer build's serve_test sets 4): every timeout here and in
// openai_client_test.mjs is k times longer, and the largest concurrent batches shrink.
export const TIME_SCALE = Math.max(1, Number(process.env.QWEN3_TIME_SCALE ?? "1") || 1);
export const REQUEST_TIMEOUT_MS = 60_000 * TIME_SCALE;

function trimSlash(u) {
  return u.replace(/\/+$/, "");
}

// Reads QWEN3_URL_A, QWEN3_URL_B, QWEN3_API_KEY, QWEN3_MODEL; exits 2 with a message when one
// is missing (the harness sets them all).
export function readEnv() {
  const missing = ["QWEN3_URL_A", "QWEN3_URL_B", "QWEN3_API_KEY", "QWEN3_MODEL"].filter(
    (k) => !process.env[k],
  );
  if (missing.length > 0) {
    console.error(
      `openai_client_test: missing environment variable(s) ${missing.join(", ")}.\n` +
        "  QWEN3_URL_A / QWEN3_URL_B: base URLs of the two servers (http://127.0.0.1:PORT, no /v1)\n" +
        "  QWEN3_API_KEY: server A's --api-key; QWEN3_MODEL: the --served-model-name",
    );
    process.exit(2);
  }
  return {
    A: trimSlash(process.env.QWEN3_URL_A),
    B: trimSlash(process.env.QWEN3_URL_B),
    KEY: process.env.QWEN3_API_KEY,
    MODEL: process.env.QWEN3_MODEL,
  };
}

// Server B has no API key; the SDK insists on one, which B must ignore.
export function makeClient(baseUrl, apiKey) {
  return new OpenAI({
    baseURL: baseUrl + "/v1",
    apiKey: apiKey ?? "unused-no-key",
    maxRetries: 0,
    timeout: REQUEST_TIMEOUT_MS,
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A raw HTTP call. body: an object (sent as JSON), a string (sent as is) or undefined (no body).
// Returns {status, headers, text, json (undefined when the body is not JSON)}.
export async function http(url, { method, body, key, headers = {} } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (key !== undefined && key !== null) h["Authorization"] = `Bearer ${key}`;
  const res = await fetch(url, {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers: h,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export function describeResponse(r) {
  const t = r.text.length > 600 ? r.text.slice(0, 600) + "..." : r.text;
  return `HTTP ${r.status}: ${t}`;
}

// Asserts r is an OpenAI error reply with the status; each of `mentions` (strings, or RegExps)
// must occur in error.message. Returns the error object.
export function assertError(r, status, mentions = [], what = "") {
  const ctx = (what ? what + ": " : "") + describeResponse(r);
  assert.equal(r.status, status, `expected HTTP ${status}, got ${ctx}`);
  assert.ok(r.json && typeof r.json === "object", `error body is not JSON: ${ctx}`);
  const e = r.json.error;
  assert.ok(e && typeof e === "object", `no "error" object in the body: ${ctx}`);
  assert.equal(typeof e.message, "string", `error.message is not a string: ${ctx}`);
  assert.ok(e.message.length > 0, `error.message is empty: ${ctx}`);
  assert.equal(typeof e.type, "string", `error.type is not a string: ${ctx}`);
  assert.ok(e.type.length > 0, `error.type is empty: ${ctx}`);
  for (const m of mentions) {
    if (m instanceof RegExp) {
      assert.match(e.message, m, `error.message should match ${m}: ${ctx}`);
    } else {
      assert.ok(e.message.includes(m), `error.message should mention ${JSON.stringify(m)}: ${ctx}`);
    }
  }
  return e;
}

// /metrics as {name or name{labels}: number}.
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/);
    if (!m) continue;
    out[m[1]] = Number(m[2]);
  }
  return out;
}

export async function getMetrics(base) {
  const r = await http(base + "/metrics");
  assert.equal(r.status, 200, `GET ${base}/metrics: ${describeResponse(r)}`);
  return parseMetrics(r.text);
}

// The value of one metric, asserting it is present and a number.
export function metric(m, name) {
  const v = m[name];
  assert.ok(typeof v === "number" && !Number.isNaN(v), `metric ${name} missing or not a number`);
  return v;
}

// Polls /metrics until nothing runs or waits and every KV block is free (cached blocks count as
// free); fails after timeoutMs with the last values. Returns the last metrics.
export async function waitIdle(base, timeoutMs = 5000) {
  timeoutMs *= TIME_SCALE;
  const deadline = Date.now() + timeoutMs;
  let m;
  for (;;) {
    m = await getMetrics(base);
    const running = metric(m, "qwen3:num_requests_running");
    const waiting = metric(m, "qwen3:num_requests_waiting");
    const free = metric(m, "qwen3:kv_cache_blocks_free");
    const total = metric(m, "qwen3:kv_cache_blocks_total");
    if (running === 0 && waiting === 0 && free === total) return m;
    if (Date.now() >= deadline) {
      assert.fail(
        `${base} not idle within ${timeoutMs} ms: num_requests_running=${running} ` +
          `num_requests_waiting=${waiting} kv_cache_blocks_free=${free} kv_cache_blocks_total=${total} ` +
          `kv_cache_blocks_cached=${m["qwen3:kv_cache_blocks_cached"]}`,
      );
    }
    await sleep(100);
  }
}

export async function tokenize(base, key, body) {
  const r = await http(base + "/tokenize", { body, key });
  assert.equal(r.status, 200, `POST /tokenize ${JSON.stringify(body).slice(0, 300)}: ${describeResponse(r)}`);
  assert.ok(Array.isArray(r.json.tokens), `/tokenize: no tokens array: ${describeResponse(r)}`);
  assert.equal(r.json.count, r.json.tokens.length, `/tokenize: count != tokens.length`);
  return r.json;
}

export async function detokenize(base, key, tokens) {
  const r = await http(base + "/detokenize", { body: { tokens }, key });
  assert.equal(r.status, 200, `POST /detokenize: ${describeResponse(r)}`);
  assert.equal(typeof r.json.prompt, "string", `/detokenize: no prompt string: ${describeResponse(r)}`);
  return r.json.prompt;
}

// mulberry32: a small seeded PRNG, so the random prompts are the same on every run.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(r, lo, hi) {
  return lo + Math.floor(r() * (hi - lo + 1));
}

// n ordinary token ids (no special tokens: those are >= 151643).
export function randomIds(r, n) {
  return Array.from({ length: n }, () => randInt(r, 1000, 150000));
}

// Drains a chat completion stream. Returns {chunks, byIndex: Map(index -> {content, reasoning,
// finish, role}), usage (the last non-null), usageChunks}.
export async function collectChat(stream) {
  const chunks = [];
  const byIndex = new Map();
  let usage = null;
  for await (const c of stream) {
    chunks.push(c);
    if (c.usage) usage = c.usage;
    for (const ch of c.choices ?? []) {
      if (!byIndex.has(ch.index)) byIndex.set(ch.index, { content: "", reasoning: "", finish: null, role: null });
      const s = byIndex.get(ch.index);
      const d = ch.delta ?? {};
      if (d.role && s.role === null) s.role = d.role;
      if (typeof d.content === "string") s.content += d.content;
      if (typeof d.reasoning_content === "string") s.reasoning += d.reasoning_content;
      if (ch.finish_reason) {
        assert.equal(s.finish, null, `choice ${ch.index}: finish_reason sent twice`);
        s.finish = ch.finish_reason;
      }
    }
  }
  return { chunks, byIndex, usage };
}

// Drains a completion stream. Returns {chunks, byIndex: Map(index -> {text, finish}), usage}.
export async function collectCompletion(stream) {
  const chunks = [];
  const byIndex = new Map();
  let usage = null;
  for await (const c of stream) {
    chunks.push(c);
    if (c.usage) usage = c.usage;
    for (const ch of c.choices ?? []) {
      if (!byIndex.has(ch.index)) byIndex.set(ch.index, { text: "", finish: null });
      const s = byIndex.get(ch.index);
      if (typeof ch.text === "string") s.text += ch.text;
      if (ch.finish_reason) {
        assert.equal(s.finish, null, `choice ${ch.index}: finish_reason sent twice`);
        s.finish = ch.finish_reason;
      }
    }
  }
  return { chunks, byIndex, usage };
}

// Runs fn, retrying while it fails with HTTP 503 (a full queue), up to deadlineMs from now.
// Returns {value, retries}.
export async function retryOn503(fn, deadlineMs = 45_000) {
  const deadline = Date.now() + deadlineMs;
  let retries = 0;
  for (;;) {
    try {
      return { value: await fn(), retries };
    } catch (e) {
      if (!(e instanceof OpenAI.APIError) || e.status !== 503 || Date.now() > deadline) throw e;
      retries++;
      await sleep(50 + Math.floor(Math.random() * 200));
    }
  }
}

export function short(s, n = 200) {
  const j = s === undefined ? "undefined" : JSON.stringify(s);
  return j.length > n ? j.slice(0, n) + "..." : j;
}
