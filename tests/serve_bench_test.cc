// qwen3-serve-bench against a stand-in server that closes each keep-alive connection when its
// second request arrives, without answering (an idle connection closed as a request went out,
// which llama-server does): every request must still complete, retried once on a fresh
// connection and counted as such. The load generator fails only where the server did.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli_util.h"

namespace qwen3 {
namespace {

using json = nlohmann::json;
using namespace testing_cli;

// Reads one request (headers, then Content-Length bytes of body); false at EOF.
bool ReadRequest(int fd, std::string& buffer, std::string& head) {
  for (;;) {
    const size_t end = buffer.find("\r\n\r\n");
    if (end != std::string::npos) {
      head = buffer.substr(0, end);
      size_t length = 0;
      const size_t cl = head.find("Content-Length: ");
      if (cl != std::string::npos) length = std::stoul(head.substr(cl + 16));
      if (buffer.size() >= end + 4 + length) {
        buffer.erase(0, end + 4 + length);
        return true;
      }
    }
    char chunk[4096];
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

void Send(int fd, const std::string& type, const std::string& body) {
  const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: " + type +
                            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                            body;
  ASSERT_EQ(send(fd, reply.data(), reply.size(), MSG_NOSIGNAL), static_cast<ssize_t>(reply.size()));
}

// Answers the first request of each connection (GET /v1/models or a streamed completion of two
// text chunks) and closes the connection when a second one arrives on it.
class OneRequestPerConnectionServer {
 public:
  OneRequestPerConnectionServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~OneRequestPerConnectionServer() {
    stop_ = true;
    accept_.join();
    for (std::thread& t : connections_) t.join();
    close(listen_fd_);
  }
  int port() const { return port_; }
  int dropped() const { return dropped_; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd >= 0) connections_.emplace_back([this, fd] { Serve(fd); });
    }
  }
  void Serve(int fd) {
    std::string buffer, head;
    if (ReadRequest(fd, buffer, head)) {
      if (head.rfind("GET /v1/models", 0) == 0) {
        Send(fd, "application/json", R"({"object":"list","data":[{"id":"m","object":"model"}]})");
      } else {
        std::string body;
        for (const char* text : {"a", "b"}) {
          body += "data: " + json{{"choices", {{{"index", 0}, {"text", text}}}}}.dump() + "\n\n";
        }
        Send(fd, "text/event-stream", body + "data: [DONE]\n\n");
      }
      if (ReadRequest(fd, buffer, head)) ++dropped_;  // the second: closed unanswered
    }
    close(fd);
  }

  int listen_fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> dropped_{0};
  std::thread accept_;
  std::vector<std::thread> connections_;  // only the accept thread adds, before the join
};

TEST(ServeBenchTest, AReusedConnectionClosedByTheServerIsRetriedNotCountedAsAFailure) {
  OneRequestPerConnectionServer server;
  const std::string json_path = Dir().File("serve_bench.json");
  const RunResult r = RunTool(
      "qwen3-serve-bench", "--port " + std::to_string(server.port()) +
                               " --model m --concurrency 1 --num-prompts 5 --input-len 8 "
                               "--output-len 2 --timeout 20 --json '" + json_path + "'");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json j = json::parse(ReadFile(json_path));
  const json& run = j.at("runs").at(0);
  EXPECT_EQ(run.at("completed"), 5) << run.dump();
  EXPECT_EQ(run.at("failed"), 0) << run.dump();
  EXPECT_EQ(run.at("retried"), 4) << run.dump();  // every request after the first
  EXPECT_GE(server.dropped(), 4);
  EXPECT_NE(r.err.find("4 request(s) sent again on a fresh connection"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qwen3
