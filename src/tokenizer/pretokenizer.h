// The Split pre-tokenizer of Qwen2/Qwen3's tokenizer.json: the pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
// ("Isolated": the matches and the gaps between them are the pieces), matched by hand with
// the reference's semantics (a JS regex with the u flag; the (?i:...) group, which JS lacks,
// rewritten to ASCII case classes as @lenml/tokenizers does). The tokenizer checks the file's
// pattern is this one before using it.
#pragma once

#include <string_view>
#include <vector>

namespace qwen3 {

// The pattern as tokenizer.json spells it.
extern const char* const kQwen2SplitPattern;

// Appends the pieces of text (valid UTF-8) to out, in order; they concatenate to text.
void SplitQwen2(std::string_view text, std::vector<std::string_view>& out);

}  // namespace qwen3
