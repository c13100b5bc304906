// The OpenAI HTTP API without the HTTP: request bodies of /v1/chat/completions and
// /v1/completions parsed and validated into engine requests (every known field's type and range
// checked, unknown fields ignored; a bad one is an ApiError naming the field, the value and what
// was expected), and the replies built from the engine's streams: chat.completion(.chunk) and
// text_completion objects, SSE events, usage, logprobs, and Qwen3's reasoning and tool calls
// (generate/output_parser.h) split into reasoning_content and tool_calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "serve/request.h"

namespace qwen3 {

class Engine;
class Tokenizer;

// An error reply: HTTP status + OpenAI's {"error": {message, type, param, code}}.
struct ApiError {
  int status = 400;
  std::string message, type = "invalid_request_error", param, code;
  std::string Body() const;  // the JSON text
};

class ApiException : public std::exception {
 public:
  explicit ApiException(ApiError e) : error_(std::move(e)) {}
  const ApiError& error() const { return error_; }
  const char* what() const noexcept override { return error_.message.c_str(); }

 private:
  ApiError error_;
};
// 400 invalid_request_error naming param.
[[noreturn]] void BadRequest(const std::string& param, const std::string& message);

// What one request may ask for (`qwen3 serve` flags). Past a limit is a 400 naming the field,
// the value and the flag.
struct ApiLimits {
  size_t max_messages = 2048;    // chat messages (OpenAI's own limit)
  size_t max_prompt_tokens = 0;  // tokens of one prompt; 0: the context length less one
  size_t max_tokens = 0;         // max_tokens a request may ask for; 0: the context length
  size_t max_n = 64;             // choices per prompt
  size_t max_top_logprobs = 20;  // at most the engine's 20
  size_t max_stops = 16;         // stop strings
  size_t max_stop_bytes = 256;   // bytes of one stop string (each is searched at every token)
};
// One line naming the flag and its value when a limit is out of range; empty when all are fine.
std::string CheckApiLimits(const ApiLimits& l);

struct ApiContext {
  std::string model_name;  // --served-model-name
  const Tokenizer* tokenizer = nullptr;
  std::vector<int32_t> eos_ids;
  size_t max_context = 0;  // tokens a request may span (prompt + max_tokens)
  size_t max_choices = 0;  // prompts x n one request may queue (--max-queue); 0: any
  ApiLimits limits;
};

enum class ApiKind { kChat, kCompletion };

struct ParsedRequest {
  ApiKind kind = ApiKind::kChat;
  std::vector<std::vector<int32_t>> prompts;  // chat: one; completions: one per prompt
  GenerationRequest base;                     // everything but the prompt and the stream id
  size_t n = 1;
  bool stream = false, include_usage = false;
  bool logprobs = false;                      // chat: logprobs; completions: logprobs given
  bool thinking = false;                      // chat: the rendered prompt leaves a think block open
  bool tools = false;                         // chat: tools rendered and tool calls parsed
};

// Throws ApiException (400, or 404 for an unknown model).
ParsedRequest ParseRequest(ApiKind kind, const std::string& body, const ApiContext& ctx);
// The JSON body or a 400 naming what is wrong with it.
nlohmann::json ParseJsonBody(const std::string& body);
// POST /tokenize and /detokenize bodies -> reply JSON.
nlohmann::json Tokenize(const std::string& body, const ApiContext& ctx);
nlohmann::json Detokenize(const std::string& body, const ApiContext& ctx);
// JSON text with invalid UTF-8 replaced (token pieces may be partial characters).
std::string DumpJson(const nlohmann::json& j);

// The reply to one request: its choices' streams polled and turned into SSE events (stream) or
// one JSON body. One per request, used by one HTTP thread.
class ApiResponse {
 public:
  ApiResponse(const ParsedRequest& req, std::vector<std::shared_ptr<RequestStream>> streams,
              const ApiContext& ctx);
  ~ApiResponse();
  // Waits up to timeout for output; appends the SSE text to send (stream) to out. True once
  // every choice has finished and (stream) the last event is in out.
  bool Poll(std::string& out, std::chrono::milliseconds timeout);
  // The non-stream body, after Poll returned true.
  std::string Body() const;
  void Cancel();

 private:
  struct Choice;
  nlohmann::json Usage() const;
  std::optional<ApiError> EngineError() const;  // a choice the engine failed (500)
  nlohmann::json Envelope() const;
  void OnEvent(size_t i, StreamEvent& e, std::string& out);

  ParsedRequest req_;
  ApiContext ctx_;
  std::vector<std::shared_ptr<RequestStream>> streams_;
  std::vector<std::unique_ptr<Choice>> choices_;
  std::string id_;
  int64_t created_;
  bool started_ = false, done_ = false;
};

}  // namespace qwen3
