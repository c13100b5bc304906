#include "model/layer_tensors.h"

#include "base/error.h"

namespace qwen3 {

const char* ToString(LmHeadMode mode) {
  switch (mode) {
    case LmHeadMode::kFull:
      return "full";
    case LmHeadMode::kSkip:
      return "skip";
    case LmHeadMode::kSingle:
      return "single";
  }
  return "?";
}

LmHeadMode ParseLmHeadMode(const std::string& name) {
  if (name == "full") return LmHeadMode::kFull;
  if (name == "skip") return LmHeadMode::kSkip;
  if (name == "single") return LmHeadMode::kSingle;
  throw Error("--lm-head '" + name + "': expected full, skip or single");
}

size_t LmHeadRows(LmHeadMode mode, size_t vocab) {
  switch (mode) {
    case LmHeadMode::kFull:
      return vocab;
    case LmHeadMode::kSingle:
      return std::min(vocab, kLmHeadSingleCols);
    case LmHeadMode::kSkip:
      return 0;
  }
  return 0;
}

}  // namespace qwen3
