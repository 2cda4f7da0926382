#include "grpc_proxy.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <google/protobuf/descriptor.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/client_callback.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grassroots/common/log.h"
#include "grassroots/common/server.h"

namespace grassroots::gateway {
namespace {

std::string_view View(const grpc::string_ref& s) { return std::string_view(s.data(), s.size()); }

// Metadata a proxy must not copy: pseudo-headers, gRPC's own, and hop-by-hop headers.
bool IsRelayedMetadata(std::string_view key) {
  if (key.empty() || key[0] == ':' || key.starts_with("grpc-")) return false;
  return key != "te" && key != "content-type" && key != "user-agent" && key != "host" &&
         key != "accept-encoding" && key != "connection" && key != "x-request-id";
}

// One proxied call. Two chains of operations run side by side, each one operation at a
// time: W (caller -> backend: server read, client write, server read, ...) and R (backend ->
// caller: client read, server write, client read, ...). Both start client operations from
// outside the client's reactions, so each holds the client stream (a hold) until it ends.
// The object deletes itself when both the server and client sides are done.
class ProxyCall final : public grpc::ServerGenericBidiReactor {
 public:
  ProxyCall(grpc::GenericCallbackServerContext* ctx, const Backends* backends,
            GatewayMetrics* metrics, CallPolicy policy)
      : ctx_(ctx), metrics_(metrics), start_(absl::Now()), client_(this) {
    metrics_->ProxyCallStarted();
    const std::string& method = ctx->method();
    const Backends::Backend* backend = backends->ForMethod(method);
    if (backend == nullptr) {
      backend_name_ = "unknown";
      FinishServer(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                absl::StrCat("unknown service for method ", method)));
      return;
    }
    backend_name_ = backend->config.name;
    if (backend->stub == nullptr) {
      FinishServer(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                absl::StrCat("backend ", backend->config.name,
                                             " is not configured (", backend->config.flag, ")")));
      return;
    }
    // Propagates the caller's deadline and cancellation.
    client_ctx_ = grpc::ClientContext::FromCallbackServerContext(*ctx);
    if (common::DeadlineOf(*ctx) == absl::InfiniteFuture()) {
      absl::Duration timeout = IsUnaryMethod(method) ? policy.unary_timeout : policy.stream_timeout;
      if (timeout > absl::ZeroDuration()) {
        client_ctx_->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
      }
    }
    for (const auto& [key, value] : ctx->client_metadata()) {
      std::string k(View(key));
      if (IsRelayedMetadata(k)) client_ctx_->AddMetadata(k, std::string(View(value)));
    }
    client_ctx_->AddMetadata("x-request-id", common::RequestIdOf(*ctx));

    pending_sides_.store(2);
    backend->stub->PrepareBidiStreamingCall(client_ctx_.get(), method, grpc::StubOptions(), &client_);
    client_.AddMultipleHolds(2);  // W and R
    w_state_ = WState::kServerRead;
    StartRead(&from_caller_);
    client_.StartCall();  // R starts once the backend's initial metadata is in
  }

  // --- Server side (caller). ---
  void OnReadDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (w_released_) return;  // the backend closed first: nothing more to relay
      // Either way W goes on using the client stream below, so it must keep its hold until it
      // has: a write is claimed by kClientWrite, the half-close by claiming the release here.
      // (Releasing after StartWritesDone let R, seeing kServerRead, release W's hold first:
      // the client call could then end and the whole call be deleted while StartWritesDone
      // ran on it -- the gateway's crash under load.)
      if (ok) {
        w_state_ = WState::kClientWrite;
      } else {
        w_released_ = true;
      }
    }
    if (ok) {
      metrics_->ProxyMessage(backend_name_, "to_backend");
      client_.StartWrite(&from_caller_);
    } else {
      client_.StartWritesDone();  // the caller half-closed (or went away)
      client_.RemoveHold();       // W ends
    }
  }

  void OnWriteDone(bool ok) override {
    if (ok) {
      client_.StartRead(&from_backend_);
      return;
    }
    client_ctx_->TryCancel();  // the caller is gone
    client_.RemoveHold();      // R ends
  }

  void OnCancel() override {
    if (client_ctx_ != nullptr) client_ctx_->TryCancel();
  }

  void OnDone() override { SideDone(); }

  // --- Client side (backend). ---
  void ClientInitialMetadataDone(bool ok) {
    if (!ok) {
      client_.RemoveHold();  // R ends; the status follows
      return;
    }
    for (const auto& [key, value] : client_ctx_->GetServerInitialMetadata()) {
      std::string k(View(key));
      if (IsRelayedMetadata(k)) ctx_->AddInitialMetadata(k, std::string(View(value)));
    }
    StartSendInitialMetadata();
    client_.StartRead(&from_backend_);
  }

  void ClientReadDone(bool ok) {
    if (ok) {
      metrics_->ProxyMessage(backend_name_, "to_caller");
      StartWrite(&from_backend_);
      return;
    }
    // The backend closed its stream; its status is on the way. Stop waiting on the caller.
    bool release_w = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      backend_closed_ = true;
      if (w_state_ == WState::kServerRead && !w_released_) {
        w_released_ = true;
        release_w = true;
      }
    }
    if (release_w) client_.RemoveHold();
    client_.RemoveHold();  // R ends
  }

  void ClientWriteDone(bool ok) {
    bool read_next = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ok && !backend_closed_) {
        w_state_ = WState::kServerRead;
        read_next = true;
      }
    }
    if (read_next) {
      StartRead(&from_caller_);
    } else {
      ReleaseW();
    }
  }

  void ClientDone(const grpc::Status& status) {
    for (const auto& [key, value] : client_ctx_->GetServerTrailingMetadata()) {
      std::string k(View(key));
      if (IsRelayedMetadata(k)) ctx_->AddTrailingMetadata(k, std::string(View(value)));
    }
    FinishServer(status);
    SideDone();
  }

 private:
  enum class WState { kServerRead, kClientWrite };

  class Client final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Client(ProxyCall* call) : call_(call) {}
    void OnReadInitialMetadataDone(bool ok) override { call_->ClientInitialMetadataDone(ok); }
    void OnReadDone(bool ok) override { call_->ClientReadDone(ok); }
    void OnWriteDone(bool ok) override { call_->ClientWriteDone(ok); }
    void OnDone(const grpc::Status& s) override { call_->ClientDone(s); }

   private:
    ProxyCall* call_;
  };

  void ReleaseW() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (w_released_) return;
      w_released_ = true;
    }
    client_.RemoveHold();
  }

  void FinishServer(const grpc::Status& status) {
    metrics_->ProxyCallDone(backend_name_, static_cast<int>(status.error_code()),
                            absl::Now() - start_);
    if (!status.ok()) {
      common::RequestScope scope(common::RequestIdOf(*ctx_));
      common::Log(status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                          status.error_code() == grpc::StatusCode::INTERNAL
                      ? common::LogLevel::kWarning
                      : common::LogLevel::kInfo,
                  "proxied call failed",
                  {{"method", common::MethodLabel(ctx_->method())},
                   {"backend", std::string_view(backend_name_)},
                   {"code", int64_t{static_cast<int>(status.error_code())}}});
    }
    Finish(status);
  }

  void SideDone() {
    if (pending_sides_.fetch_sub(1) == 1) delete this;
  }

  grpc::GenericCallbackServerContext* ctx_;
  GatewayMetrics* metrics_;
  absl::Time start_;
  std::string backend_name_;
  std::unique_ptr<grpc::ClientContext> client_ctx_;
  Client client_;
  grpc::ByteBuffer from_caller_;
  grpc::ByteBuffer from_backend_;
  std::atomic<int> pending_sides_{1};

  std::mutex mu_;
  WState w_state_ = WState::kServerRead;
  bool w_released_ = false;
  bool backend_closed_ = false;
};

}  // namespace

bool IsUnaryMethod(std::string_view rpc_path) {
  if (rpc_path.size() < 4 || rpc_path[0] != '/') return false;
  std::string name(rpc_path.substr(1));
  size_t slash = name.find('/');
  if (slash == std::string::npos) return false;
  name[slash] = '.';
  const auto* method = google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
  return method != nullptr && !method->client_streaming() && !method->server_streaming();
}

grpc::ServerGenericBidiReactor* GrpcProxy::CreateReactor(grpc::GenericCallbackServerContext* context) {
  return new ProxyCall(context, backends_, metrics_, policy_);
}

}  // namespace grassroots::gateway
