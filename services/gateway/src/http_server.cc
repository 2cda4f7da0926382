#include "http_server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/log.h"

namespace grassroots::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

const std::string* HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

namespace {

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(absl::ToChronoNanoseconds(d));
}

bool IsHttpParseError(const beast::error_code& ec) {
  return std::string_view(ec.category().name()) == "beast.http";
}

template <class Body, class Fields>
void FillRequest(const http::request<Body, Fields>& msg, HttpRequest* req) {
  req->method = std::string(msg.method_string());
  req->target = std::string(msg.target());
  std::string_view target = req->target;
  // Absolute form ("http://host/path"): keep the path.
  if (size_t scheme = target.find("://"); scheme != std::string_view::npos && target[0] != '/') {
    size_t path_start = target.find('/', scheme + 3);
    target = path_start == std::string_view::npos ? std::string_view("/") : target.substr(path_start);
  }
  if (size_t hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  size_t q = target.find('?');
  req->path = std::string(target.substr(0, q));
  req->query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  req->headers.clear();
  for (const auto& field : msg) {
    std::string name(field.name_string());
    absl::AsciiStrToLower(&name);
    req->headers.emplace_back(std::move(name), std::string(field.value()));
  }
  req->keep_alive = msg.keep_alive();
}

}  // namespace

class Connection;

class HttpServerImpl final : public std::enable_shared_from_this<HttpServerImpl> {
 public:
  HttpServerImpl(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ioc_(std::max(1, options_.threads)),
        acceptor_(net::make_strand(ioc_)),
        retry_timer_(acceptor_.get_executor()) {}

  absl::StatusOr<int> Start();
  void Shutdown(absl::Duration drain_timeout);

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void Unregister(Connection* c);

  const HttpServerOptions options_;
  const HttpHandler handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> body_bytes_{0};  // reserved by the connections' requests (body_budget)

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Connection*, std::weak_ptr<Connection>> connections_;
  bool started_ = false;
  bool stopped_ = false;
};

class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket&& socket, std::shared_ptr<HttpServerImpl> server, bool counted)
      : server_(std::move(server)), stream_(std::move(socket)), counted_(counted) {}

  ~Connection() {
    ReleaseBody();
    if (counted_) server_->Unregister(this);
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  void Start() {
    net::dispatch(executor(), [self = shared_from_this()] { self->DoReadHeader(); });
  }

  // Answers 503 to a connection over the limit, then closes it.
  void Refuse() {
    net::dispatch(executor(), [self = shared_from_this()] {
      self->SendError(503, absl::UnavailableError("too many connections; retry later"));
    });
  }

  void CloseIfIdle() {
    net::dispatch(executor(), [self = shared_from_this()] {
      if (self->idle_) self->Close();
    });
  }

  void ForceClose() {
    net::dispatch(executor(), [self = shared_from_this()] { self->Close(); });
  }

  // --- The exchange's operations, run on the strand. ---
  void WriteResponse(HttpResponse r) {
    if (closed_) return;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    for (auto& [name, value] : r.headers) res->insert(name, value);
    res->body() = std::move(r.body);
    keep_alive_ = keep_alive_ && !server_->draining_.load();
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    stream_.expires_after(ToChrono(server_->options_.write_timeout));
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        self->AfterResponse(ec);
                      });
  }

  void WriteChunkedHeader(int status, HttpHeaders headers, std::function<void(bool)> done) {
    if (closed_) {
      done(false);
      return;
    }
    auto res = std::make_shared<http::response<http::empty_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(status));
    for (auto& [name, value] : headers) res->insert(name, value);
    keep_alive_ = keep_alive_ && !server_->draining_.load();
    res->keep_alive(keep_alive_);
    res->chunked(true);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    stream_.expires_after(ToChrono(server_->options_.write_timeout));
    http::async_write_header(
        stream_, *sr,
        [self = shared_from_this(), res, sr, done = std::move(done)](beast::error_code ec, size_t) {
          if (ec) self->Close();
          done(!ec);
        });
  }

  void WriteChunkData(std::string data, std::function<void(bool)> done) {
    if (closed_) {
      done(false);
      return;
    }
    if (data.empty()) {  // an empty chunk would end the body
      done(true);
      return;
    }
    auto owned = std::make_shared<std::string>(std::move(data));
    stream_.expires_after(ToChrono(server_->options_.write_timeout));
    net::async_write(stream_, http::make_chunk(net::buffer(*owned)),
                     [self = shared_from_this(), owned, done = std::move(done)](
                         beast::error_code ec, size_t) {
                       if (ec) self->Close();
                       done(!ec);
                     });
  }

  void WriteLastChunk() {
    if (closed_) return;
    stream_.expires_after(ToChrono(server_->options_.write_timeout));
    net::async_write(stream_, http::make_chunk_last(),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->AfterResponse(ec);
                     });
  }

 private:
  void DoReadHeader() {
    if (closed_) return;
    if (server_->draining_.load()) {
      Close();
      return;
    }
    parser_.emplace();
    parser_->body_limit(server_->options_.body_limit);
    parser_->header_limit(server_->options_.header_limit);
    idle_ = true;
    stream_.expires_after(ToChrono(server_->options_.idle_timeout));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    idle_ = false;
    if (ec) {
      OnReadError(ec);
      return;
    }
    if (!ReserveBody()) {
      if (server_->options_.on_body_budget_refused) server_->options_.on_body_budget_refused();
      SendError(503, absl::UnavailableError("the gateway holds as much request data as it may; retry shortly"),
                /*retry_after_seconds=*/1);
      return;
    }
    const auto& msg = parser_->get();
    auto expect = msg[http::field::expect];
    if (!parser_->is_done() && beast::iequals(expect, "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) {
                           self->Close();
                           return;
                         }
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(ToChrono(server_->options_.idle_timeout));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnBody(ec);
                     });
  }

  void OnBody(beast::error_code ec) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    stream_.expires_never();
    HttpRequest req;
    auto msg = parser_->release();
    FillRequest(msg, &req);
    req.body = std::move(msg.body());
    beast::error_code ignored;
    auto remote = stream_.socket().remote_endpoint(ignored);
    if (!ignored) req.remote_address = remote.address().to_string();
    keep_alive_ = req.keep_alive;
    server_->handler_(MakeExchange(std::move(req)));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      SendError(413, absl::ResourceExhaustedError(absl::StrCat(
                         "request body larger than ", server_->options_.body_limit, " bytes")));
    } else if (ec == http::error::header_limit) {
      SendError(431, absl::ResourceExhaustedError("request headers too large"));
    } else if (IsHttpParseError(ec) && ec != http::error::end_of_stream &&
               ec != http::error::partial_message) {
      SendError(400, absl::InvalidArgumentError(absl::StrCat("malformed HTTP request: ", ec.message())));
    } else {
      Close();  // end of stream, timeout, reset, shutdown
    }
  }

  void SendError(int status, const absl::Status& error, int retry_after_seconds = 0) {
    HttpRequest partial;
    if (parser_ && parser_->is_header_done()) FillRequest(parser_->get(), &partial);
    keep_alive_ = false;
    HttpResponse response;
    if (server_->options_.error_response) {
      response = server_->options_.error_response(status, error, partial);
    } else {
      response.status = status;
      response.body = std::string(error.message());
    }
    if (retry_after_seconds > 0) response.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
    WriteResponse(std::move(response));
  }

  // Reserves twice the announced body (a chunked one: the body limit) from the server's budget.
  bool ReserveBody() {
    ReleaseBody();
    if (parser_->is_done()) return true;  // no body
    const auto length = parser_->content_length();
    const int64_t need = 2 * static_cast<int64_t>(length ? std::min<uint64_t>(*length, server_->options_.body_limit)
                                                         : server_->options_.body_limit);
    const auto budget = static_cast<int64_t>(server_->options_.body_budget);
    int64_t held = server_->body_bytes_.load();
    do {
      if (held + need > budget) return false;
    } while (!server_->body_bytes_.compare_exchange_weak(held, held + need));
    reserved_ = need;
    return true;
  }
  void ReleaseBody() {
    if (reserved_ == 0) return;
    server_->body_bytes_.fetch_sub(reserved_);
    reserved_ = 0;
  }

  void AfterResponse(beast::error_code ec) {
    ReleaseBody();  // the response is out: the request's body is no longer needed
    if (ec || !keep_alive_) {
      Close();
      return;
    }
    DoReadHeader();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  std::shared_ptr<HttpExchange> MakeExchange(HttpRequest req);

  // Declared first, destroyed last: the stream's executor belongs to the server's io_context,
  // which this reference may be the last to keep alive (a late exchange released on a gRPC
  // thread after the server was shut down: the stream must go before the io_context does).
  std::shared_ptr<HttpServerImpl> server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const bool counted_;
  bool idle_ = false;
  bool closed_ = false;
  bool keep_alive_ = true;
  int64_t reserved_ = 0;  // of the server's body budget, for the request being handled
};

namespace {

class Exchange final : public HttpExchange {
 public:
  Exchange(std::shared_ptr<Connection> conn, HttpRequest request)
      : conn_(std::move(conn)), request_(std::move(request)) {}

  const HttpRequest& request() const override { return request_; }

  void Reply(HttpResponse response) override {
    net::post(conn_->executor(), [c = conn_, r = std::move(response)]() mutable {
      c->WriteResponse(std::move(r));
    });
  }
  void StartChunked(int status, HttpHeaders headers, std::function<void(bool)> done) override {
    net::post(conn_->executor(),
              [c = conn_, status, h = std::move(headers), d = std::move(done)]() mutable {
                c->WriteChunkedHeader(status, std::move(h), std::move(d));
              });
  }
  void WriteChunk(std::string data, std::function<void(bool)> done) override {
    net::post(conn_->executor(), [c = conn_, s = std::move(data), d = std::move(done)]() mutable {
      c->WriteChunkData(std::move(s), std::move(d));
    });
  }
  void FinishChunked() override {
    net::post(conn_->executor(), [c = conn_] { c->WriteLastChunk(); });
  }
  void Post(std::function<void()> fn) override { net::post(conn_->executor(), std::move(fn)); }

 private:
  std::shared_ptr<Connection> conn_;
  HttpRequest request_;
};

}  // namespace

std::shared_ptr<HttpExchange> Connection::MakeExchange(HttpRequest req) {
  return std::make_shared<Exchange>(shared_from_this(), std::move(req));
}

absl::StatusOr<int> HttpServerImpl::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return absl::FailedPreconditionError("HTTP server already started");
    started_ = true;
  }
  beast::error_code ec;
  tcp::resolver resolver(ioc_);
  auto results = resolver.resolve(options_.host, std::to_string(options_.port),
                                  tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve HTTP listen address ", options_.host, ": ", ec.message()));
  }
  tcp::endpoint endpoint = results.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", options_.host, ":",
                                               options_.port, ": ", ec.message()));
  }
  int port = acceptor_.local_endpoint().port();
  work_.emplace(net::make_work_guard(ioc_));
  net::dispatch(acceptor_.get_executor(), [self = shared_from_this()] { self->DoAccept(); });
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] { ioc_.run(); });
  }
  return port;
}

void HttpServerImpl::DoAccept() {
  if (!acceptor_.is_open()) return;
  acceptor_.async_accept(net::make_strand(ioc_),
                         [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                           self->OnAccept(ec, std::move(socket));
                         });
}

void HttpServerImpl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    common::LogWarning("HTTP accept failed", {{"error", std::string_view(ec.message())}});
    // Out of descriptors and the like: back off briefly instead of spinning.
    retry_timer_.expires_after(std::chrono::milliseconds(100));
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code) { self->DoAccept(); });
    return;
  }
  bool accept = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    accept = !draining_.load() &&
             static_cast<int>(connections_.size()) < options_.max_connections;
  }
  if (!accept) {
    if (options_.on_connection_refused) options_.on_connection_refused();
    std::make_shared<Connection>(std::move(socket), shared_from_this(), false)->Refuse();
  } else {
    auto conn = std::make_shared<Connection>(std::move(socket), shared_from_this(), true);
    {
      std::lock_guard<std::mutex> lock(mu_);
      connections_.emplace(conn.get(), conn);
    }
    if (options_.on_connections_changed) options_.on_connections_changed(+1);
    conn->Start();
  }
  DoAccept();
}

void HttpServerImpl::Unregister(Connection* c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections_.erase(c);
  }
  cv_.notify_all();
  if (options_.on_connections_changed) options_.on_connections_changed(-1);
}

void HttpServerImpl::Shutdown(absl::Duration drain_timeout) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || stopped_) return;
    stopped_ = true;
  }
  draining_.store(true);
  net::dispatch(acceptor_.get_executor(), [self = shared_from_this()] {
    beast::error_code ec;
    self->acceptor_.close(ec);
    self->retry_timer_.cancel();
  });
  auto snapshot = [this] {
    std::vector<std::shared_ptr<Connection>> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [raw, weak] : connections_) {
      if (auto c = weak.lock()) out.push_back(std::move(c));
    }
    return out;
  };
  for (auto& c : snapshot()) c->CloseIfIdle();
  auto wait_until = [this](absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, absl::ToChronoTime(deadline), [this] { return connections_.empty(); });
    return connections_.empty();
  };
  if (!wait_until(absl::Now() + drain_timeout)) {
    common::LogWarning("HTTP drain timed out; closing the remaining connections");
    for (auto& c : snapshot()) c->ForceClose();
    wait_until(absl::Now() + absl::Seconds(1));
  }
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // Run what completed meanwhile (aborted accepts and reads) so that their handlers, which own
  // references to this object and to connections, are released.
  ioc_.restart();
  ioc_.poll();
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_shared<HttpServerImpl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<int> HttpServer::Start() { return impl_->Start(); }

void HttpServer::Shutdown(absl::Duration drain_timeout) { impl_->Shutdown(drain_timeout); }

}  // namespace grassroots::gateway
