// The clients of the abuse driver (tools/serve_abuse.h). An action is one request, or one
// hostile connection, against the server on loopback, checked against what it must get: a
// well-formed request its idle-server text (or a clean 503), a hostile one its status and an
// OpenAI error body, and every client operation its deadline. Results go to an AbuseTally.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "serve/http_guard.h"
#include "tools/raw_http.h"

namespace qwen3 {

// One choice of a completion as a client sees it (a JSON body, or an SSE stream put together).
struct ChoiceText {
  std::string reasoning, content, finish;
  bool operator==(const ChoiceText&) const = default;
};
// A 200 reply's choices; false (and why) if it is not a complete, well-formed reply.
bool ParseCompletion(bool chat, bool stream, const std::string& body, std::vector<ChoiceText>& out,
                     std::string& why);
// Whether body is OpenAI's {"error": {"message": "...", ...}}.
bool IsApiError(const std::string& body);

// A well-formed request whose reply on the idle server is known.
struct AbuseTemplate {
  bool chat = true;
  std::string body;                   // JSON, not streamed
  std::vector<ChoiceText> reference;  // its choices on the idle server
  std::string Path() const { return chat ? "/v1/chat/completions" : "/v1/completions"; }
};

// What the clients saw; thread-safe.
class AbuseTally {
 public:
  void Outcome(const std::string& kind);
  void Seen(int status);  // a reply status a client read
  void Unseen();          // a request the server surely got whose reply no client read
  void Fail(const std::string& what);
  std::map<std::string, size_t> outcomes() const;
  std::map<int, uint64_t> seen() const;
  uint64_t unseen() const;
  std::vector<std::string> failures() const;
  size_t lost() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, size_t> outcomes_;
  std::map<int, uint64_t> seen_;
  uint64_t unseen_ = 0;
  std::vector<std::string> failures_;  // the first 50
  size_t lost_ = 0;
};

struct AbuseTarget {
  int port = 0;
  double op_timeout_s = 120;
  HttpLimits http;
  size_t max_context = 0;  // prompt + max_tokens
  std::vector<AbuseTemplate> templates;
  size_t long_prompt = 0;  // a template with a long prompt (disconnects mid-prefill)
  size_t long_output = 0;  // a chat template with a long output (mid-stream, drain)
};

enum class AbuseAction : uint8_t {
  kWellFormed,
  kPipelined,
  kDisconnectInPrefill,
  kDisconnectInStream,
  kMalformed,
  kOversized,
  kHeaderFlood,
  kBadFraming,
  kSlowSender,
  kSlowReader,
  kInfo,
  kSentinel
};
const char* ToString(AbuseAction a);
AbuseAction PickAction(std::mt19937_64& rng);

// A client thread: its kept-alive connection.
struct AbuseClient {
  RawHttp conn;
};

void RunAction(const AbuseTarget& t, AbuseTally& tally, AbuseClient& client, AbuseAction a,
               std::mt19937_64& rng);

// A POST request's bytes.
std::string PostRequest(const std::string& path, const std::string& body,
                        const std::string& extra_headers = "");
// The template's body with "stream": true (and include_usage).
std::string Streamed(const std::string& body, bool include_usage);

}  // namespace qwen3
