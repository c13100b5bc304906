#include "tools/raw_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace qwen3 {
namespace {

int MsLeft(AbuseClock::time_point deadline) {
  const auto left = deadline - AbuseClock::now();
  if (left <= AbuseClock::duration::zero()) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

// Waits for `events` on fd until the deadline: > 0 ready, 0 timed out, < 0 error.
int Wait(int fd, short events, AbuseClock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, MsLeft(deadline));
    if (r >= 0 || errno != EINTR) return r;
  }
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

bool RawHttp::Connect(int port, AbuseClock::time_point deadline, int recv_buffer) {
  Close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  if (recv_buffer > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &recv_buffer, sizeof(recv_buffer));
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS) {
    Close();
    return false;
  }
  int err = 0;
  socklen_t len = sizeof(err);
  if (Wait(fd_, POLLOUT, deadline) <= 0 || getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
      err != 0) {
    Close();
    return false;
  }
  return true;
}

void RawHttp::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
  pos_ = 0;
}

RawHttp::Result RawHttp::Send(std::string_view bytes, AbuseClock::time_point deadline) {
  received_ = 0;
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return kClosed;
    const int w = Wait(fd_, POLLOUT, deadline);
    if (w == 0) return kTimeout;
    if (w < 0) return kClosed;
  }
  return kOk;
}

RawHttp::Result RawHttp::Fill(AbuseClock::time_point deadline) {
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  for (;;) {
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      received_ += static_cast<size_t>(n);
      return kOk;
    }
    if (n == 0) return kClosed;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return kClosed;
    const int w = Wait(fd_, POLLIN, deadline);
    if (w == 0) return kTimeout;
    if (w < 0) return kClosed;
  }
}

RawHttp::Result RawHttp::Line(std::string& line, AbuseClock::time_point deadline) {
  for (;;) {
    const size_t nl = buf_.find("\r\n", pos_);
    if (nl != std::string::npos) {
      line = buf_.substr(pos_, nl - pos_);
      pos_ = nl + 2;
      return kOk;
    }
    if (buf_.size() - pos_ > (1 << 20)) return kMalformed;
    const Result r = Fill(deadline);
    if (r != kOk) return r;
  }
}

RawHttp::Result RawHttp::ReadHead(Head& head, AbuseClock::time_point deadline) {
  head = Head{};
  std::string line;
  Result r = Line(line, deadline);
  if (r != kOk) return r;
  // 1xx interim replies (100 Continue) come before the real one.
  while (line.rfind("HTTP/1.1 1", 0) == 0) {
    while ((r = Line(line, deadline)) == kOk && !line.empty()) {
    }
    if (r != kOk || (r = Line(line, deadline)) != kOk) return r;
  }
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return kMalformed;
  head.status = std::atoi(line.c_str() + 9);
  for (;;) {
    if ((r = Line(line, deadline)) != kOk) return r;
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return kMalformed;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    head.headers[Lower(line.substr(0, colon))] = value;
  }
  const auto te = head.headers.find("transfer-encoding");
  head.chunked = te != head.headers.end() && Lower(te->second) == "chunked";
  const auto cl = head.headers.find("content-length");
  if (cl != head.headers.end()) head.length = std::atoll(cl->second.c_str());
  body_left_ = head.length;
  return kOk;
}

RawHttp::Result RawHttp::ReadPiece(const Head& head, std::string& piece,
                                   AbuseClock::time_point deadline) {
  piece.clear();
  Result r = kOk;
  if (head.chunked) {
    std::string line;
    if ((r = Line(line, deadline)) != kOk) return r;
    char* end = nullptr;
    const long long n = std::strtoll(line.c_str(), &end, 16);
    if (end == line.c_str() || n < 0) return kMalformed;
    if (n == 0) {  // the last chunk: trailer lines up to a blank one
      while ((r = Line(line, deadline)) == kOk && !line.empty()) {
      }
      return r;
    }
    while (buf_.size() - pos_ < static_cast<size_t>(n) + 2) {
      if ((r = Fill(deadline)) != kOk) return r;
    }
    piece = buf_.substr(pos_, static_cast<size_t>(n));
    if (buf_.compare(pos_ + static_cast<size_t>(n), 2, "\r\n") != 0) return kMalformed;
    pos_ += static_cast<size_t>(n) + 2;
    return kOk;
  }
  if (head.length >= 0 && body_left_ == 0) return kOk;
  if (pos_ == buf_.size()) {
    r = Fill(deadline);
    if (r == kClosed && head.length < 0) return kOk;  // the body ran to EOF
    if (r != kOk) return r;
  }
  size_t n = buf_.size() - pos_;
  if (head.length >= 0) n = std::min<size_t>(n, static_cast<size_t>(body_left_));
  piece = buf_.substr(pos_, n);
  pos_ += n;
  if (head.length >= 0) body_left_ -= static_cast<long long>(n);
  return kOk;
}

RawHttp::Result RawHttp::ReadReply(Reply& reply, AbuseClock::time_point deadline) {
  reply = Reply{};
  Result r = ReadHead(reply.head, deadline);
  if (r != kOk) return r;
  for (std::string piece;;) {
    if ((r = ReadPiece(reply.head, piece, deadline)) != kOk) return r;
    if (piece.empty()) return kOk;
    reply.body += piece;
  }
}

bool RawHttp::Readable() const {
  return pos_ < buf_.size() || Wait(fd_, POLLIN, AbuseClock::now()) > 0;
}

bool RawHttp::AwaitClose(AbuseClock::time_point deadline, std::string* first) {
  if (first) *first = buf_.substr(pos_, 64);
  pos_ = buf_.size();
  for (;;) {
    const Result r = Fill(deadline);
    if (r == kClosed) return true;
    if (r == kTimeout) return false;
    if (first && first->size() < 64) *first += buf_.substr(pos_, 64 - first->size());
    pos_ = buf_.size();
  }
}

const char* ToString(RawHttp::Result r) {
  switch (r) {
    case RawHttp::kOk:
      return "ok";
    case RawHttp::kTimeout:
      return "timed out (a hang)";
    case RawHttp::kClosed:
      return "closed by the server";
    case RawHttp::kMalformed:
      return "a malformed reply";
  }
  return "?";
}

}  // namespace qwen3
