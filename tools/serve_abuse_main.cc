// qwen3-serve-abuse: `qwen3 serve` under abuse (tools/serve_abuse.h, docs/RELIABILITY.md).
//   qwen3-serve-abuse --model ../shared/testdata/gguf/tiny-a.bf16.gguf --requests 3000
// Prints the outcomes, the server's counts and memory; exit 1 if a request was lost or a
// check failed.
#include <CLI/CLI.hpp>
#include <iostream>

#include "tools/serve_abuse.h"
#include "tools/tool_main.h"

namespace {

int Main(int argc, char** argv) {
  qwen3::AbuseOptions o;
  CLI::App app{
      "qwen3-serve-abuse: a server in this process hammered by hostile clients, then checked"};
  app.add_option("--model", o.model, "model directory or GGUF file, with a tokenizer")->required();
  app.add_option("--requests", o.requests, "client actions in the main phase (default 300)");
  app.add_option("--concurrency", o.concurrency, "client threads (default 24)");
  app.add_option("--duration", o.duration_s,
                 "start no action after this many seconds (default: none)");
  app.add_option("--seed", o.seed, "seed of the clients' choices (default 1)");
  app.add_option("--threads", o.threads, "engine workers (default 1)");
  app.add_option("--max-running", o.max_running, "the server's --max-running (default 4)");
  app.add_option("--max-queue", o.max_queue, "the server's --max-queue (default 8)");
  app.add_option("--kv-blocks", o.kv_blocks, "the server's --kv-blocks (default 96)");
  app.add_option("--http-threads", o.http_threads, "connections served at once (default 20)");
  app.add_option("--read-timeout", o.http.read_timeout_s,
                 "the server's --read-timeout (default 1)");
  app.add_option("--idle-timeout", o.http.idle_timeout_s,
                 "the server's --idle-timeout (default 2)");
  app.add_option("--write-timeout", o.http.write_timeout_s,
                 "the server's --write-timeout (default 1)");
  CLI11_PARSE(app, argc, argv);
  o.log = &std::cerr;
  const qwen3::AbuseReport r = qwen3::RunAbuse(o);
  std::cout << r.Summary();
  return r.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return qwen3::RunToolMain("qwen3-serve-abuse", argc, argv, Main);
}
