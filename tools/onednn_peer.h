// The peer of our cube path: oneDNN's bf16 matmul (Debian's libdnnl 2.6, its AMX brgemm
// kernels on this machine) on one projection shape, dst[m, n] fp32 = src[m, k] bf16 . W.
// Weights are reordered once into the layout oneDNN prefers (format_tag::any), as ours are
// packed once, so both sides stream their own best layout.
#pragma once

#include <cstddef>
#include <memory>

#include "base/bf16.h"

namespace qwen3 {

class OneDnnMatmul {
 public:
  // w is [k, n] row-major ([in, out]), or [n, k] when out_in ([out, in], the LM head).
  // src ([m, k] bf16) must outlive this object; it is read on every Run.
  OneDnnMatmul(size_t m, size_t k, size_t n, const bf16* w, bool out_in, const bf16* src);
  ~OneDnnMatmul();
  void Run();
  const float* dst() const;  // [m, n]
  size_t weight_bytes() const;

  // oneDNN runs on OpenMP threads: use this many.
  static void SetThreads(int threads);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwen3
