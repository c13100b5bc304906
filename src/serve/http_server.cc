#include "serve/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "serve/openai_api.h"
#include "tokenizer/tokenizer.h"

namespace qwen3 {
namespace {

using json = nlohmann::json;
constexpr auto kPoll = std::chrono::milliseconds(50);

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(e.Body(), "application/json");
}

ApiError Unavailable(const std::string& message) {
  ApiError e;
  e.status = 503;
  e.type = "unavailable_error";
  e.message = message;
  return e;
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(const ServerOptions& o)
      : options(o), svr(o.http, [this](int status) { http_metrics.AddReply(status); }) {}
  ServerOptions options;
  HttpMetrics http_metrics;
  GuardedServer svr;
  std::atomic<Engine*> engine{nullptr};
  std::atomic<bool> draining{false};
  std::atomic<int> listen_fd{-1};
  std::atomic<int> replying{0};  // generation replies being written
  ApiContext ctx;
  int64_t created = static_cast<int64_t>(std::time(nullptr));

  void Routes();
  void Generate(ApiKind kind, const httplib::Request& req, httplib::Response& res);
};

HttpServer::HttpServer(const ServerOptions& options) : impl_(std::make_unique<Impl>(options)) {
  impl_->ctx.limits = options.api;
  impl_->Routes();
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Impl::Routes() {
  const size_t threads = std::max<size_t>(4, options.http_threads);
  svr.new_task_queue = [threads] { return GuardedServer::NewTaskQueue(threads); };
  svr.set_tcp_nodelay(true);  // one SSE event per token: no Nagle + delayed-ACK stalls
  svr.set_keep_alive_max_count(100000);
  svr.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    http_metrics.AddReply(res.status);
  });
  svr.set_socket_options([this](int fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd.store(fd);
  });

  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool api = req.path.rfind("/v1/", 0) == 0 || req.path == "/tokenize" ||
                     req.path == "/detokenize";
    if (!api) return httplib::Server::HandlerResponse::Unhandled;
    if (!options.api_key.empty() &&
        req.get_header_value("Authorization") != "Bearer " + options.api_key) {
      ApiError e;
      e.status = 401;
      e.type = "authentication_error";
      e.code = "invalid_api_key";
      e.message = req.has_header("Authorization")
                      ? "Incorrect API key provided"
                      : "Missing API key: expected an \"Authorization: Bearer KEY\" header";
      SendError(res, e);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (engine.load() == nullptr) {
      SendError(res, Unavailable("Loading model"));
      res.set_header("Retry-After", "5");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (draining.load()) {
      SendError(res, Unavailable("The server is shutting down"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
    // A fault of the guard's while the library read the body: its status, not the library's 400.
    const HttpFault fault = GuardedServer::CurrentFault();
    if (fault.status != 0) {
      res.status = fault.status;
      res.body.clear();
    }
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e;
    e.status = res.status;
    if (fault.status != 0) {
      e.message = fault.message;
    } else if (res.status == 404) {
      e.type = "not_found_error";
      e.message = "no route " + req.method + " " + req.path;
    } else if (res.status == 413) {
      e.message = "the request body is too large";
    } else if (res.status == 400) {
      e.message = "malformed HTTP request";
    } else {
      e.message = "HTTP " + std::to_string(res.status);
    }
    SendError(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    ApiError e;
    e.status = 500;
    e.type = "internal_error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      e.message = ex.what();
    } catch (...) {
      e.message = "unknown error";
    }
    SendError(res, e);
  });

  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (engine.load() == nullptr) {
      SendError(res, Unavailable("Loading model"));
      return;
    }
    res.set_content(draining ? R"({"status":"shutting down"})" : R"({"status":"ok"})",
                    "application/json");
    if (draining) res.status = 503;
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Engine* e = engine.load();
    std::string text = e ? e->metrics().RenderPrometheus() : "";
    http_metrics.Render(text);
    res.set_content(text, "text/plain; version=0.0.4");
  });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const json m = {{"id", options.model_name}, {"object", "model"}, {"created", created},
                    {"owned_by", "qwen3.cpp"}, {"max_model_len", ctx.max_context}};
    res.set_content(DumpJson({{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  const auto api = [this](auto f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        res.set_content(DumpJson(f(req.body, ctx)), "application/json");
      } catch (const ApiException& e) {
        SendError(res, e.error());
      }
    };
  };
  svr.Post("/tokenize", api(Tokenize));
  svr.Post("/detokenize", api(Detokenize));
  svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(ApiKind::kChat, req, res);
  });
  svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(ApiKind::kCompletion, req, res);
  });
}

void HttpServer::Impl::Generate(ApiKind kind, const httplib::Request& req, httplib::Response& res) {
  Engine& eng = *engine.load();
  // Everything is validated and queued before the 200 is committed.
  ParsedRequest pr;
  std::vector<std::shared_ptr<RequestStream>> streams;
  try {
    pr = ParseRequest(kind, req.body, ctx);
    for (size_t p = 0; p < pr.prompts.size(); ++p) {
      std::vector<GenerationRequest> choices;
      for (size_t k = 0; k < pr.n; ++k) {
        GenerationRequest g = pr.base;
        g.prompt = pr.prompts[p];
        g.sampler_stream = k;
        choices.push_back(std::move(g));
      }
      for (auto& s : eng.Submit(std::move(choices))) streams.push_back(std::move(s));
    }
  } catch (const ApiException& e) {
    for (auto& s : streams) s->Cancel();
    SendError(res, e.error());
    return;
  } catch (const QueueFullError& e) {
    for (auto& s : streams) s->Cancel();
    SendError(res, Unavailable(e.what()));
    res.set_header("Retry-After", "1");
    return;
  } catch (const Error& e) {
    for (auto& s : streams) s->Cancel();
    ApiError err;
    err.message = e.what();
    SendError(res, err);
    return;
  }
  auto reply = std::make_shared<ApiResponse>(pr, std::move(streams), ctx);
  const bool stream = pr.stream;
  res.set_header("Cache-Control", "no-cache");
  if (stream) res.set_header("X-Accel-Buffering", "no");
  // Exactly "text/event-stream" (no charset): the library leaves it uncompressed and unbuffered.
  replying.fetch_add(1);
  res.set_chunked_content_provider(
      stream ? "text/event-stream" : "application/json",
      [reply, stream](size_t, httplib::DataSink& sink) {
        if (!sink.is_writable()) {  // the client is gone: cancel in the engine
          reply->Cancel();
          return false;
        }
        std::string out;
        const bool done = reply->Poll(out, kPoll);
        if (stream && !out.empty() && !sink.write(out.data(), out.size())) {
          reply->Cancel();
          return false;
        }
        if (done) {
          if (!stream) {
            const std::string body = reply->Body();
            if (!sink.write(body.data(), body.size())) return false;
          }
          sink.done();
        }
        return true;
      },
      [this, reply](bool success) {
        reply->Cancel();
        if (!success) http_metrics.AddCutShort();
        replying.fetch_sub(1);
      });
}

int HttpServer::Bind() {
  Impl& m = *impl_;
  int port = m.options.port;
  if (port == 0) {
    port = m.svr.bind_to_any_port(m.options.host);
    if (port < 0) throw Error("cannot bind " + m.options.host + " to a free port");
  } else if (!m.svr.bind_to_port(m.options.host, port)) {
    throw Error("cannot bind " + m.options.host + ":" + std::to_string(port) +
                " (in use, or not an address of this machine)");
  }
  // Debian's library listens with a backlog of 5 (compiled in): a burst of connections would
  // wait for SYN retransmits (~1 s). listen() again on the bound socket enlarges it.
  if (m.listen_fd.load() >= 0) ::listen(m.listen_fd.load(), 1024);
  return port;
}

void HttpServer::SetEngine(Engine* engine) {
  impl_->ctx.model_name = impl_->options.model_name;
  impl_->ctx.tokenizer = &engine->tokenizer();
  impl_->ctx.eos_ids = engine->eos_ids();
  impl_->ctx.max_context = std::min(engine->max_seq(),
                                    engine->options().kv_blocks * engine->options().block_size);
  impl_->ctx.max_choices = engine->options().max_queue;
  impl_->engine.store(engine);
}

void HttpServer::SetDraining() { impl_->draining.store(true); }

void HttpServer::Start() {
  thread_ = std::thread([this] { impl_->svr.listen_after_bind(); });
  while (!impl_->svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  impl_->svr.stop();
  thread_.join();
}

size_t HttpServer::Drain(double grace_s) {
  SetDraining();
  Engine* e = impl_->engine.load();
  size_t left = 0;
  if (e != nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
    for (;;) {
      const EngineStats s = e->stats();
      left = s.running + s.waiting;
      if (left == 0 || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    e->Shutdown(true);  // what is left is cancelled; its streams end
    // ... and are written to the end before the server stops: a stop ends the library's
    // chunked writer without its last chunk, cutting a stream off before [DONE].
    const auto flushed = std::chrono::steady_clock::now() +
                         std::chrono::duration<double>(impl_->options.http.write_timeout_s + 1);
    while (impl_->replying.load() > 0 && std::chrono::steady_clock::now() < flushed) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  Stop();
  return left;
}

const HttpMetrics& HttpServer::metrics() const { return impl_->http_metrics; }

}  // namespace qwen3
