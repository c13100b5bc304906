#include "base/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace qwen3 {
namespace {

constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

uint64_t ReadXcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) {
    f.amx_status = "CPUID leaf 1 unavailable";
    return f;
  }
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12);
  if (!osxsave) {
    f.amx_status = "OS does not enable XSAVE (CPUID.1:ECX.OSXSAVE = 0)";
    return f;
  }
  const uint64_t xcr0 = ReadXcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;
  const bool os_tiles = (xcr0 & 0x60000) == 0x60000;
  unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
  __get_cpuid_count(7, 0, &a7, &b7, &c7, &d7);
  unsigned a71 = 0, b71 = 0, c71 = 0, d71 = 0;
  if (a7 >= 1) __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71);
  const bool avx2 = b7 & (1u << 5);
  const bool avx512f = b7 & (1u << 16), avx512dq = b7 & (1u << 17);
  const bool avx512bw = b7 & (1u << 30), avx512vl = b7 & (1u << 31);
  f.avx2_fma = os_ymm && avx2 && fma;
  f.avx512 = f.avx2_fma && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
  // The path also runs the int8 (quantized-weight) kernels with vpdpbusd: every CPU with
  // AVX512_BF16 so far has AVX512_VNNI too; one without gets the avx512 path.
  const bool avx512vnni = c7 & (1u << 11);
  f.avx512_bf16 = f.avx512 && avx512vnni && (a71 & (1u << 5));
  const bool amx_tile = d7 & (1u << 24), amx_bf16 = d7 & (1u << 22);
  if (!(amx_tile && amx_bf16)) {
    f.amx_status = "CPU lacks AMX-TILE/AMX-BF16 (CPUID.7.0:EDX bits 24/22)";
  } else if (!f.avx512_bf16) {
    f.amx_status = "AMX present but AVX-512 BF16 unusable (needed by the AMX path's epilogues)";
  } else if (!os_tiles) {
    f.amx_status = "OS does not enable tile state (XCR0 bits 17/18)";
  } else if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    f.amx_status = "arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) refused";
  } else {
    f.amx_bf16 = true;
    f.amx_status = "usable";
  }
  return f;
}

}  // namespace

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

}  // namespace qwen3
