#include "tools/serve_cmd.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "base/error.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"

namespace qwen3 {

int RunServe(ServeCmdOptions o) {
  if (o.server.port < 0 || o.server.port > 65535) {
    throw Error("--port " + std::to_string(o.server.port) + ": expected 0..65535 (0: any free port)");
  }
  if (o.engine.max_queue == 0) throw Error("--max-queue 0: expected at least 1");
  if (!(o.shutdown_grace_s >= 0)) throw Error("--shutdown-grace: expected seconds >= 0");
  for (const std::string& e : {CheckHttpLimits(o.server.http), CheckApiLimits(o.server.api)}) {
    if (!e.empty()) throw Error(e);
  }
  if (o.server.model_name.empty()) {
    o.server.model_name = std::filesystem::path(o.engine.model_dir).filename().string();
    if (o.server.model_name.empty()) o.server.model_name = "qwen3";
  }
  // Each streaming request holds an HTTP thread: room for every running and queued request, and
  // a few more for /health, /metrics and the 503s of a full queue.
  o.server.http_threads = o.engine.max_running + o.engine.max_queue + 8;
  // Signals are taken by one thread (sigwait), so no thread is interrupted mid-request.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a kill

  HttpServer server(o.server);
  const int port = server.Bind();
  std::fprintf(stderr, "qwen3 serve: listening on http://%s:%d (loading %s)\n",
               o.server.host.c_str(), port, o.engine.model_dir.c_str());
  server.Start();
  std::unique_ptr<Engine> engine;
  try {
    engine = Engine::Open(o.engine);
  } catch (...) {
    server.Stop();
    throw;
  }
  const EngineOptions& eo = engine->options();
  std::fprintf(stderr,
               "qwen3 serve: ready: model %s (%.2f GB of weights, loaded in %.1f s), %zu threads | "
               "KV pool %zu blocks x %zu tokens = %zu tokens, %.2f GB %s | context %zu | "
               "max running %zu, queue %zu, %zu tokens per step\n",
               o.server.model_name.c_str(), engine->weights().bytes() / 1e9,
               engine->load_seconds(), engine->pool().NumWorkers(), eo.kv_blocks, eo.block_size,
               eo.kv_blocks * eo.block_size, engine->kv_bytes() / 1e9, eo.kv_type.c_str(),
               eo.max_seq, eo.max_running,
               eo.max_queue, eo.max_batch_tokens);
  server.SetEngine(engine.get());

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "qwen3 serve: %s: draining (new requests get 503)\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  const size_t cancelled = server.Drain(o.shutdown_grace_s);
  if (cancelled > 0) {
    std::fprintf(stderr, "qwen3 serve: cancelled %zu sequences at the end of the grace period\n",
                 cancelled);
  }
  std::fprintf(stderr, "qwen3 serve: stopped\n");
  return 0;
}

}  // namespace qwen3
