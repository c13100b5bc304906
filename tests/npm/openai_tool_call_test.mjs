// The official `openai` client receiving a tool call, streamed and not, from a server whose
// scripted checkpoint (tests/tool_call_test.cc) answers "Let me check." and a get_weather call.
//   QWEN3_URL=http://127.0.0.1:PORT node openai_tool_call_test.mjs
import OpenAI from "openai";
import assert from "node:assert/strict";
import { test } from "node:test";

const client = new OpenAI({ baseURL: process.env.QWEN3_URL + "/v1", apiKey: "none", maxRetries: 0, timeout: 60000 });
const request = {
  model: "m",
  messages: [{ role: "user", content: "What is the weather in Paris?" }],
  tools: [{ type: "function", function: { name: "get_weather", description: "Current weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }],
  tool_choice: "auto",
  temperature: 0,
  max_tokens: 64,
  chat_template_kwargs: { enable_thinking: false },
};

test("non-streamed tool call", async () => {
  const r = await client.chat.completions.create(request);
  const c = r.choices[0];
  assert.equal(c.finish_reason, "tool_calls");
  assert.equal(c.message.content, "Let me check.");
  assert.equal(c.message.tool_calls.length, 1);
  const call = c.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
});

test("streamed tool call", async () => {
  const stream = await client.chat.completions.create({ ...request, stream: true });
  let content = "", finish = null;
  const calls = [];
  for await (const chunk of stream) {
    const ch = chunk.choices[0];
    if (!ch) continue;
    if (ch.delta.content) content += ch.delta.content;
    for (const t of ch.delta.tool_calls ?? []) {
      if (t.id) calls[t.index] = { id: t.id, name: t.function.name, arguments: "" };
      calls[t.index].arguments += t.function?.arguments ?? "";
    }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(content, "Let me check.");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, "get_weather");
  assert.deepEqual(JSON.parse(calls[0].arguments), { city: "Paris" });
});
