// The int8 kernel with vpdpbusd: qmatmul_avx512.cc (see there).
#define QW_AVX512_VNNI 1
#include "exec/cpu/qmatmul_avx512.cc"
