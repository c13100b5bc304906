// Qwen2/Qwen3's byte-level BPE tokenizer from a Hugging Face tokenizer.json, or from the same
// vocabulary and merges in a GGUF's metadata (FromVocab): added tokens matched in the raw text
// first, NFC on the rest, the Split pre-tokenizer (pretokenizer.h), GPT-2's byte-to-unicode
// map, then merges by rank. Decoding maps back to bytes; StreamDecoder
// emits text as tokens arrive without ever splitting a UTF-8 sequence.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace qwen3 {

class Tokenizer {
 public:
  // Throws Error naming the file (and the field) for anything it cannot use.
  static Tokenizer FromFile(const std::string& path);
  static Tokenizer FromJson(const std::string& text, const std::string& source);
  // The same tokenizer from a GGUF's tokenizer.ggml.* arrays (model gpt2, pre qwen2): token id
  // = index, merges "a b" by rank, NFC. token_types are llama.cpp's: 1 normal (a byte-level
  // vocab entry), 3 control (an added token, special), 4 user-defined (added, not special),
  // 5 unused (an id with no text, e.g. padding up to the model's vocab; decodes to nothing).
  // size() is tokens.size(). Throws Error naming source for other types, a merge without a
  // space or naming unknown tokens, duplicated tokens, or a missing byte token.
  static Tokenizer FromVocab(const std::vector<std::string>& tokens,
                             const std::vector<int32_t>& token_types,
                             const std::vector<std::string>& merges, const std::string& source);

  // parse_special: added tokens in the text map to their ids (else they are plain text).
  std::vector<int32_t> Encode(std::string_view text, bool parse_special = true) const;
  // Invalid UTF-8 (a cut multi-byte character) decodes as U+FFFD, as the JS reference does.
  std::string Decode(std::span<const int32_t> ids) const;
  // The raw bytes of one token (added tokens: their text).
  std::string TokenBytes(int32_t id) const;

  // The id of a token string (vocab or added), -1 if none.
  int32_t TokenId(std::string_view token) const;
  // One past the largest id.
  size_t size() const { return id_to_token_.size(); }
  bool IsAdded(int32_t id) const;
  bool IsSpecial(int32_t id) const;

 private:
  struct Added {
    std::string content;
    int32_t id;
    bool special;
  };
  // The state both loaders fill, checked: vocab (byte-level string, id), added tokens, merges
  // by rank; at least min_size ids.
  static Tokenizer Build(std::vector<std::pair<std::string, int64_t>> vocab,
                         std::vector<Added> added,
                         const std::vector<std::pair<std::string, std::string>>& merges, bool nfc,
                         size_t min_size, const std::string& source);
  void Bpe(std::string_view piece, std::vector<int32_t>& out) const;
  void EncodeText(std::string_view text, std::vector<int32_t>& out,
                  std::unordered_map<std::string, std::vector<int32_t>>& cache) const;

  std::unordered_map<std::string, int32_t> vocab_;  // byte-level string -> id
  std::vector<std::string> id_to_token_;            // id -> byte-level string (or added text)
  std::vector<uint8_t> added_flags_;                // id -> 1 added, 2 added + special
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a, b) -> (rank, merged)
  std::vector<Added> added_;                        // longest first
  int32_t byte_token_[256];                         // byte -> id of its one-char token
  char32_t byte_char_[256];                         // GPT-2 bytes_to_unicode
  std::unordered_map<char32_t, uint8_t> char_byte_;  // its inverse
  bool nfc_ = false;
};

// Incremental decode: Push(id) returns the text that became complete with this token.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string Push(int32_t id);
  // Whatever is pending (an incomplete sequence at the end decodes as U+FFFD).
  std::string Flush();

 private:
  const Tokenizer& tok_;
  std::string pending_;
};

}  // namespace qwen3
