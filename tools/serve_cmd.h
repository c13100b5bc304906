// `qwen3 serve`: the OpenAI-compatible server. Binds first (so /health answers 503 while the
// model loads), opens the Engine, serves until SIGINT/SIGTERM, then drains: new requests get
// 503, running ones finish (up to --shutdown-grace seconds, then they are cancelled), exit 0.
#pragma once

#include <cstddef>
#include <string>

#include "serve/engine.h"
#include "serve/http_server.h"

namespace qwen3 {

struct ServeCmdOptions {
  EngineOptions engine;
  ServerOptions server;
  double shutdown_grace_s = 10;
};

int RunServe(ServeCmdOptions o);

}  // namespace qwen3
