#include "exec/weight_type.h"

#include "base/error.h"

namespace qwen3 {

const char* ToString(WeightType type) {
  switch (type) {
    case WeightType::kBf16:
      return "bf16";
    case WeightType::kQ8_0:
      return "q8_0";
    case WeightType::kQ4_0:
      return "q4_0";
    case WeightType::kQ4_K:
      return "q4_k";
    case WeightType::kQ6_K:
      return "q6_k";
    case WeightType::kQ4_1:
      return "q4_1";
    case WeightType::kQ5_0:
      return "q5_0";
    case WeightType::kQ5_1:
      return "q5_1";
    case WeightType::kQ5_K:
      return "q5_k";
  }
  return "?";
}

WeightType ParseQuantizeType(const std::string& name) {
  if (name == "q8_0") return WeightType::kQ8_0;
  if (name == "q4_0") return WeightType::kQ4_0;
  throw Error("--quantize " + name + ": expected q8_0 or q4_0");
}

}  // namespace qwen3
