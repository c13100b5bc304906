#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace qwen3 {
namespace {

using json = nlohmann::json;

[[noreturn]] void Fail(const std::string& source, const std::string& what) {
  throw Error("tokenizer " + source + ": " + what);
}

// A token as JSON writes it, for messages. A GGUF's tokens are arbitrary bytes, and dump()
// throws on invalid UTF-8: replace it (fuzz/regressions/gguf/).
std::string Quoted(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256 + k.
void ByteChars(char32_t* map) {
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map[b] = keep ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
  }
}

// A json DOM built from SAX events, with nlohmann's public API only (its own builder,
// nlohmann::detail::json_sax_dom_parser, is internal: its template changed in 3.12). As
// json::parse does, a repeated key keeps its last value. stack_ holds the open containers:
// a child is added to the innermost, and while it is open its parent is not touched, so the
// pointers stay valid.
class DomBuilder {
 public:
  explicit DomBuilder(json& root) : root_(root) {}
  bool Value(json&& v) {
    Add(std::move(v));
    return true;
  }
  bool StartContainer(json&& empty) {
    stack_.push_back(Add(std::move(empty)));
    return true;
  }
  bool Key(std::string& k) {
    key_ = std::move(k);
    return true;
  }
  bool EndContainer() {
    stack_.pop_back();
    return true;
  }

 private:
  json* Add(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }

  json& root_;
  std::vector<json*> stack_;
  std::string key_;
};

// Parses tokenizer.json in one pass: model.vocab and model.merges (300k small values, most of
// the 11 MB) go straight into flat tables; everything else becomes a small DOM with those two
// replaced by null. Twice as fast as building the whole DOM (the 0.5 s load budget).
class LoadSax final : public nlohmann::json_sax<json> {
 public:
  explicit LoadSax(json& root) : dom_(root) {}
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;

  bool null() override { return Bulk() ? BadBulk("null") : dom_.Value(nullptr); }
  bool boolean(bool v) override { return Bulk() ? BadBulk("a boolean") : dom_.Value(v); }
  bool number_integer(json::number_integer_t v) override {
    if (mode_ == kVocab) return AddVocab(v);
    return Bulk() ? BadBulk("a number") : dom_.Value(v);
  }
  bool number_unsigned(json::number_unsigned_t v) override {
    if (mode_ == kVocab) return AddVocab(static_cast<int64_t>(v));
    return Bulk() ? BadBulk("a number") : dom_.Value(v);
  }
  bool number_float(json::number_float_t v, const std::string&) override {
    return Bulk() ? BadBulk("a number") : dom_.Value(v);
  }
  bool string(std::string& v) override {
    if (mode_ == kMerges) {
      if (pair_ >= 0) {
        if (pair_ >= 2) return BadBulk("a merge of more than 2 strings");
        (pair_++ == 0 ? merges.emplace_back().first : merges.back().second) = std::move(v);
        return true;
      }
      const size_t sp = v.find(' ');
      if (sp == std::string::npos) return BadBulk("merge \"" + v + "\" without a space");
      merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
      return true;
    }
    return mode_ == kVocab ? BadBulk("a string value") : dom_.Value(std::move(v));
  }
  bool binary(json::binary_t& v) override {
    return Bulk() ? BadBulk("binary") : dom_.Value(json::binary(std::move(v)));
  }
  bool start_object(std::size_t) override {
    if (mode_ == kNone && depth_ == 2 && keys_[1] == "model" && keys_[2] == "vocab") {
      mode_ = kVocab;
      return true;
    }
    if (Bulk()) return BadBulk("an object");
    Push();
    return dom_.StartContainer(json::object());
  }
  bool key(std::string& k) override {
    if (mode_ == kVocab) {
      key_ = std::move(k);
      return true;
    }
    if (mode_ == kMerges) return BadBulk("an object");
    keys_[depth_] = k;
    return dom_.Key(k);
  }
  bool end_object() override {
    if (mode_ == kVocab) {
      mode_ = kNone;
      return dom_.Value(nullptr);
    }
    Pop();
    return dom_.EndContainer();
  }
  bool start_array(std::size_t) override {
    if (mode_ == kNone && depth_ == 2 && keys_[1] == "model" && keys_[2] == "merges") {
      mode_ = kMerges;
      return true;
    }
    if (mode_ == kMerges) {
      if (pair_ >= 0) return BadBulk("nested arrays");
      pair_ = 0;
      return true;
    }
    if (mode_ == kVocab) return BadBulk("an array");
    Push();
    return dom_.StartContainer(json::array());
  }
  bool end_array() override {
    if (mode_ == kMerges) {
      if (pair_ >= 0) {
        if (pair_ != 2) return BadBulk("a merge that is not 2 strings");
        pair_ = -1;
        return true;
      }
      mode_ = kNone;
      return dom_.Value(nullptr);
    }
    Pop();
    return dom_.EndContainer();
  }
  bool parse_error(std::size_t pos, const std::string&, const json::exception& e) override {
    throw Error("not valid JSON at byte " + std::to_string(pos) + ": " + e.what());
  }

 private:
  enum Mode { kNone, kVocab, kMerges };
  bool Bulk() const { return mode_ != kNone; }
  bool BadBulk(const std::string& what) {
    throw Error(std::string(mode_ == kVocab ? "model.vocab" : "model.merges") + ": unexpected " + what);
  }
  bool AddVocab(int64_t id) {
    vocab.emplace_back(std::move(key_), id);
    return true;
  }
  void Push() {
    ++depth_;
    if (keys_.size() <= static_cast<size_t>(depth_) + 1) keys_.resize(depth_ + 2);
    keys_[depth_].clear();
  }
  void Pop() { --depth_; }

  DomBuilder dom_;
  Mode mode_ = kNone;
  int depth_ = 0, pair_ = -1;
  std::vector<std::string> keys_ = std::vector<std::string>(4);
  std::string key_;
};

}  // namespace

Tokenizer Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("tokenizer " + path + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return FromJson(s.str(), path);
}

Tokenizer Tokenizer::FromJson(const std::string& text, const std::string& source) {
  const auto fail = [&](const std::string& what) { Fail(source, what); };
  json j;
  LoadSax sax(j);
  try {
    json::sax_parse(text, &sax);
  } catch (const Error& e) {
    fail(e.what());
  } catch (const json::exception& e) {
    fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail("expected a JSON object");
  bool nfc = false;
  std::vector<Added> added;
  try {
    const json& model = j.at("model");
    if (model.at("type") != "BPE") fail("model.type " + model.at("type").dump() + ": expected \"BPE\"");
    // The pipeline this class implements; anything else is refused, not half-supported.
    const json& norm = j.at("normalizer");
    if (!norm.is_null()) {
      if (norm.at("type") != "NFC") fail("normalizer " + norm.dump() + ": expected NFC or null");
      nfc = true;
    }
    const json& pre = j.at("pre_tokenizer");
    json split;
    bool byte_level = false;
    const json steps = pre.at("type") == "Sequence" ? pre.at("pretokenizers") : json::array({pre});
    for (const json& p : steps) {
      if (p.at("type") == "Split") {
        split = p;
      } else if (p.at("type") == "ByteLevel" && !p.value("use_regex", true) &&
                 !p.value("add_prefix_space", false)) {
        byte_level = true;
      } else {
        fail("pre_tokenizer " + p.dump().substr(0, 120) + ": unsupported");
      }
    }
    if (split.is_null() || !byte_level) fail("pre_tokenizer: expected Split + ByteLevel");
    const std::string pattern = split.at("pattern").at("Regex").get<std::string>();
    if (pattern != kQwen2SplitPattern || split.value("behavior", "") != "Isolated" ||
        split.value("invert", false)) {
      fail("pre_tokenizer Split pattern " + Quoted(pattern).substr(0, 80) +
           "...: expected the Qwen2 pattern, Isolated");
    }
    if (sax.vocab.empty()) fail("model.vocab: missing or empty");
    for (const json& a : j.at("added_tokens")) {
      const std::string content = a.at("content").get<std::string>();
      // get<int32_t> would convert any number, a float past int's range by UB.
      const json& id = a.at("id");
      if (!id.is_number_unsigned() || id.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)) {
        fail("added token " + Quoted(content) + " has id " + id.dump() +
             ": expected an integer in 0.." + std::to_string(INT32_MAX));
      }
      added.push_back(
          {content, static_cast<int32_t>(id.get<uint64_t>()), a.value("special", false)});
    }
  } catch (const json::exception& e) {
    fail(std::string("unexpected structure: ") + e.what());
  }
  return Build(std::move(sax.vocab), std::move(added), sax.merges, nfc, 0, source);
}

Tokenizer Tokenizer::FromVocab(const std::vector<std::string>& tokens,
                               const std::vector<int32_t>& token_types,
                               const std::vector<std::string>& merges, const std::string& source) {
  if (tokens.size() != token_types.size()) {
    Fail(source, std::to_string(tokens.size()) + " tokens but " +
                     std::to_string(token_types.size()) + " token types: expected one per token");
  }
  if (tokens.empty() || tokens.size() > static_cast<size_t>(INT32_MAX)) {
    Fail(source,
         std::to_string(tokens.size()) + " tokens: expected 1 to " + std::to_string(INT32_MAX));
  }
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(tokens.size());
  std::vector<Added> added;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    switch (token_types[i]) {  // llama.cpp's llama_token_type
      case 1:  // NORMAL
        vocab.emplace_back(tokens[i], id);
        break;
      case 3:  // CONTROL: Qwen's special added tokens (<|im_end|>)
        added.push_back({tokens[i], id, true});
        break;
      case 4:  // USER_DEFINED: the other added tokens (<think>)
        added.push_back({tokens[i], id, false});
        break;
      case 5:  // UNUSED: padding ids past the tokenizer's ([PAD151669]); decode to nothing
        break;
      default:
        Fail(source, "token " + std::to_string(i) + " " + Quoted(tokens[i]) + " has type " +
                         std::to_string(token_types[i]) +
                         ": expected 1 (normal), 3 (control), 4 (user-defined) or 5 (unused)");
    }
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const size_t sp = merges[r].find(' ');
    if (sp == std::string::npos) {
      Fail(source, "merge " + std::to_string(r) + " " + Quoted(merges[r]) +
                       ": expected two tokens separated by a space");
    }
    pairs.emplace_back(merges[r].substr(0, sp), merges[r].substr(sp + 1));
  }
  // Qwen's tokenizer.json normalizes to NFC; the GGUF's pre "qwen2" stands for that pipeline.
  return Build(std::move(vocab), std::move(added), pairs, true, tokens.size(), source);
}

Tokenizer Tokenizer::Build(std::vector<std::pair<std::string, int64_t>> vocab,
                           std::vector<Added> added,
                           const std::vector<std::pair<std::string, std::string>>& merges,
                           bool nfc, size_t min_size, const std::string& source) {
  const auto fail = [&](const std::string& what) { Fail(source, what); };
  Tokenizer t;
  t.nfc_ = nfc;
  ByteChars(t.byte_char_);
  for (int b = 0; b < 256; ++b) t.char_byte_[t.byte_char_[b]] = static_cast<uint8_t>(b);

  t.vocab_.reserve(vocab.size() * 2);
  // Ids index dense tables, so a sparse id (2^31 - 1 among 300 tokens) would allocate
  // gigabytes: ids may leave gaps but stay below twice the number of tokens (real files
  // number them 0..n-1; a GGUF's min_size is its table's own size).
  const size_t tokens = vocab.size() + added.size();
  const size_t id_limit = std::min<size_t>(std::max(min_size, 2 * tokens), INT32_MAX);
  const auto bad_id = [&](int64_t id) { return id < 0 || static_cast<uint64_t>(id) >= id_limit; };
  const auto expected_id = [&] {
    return ": expected 0.." + std::to_string(id_limit - 1) + " (below twice the " +
           std::to_string(tokens) + " tokens)";
  };
  int32_t max_id = static_cast<int32_t>(min_size) - 1;
  for (auto& [tok, id] : vocab) {
    if (bad_id(id)) {
      fail("vocab entry " + Quoted(tok) + " has id " + std::to_string(id) + expected_id());
    }
    max_id = std::max(max_id, static_cast<int32_t>(id));
    const auto [it, inserted] = t.vocab_.emplace(std::move(tok), static_cast<int32_t>(id));
    if (!inserted) {
      fail("vocab entry " + Quoted(it->first) + " appears twice (ids " +
           std::to_string(it->second) + " and " + std::to_string(id) + ")");
    }
  }
  for (const Added& a : added) {
    if (a.content.empty()) {
      fail("added token \"\" (id " + std::to_string(a.id) + "): expected a non-empty text");
    }
    if (bad_id(a.id)) {
      fail("added token " + Quoted(a.content) + " has id " + std::to_string(a.id) +
           expected_id());
    }
    max_id = std::max(max_id, a.id);
  }
  t.id_to_token_.assign(static_cast<size_t>(max_id) + 1, std::string());
  t.added_flags_.assign(static_cast<size_t>(max_id) + 1, 0);
  std::vector<uint8_t> used(static_cast<size_t>(max_id) + 1, 0);
  for (const auto& [tok, id] : t.vocab_) {
    if (used[id]) fail("id " + std::to_string(id) + " is given to two vocab entries");
    used[id] = 1;
    t.id_to_token_[id] = tok;
  }
  for (const Added& a : added) {
    // An added token may restate its vocab entry (same text, same id), nothing else.
    const int32_t other = t.TokenId(a.content);
    if ((other >= 0 && other != a.id) || (used[a.id] && t.id_to_token_[a.id] != a.content)) {
      fail("added token " + Quoted(a.content) + " (id " + std::to_string(a.id) +
           ") clashes with another token's text or id");
    }
    used[a.id] = 1;
    t.id_to_token_[a.id] = a.content;
    t.added_flags_[a.id] = a.special ? 2 : 1;
    t.added_.push_back(a);
  }
  std::stable_sort(t.added_.begin(), t.added_.end(), [](const Added& a, const Added& b) {
    return a.content.size() > b.content.size();
  });
  for (int b = 0; b < 256; ++b) {
    std::string s;
    AppendUtf8(t.byte_char_[b], s);
    const auto it = t.vocab_.find(s);
    if (it == t.vocab_.end()) fail("vocab lacks the byte token for byte " + std::to_string(b));
    t.byte_token_[b] = it->second;
  }
  t.merges_.reserve(merges.size() * 2);
  int32_t rank = 0;
  std::string joined;
  for (const auto& [left, right] : merges) {
    joined.assign(left).append(right);
    const auto a = t.vocab_.find(left), b = t.vocab_.find(right), c = t.vocab_.find(joined);
    if (a == t.vocab_.end() || b == t.vocab_.end() || c == t.vocab_.end()) {
      fail("merge " + std::to_string(rank) + " (" + left + " " + right + "): not in the vocab");
    }
    t.merges_.emplace(PairKey(a->second, b->second), std::make_pair(rank++, c->second));
  }
  return t;
}

void Tokenizer::Bpe(std::string_view piece, std::vector<int32_t>& out) const {
  thread_local std::vector<int32_t> syms;
  syms.clear();
  for (char ch : piece) syms.push_back(byte_token_[static_cast<uint8_t>(ch)]);
  // Merge the lowest-ranked adjacent pair (leftmost on ties) until none is in the merges.
  while (syms.size() > 1) {
    int32_t best_rank = INT32_MAX, merged = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      const auto it = merges_.find(PairKey(syms[i], syms[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        merged = it->second.second;
        at = i;
      }
    }
    if (merged < 0) break;
    syms[at] = merged;
    syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  out.insert(out.end(), syms.begin(), syms.end());
}

void Tokenizer::EncodeText(std::string_view text, std::vector<int32_t>& out,
                           std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
  if (text.empty()) return;
  const std::string normalized = nfc_ ? NormalizeNfc(text) : std::string(text);
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  SplitQwen2(normalized, pieces);
  for (std::string_view p : pieces) {
    // Pieces are short and repeat: memoize them (per call, so Encode stays thread-safe).
    const auto it = cache.find(std::string(p));
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      continue;
    }
    const size_t start = out.size();
    Bpe(p, out);
    if (p.size() <= 64) cache.emplace(std::string(p), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool parse_special) const {
  const std::string valid = SanitizeUtf8(text);
  std::string_view s = valid;
  std::vector<int32_t> out;
  out.reserve(s.size() / 3 + 4);
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  size_t begin = 0;
  if (parse_special) {
    for (size_t i = 0; i < s.size(); ++i) {
      for (const Added& a : added_) {
        if (s[i] == a.content[0] && s.compare(i, a.content.size(), a.content) == 0) {
          EncodeText(s.substr(begin, i - begin), out, cache);
          out.push_back(a.id);
          i += a.content.size() - 1;
          begin = i + 1;
          break;
        }
      }
    }
  }
  EncodeText(s.substr(begin), out, cache);
  return out;
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) {
    throw Error("token id " + std::to_string(id) + ": expected 0.." +
                std::to_string(id_to_token_.size() - 1));
  }
  const std::string& tok = id_to_token_[id];
  if (added_flags_[id]) return tok;
  std::string bytes;
  for (size_t i = 0; i < tok.size();) {
    const auto it = char_byte_.find(NextCodePoint(tok, i));
    if (it != char_byte_.end()) bytes.push_back(static_cast<char>(it->second));
  }
  return bytes;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string bytes;
  for (int32_t id : ids) bytes += TokenBytes(id);
  return SanitizeUtf8(bytes);
}

int32_t Tokenizer::TokenId(std::string_view token) const {
  for (const Added& a : added_) {
    if (a.content == token) return a.id;
  }
  const auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

bool Tokenizer::IsAdded(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < added_flags_.size() && added_flags_[id] != 0;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < added_flags_.size() && added_flags_[id] == 2;
}

std::string StreamDecoder::Push(int32_t id) {
  pending_ += tok_.TokenBytes(id);
  // A cut sequence (at most 3 bytes) waits for the next token; an invalid subpart is emitted
  // as U+FFFD now, as the whole-text decode would.
  std::string out;
  pending_.erase(0, TakeCompleteUtf8(pending_, 0, pending_.size(), false, out));
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace qwen3
