// qwen3: the whole-model tool.
//
//   qwen3 replay --model DIR --reference FILE [--out FILE]   # vs transformers' logits
//   qwen3 make-checkpoint --preset 0.6b [--layers N] --seed S DIR
//   qwen3 tokenize --tokenizer tokenizer.json [--decode] [--jsonl] < text
//   qwen3 generate --model DIR --prompt "..." [--prompts-file F] [sampling flags]
//   qwen3 chat --model DIR [--hide-thinking] [--no-think]
//   qwen3 serve --model DIR [--host H] [--port P] [--api-key K] ...   # OpenAI-compatible server
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "base/error.h"
#include "io/synthetic_checkpoint.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"
#include "tools/generate_cmd.h"
#include "tools/replay.h"
#include "tools/synthetic_gguf.h"
#include "runtime/thread_pool.h"
#include "tools/serve_cmd.h"
#include "tools/tokenize.h"
#include "tools/tool_main.h"

namespace {

// tokenizer.json (and tokenizer_config.json beside it, if any) from a file or a directory.
void CopyTokenizerFiles(const std::string& from, const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path src = fs::is_directory(from) ? fs::path(from) : fs::path(from).parent_path();
  const fs::path json = fs::is_directory(from) ? src / "tokenizer.json" : fs::path(from);
  if (!fs::is_regular_file(json)) {
    throw qwen3::Error("--tokenizer " + from + ": no tokenizer.json there");
  }
  qwen3::Tokenizer::FromFile(json.string());  // a bad file fails here, not at serve time
  fs::copy_file(json, fs::path(dir) / "tokenizer.json", fs::copy_options::overwrite_existing);
  if (fs::is_regular_file(src / "tokenizer_config.json")) {
    fs::copy_file(src / "tokenizer_config.json", fs::path(dir) / "tokenizer_config.json",
                  fs::copy_options::overwrite_existing);
  }
}

void AddQuantizeFlag(CLI::App& app, std::string& quantize) {
  app.add_option("--quantize", quantize,
                 "quantize the bf16 weights at load, as llama.cpp's blocks: q8_0 | q4_0");
}

void AddDeviceFlag(CLI::App& app, std::string& device) {
  app.add_option("--device", device,
                 "executor: cpu (default; the kernels of the best CPU path) | reference (plain "
                 "float32 loops: slow, the engine's own truth)");
}

void AddKvTypeFlag(CLI::App& app, std::string& kv_type) {
  app.add_option("--kv-type", kv_type,
                 "KV cache element type: bf16 (default) | q8_0 (8-bit codes as llama.cpp's "
                 "-ctk/-ctv q8_0: 0.54x the bytes, 1.85x the context per GB)");
}

void AddModelFlags(CLI::App& app, qwen3::TextModelOptions& o) {
  app.add_option("--model", o.model_dir, "Hugging Face model directory, or a GGUF file")
      ->required();
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json (default: the model directory's)");
  AddQuantizeFlag(app, o.quantize);
  AddDeviceFlag(app, o.device);
  AddKvTypeFlag(app, o.kv_type);
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
  CLI::App app{"qwen3: Qwen3 models from Hugging Face checkpoints and GGUF files"};
  app.require_subcommand(1);
  app.fallthrough();  // --threads after the subcommand too
  // A flag CLI11 cannot parse is one line, like every other error of the tool (tool_main.h).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "qwen3: error: " + std::string(e.what()) + "\n";
  });
  size_t threads = 0;
  app.add_option("--threads", threads, "worker threads (default: all cores)");

  ReplayOptions replay;
  CLI::App* rp = app.add_subcommand(
      "replay", "prefill + teacher-forced decode of a transformers reference, compared per step");
  rp->add_option("--model", replay.model_dir, "Hugging Face model directory, or a GGUF file")
      ->required();
  rp->add_option("--reference", replay.reference, "reference.safetensors")->required();
  rp->add_option("--out", replay.out, "write the computed logits_s* here (safetensors)");
  rp->add_option("--max-rows", replay.max_rows, "tokens per prefill pass (default 64)");
  AddQuantizeFlag(*rp, replay.quantize);
  AddDeviceFlag(*rp, replay.device);
  AddKvTypeFlag(*rp, replay.kv_type);
  rp->add_option("--tol", replay.max_rel_l2, "rel-L2 bound per step (default 3.5e-2)");
  rp->add_option("--routing-margin", replay.routing_margin,
                 "MoE: routing decisions whose reference margin is at least this must agree "
                 "(default: only reported)");

  std::string preset, out_dir, mk_tokenizer;
  int layers = 0, mk_hidden = 0, mk_inter = 0, mk_heads = 0, mk_kv_heads = 0, mk_head_dim = 0;
  int mk_experts = 0, mk_experts_used = 0, mk_moe_inter = 0, mk_vocab = 0;
  std::string mk_gguf;
  SyntheticCheckpointOptions mk;
  double shard_gb = 4.0;
  CLI::App* mc = app.add_subcommand(
      "make-checkpoint", "write a synthetic Qwen3 checkpoint in the Hugging Face layout");
  mc->add_option("--preset", preset, "0.6b|1.7b|4b|8b|14b|32b|30b-a3b|235b-a22b")->required();
  mc->add_option("--layers", layers, "decoder layers (default: the preset's)");
  mc->add_option("--seed", mk.seed, "seed of the weights (default 0)");
  mc->add_option("--shard-gb", shard_gb, "largest shard in GB (default 4)");
  mc->add_option("--hidden", mk_hidden, "hidden size (default: the preset's)");
  mc->add_option("--intermediate", mk_inter, "MLP size (default: the preset's)");
  mc->add_option("--heads", mk_heads, "attention heads (default: the preset's)");
  mc->add_option("--kv-heads", mk_kv_heads, "KV heads (default: the preset's)");
  mc->add_option("--head-dim", mk_head_dim, "head dimension (default: the preset's)");
  mc->add_option("--vocab", mk_vocab, "vocabulary size (default: the preset's)");
  mc->add_option("--experts", mk_experts, "MoE presets: experts per layer (default: the preset's)");
  mc->add_option("--experts-used", mk_experts_used, "MoE presets: experts per token (top-k)");
  mc->add_option("--moe-intermediate", mk_moe_inter, "MoE presets: each expert's FFN size");
  mc->add_option("--tokenizer", mk_tokenizer,
                 "copy tokenizer.json (and tokenizer_config.json) from this file or directory");
  mc->add_option("--gguf", mk_gguf,
                 "write one GGUF file (the positional argument) of this type instead: bf16 | q8_0 "
                 "| q4_0 | q4_k_m (what llama.cpp's converter and llama-quantize lay out)");
  mc->add_option("dir", out_dir, "output directory (new or empty), or the .gguf file")->required();

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

  ServeCmdOptions serve;
  CLI::App* sv = app.add_subcommand("serve", "OpenAI-compatible HTTP server (continuous batching)");
  // A count flag: CLI11 would take "-3" for a size_t as 2^64 - 3.
  const auto count = [&](const char* name, size_t& v, const std::string& help) {
    return sv->add_option(name, v, help)->check(CLI::NonNegativeNumber);
  };
  sv->add_option("--model", serve.engine.model_dir,
                 "Hugging Face model directory, or a GGUF file")
      ->required();
  sv->add_option("--tokenizer", serve.engine.tokenizer, "tokenizer.json (default: the model directory's)");
  AddQuantizeFlag(*sv, serve.engine.quantize);
  AddDeviceFlag(*sv, serve.engine.device);
  AddKvTypeFlag(*sv, serve.engine.kv_type);
  sv->add_option("--host", serve.server.host, "address to listen on (default 127.0.0.1)");
  sv->add_option("--port", serve.server.port, "port (default 8000; 0: any free port)");
  sv->add_option("--api-key", serve.server.api_key, "require \"Authorization: Bearer KEY\" on /v1/*");
  sv->add_option("--served-model-name", serve.server.model_name,
                 "the model's name in the API (default: the directory's name)");
  count("--max-running", serve.engine.max_running, "sequences decoding together (default 32)");
  count("--max-queue", serve.engine.max_queue,
                 "waiting requests before 503 (default 256)");
  auto* kv_mem = sv->add_option("--kv-memory", serve.engine.kv_memory_gb,
                                "KV pool size in GB (default: half the memory available after the weights)");
  count("--kv-blocks", serve.engine.kv_blocks, "KV pool size in blocks")->excludes(kv_mem);
  count("--block-size", serve.engine.block_size, "tokens per KV block (default 64)");
  count("--max-batch-tokens", serve.engine.max_batch_tokens,
                 "rows per step while sequences decode: decode rows + prefill chunks (default 64)");
  count("--max-seq", serve.engine.max_seq,
                 "context length (default: max_position_embeddings, at most 32768)");
  sv->add_option("--shutdown-grace", serve.shutdown_grace_s,
                 "seconds running requests may finish after SIGINT/SIGTERM (default 10)");
  // Limits (docs/RELIABILITY.md): what a connection may send and how long it may take...
  HttpLimits& hl = serve.server.http;
  count("--max-header-bytes", hl.max_header_bytes,
                 "request line + headers, else 431 (default 16384)");
  count("--max-body-bytes", hl.max_body_bytes, "request body, else 413 (default 8388608)");
  sv->add_option("--read-timeout", hl.read_timeout_s,
                 "seconds a request may take to arrive from its first byte, else 408 (default 30)");
  sv->add_option("--idle-timeout", hl.idle_timeout_s,
                 "seconds a kept-alive connection waits for its next request (default 30)");
  sv->add_option("--write-timeout", hl.write_timeout_s,
                 "seconds a client may take no bytes before it is dropped (default 30)");
  count("--send-buffer-bytes", hl.send_buffer_bytes,
        "kernel send buffer of a connection: what a client reading nothing may leave queued "
        "(default 262144; 0: the kernel's)");
  // ... and what one request may ask for (400 past a limit).
  ApiLimits& al = serve.server.api;
  count("--max-messages", al.max_messages, "chat messages per request (default 2048)");
  count("--max-prompt-tokens", al.max_prompt_tokens,
                 "tokens of one prompt (default: the context length less one)");
  count("--max-tokens", al.max_tokens,
                 "largest max_tokens a request may ask for (default: the context length)");
  count("--max-n", al.max_n, "choices per prompt, n (default 64)");
  count("--max-top-logprobs", al.max_top_logprobs, "top_logprobs, at most 20 (default 20)");
  count("--max-stops", al.max_stops, "stop strings per request (default 16)");
  count("--max-stop-bytes", al.max_stop_bytes, "bytes of one stop string (default 256)");

  CLI11_PARSE(app, argc, argv);
  if (rp->parsed()) {
    replay.threads = threads;
    const ReplayResult r = RunReplay(replay);
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
  if (sv->parsed()) {
    serve.engine.threads = threads;
    return RunServe(serve);
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
    if (mk_hidden > 0) c.hidden = mk_hidden;
    if (mk_inter > 0) c.intermediate = mk_inter;
    if (mk_heads > 0) c.heads = mk_heads;
    if (mk_kv_heads > 0) c.kv_heads = mk_kv_heads;
    if (mk_head_dim > 0) c.head_dim = mk_head_dim;
    if ((mk_experts || mk_experts_used || mk_moe_inter) && !c.moe()) {
      throw Error("--experts, --experts-used, --moe-intermediate: " + c.name +
                  " is not a mixture-of-experts preset (30b-a3b, 235b-a22b are)");
    }
    if (mk_vocab > 0) c.vocab = mk_vocab;
    if (mk_experts > 0) c.experts = mk_experts;
    if (mk_experts_used > 0) c.experts_used = mk_experts_used;
    if (mk_moe_inter > 0) c.moe_intermediate = mk_moe_inter;
    ValidateConfig(c);
    if (!mk_gguf.empty()) {
      ThreadPool pool(threads);
      const SyntheticGgufInfo info =
          WriteSyntheticGguf(c, {mk.seed, mk_gguf, mk_tokenizer}, out_dir, pool);
      std::printf("make-checkpoint: %s, %d layers, %zu tensors, %.3f GB (%s GGUF) -> %s\n",
                  c.name.c_str(), c.layers, info.tensors, info.bytes / 1e9, mk_gguf.c_str(),
                  out_dir.c_str());
      return 0;
    }
    if (!(shard_gb > 0)) throw Error("--shard-gb " + std::to_string(shard_gb) + ": expected > 0");
    mk.max_shard_bytes = static_cast<size_t>(shard_gb * 1e9);
    const SyntheticCheckpointInfo info = WriteSyntheticCheckpoint(c, mk, out_dir);
    if (!mk_tokenizer.empty()) CopyTokenizerFiles(mk_tokenizer, out_dir);
    std::printf("make-checkpoint: %s, %d layers, %zu tensors, %.3f GB in %zu shard(s) -> %s\n",
                c.name.c_str(), c.layers, info.tensors, info.bytes / 1e9, info.shards,
                out_dir.c_str());
    return 0;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return qwen3::RunToolMain("qwen3", argc, argv, Main);
}
