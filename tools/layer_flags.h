// The flags qwen3-layer and qwen3-bench share: the shape and inputs of the decode step.
#pragma once

#include <CLI/CLI.hpp>
#include <fstream>
#include <string>

#include "base/error.h"

#include "tools/layer_harness.h"

namespace qwen3 {

// Creates (truncates) path, or throws Error naming the flag and the path.
inline void CheckWritable(const std::string& flag, const std::string& path) {
  if (!std::ofstream(path)) throw Error(flag + " " + path + ": cannot open for writing");
}

struct LayerFlags {
  LayerHarnessOptions options;
  std::string lm_head = "full";
  std::string trace;  // Chrome/Perfetto trace output

  void Add(CLI::App& app) {
    LayerHarnessOptions& o = options;
    app.add_option("-b,--batch", o.batch, "users in the batch (default 16)");
    app.add_flag("--max-seq", o.all_max_seq, "every seq_len = max length (else random 1..max)");
    app.add_option("--lm-head", lm_head, "full | skip | single (first 64 logits)");
    app.add_option("--seed", o.seed, "seed of the synthetic inputs (default 0)");
    app.add_option("--threads", o.threads, "worker threads (default: all cores)");
    app.add_option("--config", o.config,
                   "0.6b|1.7b|4b|8b|14b|32b or PATH/config.json (default 14b)");
    app.add_option("--vocab", o.vocab, "override the vocab (14b default: the seed's 152064)");
    app.add_option("--max-len", o.max_seq, "max context length, rope rows (default 4096)");
    app.add_option("--block-size", o.block_size, "KV block size (default 128)");
    app.add_option("--kv-blocks", o.kv_blocks, "KV pool blocks (default batch * max-len/block)");
    app.add_option("--seq-lens", o.seq_lens, "explicit seq_len per user")->delimiter(',');
    app.add_option("--pages-per-split", o.pages_per_split,
                   "KV pages per attention partial (default 0 = automatic; 1 = the seed's)");
    app.add_option("--trace", trace, "write a Chrome/Perfetto trace of the step(s) to FILE");
  }

  // After parsing: the mode, and the seed's padded vocab for the 14b preset; an output file
  // that cannot be written is reported now, not after the run. Throws Error.
  LayerHarnessOptions Resolve() const {
    if (!trace.empty()) CheckWritable("--trace", trace);
    LayerHarnessOptions o = options;
    o.lm_head = ParseLmHeadMode(lm_head);
    if (o.config == "14b" && o.vocab == 0) o.vocab = Qwen3_14BSeed().vocab;
    return o;
  }
};

}  // namespace qwen3
