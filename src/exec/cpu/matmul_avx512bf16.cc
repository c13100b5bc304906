// The avx512bf16 path: matmul_avx512.cc with vdpbf16ps (see there).
#define QW_AVX512_BF16 1
#include "exec/cpu/matmul_avx512.cc"
