// tdpbf16ps: a 16 x 16 fp32 C tile += a 16 x 32 bf16 A tile . a 32 x 16 B tile (VNNI pairs),
// 16 * 16 * 32 * 2 = 16384 FLOP per instruction. Four accumulators (tmm0-3, a 2 x 2 block of
// A in tmm4-5 by B in tmm6-7, all loaded once) keep the unit busy. The tiles are configured
// here, on the calling thread; PeakDotFlops then calls InvalidateTileConfigs() so the AMX
// matmul reloads its own. Needs the XTILEDATA permission that GetCpuFeatures() asks for
// (PeakDotFlops runs this only when IsSupported(kAmx)).
#include <immintrin.h>

#include <cstdint>

#include "exec/cpu/amx_tile_config.h"
#include "exec/cpu/cpu_path_symbols.h"

namespace qwen3::cpu {

double DotLoopAmx(size_t iters) {
  AmxTileConfig cfg = {};
  cfg.palette_id = 1;
  for (int i = 0; i < 8; ++i) {
    cfg.rows[i] = 16;
    cfg.colsb[i] = 64;
  }
  _tile_loadconfig(&cfg);
  alignas(64) uint16_t ones[16 * 32];
  for (uint16_t& x : ones) x = 0x3f80;  // bf16 1.0: sums stay finite
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (size_t i = 0; i < iters; ++i) {  // tile instructions are volatile asm: never removed
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float c[4][16 * 16];
  _tile_stored(0, c[0], 64);
  _tile_stored(1, c[1], 64);
  _tile_stored(2, c[2], 64);
  _tile_stored(3, c[3], 64);
  dot_loop_sink = c[0][0] + c[1][17] + c[2][34] + c[3][255];
  return static_cast<double>(iters) * 4 * 16 * 16 * 32 * 2;
}

}  // namespace qwen3::cpu
