#include "tools/tokenize.h"

#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

namespace qwen3 {
namespace {

using json = nlohmann::json;

std::vector<int32_t> ParseIds(const std::string& text, size_t line) {
  std::vector<int32_t> ids;
  std::istringstream s(text);
  std::string word;
  while (s >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX) {
      throw Error("line " + std::to_string(line) + ": \"" + word + "\": expected a token id");
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

}  // namespace

void RunTokenize(const Tokenizer& tok, bool decode, bool jsonl, std::istream& in,
                 std::ostream& out) {
  if (!jsonl) {
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (decode) {
      out << tok.Decode(ParseIds(text, 1));
      return;
    }
    const std::vector<int32_t> ids = tok.Encode(text);
    for (size_t i = 0; i < ids.size(); ++i) out << (i ? " " : "") << ids[i];
    out << "\n";
    return;
  }
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      throw Error("line " + std::to_string(n) + ": not JSON: expected " +
                  (decode ? "an array of ids" : "a JSON string"));
    }
    if (decode) {
      if (!j.is_array()) throw Error("line " + std::to_string(n) + ": expected an array of ids");
      std::vector<int32_t> ids;
      for (const json& v : j) {
        if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > INT32_MAX) {
          throw Error("line " + std::to_string(n) + ": " + v.dump() + ": expected a token id");
        }
        ids.push_back(v.get<int32_t>());
      }
      out << json(tok.Decode(ids)).dump() << "\n";
    } else {
      if (!j.is_string()) throw Error("line " + std::to_string(n) + ": expected a JSON string");
      out << json(tok.Encode(j.get<std::string>())).dump() << "\n";
    }
  }
}

void RunTokenize(const Tokenizer& tok, bool decode, bool jsonl) {
  std::ios::sync_with_stdio(false);
  RunTokenize(tok, decode, jsonl, std::cin, std::cout);
}

}  // namespace qwen3
