// `qwen3 serve`'s HTTP/1.1 front (cpp-httplib behind this small interface): the OpenAI routes of
// serve/openai_api.h, /health, /metrics, /tokenize, /detokenize, bearer-key auth, 503 while the
// model loads, while draining for shutdown or when the engine's queue is full. Replies stream
// through a chunked provider, also non-stream ones, so a client that goes away is seen within
// one poll (50 ms) and its request cancelled in the engine, also during prefill. HTTP threads
// never touch the model: they submit to the Engine and wait on their request's stream.
// Connections are read under HttpLimits (serve/http_guard.h), requests parsed under ApiLimits
// (serve/openai_api.h); every reply is counted by status (HttpMetrics, on /metrics).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "serve/http_guard.h"
#include "serve/openai_api.h"

namespace qwen3 {

class Engine;
class HttpMetrics;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;               // 0: any free port (Bind returns it)
  std::string api_key;           // empty: no auth
  std::string model_name;        // --served-model-name
  size_t http_threads = 64;      // connections served at once (each stream holds one)
  HttpLimits http;
  ApiLimits api;
};

class HttpServer {
 public:
  explicit HttpServer(const ServerOptions& options);
  ~HttpServer();
  // Binds the socket; returns the port. Throws Error if it cannot.
  int Bind();
  // From now on requests reach the engine (before: 503 "loading").
  void SetEngine(Engine* engine);
  // New requests get 503 (shutting down); running ones go on.
  void SetDraining();
  // Serves on a thread of its own until Stop(); call after Bind. Returns once listening.
  void Start();
  // Stops listening, waits for the requests in flight and joins the thread. Idempotent.
  void Stop();
  // SIGTERM's path: new requests get 503, running ones have grace_s seconds to finish, then
  // the engine is shut down (cancelling what is left) and the server stopped. Returns how many
  // sequences were still running or waiting when the grace period ended.
  size_t Drain(double grace_s);
  const HttpMetrics& metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace qwen3
