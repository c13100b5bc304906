// The int8 kernel as plain loops: the definition the vector paths are tested against, bit
// for bit (kernels.h, QMatmulFn).
#include <cmath>

#include "exec/cpu/qmatmul.h"
#include "exec/cpu/quant_matrix.h"

namespace qwen3::cpu {

void QMatmulScalar(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  CheckQuantOperands(rows, b);
  const size_t code_bytes = QuantCodeBytes(b);
  const size_t scale_bytes = QuantScaleBytes(b.scales, b.offset);
  const size_t header_bytes = QuantHeaderBytes(b.scales, b.offset);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t j = 0; j < b.nb; ++j) {
      for (size_t col = 0; col < kTileN; ++col) {
        float acc = 0;
        for (size_t s = 0; s < b.subs; ++s) {
          const uint8_t* rec = b.data + QuantRecordOffset(b, s);
          const uint8_t* codes = rec + j * code_bytes;
          float ws, wb;
          QuantScaleBias(b.scales, b.offset, b.data + QuantHeaderOffset(b, s) + j * header_bytes,
                         rec + b.nb * code_bytes + j * scale_bytes, col, ws, wb);
          const int8_t* x = a.q + r * a.ldq + s * b.sub;
          float t = 0;
          for (size_t h = 0; h < b.sub / 16; ++h) {
            int32_t dot = QuantRowOffsetDot(a, r, s * b.sub / 16 + h, b.offset);
            for (size_t i = h * 16; i < h * 16 + 16; ++i) {
              dot += static_cast<int32_t>(QuantCodeAt(codes, b.bits, i, col)) * x[i];
            }
            const float xs = QuantRowScale(a, r, s * b.sub / 16 + h);
            t = h == 0 ? xs * static_cast<float>(dot) : std::fma(xs, static_cast<float>(dot), t);
          }
          acc = std::fma(ws, t, acc);
          if (!b.offset) acc = std::fma(wb, QuantRowBias(a, r, s, b.sub), acc);
        }
        c[r * ldc + j * kTileN + col] = acc;
      }
    }
  }
}

}  // namespace qwen3::cpu
