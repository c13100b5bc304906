// The 64-byte AMX tile configuration (palette 1) that ldtilecfg reads: shared by the AMX matmul
// and the AMX peak-rate loop.
#pragma once

#include <cstdint>

namespace qwen3::cpu {

struct alignas(64) AmxTileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];  // bytes per row of tile i
  uint8_t rows[16];    // rows of tile i
};

}  // namespace qwen3::cpu
