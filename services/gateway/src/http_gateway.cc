#include "http_gateway.h"

#include <google/protobuf/message.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/client_callback.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "grassroots/common/log.h"
#include "grassroots/common/status.h"
#include "grassroots/exchange/v1/exchange.pb.h"
#include "transcoder.h"

namespace grassroots::gateway {
namespace {

using google::protobuf::Message;
using ProtoTraits = grpc::SerializationTraits<google::protobuf::Message>;

constexpr char kJsonContentType[] = "application/json; charset=utf-8";

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

bool IsMetadataKey(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return !s.ends_with("-bin") && !s.starts_with("grpc-");
}

// What one exchange carries through its asynchronous steps.
struct Exchange {
  std::shared_ptr<HttpExchange> http;
  std::string request_id;
  std::string route = "unmatched";  // metrics label: the template, never the raw path
  absl::Time start;
  GatewayMetrics* metrics = nullptr;
  bool done = false;

  void Record(int http_status) {
    if (done) return;
    done = true;
    absl::Duration elapsed = absl::Now() - start;
    metrics->HttpRequestDone(route, http->request().method, http_status, elapsed);
    common::RequestScope scope(request_id);
    common::Log(http_status >= 500 ? common::LogLevel::kWarning : common::LogLevel::kInfo, "http",
                {{"method", HttpMethodLabel(http->request().method)},
                 {"route", std::string_view(route)},
                 {"status", int64_t{http_status}},
                 {"duration_ms", absl::ToDoubleMilliseconds(elapsed)}});
  }

  void Reply(HttpResponse response) {
    Record(response.status);
    http->Reply(std::move(response));
  }

  void ReplyError(const google::rpc::Status& status, int http_status = 0) {
    Reply(ErrorReply(status, request_id, http_status));
  }

  void ReplyError(const absl::Status& status, int http_status = 0) {
    ReplyError(RpcStatusFromAbsl(status), http_status);
  }

  HttpHeaders SuccessHeaders() const {
    return {{"content-type", kJsonContentType}, {"x-request-id", request_id}};
  }
};

void PrepareContext(grpc::ClientContext* ctx, const HttpRequest& req, const std::string& request_id,
                    absl::Duration default_timeout) {
  absl::Duration timeout = default_timeout;
  if (const std::string* t = req.Header("grpc-timeout"); t != nullptr) {
    absl::Duration parsed;
    if (ParseGrpcTimeout(*t, &parsed)) timeout = parsed;
  }
  if (timeout > absl::ZeroDuration()) ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  ctx->AddMetadata("x-request-id", request_id);
  std::string forwarded_for;
  for (const auto& [name, value] : req.headers) {
    if (!IsPrintableAscii(value)) continue;
    if (name == "authorization") {
      ctx->AddMetadata("authorization", value);
    } else if (name == "x-forwarded-for") {
      forwarded_for = value;
    } else if (name.starts_with("grpc-metadata-")) {
      std::string key = name.substr(std::string_view("grpc-metadata-").size());
      if (IsMetadataKey(key) && key != "x-request-id" && key != "authorization") {
        ctx->AddMetadata(key, value);
      }
    }
  }
  if (!req.remote_address.empty()) {
    ctx->AddMetadata("x-forwarded-for", forwarded_for.empty()
                                            ? req.remote_address
                                            : absl::StrCat(forwarded_for, ", ", req.remote_address));
  }
}

std::unique_ptr<Message> NewMessage(const google::protobuf::Descriptor* type) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type);
  return std::unique_ptr<Message>(prototype->New());
}

// JSON of a backend response, or an INTERNAL status.
absl::StatusOr<std::string> DecodeResponse(const Route& route, grpc::ByteBuffer* buffer) {
  std::unique_ptr<Message> response = NewMessage(route.method->output_type());
  grpc::Status s = ProtoTraits::Deserialize(buffer, response.get());
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("cannot decode the response of ",
                                            route.method->full_name(), ": ", s.error_message()));
  }
  return ResponseToJson(route, *response);
}

// A unary call in flight.
struct UnaryCall {
  std::shared_ptr<Exchange> exchange;
  const Route* route = nullptr;
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
};

// The reply to a call with one response: the response as JSON, or the error.
void ReplyOne(Exchange& ex, const Route& route, grpc::ByteBuffer* response, const grpc::Status& status) {
  if (!status.ok()) {
    ex.ReplyError(RpcStatusFromGrpc(status));
    return;
  }
  auto json = DecodeResponse(route, response);
  if (!json.ok()) {
    ex.ReplyError(json.status());
    return;
  }
  ex.Reply(HttpResponse{200, ex.SuccessHeaders(), *std::move(json)});
}

void FinishUnary(const std::shared_ptr<UnaryCall>& call, const grpc::Status& status) {
  ReplyOne(*call->exchange, *call->route, &call->response, status);
}

// An upload (a client-streaming method of FileChunk messages): the HTTP request body, as it is,
// sent in chunks of 256 KiB, one write at a time; the one response answers the HTTP request.
class UploadCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  static constexpr size_t kChunkBytes = 256 * 1024;

  static void Start(std::shared_ptr<Exchange> exchange, const Route* route, grpc::GenericStub* stub,
                    const HttpRequest& req, absl::Duration timeout) {
    auto call = std::shared_ptr<UploadCall>(new UploadCall(std::move(exchange), route));
    exchange::v1::FileChunk chunk;
    for (size_t at = 0; at < req.body.size(); at += kChunkBytes) {
      chunk.set_data(req.body.substr(at, kChunkBytes));
      bool own = false;
      if (!ProtoTraits::Serialize(chunk, &call->chunks_.emplace_back(), &own).ok()) {
        call->exchange_->ReplyError(absl::InternalError("cannot encode the upload"));
        return;
      }
    }
    call->self_ = call;
    PrepareContext(&call->context_, req, call->exchange_->request_id, timeout);
    stub->PrepareBidiStreamingCall(&call->context_, route->rpc_path, grpc::StubOptions(), call.get());
    call->StartRead(&call->response_);
    call->WriteNext();
    call->StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (ok) WriteNext();  // otherwise the call is ending: OnDone says why
  }
  void OnWritesDoneDone(bool) override {}
  void OnReadDone(bool) override {}
  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<UploadCall> self = std::move(self_);
    exchange_->http->Post([self, status] { ReplyOne(*self->exchange_, *self->route_, &self->response_, status); });
  }

 private:
  UploadCall(std::shared_ptr<Exchange> exchange, const Route* route)
      : exchange_(std::move(exchange)), route_(route) {}

  void WriteNext() {
    if (next_ == chunks_.size()) {
      StartWritesDone();
      return;
    }
    StartWrite(&chunks_[next_++]);
  }

  std::shared_ptr<UploadCall> self_;
  std::shared_ptr<Exchange> exchange_;
  const Route* route_;
  grpc::ClientContext context_;
  std::vector<grpc::ByteBuffer> chunks_;
  size_t next_ = 0;
  grpc::ByteBuffer response_;
};

// A server-streaming call relayed as newline-delimited JSON. The read chain (read a message,
// write its chunk, read the next) runs outside the reactor's reactions, hence the hold.
class StreamCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  static void Start(std::shared_ptr<Exchange> exchange, const Route* route, grpc::GenericStub* stub,
                    grpc::ByteBuffer request, absl::Duration timeout) {
    auto call = std::shared_ptr<StreamCall>(new StreamCall(std::move(exchange), route));
    call->self_ = call;
    call->request_ = std::move(request);
    PrepareContext(&call->context_, call->exchange_->http->request(), call->exchange_->request_id,
                   timeout);
    stub->PrepareBidiStreamingCall(&call->context_, route->rpc_path, grpc::StubOptions(), call.get());
    call->AddHold();
    call->StartWriteLast(&call->request_, grpc::WriteOptions());
    call->StartRead(&call->response_);
    call->StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      RemoveHold();
      return;
    }
    grpc::ByteBuffer message = response_;  // shares the slices
    exchange_->http->Post([this, message]() mutable { Deliver(&message); });
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<StreamCall> self = std::move(self_);
    exchange_->http->Post([self, status] { self->Final(status); });
  }

 private:
  StreamCall(std::shared_ptr<Exchange> exchange, const Route* route)
      : exchange_(std::move(exchange)), route_(route) {}

  // On the connection's strand, while the hold is in place.
  void Deliver(grpc::ByteBuffer* message) {
    auto json = DecodeResponse(*route_, message);
    if (!json.ok()) {
      local_error_ = json.status();
      context_.TryCancel();
      RemoveHold();
      return;
    }
    std::string line = StreamResultLine(*json);
    if (!header_sent_) {
      header_sent_ = true;
      exchange_->http->StartChunked(
          200, exchange_->SuccessHeaders(), [this, line = std::move(line)](bool ok) mutable {
            if (!ok) {
              AfterWrite(false);
              return;
            }
            exchange_->http->WriteChunk(std::move(line), [this](bool ok) { AfterWrite(ok); });
          });
    } else {
      exchange_->http->WriteChunk(std::move(line), [this](bool ok) { AfterWrite(ok); });
    }
  }

  void AfterWrite(bool ok) {
    if (ok) {
      StartRead(&response_);
      return;
    }
    client_gone_ = true;
    context_.TryCancel();
    RemoveHold();
  }

  // On the strand, after the call is over.
  void Final(const grpc::Status& status) {
    Exchange& ex = *exchange_;
    if (client_gone_) {
      ex.Record(499);
      return;
    }
    google::rpc::Status rpc =
        local_error_.ok() ? RpcStatusFromGrpc(status) : RpcStatusFromAbsl(local_error_);
    if (!header_sent_) {
      if (rpc.code() != 0) {
        ex.ReplyError(rpc);
        return;
      }
      ex.Record(200);
      ex.http->StartChunked(200, ex.SuccessHeaders(), [http = ex.http](bool ok) {
        if (ok) http->FinishChunked();
      });
      return;
    }
    ex.Record(200);
    if (rpc.code() == 0) {
      ex.http->FinishChunked();
      return;
    }
    ex.http->WriteChunk(StreamErrorLine(rpc), [http = ex.http](bool ok) {
      if (ok) http->FinishChunked();
    });
  }

  std::shared_ptr<StreamCall> self_;
  std::shared_ptr<Exchange> exchange_;
  const Route* route_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  // Strand-only state.
  bool header_sent_ = false;
  bool client_gone_ = false;
  absl::Status local_error_;
};

}  // namespace

std::string RequestIdFor(const HttpRequest& request) {
  const std::string* given = request.Header("x-request-id");
  if (given != nullptr && !given->empty() && given->size() <= 128) {
    bool ok = true;
    for (char c : *given) ok = ok && c > 0x20 && c < 0x7F;
    if (ok) return *given;
  }
  return common::NewRequestId();
}

bool ParseGrpcTimeout(std::string_view text, absl::Duration* out) {
  if (text.size() < 2 || text.size() > 9) return false;
  int64_t value;
  std::string digits(text.substr(0, text.size() - 1));
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  if (!absl::SimpleAtoi(digits, &value)) return false;
  switch (text.back()) {
    case 'H': *out = absl::Hours(value); return true;
    case 'M': *out = absl::Minutes(value); return true;
    case 'S': *out = absl::Seconds(value); return true;
    case 'm': *out = absl::Milliseconds(value); return true;
    case 'u': *out = absl::Microseconds(value); return true;
    case 'n': *out = absl::Nanoseconds(value); return true;
    default: return false;
  }
}

HttpResponse ErrorReply(const google::rpc::Status& status, const std::string& request_id,
                        int http_status) {
  HttpResponse r;
  r.status = http_status != 0 ? http_status : HttpStatusFromGrpcCode(status.code());
  r.headers = {{"content-type", kJsonContentType}, {"x-request-id", request_id}};
  if (status.code() == static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) {
    r.headers.emplace_back("www-authenticate", "Bearer");
  }
  r.body = StatusToJson(status);
  return r;
}

HttpGateway::HttpGateway(const RouteTable* routes, const Backends* backends,
                         GatewayMetrics* metrics, CallPolicy policy)
    : routes_(routes), backends_(backends), metrics_(metrics), policy_(policy) {}

HttpResponse HttpGateway::ServerError(int http_status, const absl::Status& status,
                                      const HttpRequest& request) {
  Exchange ex;
  ex.request_id = RequestIdFor(request);
  metrics_->HttpRequestDone("unmatched", request.method, http_status, absl::ZeroDuration());
  return ErrorReply(RpcStatusFromAbsl(status), ex.request_id, http_status);
}

void HttpGateway::Handle(std::shared_ptr<HttpExchange> http) {
  auto ex = std::make_shared<Exchange>();
  ex->http = std::move(http);
  ex->start = absl::Now();
  ex->metrics = metrics_;
  const HttpRequest& req = ex->http->request();
  ex->request_id = RequestIdFor(req);

  RouteMatch match = routes_->Match(req.method, req.path);
  if (match.outcome == MatchOutcome::kNotFound) {
    ex->ReplyError(absl::NotFoundError(absl::StrCat("no route for ", req.method, " ", req.path)));
    return;
  }
  ex->route = match.pattern;
  if (match.outcome == MatchOutcome::kMethodNotAllowed) {
    std::string allow = absl::StrJoin(match.allowed_methods, ", ");
    HttpResponse r = ErrorReply(
        RpcStatusFromAbsl(absl::UnimplementedError(absl::StrCat(
            "method ", req.method, " not allowed for ", match.pattern, "; allowed: ", allow))),
        ex->request_id, 405);
    r.headers.emplace_back("allow", allow);
    ex->Reply(std::move(r));
    return;
  }
  const Route& route = *match.route;
  const Backends::Backend* backend = backends_->ForMethod(route.rpc_path);
  if (backend == nullptr) {
    ex->ReplyError(absl::UnimplementedError(
        absl::StrCat("no backend serves ", route.method->service()->full_name())));
    return;
  }
  if (backend->stub == nullptr) {
    ex->ReplyError(absl::UnavailableError(absl::StrCat(
        "backend ", backend->config.name, " is not configured (", backend->config.flag, ")")));
    return;
  }
  if (route.method->client_streaming()) {  // an upload: the body is the file (route_table.h)
    // It takes no parameters: one in the query (a dry run, say) would be ignored, not honoured.
    if (!req.query.empty()) {
      const std::string first = req.query.substr(0, req.query.find_first_of("=&"));
      ex->ReplyError(common::InvalidField(
          "query", absl::StrCat("an upload takes no query parameters (the body is the file); got \"",
                                first.substr(0, 40), "\"")));
      return;
    }
    UploadCall::Start(ex, &route, backend->stub.get(), req, policy_.stream_timeout);
    return;
  }

  std::unique_ptr<Message> request = NewMessage(route.method->input_type());
  if (absl::Status s = BuildRequestMessage(route, match.bindings, req.query, req.body, request.get());
      !s.ok()) {
    ex->ReplyError(s);
    return;
  }
  grpc::ByteBuffer buffer;
  bool own_buffer = false;
  if (grpc::Status s = ProtoTraits::Serialize(*request, &buffer, &own_buffer); !s.ok()) {
    ex->ReplyError(absl::InternalError(absl::StrCat("cannot encode the request: ", s.error_message())));
    return;
  }

  if (route.method->server_streaming()) {
    StreamCall::Start(ex, &route, backend->stub.get(), std::move(buffer), policy_.stream_timeout);
    return;
  }
  auto call = std::make_shared<UnaryCall>();
  call->exchange = ex;
  call->route = &route;
  call->request = std::move(buffer);
  PrepareContext(&call->context, req, ex->request_id, policy_.unary_timeout);
  backend->stub->UnaryCall(&call->context, route.rpc_path, grpc::StubOptions(), &call->request,
                           &call->response, [call](grpc::Status status) {
                             call->exchange->http->Post(
                                 [call, status] { FinishUnary(call, status); });
                           });
}

}  // namespace grassroots::gateway
