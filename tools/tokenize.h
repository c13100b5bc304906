// `qwen3 tokenize`: stdin -> ids on one line (space-separated); --decode: ids -> text;
// --jsonl: every input line is a JSON string (with --decode: a JSON array of ids) and every
// output line is the JSON array of its ids (the JSON string of its text), one process for
// many texts. Bad input (not JSON, an id out of range) is an Error naming the line.
#pragma once

#include <iosfwd>

namespace qwen3 {

class Tokenizer;

void RunTokenize(const Tokenizer& tok, bool decode, bool jsonl, std::istream& in,
                 std::ostream& out);
void RunTokenize(const Tokenizer& tok, bool decode, bool jsonl);  // stdin -> stdout

}  // namespace qwen3
