// A minimal HTTP/1.1 client over a raw loopback socket, for the abuse driver's clients: bytes
// go out exactly as given (malformed heads, floods, lying lengths, a byte at a time), and every
// operation takes a deadline, so a server that never answers is a timeout, never a hang.
//
//   RawHttp c;
//   if (!c.Connect(port, Deadline(5))) ...;
//   c.Send("POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", Deadline(5));
//   RawHttp::Reply r;
//   if (c.ReadReply(r, Deadline(60)) == RawHttp::kOk) ... r.status, r.body
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace qwen3 {

using AbuseClock = std::chrono::steady_clock;
inline AbuseClock::time_point Deadline(double seconds) {
  return AbuseClock::now() +
         std::chrono::duration_cast<AbuseClock::duration>(std::chrono::duration<double>(seconds));
}

class RawHttp {
 public:
  enum Result { kOk, kTimeout, kClosed, kMalformed };
  struct Head {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    bool chunked = false;
    long long length = -1;  // Content-Length, -1 if none
  };
  struct Reply {
    Head head;
    std::string body;  // de-chunked
  };

  RawHttp() = default;
  ~RawHttp() { Close(); }
  RawHttp(const RawHttp&) = delete;
  RawHttp& operator=(const RawHttp&) = delete;

  // recv_buffer > 0 shrinks the socket's receive buffer (a client that reads slowly).
  bool Connect(int port, AbuseClock::time_point deadline, int recv_buffer = 0);
  bool connected() const { return fd_ >= 0; }
  void Close();
  Result Send(std::string_view bytes, AbuseClock::time_point deadline);
  // A reply's status line and headers.
  Result ReadHead(Head& head, AbuseClock::time_point deadline);
  // The next piece of a chunked body (empty: the last chunk was read), or of the body as it
  // arrives otherwise (empty: the body is complete).
  Result ReadPiece(const Head& head, std::string& piece, AbuseClock::time_point deadline);
  Result ReadReply(Reply& r, AbuseClock::time_point deadline);
  // Whether the server closed the connection (EOF or reset) by the deadline, reading and
  // dropping whatever arrives first (its first bytes kept in `first`).
  bool AwaitClose(AbuseClock::time_point deadline, std::string* first = nullptr);
  // Whether reply bytes are there to read.
  bool Readable() const;
  // Bytes received since the last Send.
  size_t received() const { return received_; }

 private:
  Result Fill(AbuseClock::time_point deadline);
  Result Line(std::string& line, AbuseClock::time_point deadline);

  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
  long long body_left_ = 0;  // Content-Length bodies: bytes not yet read
  size_t received_ = 0;
};

const char* ToString(RawHttp::Result r);

}  // namespace qwen3
