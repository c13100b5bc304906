#include "tools/abuse_actions.h"

#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

namespace qwen3 {
namespace {

using json = nlohmann::json;

std::string Short(const std::string& s, size_t n = 200) {
  return s.size() <= n ? s : s.substr(0, n) + "...";
}

std::string Describe(const ChoiceText& c) {
  return "{reasoning " + json(c.reasoning).dump() + ", content " + json(c.content).dump() +
         ", finish " + c.finish + "}";
}

void Sleep(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

// Sends req on the client's connection (a kept-alive one, or a new one) and reads the reply. A
// kept-alive connection the server closed before any reply byte (it may close idle ones) is
// retried once on a new one, as HTTP clients do.
RawHttp::Result Exchange(const AbuseTarget& t, AbuseTally& tally, AbuseClient& c, bool reuse,
                         const std::string& req, RawHttp::Reply& reply) {
  if (!reuse) c.conn.Close();
  for (int attempt = 0;; ++attempt) {
    const bool kept = c.conn.connected();
    if (!kept && !c.conn.Connect(t.port, Deadline(t.op_timeout_s))) return RawHttp::kClosed;
    const auto deadline = Deadline(t.op_timeout_s);
    RawHttp::Result r = c.conn.Send(req, deadline);
    if (r == RawHttp::kOk) r = c.conn.ReadReply(reply, deadline);
    if (r == RawHttp::kOk) {
      tally.Seen(reply.head.status);
      const auto conn = reply.head.headers.find("connection");
      if (conn != reply.head.headers.end() && conn->second == "close") c.conn.Close();
      return r;
    }
    const bool nothing_back = c.conn.received() == 0;
    c.conn.Close();
    if (!(kept && attempt == 0 && r == RawHttp::kClosed && nothing_back)) return r;
    tally.Outcome("kept-alive connection closed by the server: retried");
  }
}

// Checks a reply to a template: its text, or a clean 503.
void CheckTemplateReply(const AbuseTemplate& tp, bool stream, const RawHttp::Reply& reply,
                        AbuseTally& tally, const std::string& what) {
  if (reply.head.status == 503) {
    if (!IsApiError(reply.body))
      return tally.Fail(what + ": a 503 without an error body: " + Short(reply.body));
    return tally.Outcome("503");
  }
  if (reply.head.status != 200) {
    return tally.Fail(what + ": HTTP " + std::to_string(reply.head.status) + ": " +
                      Short(reply.body));
  }
  std::vector<ChoiceText> got;
  std::string why;
  if (!ParseCompletion(tp.chat, stream, reply.body, got, why)) {
    return tally.Fail(what + ": " + why + ": " + Short(reply.body, 400));
  }
  if (got != tp.reference) {
    std::string d = what + ": the text differs from the idle server's:";
    for (size_t i = 0; i < std::max(got.size(), tp.reference.size()); ++i) {
      d += " choice " + std::to_string(i) + " got " + (i < got.size() ? Describe(got[i]) : "none") +
           " expected " + (i < tp.reference.size() ? Describe(tp.reference[i]) : "none");
    }
    return tally.Fail(d);
  }
  tally.Outcome("ok");
}

// A template's request; a 503 (queue full) is retried twice after a pause, as clients do.
void WellFormed(const AbuseTarget& t, AbuseTally& tally, AbuseClient& c, std::mt19937_64& rng) {
  const AbuseTemplate& tp = t.templates[rng() % t.templates.size()];
  const bool stream = rng() % 2 == 0;
  const std::string body = stream ? Streamed(tp.body, rng() % 2 == 0) : tp.body;
  const std::string what =
      std::string(stream ? "streamed " : "") + tp.Path() + " " + Short(tp.body, 80);
  for (int attempt = 0;; ++attempt) {
    RawHttp::Reply reply;
    const RawHttp::Result r =
        Exchange(t, tally, c, rng() % 4 != 0, PostRequest(tp.Path(), body), reply);
    if (r != RawHttp::kOk) return tally.Fail(what + ": " + ToString(r));
    if (reply.head.status == 503 && attempt < 2 && IsApiError(reply.body)) {
      tally.Outcome("503, retried");
      Sleep(0.05 + static_cast<double>(rng() % 150) / 1000);
      continue;
    }
    return CheckTemplateReply(tp, stream, reply, tally, what);
  }
}

// Two requests in one write on one connection: two replies, in order.
void Pipelined(const AbuseTarget& t, AbuseTally& tally, AbuseClient& c, std::mt19937_64& rng) {
  const AbuseTemplate& a = t.templates[rng() % t.templates.size()];
  const AbuseTemplate& b = t.templates[rng() % t.templates.size()];
  c.conn.Close();
  if (!c.conn.Connect(t.port, Deadline(t.op_timeout_s)))
    return tally.Fail("pipelined: cannot connect");
  const auto deadline = Deadline(t.op_timeout_s);
  if (c.conn.Send(PostRequest(a.Path(), a.body) + PostRequest(b.Path(), b.body), deadline) !=
      RawHttp::kOk) {
    return tally.Fail("pipelined: cannot send");
  }
  for (const AbuseTemplate* tp : {&a, &b}) {
    RawHttp::Reply reply;
    const RawHttp::Result r = c.conn.ReadReply(reply, deadline);
    if (r != RawHttp::kOk) {
      c.conn.Close();
      return tally.Fail(std::string("pipelined: ") + ToString(r));
    }
    tally.Seen(reply.head.status);
    CheckTemplateReply(*tp, false, reply, tally, "pipelined " + tp->Path());
  }
}

void DisconnectInPrefill(const AbuseTarget& t, AbuseTally& tally, std::mt19937_64& rng) {
  const AbuseTemplate& tp = t.templates[t.long_prompt];
  RawHttp conn;
  if (!conn.Connect(t.port, Deadline(t.op_timeout_s)))
    return tally.Fail("disconnect: cannot connect");
  if (conn.Send(PostRequest(tp.Path(), tp.body), Deadline(t.op_timeout_s)) != RawHttp::kOk) {
    return tally.Fail("disconnect in prefill: cannot send");
  }
  Sleep(static_cast<double>(rng() % 150) / 1000);
  tally.Unseen();
  tally.Outcome("disconnected in prefill");
}

void DisconnectInStream(const AbuseTarget& t, AbuseTally& tally, std::mt19937_64& rng) {
  const AbuseTemplate& tp = t.templates[t.long_output];
  RawHttp conn;
  if (!conn.Connect(t.port, Deadline(t.op_timeout_s)))
    return tally.Fail("disconnect: cannot connect");
  const auto deadline = Deadline(t.op_timeout_s);
  RawHttp::Head head;
  RawHttp::Result r = conn.Send(PostRequest(tp.Path(), Streamed(tp.body, false)), deadline);
  if (r == RawHttp::kOk) r = conn.ReadHead(head, deadline);
  if (r != RawHttp::kOk) return tally.Fail(std::string("disconnect in stream: ") + ToString(r));
  tally.Seen(head.status);
  if (head.status == 503) return tally.Outcome("503");
  if (head.status != 200)
    return tally.Fail("disconnect in stream: HTTP " + std::to_string(head.status));
  const size_t pieces = 1 + rng() % 4;
  std::string piece;
  for (size_t i = 0; i < pieces; ++i) {
    if ((r = conn.ReadPiece(head, piece, deadline)) != RawHttp::kOk) {
      return tally.Fail(std::string("disconnect in stream: ") + ToString(r));
    }
    if (piece.empty()) break;
  }
  tally.Outcome("disconnected in stream");
}

struct HostileBody {
  std::string path, body;
  int status;
};

std::vector<HostileBody> BadRequests(const AbuseTarget& t) {
  const std::string ok_msg = R"([{"role": "user", "content": "hi"}])";
  const auto chat = [&](const std::string& extra) {
    return HostileBody{"/v1/chat/completions", R"({"messages": )" + ok_msg + ", " + extra + "}",
                       400};
  };
  std::string many_messages = "[";
  for (int i = 0; i < 100; ++i)
    many_messages += std::string(i ? "," : "") + R"({"role":"user","content":"x"})";
  many_messages += "]";
  std::string long_ids = "[";
  for (size_t i = 0; i < t.max_context + 10; ++i) long_ids += std::string(i ? "," : "") + "7";
  long_ids += "]";
  std::string stops = "[";
  for (int i = 0; i < 40; ++i)
    stops += std::string(i ? "," : "") + "\"s" + std::to_string(i) + "\"";
  stops += "]";
  std::string many_prompts = "[";
  for (int i = 0; i < 100; ++i) many_prompts += std::string(i ? "," : "") + "[1, 2]";
  many_prompts += "]";
  const std::string deep =
      std::string(30000, '[') + std::string(30000, ']');  // within the body limit
  return {
      {"/v1/chat/completions", "", 400},
      {"/v1/chat/completions", "{", 400},
      {"/v1/chat/completions", "[1, 2]", 400},
      {"/v1/chat/completions", R"({"messages": 5})", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 7}]})", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400},
      {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}",
       400},
      {"/v1/chat/completions", R"({"messages": )" + many_messages + "}", 400},
      {"/v1/chat/completions", R"({"messages": )" + deep + "}", 400},
      {"/v1/chat/completions", R"({"messages": )" + ok_msg + R"(, "model": "no-such-model"})", 404},
      chat(R"("max_tokens": "ten")"),
      chat(R"("max_tokens": 1e30)"),
      chat(R"("max_tokens": -1)"),
      chat(R"("temperature": "hot")"),
      chat(R"("n": 0)"),
      chat(R"("n": 1000)"),
      chat(R"("stop": [17])"),
      chat(R"("stop": )" + stops),
      chat(R"("stop": ")" + std::string(1000, 'x') + "\""),
      chat(R"("logprobs": true, "top_logprobs": 50)"),
      chat(R"("logit_bias": {"abc": 1})"),
      chat(R"("stream": "yes")"),
      chat(R"("tools": 3)"),
      {"/v1/completions", R"({"prompt": )" + long_ids + "}", 400},
      {"/v1/completions", R"({"prompt": [[1, 2], [3, "x"]]})", 400},
      {"/v1/completions", R"({"prompt": )" + many_prompts + "}", 400},
      {"/v1/completions", R"({"prompt": 12.5})", 400},
      {"/v1/completions", R"({"prompt": "hi", "echo": true})", 400},
      {"/tokenize", R"({"prompt": 5})", 400},
      {"/detokenize", R"({"tokens": [-1]})", 400},
      {"/v1/no-such-route", "{}", 404},
  };
}

void Malformed(const AbuseTarget& t, AbuseTally& tally, AbuseClient& c, std::mt19937_64& rng) {
  static const std::vector<HostileBody>* bad = new std::vector<HostileBody>(BadRequests(t));
  const HostileBody& b = (*bad)[rng() % bad->size()];
  RawHttp::Reply reply;
  const std::string what = "bad request " + b.path + " " + Short(b.body, 80);
  const RawHttp::Result r =
      Exchange(t, tally, c, rng() % 2 == 0, PostRequest(b.path, b.body), reply);
  if (r != RawHttp::kOk) return tally.Fail(what + ": " + ToString(r));
  if (reply.head.status != b.status || !IsApiError(reply.body)) {
    return tally.Fail(what + ": expected " + std::to_string(b.status) +
                      " and an error body, got HTTP " + std::to_string(reply.head.status) + " " +
                      Short(reply.body));
  }
  tally.Outcome(std::to_string(b.status));
}

// A raw exchange on a new connection: sends `bytes` (as far as the server takes them) and
// expects a reply of `status` with an error body.
void ExpectStatus(const AbuseTarget& t, AbuseTally& tally, const std::string& what,
                  const std::string& bytes, int status) {
  RawHttp conn;
  if (!conn.Connect(t.port, Deadline(t.op_timeout_s))) return tally.Fail(what + ": cannot connect");
  const auto deadline = Deadline(t.op_timeout_s);
  const RawHttp::Result s = conn.Send(bytes, deadline);
  if (s == RawHttp::kTimeout) return tally.Fail(what + ": sending timed out (a hang)");
  RawHttp::Reply reply;
  const RawHttp::Result r = conn.ReadReply(reply, deadline);
  if (r != RawHttp::kOk) return tally.Fail(what + ": " + ToString(r));
  tally.Seen(reply.head.status);
  if (reply.head.status != status || !IsApiError(reply.body)) {
    return tally.Fail(what + ": expected " + std::to_string(status) + ", got HTTP " +
                      std::to_string(reply.head.status) + " " + Short(reply.body));
  }
  tally.Outcome(std::to_string(status));
}

void Oversized(const AbuseTarget& t, AbuseTally& tally, std::mt19937_64& rng) {
  const size_t max = t.http.max_body_bytes;
  if (rng() % 2 == 0) {
    // A Content-Length past the limit: refused before the body is sent.
    const size_t n = max + 1 + rng() % 100000;
    return ExpectStatus(t, tally, "a body of " + std::to_string(n) + " bytes",
                        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                            std::to_string(n) + "\r\n\r\n",
                        413);
  }
  // A chunked body that runs past it.
  std::string bytes =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk = "2000\r\n" + std::string(0x2000, 'a') + "\r\n";
  while (bytes.size() < max + (32 << 10)) bytes += chunk;
  ExpectStatus(t, tally, "a chunked body past the limit", bytes, 413);
}

void HeaderFlood(const AbuseTarget& t, AbuseTally& tally, std::mt19937_64& rng) {
  const size_t max = t.http.max_header_bytes;
  switch (rng() % 4) {
    case 0: {  // many headers
      std::string bytes = "GET /health HTTP/1.1\r\nHost: x\r\n";
      for (int i = 0; bytes.size() < max + (8 << 10); ++i) {
        bytes += "X-Flood-" + std::to_string(i) + ": " + std::string(40, 'f') + "\r\n";
      }
      return ExpectStatus(t, tally, "a header flood", bytes, 431);
    }
    case 1:  // one header line past the library's 8192
      return ExpectStatus(t, tally, "a 10000-byte header line",
                          "GET /health HTTP/1.1\r\nX-Long: " + std::string(10000, 'l') + "\r\n\r\n",
                          431);
    case 2:  // a head without any line end
      return ExpectStatus(t, tally, "a head without line ends",
                          "GET /" + std::string(max + 4096, 'a'), 431);
    default:  // a request line past the library's 8192
      return ExpectStatus(t, tally, "a 9000-byte URI",
                          "GET /" + std::string(9000, 'u') + " HTTP/1.1\r\n\r\n", 414);
  }
}

void BadFraming(const AbuseTarget& t, AbuseTally& tally, AbuseClient& c, std::mt19937_64& rng) {
  const std::string body = R"({"prompt": "hi", "max_tokens": 2})";
  switch (rng() % 6) {
    case 0:
      return ExpectStatus(t, tally, "a gzip body",
                          PostRequest("/v1/completions", body, "Content-Encoding: gzip\r\n"), 415);
    case 1:
      return ExpectStatus(t, tally, "Content-Length and Transfer-Encoding",
                          PostRequest("/v1/completions", body, "Transfer-Encoding: chunked\r\n"),
                          400);
    case 2:
      return ExpectStatus(t, tally, "a Content-Length of 12abc",
                          "POST /v1/completions HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n" + body,
                          400);
    case 3:
      return ExpectStatus(
          t, tally, "Transfer-Encoding gzip",
          "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400);
    case 4:  // no length: no body (the library alone would wait for EOF)
      return ExpectStatus(t, tally, "a POST without a length",
                          "POST /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    default: {  // a GET with a body it ignores, then another request on the connection
      RawHttp::Reply reply;
      const std::string get = "GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
      for (int i = 0; i < 2; ++i) {
        const RawHttp::Result r = Exchange(t, tally, c, i == 1, get, reply);
        if (r != RawHttp::kOk || reply.head.status != 200) {
          return tally.Fail(std::string("GET with a body: ") + ToString(r) + " HTTP " +
                            std::to_string(reply.head.status));
        }
      }
      return tally.Outcome("200");
    }
  }
}

// Sends a request a byte at a time, slower than --read-timeout allows: 408.
void SlowSender(const AbuseTarget& t, AbuseTally& tally, std::mt19937_64& rng) {
  const bool in_body = rng() % 2 == 0;
  const double give_up_s = t.http.read_timeout_s + 10;
  const auto give_up = Deadline(give_up_s);
  const double step = std::max(0.02, t.http.read_timeout_s / 10);
  // JSON padded with spaces to more bytes than fit before give_up: the server's deadline starts
  // when it reads the first byte, so a connection that waited long for an HTTP thread would
  // otherwise find a short body whole in its socket buffer and rightly answer 200.
  std::string body = R"({"prompt": "hi", "max_tokens": 2})";
  body.resize(body.size() + static_cast<size_t>(give_up_s / step) + 16, ' ');
  const std::string head =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  const std::string bytes = in_body ? head + body : head;
  const std::string what =
      in_body ? "a body sent a byte at a time" : "a head sent a byte at a time";
  RawHttp conn;
  if (!conn.Connect(t.port, Deadline(t.op_timeout_s))) return tally.Fail(what + ": cannot connect");
  const size_t fast = in_body ? head.size() : 10;  // sent at once
  if (conn.Send(bytes.substr(0, fast), Deadline(t.op_timeout_s)) != RawHttp::kOk)
    return tally.Fail(what + ": send");
  // Until the server answers (then stop sending: bytes it will not read make it reset).
  for (size_t i = fast; i < bytes.size() && AbuseClock::now() < give_up && !conn.Readable(); ++i) {
    if (conn.Send(bytes.substr(i, 1), Deadline(t.op_timeout_s)) != RawHttp::kOk) break;
    Sleep(step);
  }
  RawHttp::Reply reply;
  const RawHttp::Result r = conn.ReadReply(reply, Deadline(t.op_timeout_s));
  if (r != RawHttp::kOk) return tally.Fail(what + ": " + ToString(r));
  tally.Seen(reply.head.status);
  if (reply.head.status != 408 || !IsApiError(reply.body)) {
    return tally.Fail(what + ": expected 408, got HTTP " + std::to_string(reply.head.status) + " " +
                      Short(reply.body));
  }
  tally.Outcome("408");
}

// Asks for a long stream with a tiny receive buffer and reads nothing: the server must drop
// the connection (--write-timeout) rather than wait for it.
void SlowReader(const AbuseTarget& t, AbuseTally& tally) {
  const AbuseTemplate& tp = t.templates[t.long_output];
  RawHttp conn;
  if (!conn.Connect(t.port, Deadline(t.op_timeout_s), 1024))
    return tally.Fail("slow reader: cannot connect");
  if (conn.Send(PostRequest(tp.Path(), Streamed(tp.body, false)), Deadline(t.op_timeout_s)) !=
      RawHttp::kOk) {
    return tally.Fail("slow reader: cannot send");
  }
  Sleep(t.http.write_timeout_s + 1);
  std::string first;
  if (!conn.AwaitClose(Deadline(t.op_timeout_s), &first)) {
    return tally.Fail("slow reader: the connection was not closed within " +
                      std::to_string(t.op_timeout_s) + " s");
  }
  const int status = first.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(first.c_str() + 9) : 0;
  if (status == 0) return tally.Fail("slow reader: no status line: " + Short(first));
  tally.Seen(status);
  tally.Outcome(status == 200 ? "slow reader dropped" : std::to_string(status));
}

void Info(const AbuseTarget& t, AbuseTally& tally, AbuseClient& c, std::mt19937_64& rng) {
  static const char* kPaths[] = {"/health", "/v1/models", "/metrics"};
  const std::string path = kPaths[rng() % 3];
  RawHttp::Reply reply;
  const RawHttp::Result r =
      Exchange(t, tally, c, true, "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n", reply);
  if (r != RawHttp::kOk || reply.head.status != 200) {
    return tally.Fail("GET " + path + ": " + ToString(r) + " HTTP " +
                      std::to_string(reply.head.status));
  }
  tally.Outcome("200");
}

}  // namespace

bool ParseCompletion(bool chat, bool stream, const std::string& body, std::vector<ChoiceText>& out,
                     std::string& why) {
  out.clear();
  const auto text = [](const json& o, const char* key, std::string& to) {
    const auto it = o.find(key);
    if (it != o.end() && it->is_string()) to += it->get<std::string>();
  };
  try {
    if (!stream) {
      const json j = json::parse(body);
      const json& choices = j.at("choices");
      out.resize(choices.size());
      for (const json& c : choices) {
        const size_t i = c.at("index").get<size_t>();
        if (i >= out.size()) return why = "choice index " + std::to_string(i), false;
        if (chat) {
          text(c.at("message"), "reasoning_content", out[i].reasoning);
          text(c.at("message"), "content", out[i].content);
        } else {
          out[i].content = c.at("text").get<std::string>();
        }
        out[i].finish = c.at("finish_reason").get<std::string>();
      }
      if (!j.contains("usage")) return why = "no usage", false;
      return true;
    }
    bool done = false;
    for (size_t at = 0; at < body.size();) {
      const size_t end = body.find("\n\n", at);
      if (end == std::string::npos) return why = "an SSE event without its blank line", false;
      const std::string event = body.substr(at, end - at);
      at = end + 2;
      if (done) return why = "events after [DONE]", false;
      if (event.rfind("data: ", 0) != 0) return why = "an SSE line not \"data: \"", false;
      if (event == "data: [DONE]") {
        done = true;
        continue;
      }
      const json j = json::parse(event.substr(6));
      if (j.contains("error")) return why = "an error event", false;
      for (const json& c : j.at("choices")) {
        const size_t i = c.at("index").get<size_t>();
        if (i > 64) return why = "choice index " + std::to_string(i), false;
        if (i >= out.size()) out.resize(i + 1);
        if (chat) {
          text(c.at("delta"), "reasoning_content", out[i].reasoning);
          text(c.at("delta"), "content", out[i].content);
        } else {
          out[i].content += c.at("text").get<std::string>();
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) {
          if (!out[i].finish.empty()) return why = "two finish reasons", false;
          out[i].finish = c["finish_reason"].get<std::string>();
        }
      }
    }
    if (!done) return why = "no [DONE]", false;
    for (const ChoiceText& c : out) {
      if (c.finish.empty()) return why = "a choice without a finish_reason", false;
    }
    return true;
  } catch (const std::exception& e) {
    why = std::string("not the JSON of a completion: ") + e.what();
    return false;
  }
}

bool IsApiError(const std::string& body) {
  try {
    const json j = json::parse(body);
    return j.at("error").at("message").is_string() &&
           !j["error"]["message"].get<std::string>().empty();
  } catch (const std::exception&) {
    return false;
  }
}

void AbuseTally::Outcome(const std::string& kind) {
  std::lock_guard lock(mu_);
  ++outcomes_[kind];
}
void AbuseTally::Seen(int status) {
  std::lock_guard lock(mu_);
  ++seen_[status];
}
void AbuseTally::Unseen() {
  std::lock_guard lock(mu_);
  ++unseen_;
}
void AbuseTally::Fail(const std::string& what) {
  std::lock_guard lock(mu_);
  ++lost_;
  if (failures_.size() < 50) failures_.push_back(what);
}
std::map<std::string, size_t> AbuseTally::outcomes() const {
  std::lock_guard lock(mu_);
  return outcomes_;
}
std::map<int, uint64_t> AbuseTally::seen() const {
  std::lock_guard lock(mu_);
  return seen_;
}
uint64_t AbuseTally::unseen() const {
  std::lock_guard lock(mu_);
  return unseen_;
}
std::vector<std::string> AbuseTally::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}
size_t AbuseTally::lost() const {
  std::lock_guard lock(mu_);
  return lost_;
}

const char* ToString(AbuseAction a) {
  switch (a) {
    case AbuseAction::kWellFormed:
      return "well-formed";
    case AbuseAction::kPipelined:
      return "pipelined";
    case AbuseAction::kDisconnectInPrefill:
      return "disconnect in prefill";
    case AbuseAction::kDisconnectInStream:
      return "disconnect in stream";
    case AbuseAction::kMalformed:
      return "malformed";
    case AbuseAction::kOversized:
      return "oversized";
    case AbuseAction::kHeaderFlood:
      return "header flood";
    case AbuseAction::kBadFraming:
      return "bad framing";
    case AbuseAction::kSlowSender:
      return "slow sender";
    case AbuseAction::kSlowReader:
      return "slow reader";
    case AbuseAction::kInfo:
      return "info";
    case AbuseAction::kSentinel:
      break;
  }
  return "?";
}

AbuseAction PickAction(std::mt19937_64& rng) {
  // Weights: mostly well-formed traffic, every hostile kind often enough to meet the others.
  static constexpr int kWeights[] = {50, 3, 5, 5, 12, 3, 3, 4, 2, 2, 4};
  static_assert(std::size(kWeights) == static_cast<size_t>(AbuseAction::kSentinel));
  int total = 0;
  for (int w : kWeights) total += w;
  int x = static_cast<int>(rng() % static_cast<uint64_t>(total));
  for (size_t i = 0;; ++i) {
    if (x < kWeights[i]) return static_cast<AbuseAction>(i);
    x -= kWeights[i];
  }
}

void RunAction(const AbuseTarget& t, AbuseTally& tally, AbuseClient& c, AbuseAction a,
               std::mt19937_64& rng) {
  switch (a) {
    case AbuseAction::kWellFormed:
      return WellFormed(t, tally, c, rng);
    case AbuseAction::kPipelined:
      return Pipelined(t, tally, c, rng);
    case AbuseAction::kDisconnectInPrefill:
      return DisconnectInPrefill(t, tally, rng);
    case AbuseAction::kDisconnectInStream:
      return DisconnectInStream(t, tally, rng);
    case AbuseAction::kMalformed:
      return Malformed(t, tally, c, rng);
    case AbuseAction::kOversized:
      return Oversized(t, tally, rng);
    case AbuseAction::kHeaderFlood:
      return HeaderFlood(t, tally, rng);
    case AbuseAction::kBadFraming:
      return BadFraming(t, tally, c, rng);
    case AbuseAction::kSlowSender:
      return SlowSender(t, tally, rng);
    case AbuseAction::kSlowReader:
      return SlowReader(t, tally);
    case AbuseAction::kInfo:
      return Info(t, tally, c, rng);
    case AbuseAction::kSentinel:
      break;
  }
}

std::string PostRequest(const std::string& path, const std::string& body,
                        const std::string& extra) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string Streamed(const std::string& body, bool include_usage) {
  json j = json::parse(body);
  j["stream"] = true;
  if (include_usage) j["stream_options"] = {{"include_usage", true}};
  return j.dump();
}

}  // namespace qwen3
