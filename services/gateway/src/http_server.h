#pragma once
// A small asynchronous HTTP/1.1 server on Boost.Beast: keep-alive, a bound on concurrent
// connections, a request body limit, chunked streaming responses, graceful drain. It knows
// nothing of routes or JSON: every complete request goes to one handler, and the errors the
// server itself detects (body too large, malformed request, overload) are rendered by a hook
// so that they look like every other error of the gateway.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grassroots::gateway {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // as sent, e.g. "/v1/organisations/x?y=1"
  std::string path;    // target up to '?', still percent-encoded
  std::string query;   // after '?', still encoded; empty when none
  HttpHeaders headers;  // names in lower case
  std::string body;
  std::string remote_address;
  bool keep_alive = true;

  // The first value of a header (name in lower case), or null.
  const std::string* Header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string body;
};

// One request on one connection. Every method may be called from any thread; the work is
// posted to the connection's strand. The handler must end each exchange with exactly one
// Reply, or with StartChunked / WriteChunk* / FinishChunked, each next call made only after
// the previous one reported completion.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual const HttpRequest& request() const = 0;
  virtual void Reply(HttpResponse response) = 0;
  // Sends the status line and headers of a chunked response; `done(false)` when the client
  // is gone.
  virtual void StartChunked(int status, HttpHeaders headers, std::function<void(bool)> done) = 0;
  virtual void WriteChunk(std::string data, std::function<void(bool)> done) = 0;
  // Ends the chunked response (the connection is then reused or closed).
  virtual void FinishChunked() = 0;
  // Runs `fn` on the connection's strand (e.g. to convert a backend reply off gRPC's threads).
  virtual void Post(std::function<void()> fn) = 0;
};

using HttpHandler = std::function<void(std::shared_ptr<HttpExchange>)>;

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free port
  int threads = 2;
  int max_connections = 1024;
  size_t body_limit = 16 * 1024 * 1024;
  // Bytes of request bodies held at once across every connection, each body counted twice (as
  // read, and the copy made of it on the way to a backend) and for its announced length (a
  // chunked body for body_limit). A request whose body would pass it is answered 503 with
  // Retry-After before its body is read, instead of the process running out of memory
  // (16 MiB x 1,024 connections would be 16 GiB). Held until its response is written.
  size_t body_budget = 256 * 1024 * 1024;
  // Called once per request refused for the body budget.
  std::function<void()> on_body_budget_refused;
  uint32_t header_limit = 64 * 1024;
  // A keep-alive connection idle this long, or a request this slow to arrive, is closed.
  absl::Duration idle_timeout = absl::Seconds(60);
  // A response write that makes no progress for this long closes the connection.
  absl::Duration write_timeout = absl::Seconds(60);
  // Renders the server's own errors: http status (413, 431, 400, 503), the status to report
  // (code and message) and the request as far as it was read (headers may be empty).
  std::function<HttpResponse(int http_status, const absl::Status&, const HttpRequest&)> error_response;
  // Called with +1 / -1 as connections open and close, and once per refused connection.
  std::function<void(int delta)> on_connections_changed;
  std::function<void()> on_connection_refused;
};

class HttpServerImpl;

class HttpServer final {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads; returns the bound port.
  absl::StatusOr<int> Start();
  // Stops accepting, closes idle keep-alive connections, lets in-flight exchanges finish
  // (their responses carry "Connection: close") until `drain_timeout`, then closes the rest
  // and joins the I/O threads. Idempotent.
  void Shutdown(absl::Duration drain_timeout);

 private:
  std::shared_ptr<HttpServerImpl> impl_;
};

}  // namespace grassroots::gateway
