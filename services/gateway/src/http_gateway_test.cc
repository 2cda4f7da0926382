// The gateway's two doors against an in-process fake membership backend: the real Beast
// server, the real transcoding handler, the real gRPC proxy; only the backend is fake.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <condition_variable>
#include <thread>
#include <map>
#include <mutex>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

#include "grassroots/common/status.h"
#include "grassroots/membership/v1/membership.grpc.pb.h"
#include "grpc_proxy.h"
#include "http_gateway.h"
#include "http_server.h"
#include "linked_protos.h"

namespace grassroots::gateway {
namespace {

namespace mv1 = membership::v1;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FakeOrganisations final : public mv1::OrganisationService::Service {
 public:
  grpc::Status GetOrganisation(grpc::ServerContext* ctx, const mv1::GetOrganisationRequest* req,
                               mv1::Organisation* resp) override {
    Remember(ctx);
    if (req->org_code() == "missing") {
      return common::ToGrpcStatus(absl::NotFoundError("organisation missing not found"));
    }
    if (req->org_code() == "bad") {
      return common::ToGrpcStatus(common::InvalidField("org_code", "bad code"));
    }
    if (req->org_code() == "anon") return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "who?");
    if (req->org_code() == "slow") {
      // Waits up to 3 s for the caller to give up; records whether the cancellation arrived.
      for (int i = 0; i < 300 && !ctx->IsCancelled(); ++i) absl::SleepFor(absl::Milliseconds(10));
      slow_cancelled_.store(ctx->IsCancelled());
      return grpc::Status(grpc::StatusCode::ABORTED, "too late");
    }
    resp->set_org_code(req->org_code());
    resp->set_name("𠮷村党支部");
    resp->set_population(42);
    return grpc::Status::OK;
  }
  grpc::Status UpdateOrganisation(grpc::ServerContext* ctx, const mv1::UpdateOrganisationRequest* req,
                                  mv1::Organisation* resp) override {
    Remember(ctx);
    *resp = req->organisation();
    resp->set_org_code(req->org_code());
    resp->set_org_type(absl::StrJoin(req->update_mask().paths(), ","));
    return grpc::Status::OK;
  }
  grpc::Status ExportOrganisations(grpc::ServerContext* ctx, const mv1::ExportOrganisationsRequest* req,
                                   grpc::ServerWriter<exchange::v1::FileChunk>* writer) override {
    Remember(ctx);
    if (req->org_code() == "missing") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such");
    for (int i = 0; i < 3; ++i) {
      exchange::v1::FileChunk chunk;
      chunk.set_data("line" + std::to_string(i) + "\n");
      writer->Write(chunk);
    }
    if (req->org_code() == "broken") return grpc::Status(grpc::StatusCode::DATA_LOSS, "disk");
    return grpc::Status::OK;
  }
  grpc::Status ImportOrganisations(grpc::ServerContext* ctx,
                                   grpc::ServerReader<exchange::v1::FileChunk>* reader,
                                   exchange::v1::ImportReport* report) override {
    Remember(ctx);
    exchange::v1::FileChunk chunk;
    int64_t bytes = 0;
    while (reader->Read(&chunk)) bytes += static_cast<int64_t>(chunk.data().size());
    report->set_rows(bytes);
    return grpc::Status::OK;
  }

  std::string last_request_id() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_request_id_;
  }
  std::atomic<bool> slow_cancelled_{false};

  std::string last_authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_authorization_;
  }

 private:
  void Remember(grpc::ServerContext* ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    auto get = [ctx](const char* key) {
      auto it = ctx->client_metadata().find(key);
      return it == ctx->client_metadata().end() ? std::string()
                                                : std::string(it->second.data(), it->second.size());
    };
    last_request_id_ = get("x-request-id");
    last_authorization_ = get("authorization");
  }
  std::mutex mu_;
  std::string last_request_id_;
  std::string last_authorization_;
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  bool chunked = false;
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder backend_builder;
    int backend_port = 0;
    backend_builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &backend_port);
    backend_builder.RegisterService(&fake_);
    backend_ = backend_builder.BuildAndStart();
    ASSERT_NE(backend_, nullptr);

    auto routes = RouteTable::Build(LinkedServiceFiles());
    ASSERT_TRUE(routes.ok()) << routes.status();
    routes_ = *std::move(routes);
    backends_ = std::make_unique<Backends>(DefaultBackendConfigs(
        "127.0.0.1:" + std::to_string(backend_port), "", "", ""));
    metrics_ = std::make_unique<GatewayMetrics>(registry_);
    CallPolicy policy;
    policy.unary_timeout = absl::Seconds(5);
    policy.stream_timeout = absl::Seconds(5);
    gateway_ = std::make_unique<HttpGateway>(routes_.get(), backends_.get(), metrics_.get(), policy);

    HttpServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.body_limit = 1024;
    options.error_response = [this](int s, const absl::Status& e, const HttpRequest& r) {
      return gateway_->ServerError(s, e, r);
    };
    http_ = std::make_unique<HttpServer>(options, [this](std::shared_ptr<HttpExchange> ex) {
      gateway_->Handle(std::move(ex));
    });
    auto port = http_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    http_port_ = *port;

    proxy_ = std::make_unique<GrpcProxy>(backends_.get(), metrics_.get(), policy);
    grpc::ServerBuilder proxy_builder;
    proxy_builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &proxy_port_);
    proxy_builder.RegisterCallbackGenericService(proxy_.get());
    proxy_server_ = proxy_builder.BuildAndStart();
    ASSERT_NE(proxy_server_, nullptr);
  }

  void TearDown() override {
    if (proxy_server_) proxy_server_->Shutdown();
    if (http_) http_->Shutdown(absl::Seconds(1));
    if (backend_) backend_->Shutdown();
  }

  HttpResult Send(net::ip::tcp::socket& socket, http::verb verb, const std::string& target,
                  const std::string& body = "", std::map<std::string, std::string> headers = {}) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "localhost");
    for (auto& [k, v] : headers) req.set(k, v);
    if (!body.empty()) req.body() = body;
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(socket, buffer, parser);
    HttpResult out;
    auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    out.chunked = res.chunked();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(f.value());
    }
    return out;
  }

  HttpResult Request(http::verb verb, const std::string& target, const std::string& body = "",
                     std::map<std::string, std::string> headers = {}) {
    net::io_context ioc;
    net::ip::tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(http_port_)});
    return Send(socket, verb, target, body, std::move(headers));
  }

  std::string Metrics() {
    std::string out;
    for (const auto& family : registry_.Collect()) {
      for (const auto& m : family.metric) {
        if (family.type != prometheus::MetricType::Counter) continue;
        out += family.name;
        for (const auto& l : m.label) out += "|" + l.name + "=" + l.value;
        out += " " + std::to_string(static_cast<int>(m.counter.value)) + "\n";
      }
    }
    return out;
  }

  FakeOrganisations fake_;
  std::unique_ptr<grpc::Server> backend_;
  std::unique_ptr<RouteTable> routes_;
  std::unique_ptr<Backends> backends_;
  prometheus::Registry registry_;
  std::unique_ptr<GatewayMetrics> metrics_;
  std::unique_ptr<HttpGateway> gateway_;
  std::unique_ptr<HttpServer> http_;
  int http_port_ = 0;
  std::unique_ptr<GrpcProxy> proxy_;
  std::unique_ptr<grpc::Server> proxy_server_;
  int proxy_port_ = 0;
};

TEST_F(GatewayTest, UnaryGetTranscodesAndForwardsRequestId) {
  HttpResult r = Request(http::verb::get, "/v1/organisations/A-1", "",
                         {{"X-Request-Id", "req-123"}, {"Authorization", "Bearer t0k"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");
  EXPECT_EQ(r.headers["x-request-id"], "req-123");
  EXPECT_THAT(r.body, HasSubstr(R"("orgCode":"A-1")"));
  EXPECT_THAT(r.body, HasSubstr(R"("name":"𠮷村党支部")"));
  EXPECT_THAT(r.body, HasSubstr(R"("population":"42")"));
  EXPECT_THAT(r.body, HasSubstr(R"("depth":0)"));
  EXPECT_EQ(fake_.last_request_id(), "req-123");
  EXPECT_EQ(fake_.last_authorization(), "Bearer t0k");
  EXPECT_THAT(Metrics(), HasSubstr("grassroots_gateway_http_requests_total|code=200|method=GET|route=/v1/organisations/{org_code} 1"));
}

TEST_F(GatewayTest, NewRequestIdWhenNoneGiven) {
  HttpResult r = Request(http::verb::get, "/v1/organisations/A-1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["x-request-id"].size(), 16u);
  EXPECT_EQ(fake_.last_request_id(), r.headers["x-request-id"]);
}

TEST_F(GatewayTest, BackendErrorsBecomeJsonStatuses) {
  HttpResult r = Request(http::verb::get, "/v1/organisations/missing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"code":5,"message":"organisation missing not found","details":[]})");
  r = Request(http::verb::get, "/v1/organisations/bad");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr(R"("fieldViolations":[{"field":"org_code","description":"bad code"}])"));
  r = Request(http::verb::get, "/v1/organisations/anon");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers["www-authenticate"], "Bearer");
  EXPECT_THAT(r.body, HasSubstr(R"("code":16)"));
}

TEST_F(GatewayTest, GatewayErrorsAreJsonToo) {
  HttpResult r = Request(http::verb::get, "/v1/nowhere");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr(R"("code":5)"));
  EXPECT_FALSE(r.headers["x-request-id"].empty());
  r = Request(http::verb::put, "/v1/organisations/x");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "DELETE, GET, PATCH");
  EXPECT_THAT(r.body, HasSubstr(R"("code":12)"));
  r = Request(http::verb::post, "/v1/organisations", R"({"name":"x",})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("trailing comma"));
  r = Request(http::verb::get, "/v1/organisations/x/children?colour=red");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("colour"));
  r = Request(http::verb::get, "/v1/organisations/x?y=1");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(Metrics(), HasSubstr("route=unmatched"));
}

TEST_F(GatewayTest, CadrepayWithoutAddressIsUnavailable) {
  // Any cadrepay route: its backend has no address in this test.
  const Route* cadrepay = nullptr;
  for (const auto& route : routes_->routes()) {
    if (route.rpc_path.starts_with("/grassroots.cadrepay.v1.") && route.path.variables().empty() &&
        route.http_method == "GET") {
      cadrepay = &route;
    }
  }
  if (cadrepay == nullptr) GTEST_SKIP() << "no parameterless cadrepay GET route";
  HttpResult r = Request(http::verb::get, cadrepay->path.text());
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("--cadrepay_addr"));
}

TEST_F(GatewayTest, PatchInfersTheMask) {
  HttpResult r = Request(http::verb::patch, "/v1/organisations/A-1", R"({"name":"新","orgKind":"village"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr(R"("orgType":"name,org_kind")"));
}

TEST_F(GatewayTest, BodyOverTheLimitIs413Json) {
  HttpResult r = Request(http::verb::post, "/v1/organisations", std::string(2000, ' '));
  EXPECT_EQ(r.status, 413);
  EXPECT_THAT(r.body, HasSubstr(R"("code":8)"));
  EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");
}

TEST_F(GatewayTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  net::io_context ioc;
  net::ip::tcp::socket socket(ioc);
  socket.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(http_port_)});
  for (int i = 0; i < 3; ++i) {
    HttpResult r = Send(socket, http::verb::get, "/v1/organisations/K" + std::to_string(i));
    EXPECT_EQ(r.status, 200);
    EXPECT_THAT(r.body, HasSubstr("K" + std::to_string(i)));
  }
  HttpResult r = Send(socket, http::verb::get, "/v1/organisations/missing");
  EXPECT_EQ(r.status, 404);
  r = Send(socket, http::verb::get, "/v1/organisations/K9");
  EXPECT_EQ(r.status, 200);
}

TEST_F(GatewayTest, ServerStreamIsNewlineDelimitedJson) {
  HttpResult r = Request(http::verb::get, "/v1/organisations/A:export");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.body,
            "{\"result\":{\"data\":\"bGluZTAK\"}}\n{\"result\":{\"data\":\"bGluZTEK\"}}\n"
            "{\"result\":{\"data\":\"bGluZTIK\"}}\n");
}

TEST_F(GatewayTest, ServerStreamFailureAfterMessagesEndsWithAnErrorLine) {
  HttpResult r = Request(http::verb::get, "/v1/organisations/broken:export");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("bGluZTIK"));
  EXPECT_TRUE(r.body.ends_with("{\"error\":{\"code\":15,\"message\":\"disk\",\"details\":[]}}\n")) << r.body;
}

TEST_F(GatewayTest, ServerStreamFailureBeforeAnyMessageIsAnOrdinaryError) {
  HttpResult r = Request(http::verb::get, "/v1/organisations/missing:export");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"code":5,"message":"no such","details":[]})");
}

TEST_F(GatewayTest, GrpcProxyRelaysUnaryCallsWithDetailsAndMetadata) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(proxy_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = mv1::OrganisationService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-request-id", "via-proxy");
    ctx.AddMetadata("authorization", "Bearer p");
    mv1::GetOrganisationRequest req;
    req.set_org_code("P-1");
    mv1::Organisation org;
    grpc::Status s = stub->GetOrganisation(&ctx, req, &org);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(org.org_code(), "P-1");
    EXPECT_EQ(fake_.last_request_id(), "via-proxy");
    EXPECT_EQ(fake_.last_authorization(), "Bearer p");
  }
  {
    grpc::ClientContext ctx;
    mv1::GetOrganisationRequest req;
    req.set_org_code("bad");
    mv1::Organisation org;
    grpc::Status s = stub->GetOrganisation(&ctx, req, &org);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    auto violations = common::FieldViolationsOf(common::FromGrpcStatus(s));
    ASSERT_EQ(violations.size(), 1u);
    EXPECT_EQ(violations[0].field, "org_code");
  }
}

TEST_F(GatewayTest, GrpcProxyRelaysStreams) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(proxy_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = mv1::OrganisationService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    mv1::ExportOrganisationsRequest req;
    req.set_org_code("broken");
    auto reader = stub->ExportOrganisations(&ctx, req);
    exchange::v1::FileChunk chunk;
    std::string all;
    while (reader->Read(&chunk)) all += chunk.data();
    grpc::Status s = reader->Finish();
    EXPECT_EQ(all, "line0\nline1\nline2\n");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  }
  {
    grpc::ClientContext ctx;
    exchange::v1::ImportReport report;
    auto writer = stub->ImportOrganisations(&ctx, &report);
    exchange::v1::FileChunk chunk;
    for (int i = 0; i < 50; ++i) {
      chunk.set_data(std::string(1000, 'x'));
      ASSERT_TRUE(writer->Write(chunk));
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(report.rows(), 50000);
  }
}

TEST_F(GatewayTest, GrpcProxyRefusesUnknownServices) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(proxy_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = mv1::OrganisationService::NewStub(channel);
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status result;
  generic.UnaryCall(&ctx, "/nowhere.v1.Nothing/Call", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      result = s;
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  EXPECT_EQ(result.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(GatewayTest, HttpDeadlineFromGrpcTimeoutHeaderIs504AndCancelsTheBackend) {
  HttpResult r = Request(http::verb::get, "/v1/organisations/slow", "", {{"Grpc-Timeout", "100m"}});
  EXPECT_EQ(r.status, 504);
  EXPECT_THAT(r.body, HasSubstr(R"("code":4)"));
  for (int i = 0; i < 100 && !fake_.slow_cancelled_.load(); ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(fake_.slow_cancelled_.load());
}

TEST_F(GatewayTest, GrpcProxyPropagatesTheCallersDeadline) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(proxy_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = mv1::OrganisationService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  mv1::GetOrganisationRequest req;
  req.set_org_code("slow");
  mv1::Organisation org;
  grpc::Status s = stub->GetOrganisation(&ctx, req, &org);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  for (int i = 0; i < 100 && !fake_.slow_cancelled_.load(); ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(fake_.slow_cancelled_.load());
}

TEST_F(GatewayTest, GrpcProxyPropagatesCancellation) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(proxy_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = mv1::OrganisationService::NewStub(channel);
  grpc::ClientContext ctx;
  std::thread canceller([&ctx] {
    absl::SleepFor(absl::Milliseconds(100));
    ctx.TryCancel();
  });
  mv1::GetOrganisationRequest req;
  req.set_org_code("slow");
  mv1::Organisation org;
  grpc::Status s = stub->GetOrganisation(&ctx, req, &org);
  canceller.join();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 100 && !fake_.slow_cancelled_.load(); ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(fake_.slow_cancelled_.load());
}

// The bodies held at once are bounded across connections: past the budget a request is answered
// 503 with Retry-After before its body is read, and served again once a held one is answered.
TEST(HttpServerBudget, RequestBodiesHeldAtOnceAreBounded) {
  std::mutex mu;
  std::vector<std::shared_ptr<HttpExchange>> held;
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.body_limit = 1000;
  options.body_budget = 3000;  // one 1,000-byte body (counted twice) fits, two do not
  std::atomic<int> refused{0};
  options.on_body_budget_refused = [&] { ++refused; };
  HttpServer server(options, [&](std::shared_ptr<HttpExchange> ex) {
    if (ex->request().target == "/hold") {
      std::lock_guard lock(mu);
      held.push_back(std::move(ex));
      return;
    }
    HttpResponse r;
    r.body = "ok " + std::to_string(ex->request().body.size());
    ex->Reply(std::move(r));
  });
  auto port = server.Start();
  ASSERT_TRUE(port.ok());
  auto post = [&](const std::string& target, size_t bytes) {
    net::io_context ioc;
    net::ip::tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(*port)});
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, "localhost");
    req.body() = std::string(bytes, 'x');
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(socket, buffer, res, ec);
    return std::make_pair(static_cast<int>(res.result_int()), std::string(res[http::field::retry_after]));
  };
  std::pair<int, std::string> first;
  std::thread holder([&] { first = post("/hold", 1000); });
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mu);
      if (!held.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto second = post("/echo", 1000);
  EXPECT_EQ(second.first, 503);
  EXPECT_EQ(second.second, "1");
  EXPECT_EQ(refused.load(), 1);
  EXPECT_EQ(post("/echo", 0).first, 200);  // no body: nothing to hold
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(held.size(), 1u);
    HttpResponse r;
    r.body = "released";
    held[0]->Reply(std::move(r));
    held.clear();
  }
  holder.join();
  EXPECT_EQ(first.first, 200);
  EXPECT_EQ(post("/echo", 1000).first, 200);  // the budget came back
  server.Shutdown(absl::Seconds(1));
}

TEST(GatewayHelpers, GrpcTimeoutAndRequestId) {
  absl::Duration d;
  EXPECT_TRUE(ParseGrpcTimeout("5S", &d));
  EXPECT_EQ(d, absl::Seconds(5));
  EXPECT_TRUE(ParseGrpcTimeout("250m", &d));
  EXPECT_EQ(d, absl::Milliseconds(250));
  EXPECT_FALSE(ParseGrpcTimeout("5", &d));
  EXPECT_FALSE(ParseGrpcTimeout("-5S", &d));
  EXPECT_FALSE(ParseGrpcTimeout("5X", &d));
  HttpRequest req;
  req.headers = {{"x-request-id", "abc-1"}};
  EXPECT_EQ(RequestIdFor(req), "abc-1");
  req.headers = {{"x-request-id", "has space"}};
  EXPECT_NE(RequestIdFor(req), "has space");
  req.headers = {{"x-request-id", std::string(200, 'a')}};
  EXPECT_EQ(RequestIdFor(req).size(), 16u);
}

}  // namespace
}  // namespace grassroots::gateway
