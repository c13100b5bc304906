// `qwen3 replay`: runs a model on the prompts of a transformers reference file
// (../shared/testdata/hf-qwen3/README.md) as ONE batch, prefill then teacher-forced decode
// steps, and compares every step's logits with the reference's (DESIGN.md, Numerics).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "exec/cpu/kernels.h"

namespace qwen3 {

class ThreadPool;

struct ReplayOptions {
  std::string model_dir, reference, out;  // out: logits_s{s} as safetensors; empty = none
  std::string quantize;                   // EngineOptions::quantize
  std::string device = "cpu";             // EngineOptions::device
  std::string kv_type = "bf16";           // EngineOptions::kv_type
  size_t max_rows = 64;                   // prefill chunk
  size_t threads = 0;                     // workers (0: all cores)
  double max_rel_l2 = 3.5e-2;
  double top1_margin = 0.25;  // rows whose reference top-1 leads by this must agree
  // MoE references with routing_experts / routing_margin (../shared/testdata/hf-qwen3): each
  // (position, layer) decision's expert set is compared; those whose reference margin (the
  // k-th minus the (k+1)-th router logit) is at least this must agree (negative: reported only).
  double routing_margin = -1;
};

// How a run's MoE routing compares with a reference's (every prompt and decode position, every
// layer): decisions compared, expert sets that differ, and those of them that were not near-ties.
struct ReplayRouting {
  size_t decisions = 0, changed = 0, guarded = 0, guarded_changed = 0;
};

struct ReplayStep {
  double rel_l2 = 0, max_abs = 0;
  size_t top1_agree = 0, rows = 0, guarded_rows = 0, guarded_mismatches = 0;
  bool pass = true;
};

struct ReplayResult {
  std::vector<ReplayStep> steps;
  double prefill_seconds = 0, decode_seconds = 0;
  size_t prompt_tokens = 0;
  ReplayRouting routing;  // all zero unless the reference has routing_experts
  bool pass = true;
};

// Prints a line per step to stdout; throws Error for unreadable or inconsistent files. The
// reference's own checks come first; then Engine::Open loads the weights (serve = false, no
// tokenizer: options.threads workers, the QWEN3_CPU_PATH or best kernel path), and a Model with
// one user slot per prompt runs on the engine's pool and kernels.
ReplayResult RunReplay(const ReplayOptions& options);
// The same with the Model on the given kernel path and pool (tests replay every path); the
// engine still loads the weights, with pool.NumWorkers() workers (options.threads is ignored).
ReplayResult RunReplay(const ReplayOptions& options, const cpu::CpuKernels& kernels,
                       ThreadPool& pool);

}  // namespace qwen3
