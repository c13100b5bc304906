// qwen3: the whole-model tool.
//
//   qwen3 replay --model DIR --reference FILE [--out FILE]   # vs transformers' logits
//   qwen3 make-checkpoint --preset 0.6b [--layers N] --seed S DIR
//   qwen3 tokenize --tokenizer tokenizer.json [--decode] [--jsonl] < text
//   qwen3 generate --model DIR --prompt "..." [--prompts-file F] [sampling flags]
//   qwen3 chat --model DIR [--hide-thinking] [--no-think]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include "base/error.h"
#include "io/synthetic_checkpoint.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/kernels.h"
#include "model/config.h"
#include "runtime/thread_pool.h"
#include "tokenizer/tokenizer.h"
#include "tools/replay.h"
#include "tools/generate_cmd.h"
#include "tools/tokenize.h"

namespace {

void AddModelFlags(CLI::App& app, qwen3::TextModelOptions& o) {
  app.add_option("--model", o.model_dir, "Hugging Face model directory")->required();
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json (default: the model directory's)");
  app.add_option("--max-seq", o.max_seq, "KV cache tokens per sequence (default: as needed / 4096)");
}

void AddGenerationFlags(CLI::App& app, qwen3::GenerateOptions& g) {
  app.add_option("--max-tokens", g.max_tokens, "tokens to generate at most (default 256)");
  app.add_option("--temperature", g.sampling.temperature, "0 = greedy (default 0)");
  app.add_option("--top-k", g.sampling.top_k, "keep the k most likely (0 = off)");
  app.add_option("--top-p", g.sampling.top_p, "nucleus mass (1 = off)");
  app.add_option("--min-p", g.sampling.min_p, "drop below min-p x the top probability (0 = off)");
  app.add_option("--repetition-penalty", g.sampling.repetition_penalty, "(1 = off)");
  app.add_option("--presence-penalty", g.sampling.presence_penalty, "(0 = off)");
  app.add_option("--seed", g.sampling.seed, "sampling seed (same seed, same text)");
  app.add_option("--stop", g.stop_strings, "stop string (repeatable); the text ends before it");
}

int Main(int argc, char** argv) {
  using namespace qwen3;
  CLI::App app{"qwen3: Qwen3 models from Hugging Face checkpoints"};
  app.require_subcommand(1);
  app.fallthrough();  // --threads after the subcommand too
  size_t threads = 0;
  app.add_option("--threads", threads, "worker threads (default: all cores)");

  ReplayOptions replay;
  CLI::App* rp = app.add_subcommand(
      "replay", "prefill + teacher-forced decode of a transformers reference, compared per step");
  rp->add_option("--model", replay.model_dir, "Hugging Face model directory")->required();
  rp->add_option("--reference", replay.reference, "reference.safetensors")->required();
  rp->add_option("--out", replay.out, "write the computed logits_s* here (safetensors)");
  rp->add_option("--max-rows", replay.max_rows, "tokens per prefill pass (default 64)");

  std::string preset, out_dir;
  int layers = 0;
  SyntheticCheckpointOptions mk;
  double shard_gb = 4.0;
  CLI::App* mc = app.add_subcommand(
      "make-checkpoint", "write a synthetic Qwen3 checkpoint in the Hugging Face layout");
  mc->add_option("--preset", preset, "0.6b|1.7b|4b|8b|14b|32b")->required();
  mc->add_option("--layers", layers, "decoder layers (default: the preset's)");
  mc->add_option("--seed", mk.seed, "seed of the weights (default 0)");
  mc->add_option("--shard-gb", shard_gb, "largest shard in GB (default 4)");
  mc->add_option("dir", out_dir, "output directory (new or empty)")->required();

  std::string tokenizer_path;
  bool decode = false, jsonl = false;
  CLI::App* tk = app.add_subcommand(
      "tokenize", "text on stdin -> token ids (or ids -> text with --decode)");
  tk->add_option("--tokenizer", tokenizer_path, "tokenizer.json")->required();
  tk->add_flag("--decode", decode, "ids (space-separated) -> text");
  tk->add_flag("--jsonl", jsonl, "one JSON string (or id array with --decode) per line");

  GenerateCmdOptions gen_opts;
  CLI::App* gn = app.add_subcommand("generate", "complete prompts (several decode as one batch)");
  AddModelFlags(*gn, gen_opts.model);
  gn->add_option("--prompt", gen_opts.prompts, "a prompt (repeatable)");
  gn->add_option("--prompts-file", gen_opts.prompts_file,
                 "one prompt per line (FILE.jsonl: one JSON string per line)");
  gn->add_flag("--chat", gen_opts.chat_template, "wrap each prompt as a user turn (chat template)");
  gn->add_option("--system", gen_opts.system, "with --chat: a system message");
  gn->add_flag("--no-think", gen_opts.no_think, "with --chat: enable_thinking = false");
  AddGenerationFlags(*gn, gen_opts.gen);

  ChatCmdOptions chat_opts;
  CLI::App* ch = app.add_subcommand("chat", "interactive multi-turn chat on stdin/stdout");
  AddModelFlags(*ch, chat_opts.model);
  ch->add_option("--system", chat_opts.system, "a system message");
  ch->add_flag("--no-think", chat_opts.no_think, "enable_thinking = false (no reasoning)");
  ch->add_flag("--hide-thinking", chat_opts.hide_thinking, "do not print the <think> part");
  AddGenerationFlags(*ch, chat_opts.gen);
  chat_opts.gen.max_tokens = 1024;

  CLI11_PARSE(app, argc, argv);
  try {
    if (rp->parsed()) {
      const cpu::CpuKernels& kernels = cpu::GetCpuKernels(cpu::SelectCpuPath());
      ThreadPool pool(threads);
      const ReplayResult r = RunReplay(replay, kernels, pool);
      return r.pass ? 0 : 1;
    }
    if (gn->parsed()) {
      gen_opts.model.threads = threads;
      return RunGenerate(gen_opts, std::cout, std::cerr);
    }
    if (ch->parsed()) {
      chat_opts.model.threads = threads;
      return RunChat(chat_opts, std::cin, std::cout, std::cerr);
    }
    if (tk->parsed()) {
      RunTokenize(Tokenizer::FromFile(tokenizer_path), decode, jsonl);
      return 0;
    }
    if (mc->parsed()) {
      Qwen3Config c = PresetConfig(preset);
      if (layers < 0 || (layers > 0 && layers > c.layers)) {
        throw Error("--layers " + std::to_string(layers) + ": expected 1.." +
                    std::to_string(c.layers) + " for " + c.name);
      }
      if (layers > 0) c.layers = layers;
      if (!(shard_gb > 0)) throw Error("--shard-gb " + std::to_string(shard_gb) + ": expected > 0");
      mk.max_shard_bytes = static_cast<size_t>(shard_gb * 1e9);
      const SyntheticCheckpointInfo info = WriteSyntheticCheckpoint(c, mk, out_dir);
      std::printf("make-checkpoint: %s, %d layers, %zu tensors, %.3f GB in %zu shard(s) -> %s\n",
                  c.name.c_str(), c.layers, info.tensors, info.bytes / 1e9, info.shards,
                  out_dir.c_str());
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen3: error: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
