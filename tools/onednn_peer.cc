#include "tools/onednn_peer.h"

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "base/error.h"

namespace qwen3 {

using dnnl::memory;

struct OneDnnMatmul::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::matmul prim;
  memory src, weights, dst;
};

OneDnnMatmul::OneDnnMatmul(size_t m, size_t k, size_t n, const bf16* w, bool out_in,
                           const bf16* src)
    : impl_(std::make_unique<Impl>()) {
  const memory::dim M = static_cast<memory::dim>(m), K = static_cast<memory::dim>(k),
                    N = static_cast<memory::dim>(n);
  const memory::desc src_md({M, K}, memory::data_type::bf16, memory::format_tag::ab);
  const memory::desc user_w_md({K, N}, memory::data_type::bf16,
                               out_in ? memory::format_tag::ba : memory::format_tag::ab);
  const memory::desc any_w_md({K, N}, memory::data_type::bf16, memory::format_tag::any);
  const memory::desc dst_md({M, N}, memory::data_type::f32, memory::format_tag::ab);
  try {
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, any_w_md, dst_md),
                                          impl_->engine);
    impl_->prim = dnnl::matmul(pd);
    impl_->src = memory(src_md, impl_->engine, const_cast<bf16*>(src));
    impl_->dst = memory(pd.dst_desc(), impl_->engine);
    memory user_w(user_w_md, impl_->engine, const_cast<bf16*>(w));
    impl_->weights = memory(pd.weights_desc(), impl_->engine);
    dnnl::reorder(user_w, impl_->weights).execute(impl_->stream, user_w, impl_->weights);
    impl_->stream.wait();
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN matmul ") + std::to_string(m) + "x" + std::to_string(k) + "x" +
                std::to_string(n) + ": " + e.what());
  }
}

OneDnnMatmul::~OneDnnMatmul() = default;

void OneDnnMatmul::Run() {
  impl_->prim.execute(
      impl_->stream,
      {{DNNL_ARG_SRC, impl_->src}, {DNNL_ARG_WEIGHTS, impl_->weights}, {DNNL_ARG_DST, impl_->dst}});
  impl_->stream.wait();
}

const float* OneDnnMatmul::dst() const {
  return static_cast<const float*>(impl_->dst.get_data_handle());
}

size_t OneDnnMatmul::weight_bytes() const { return impl_->weights.get_desc().get_size(); }

void OneDnnMatmul::SetThreads(int threads) { omp_set_num_threads(threads); }

}  // namespace qwen3
