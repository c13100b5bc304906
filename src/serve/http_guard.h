// The connection loop of `qwen3 serve`'s HTTP front, with limits. Debian's cpp-httplib (0.11.4,
// a compiled library, so its CPPHTTPLIB_* limits cannot be changed) reads a request with no
// bound on a header line's length (it is read whole before being checked), on the number of
// headers, on a chunked, length-less or compressed body (gzip and brotli are inflated into
// memory), or on the time the request takes to arrive; and it polls every idle kept-alive
// connection every 10 ms. GuardedServer replaces that loop (the library's private virtual
// process_and_close_socket; the parser, process_request, is protected) and hands the parser a
// stream, one per connection, that enforces HttpLimits:
//   - the head (request line + headers) is read by the guard first, up to max_header_bytes
//     (431), a line up to the library's 8192 (431, 414 for the request line), and framed: a
//     Content-Length over max_body_bytes is a 413 before any body byte is read, a chunked body
//     may take max_body_bytes on the wire (then 413), no length means no body (RFC 9112 6.3;
//     the library would read to EOF), Content-Encoding other than identity is a 415, both
//     Content-Length and Transfer-Encoding (a smuggling vector) a 400;
//   - a request must arrive, head and body, within read_timeout_s of its first byte (408);
//   - a kept-alive connection waits idle_timeout_s for its next request, and gives its thread
//     up at once when another connection is waiting for one (threads are per connection);
//   - a write waits write_timeout_s for the client to take bytes, then the client is dropped
//     (its request is then cancelled by the reply's provider); the send buffer is bounded
//     (send_buffer_bytes), so that a client reading nothing is seen before megabytes of its
//     reply are queued in the kernel and generated in vain;
//   - waits are cut in 50 ms slices, so Stop() is prompt whatever the clients do.
// The guard answers its own refusals (an OpenAI error JSON, Connection: close); a fault found
// while the library reads the body (timeout, chunked body too large) is reported to the
// server's error handler by CurrentFault(), which turns the library's 400 into 408 or 413.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace qwen3 {

struct HttpLimits {
  size_t max_header_bytes = 16 << 10;  // request line + headers (431 past it)
  size_t max_body_bytes = 8 << 20;     // 413 past it; a chunked body counts its wire bytes
  double read_timeout_s = 30;          // a request's head and body, from its first byte (408)
  double idle_timeout_s = 30;          // a kept-alive connection waiting for its next request
  double write_timeout_s = 30;         // a client that takes no byte for this long is dropped
  // SO_SNDBUF of a connection (0: the kernel's autotuning, up to tcp_wmem's 4 MiB): what a
  // client that reads nothing can leave queued before writes block and it is dropped.
  size_t send_buffer_bytes = 256 << 10;
};
// One line naming the flag and the value when a limit is out of range; empty when all are fine.
std::string CheckHttpLimits(const HttpLimits& l);

// What the guard saw wrong in the request the calling thread is reading (none, or a status
// with its message).
struct HttpFault {
  int status = 0;  // 0: none
  std::string message;
};

class GuardedServer : public httplib::Server {
 public:
  // on_refusal(status) counts each reply the guard writes itself.
  GuardedServer(const HttpLimits& limits, std::function<void(int)> on_refusal);
  // The fault of the request being read on this thread (for the error handler).
  static HttpFault CurrentFault();
  // A task queue of `threads` workers for new_task_queue; kept-alive connections waiting idle
  // on them let go while connections wait for a worker.
  static httplib::TaskQueue* NewTaskQueue(size_t threads);

 private:
  bool process_and_close_socket(socket_t sock) override;

  HttpLimits limits_;
  std::function<void(int)> on_refusal_;
};

}  // namespace qwen3
