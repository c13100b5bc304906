#include "serve/http_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "serve/openai_api.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSlice = std::chrono::milliseconds(50);
constexpr auto kYieldAfter = std::chrono::milliseconds(100);
// The library's compiled-in line limits (CPPHTTPLIB_REQUEST_URI_MAX_LENGTH, _HEADER_MAX_LENGTH).
constexpr size_t kMaxLineBytes = 8192;
constexpr size_t kRecvBytes = 16 << 10;
// After a refusal, what of the request is read and dropped, so that the client sees the reply
// rather than a reset (closing a socket with unread input sends RST).
constexpr size_t kDrainBytes = 256 << 10;
constexpr auto kDrainTime = std::chrono::milliseconds(500);

Clock::duration Span(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string SecondsText(double s) {
  std::string t = std::to_string(s);
  t.erase(t.find_last_not_of('0') + 1);
  if (t.back() == '.') t.pop_back();
  return t;
}

// A header value as the client wrote it, for messages.
std::string Shown(std::string_view v) {
  std::string s = "\"";
  s.append(v.substr(0, v.size() > 40 ? 37 : v.size()));
  s.append(v.size() > 40 ? "...\"" : "\"");
  return s;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

const char* Reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Error";
  }
}

// The workers of one server. Each worker thread knows its queue, so that an idle kept-alive
// connection can see that others wait for a thread.
class Workers final : public httplib::TaskQueue {
 public:
  explicit Workers(size_t n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~Workers() override { shutdown(); }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(fn));
      waiting_.store(jobs_.size());
    }
    cv_.notify_one();
  }
  // Runs what was accepted (each sees the server stopping and closes its socket), then joins.
  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  size_t waiting() const { return waiting_.load(); }

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::atomic<size_t> waiting_{0};
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

thread_local const Workers* t_workers = nullptr;

void Workers::Run() {
  t_workers = this;
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      fn = std::move(jobs_.front());
      jobs_.pop_front();
      waiting_.store(jobs_.size());
    }
    fn();
  }
}

// How a request's body is delimited, or why it is refused.
struct Framing {
  uint64_t body_bytes = 0;  // chunked: the wire bytes it may take
  bool chunked = false;
  int status = 0;  // a refusal
  std::string message;
};

// The head's framing headers read as the library will read them: lines end at '\n', a line
// not ending in CRLF is skipped, a header name is everything before the first ':'. The
// library percent-decodes header values, so an escape in these three is refused.
Framing FrameOf(std::string_view head, const HttpLimits& l) {
  Framing f;
  const auto refuse = [&](int status, const std::string& message) {
    f.status = status;
    f.message = message;
    return f;
  };
  std::optional<uint64_t> length;
  bool first = true;
  for (size_t at = 0; at < head.size();) {
    const size_t nl = head.find('\n', at);
    std::string_view line =
        head.substr(at, (nl == std::string_view::npos ? head.size() : nl + 1) - at);
    at += line.size();
    if (line.size() > kMaxLineBytes) {
      return refuse(first ? 414 : 431, std::string(first ? "the request line" : "a header line") +
                                           " is " + std::to_string(line.size()) +
                                           " bytes: expected at most " +
                                           std::to_string(kMaxLineBytes));
    }
    if (first) {
      first = false;
      continue;
    }
    if (line.size() < 2 || line[line.size() - 2] != '\r') continue;
    line.remove_suffix(2);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon), value = Trim(line.substr(colon + 1));
    if (IEquals(name, "Content-Length")) {
      uint64_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
        return refuse(400, "Content-Length " + Shown(value) + ": expected a byte count");
      }
      if (length && *length != n) return refuse(400, "two Content-Length headers that differ");
      length = n;
    } else if (IEquals(name, "Transfer-Encoding")) {
      if (!IEquals(value, "chunked")) {
        return refuse(400, "Transfer-Encoding " + Shown(value) + ": expected chunked");
      }
      f.chunked = true;
    } else if (IEquals(name, "Content-Encoding") && !IEquals(value, "identity")) {
      return refuse(415, "Content-Encoding " + Shown(value) + ": expected an uncompressed body");
    }
  }
  if (length && f.chunked) {
    return refuse(400, "both Content-Length and Transfer-Encoding: expected one of them");
  }
  if (length && *length > l.max_body_bytes) {
    return refuse(413, "the request body is " + std::to_string(*length) +
                           " bytes: expected at most --max-body-bytes " +
                           std::to_string(l.max_body_bytes));
  }
  f.body_bytes = f.chunked ? l.max_body_bytes : length.value_or(0);
  return f;
}

// One client connection, as the library's parser reads and writes it. Not thread-safe: the
// worker that serves the connection owns it.
class Connection final : public httplib::Stream {
 public:
  enum class Got { kData, kClosed, kTimeout, kStopping };
  enum class Head { kOk, kClosed, kTimeout, kTooLarge };

  Connection(int fd, const HttpLimits& limits, const std::atomic<socket_t>& listener)
      : fd_(fd), limits_(limits), listener_(listener) {}

  // Waits for the next request's first byte: false if the client closed, stayed idle too long
  // (a kept-alive one also as soon as other connections wait for a thread) or the server
  // stops. Starts the request's read deadline.
  bool AwaitRequest(bool kept_alive) {
    if (pos_ == buf_.size()) {
      const double wait_s = kept_alive ? limits_.idle_timeout_s : limits_.read_timeout_s;
      if (Receive(Clock::now() + Span(wait_s), kept_alive) != Got::kData) return false;
    }
    deadline_ = Clock::now() + Span(limits_.read_timeout_s);
    fault_ = {};
    return true;
  }

  // Reads the request line and headers through the blank line.
  Head ReadHead() {
    size_t scan = 0;
    for (;;) {
      const std::string_view pending(buf_.data() + pos_, buf_.size() - pos_);
      const size_t at = pending.find("\r\n\r\n", scan);
      if (at != std::string_view::npos) {
        head_bytes_ = at + 4;
        return head_bytes_ > limits_.max_header_bytes ? Head::kTooLarge : Head::kOk;
      }
      if (pending.size() >= limits_.max_header_bytes) return Head::kTooLarge;
      scan = pending.size() >= 3 ? pending.size() - 3 : 0;
      const Got g = Receive(deadline_, false);
      if (g == Got::kTimeout) return Head::kTimeout;
      if (g != Got::kData) return Head::kClosed;
    }
  }
  std::string_view head() const { return {buf_.data() + pos_, head_bytes_}; }

  // The parser may read this request's head and then body_bytes.
  void Frame(const Framing& f) {
    left_ = head_bytes_ + f.body_bytes;
    chunked_ = f.chunked;
  }
  const HttpFault& fault() const { return fault_; }

  // After the reply: drops what the parser left unread of this request's body (it reads none
  // of a request it refused). False when the connection cannot go on: a chunked rest, or a
  // rest not yet received.
  bool SkipRest() {
    if (left_ == 0) return true;
    if (chunked_ || left_ > buf_.size() - pos_) return false;
    pos_ += left_;
    left_ = 0;
    return true;
  }

  // A reply of the guard's own; then the connection is to be closed.
  void Refuse(int status, const std::string& message) {
    ApiError e;
    e.status = status;
    e.message = message;
    const std::string body = e.Body();
    const std::string reply =
        "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nConnection: close\r\n\r\n" + body;
    for (size_t off = 0; off < reply.size();) {
      const ssize_t n = write(reply.data() + off, reply.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
    Linger();
  }

  // Before closing after a refusal: ends the reply and reads what the client still sends for
  // a moment, so that the reply reaches it rather than a reset.
  void Linger() {
    ::shutdown(fd_, SHUT_WR);
    const auto until = Clock::now() + kDrainTime;
    for (size_t drained = 0; drained < kDrainBytes;) {
      pos_ = buf_.size();
      if (Receive(until, false) != Got::kData) break;
      drained += buf_.size() - pos_;
    }
  }

  bool is_readable() const override {
    return pos_ < buf_.size() || Poll(POLLIN, deadline_, false) == Got::kData;
  }
  bool is_writable() const override {
    return Poll(POLLOUT, Clock::now() + Span(limits_.write_timeout_s), false) == Got::kData &&
           Alive();
  }

  ssize_t read(char* ptr, size_t size) override {
    if (left_ == 0) {
      if (!chunked_) return 0;
      fault_ = {413, "the chunked request body is over --max-body-bytes " +
                         std::to_string(limits_.max_body_bytes) + " bytes"};
      return -1;
    }
    if (pos_ == buf_.size()) {
      const Got g = Receive(deadline_, false);
      if (g == Got::kTimeout) {
        fault_ = {408, "the request did not arrive within --read-timeout " +
                           SecondsText(limits_.read_timeout_s) + " s of its first byte"};
      }
      if (g == Got::kClosed) return 0;
      if (g != Got::kData) return -1;
    }
    const size_t n = std::min({size, buf_.size() - pos_, left_});
    std::memcpy(ptr, buf_.data() + pos_, n);
    pos_ += n;
    left_ -= n;
    return static_cast<ssize_t>(n);
  }

  // Waits up to --write-timeout for the client to take bytes each time it takes none.
  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (Poll(POLLOUT, Clock::now() + Span(limits_.write_timeout_s), false) != Got::kData)
        return -1;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(::getsockname, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  // Waits for `events` until `until`, in slices that look at the server stopping (and, with
  // yield, at connections waiting for a worker). kData: ready (or the peer hung up).
  Got Poll(short events, Clock::time_point until, bool yield) const {
    const auto start = Clock::now();
    for (;;) {
      if (listener_.load() == INVALID_SOCKET) return Got::kStopping;
      const auto now = Clock::now();
      // A client about to reuse its connection does so at once; one idle for a while is
      // closed if others wait (HTTP lets a server close an idle connection; clients retry).
      if (yield && now - start >= kYieldAfter && t_workers != nullptr && t_workers->waiting() > 0) {
        return Got::kStopping;
      }
      if (now >= until) return Got::kTimeout;
      const auto slice = std::min<Clock::duration>(kSlice, until - now);
      pollfd p{fd_, events, 0};
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(slice).count();
      const int r = ::poll(&p, 1, static_cast<int>(ms));
      if (r > 0) return Got::kData;
      if (r < 0 && errno != EINTR) return Got::kClosed;
    }
  }

  // Appends what the socket has (waiting for it until `until`) to the buffer.
  Got Receive(Clock::time_point until, bool yield) {
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ >= kRecvBytes) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    for (;;) {
      const Got g = Poll(POLLIN, until, yield);
      if (g != Got::kData) return g;
      const size_t old = buf_.size();
      buf_.resize(old + kRecvBytes);
      const ssize_t n = ::recv(fd_, buf_.data() + old, kRecvBytes, MSG_DONTWAIT);
      buf_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n > 0) return Got::kData;
      if (n == 0) return Got::kClosed;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Got::kClosed;
    }
  }

  // The peer has not closed: nothing to read, or data to read (a pipelined request).
  bool Alive() const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }

  template <typename F>
  void Address(F name_of, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    ip.clear();
    port = 0;
    if (name_of(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
      inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
      port = ntohs(v4->sin_port);
    } else if (a.ss_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
      inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
      port = ntohs(v6->sin6_port);
    }
    ip = text;
  }

  int fd_;
  const HttpLimits& limits_;
  const std::atomic<socket_t>& listener_;
  std::string buf_;  // received, from pos_ on not yet consumed
  size_t pos_ = 0;
  size_t head_bytes_ = 0;  // the current request's head, from pos_ (before the parser reads)
  uint64_t left_ = 0;      // bytes of the current request the parser may still read
  bool chunked_ = false;
  Clock::time_point deadline_{};
  HttpFault fault_;
};

thread_local const Connection* t_connection = nullptr;

}  // namespace

std::string CheckHttpLimits(const HttpLimits& l) {
  const auto positive = [](double s) { return std::isfinite(s) && s > 0 && s <= 86400; };
  if (l.max_header_bytes < 1024) {
    return "--max-header-bytes " + std::to_string(l.max_header_bytes) + ": expected at least 1024";
  }
  if (l.max_body_bytes < 1024) {
    return "--max-body-bytes " + std::to_string(l.max_body_bytes) + ": expected at least 1024";
  }
  if (l.send_buffer_bytes != 0 &&
      (l.send_buffer_bytes < 4096 || l.send_buffer_bytes > (64 << 20))) {
    return "--send-buffer-bytes " + std::to_string(l.send_buffer_bytes) +
           ": expected 0 (the kernel's autotuning) or 4096..67108864";
  }
  if (!positive(l.read_timeout_s)) {
    return "--read-timeout " + SecondsText(l.read_timeout_s) + ": expected seconds in (0, 86400]";
  }
  if (!positive(l.idle_timeout_s)) {
    return "--idle-timeout " + SecondsText(l.idle_timeout_s) + ": expected seconds in (0, 86400]";
  }
  if (!positive(l.write_timeout_s)) {
    return "--write-timeout " + SecondsText(l.write_timeout_s) + ": expected seconds in (0, 86400]";
  }
  return "";
}

GuardedServer::GuardedServer(const HttpLimits& limits, std::function<void(int)> on_refusal)
    : limits_(limits), on_refusal_(std::move(on_refusal)) {
  // What the library writes in its Keep-Alive header and sets as socket timeouts.
  set_keep_alive_timeout(std::max<time_t>(1, static_cast<time_t>(limits.idle_timeout_s)));
  const auto sec = [](double s) { return static_cast<time_t>(s); };
  const auto usec = [](double s) { return static_cast<time_t>((s - std::floor(s)) * 1e6); };
  set_read_timeout(sec(limits.read_timeout_s), usec(limits.read_timeout_s));
  set_write_timeout(sec(limits.write_timeout_s), usec(limits.write_timeout_s));
  set_payload_max_length(limits.max_body_bytes);
}

HttpFault GuardedServer::CurrentFault() {
  return t_connection ? t_connection->fault() : HttpFault{};
}

httplib::TaskQueue* GuardedServer::NewTaskQueue(size_t threads) { return new Workers(threads); }

bool GuardedServer::process_and_close_socket(socket_t sock) {
  if (limits_.send_buffer_bytes > 0) {
    const int bytes = static_cast<int>(limits_.send_buffer_bytes);
    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  }
  Connection c(sock, limits_, svr_sock_);
  const auto refuse = [&](int status, const std::string& message) {
    if (on_refusal_) on_refusal_(status);
    c.Refuse(status, message);
  };
  bool ret = false;
  for (size_t served = 0; served < keep_alive_max_count_; ++served) {
    if (!c.AwaitRequest(served > 0)) break;
    const Connection::Head h = c.ReadHead();
    if (h == Connection::Head::kTimeout) {
      refuse(408, "the request head did not arrive within --read-timeout " +
                      SecondsText(limits_.read_timeout_s) + " s of its first byte");
      break;
    }
    if (h == Connection::Head::kTooLarge) {
      refuse(431, "the request head (request line and headers) is over --max-header-bytes " +
                      std::to_string(limits_.max_header_bytes) + " bytes");
      break;
    }
    if (h != Connection::Head::kOk) break;
    const Framing f = FrameOf(c.head(), limits_);
    if (f.status != 0) {
      refuse(f.status, f.message);
      break;
    }
    c.Frame(f);
    bool closed = false;
    t_connection = &c;
    ret = process_request(c, served + 1 == keep_alive_max_count_, closed, nullptr);
    t_connection = nullptr;
    if (c.fault().status != 0) {
      c.Linger();
      break;
    }
    if (!ret || closed || !c.SkipRest()) break;
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

}  // namespace qwen3
