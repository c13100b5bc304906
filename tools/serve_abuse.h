// `qwen3 serve` under abuse (docs/RELIABILITY.md): a real server (Engine + HttpServer in this
// process, on loopback) hammered by well-formed and hostile clients at once, at a concurrency
// above --max-running + --max-queue, then drained under load as SIGTERM drains it.
//
// Clients (tools/abuse_actions.h): streamed and plain chat and text completions on fresh and
// kept-alive connections, disconnects mid-prefill and mid-stream, malformed bodies and wrong
// field types, oversized bodies, header floods, lying framing, slow senders, clients that read
// nothing, pipelined requests. Every client operation has a deadline (a hang is a failure).
//
// Checks: every well-formed request gets a complete, well-formed reply whose text equals its
// reply on the idle server (greedy or seeded sampling; the engine is batch invariant), or a
// clean 503; every hostile request the status it should; afterwards nothing runs, every KV
// block is free or cached, the server's reply counts add up to what the clients saw, every
// submitted sequence finished, and resident memory is within 10% of what it was after warm-up.
//
//   AbuseOptions o;  o.model = ".../tiny-a.bf16.gguf";  o.requests = 3000;
//   const AbuseReport r = RunAbuse(o);  std::cout << r.Summary();  return r.ok() ? 0 : 1;
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "serve/http_guard.h"

namespace qwen3 {

struct AbuseOptions {
  std::string model;        // a model directory or GGUF file, with a tokenizer
  size_t requests = 300;    // client actions (a request, or a hostile connection)
  size_t concurrency = 24;  // client threads
  double duration_s = 0;    // start no new action after this long (0: no limit)
  uint64_t seed = 1;
  size_t threads = 1;  // engine workers
  // The server: small, so that the queue fills, preemptions happen and a thread is scarce.
  size_t max_running = 4, max_queue = 8, kv_blocks = 96, block_size = 32, max_seq = 2048;
  size_t http_threads = 20;  // below concurrency: connections wait for a thread
  // Short time-outs, a small body limit, and a small send buffer so that a client reading
  // nothing blocks the server's writes within its 256-token stream.
  HttpLimits http{16 << 10, 64 << 10, 1.0, 2.0, 1.0, 16 << 10};
  double grace_s = 0.3;         // the drain's grace period
  double op_timeout_s = 120;    // the deadline of every client operation
  std::ostream* log = nullptr;  // progress lines
};

struct AbuseReport {
  size_t actions = 0;                        // client actions done
  std::map<std::string, size_t> outcomes;    // "ok", "503", "400", ..., "disconnected"
  std::vector<std::string> failures;         // lost requests and failed checks, described
  size_t lost = 0;                           // client actions that failed
  std::map<int, uint64_t> server_replies;    // the server's count by status
  uint64_t submitted = 0;                    // sequences the engine accepted
  std::map<std::string, uint64_t> finished;  // and how they ended
  // Memory in use (VmRSS; the sanitizer heap's live bytes under ASan/TSan), in KiB.
  size_t memory_warm_kb = 0, memory_after_kb = 0, memory_end_kb = 0;
  double seconds = 0;            // the main phase
  double memory_growth() const;  // after the run vs after warm-up: 0.03 is +3%
  bool ok() const { return failures.empty(); }
  std::string Summary() const;
};

AbuseReport RunAbuse(const AbuseOptions& o);

}  // namespace qwen3
