// get_member_load: closed-loop load on MemberService.GetMember over real gRPC.
//
//   get_member_load --target HOST:PORT --ids FILE [--clients 8] [--seconds 20] [--warmup_seconds 3] [--pii]
//
// Each client has its own channel (its own TCP connection) and exactly one call in flight: when a
// call completes the next one, for a random id of FILE (one member_id a line), is issued at once.
// Asynchronous API on --threads completion queues, each drained by one thread that also issues
// its clients' next calls: no thread hand-off per call, so the generator's own cost stays small (the callback API
// cost 22 us of client CPU a call here). Calls completing during the measured window are counted; any status other
// than OK (or an answer for another member) is an error. The last line is machine-readable:
//   RESULT qps=... p50_ms=... p90_ms=... p99_ms=... max_ms=... calls=... errors=... client_cpu_s=...
// Exit status 1 when any call failed, 2 on bad usage.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "grassroots/membership/v1/members.grpc.pb.h"
#include "latency_summary.h"

ABSL_FLAG(std::string, target, "127.0.0.1:8091", "membership service HOST:PORT");
ABSL_FLAG(std::string, ids, "", "file of existing member ids, one a line");
ABSL_FLAG(int, clients, 8, "concurrent clients (channels), one call in flight each");
ABSL_FLAG(double, seconds, 20, "measured duration");
ABSL_FLAG(double, warmup_seconds, 3, "load before the measured window, not counted");
ABSL_FLAG(int, threads, 1, "completion queues, one thread each, the clients spread over them");
ABSL_FLAG(int, deadline_ms, 5000, "deadline of each call");
ABSL_FLAG(bool, pii, false, "send x-grassroots-pii: allow (clear ID numbers: the service decrypts)");

namespace {

namespace v1 = grassroots::membership::v1;
using Clock = std::chrono::steady_clock;

enum Phase { kWarmup = 0, kMeasure = 1, kStop = 2 };

struct Shared {
  std::vector<int64_t> ids;
  std::atomic<int> phase{kWarmup};
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;  // clients with a call in flight
  std::chrono::milliseconds deadline;
  bool pii = false;
};

class Client {
 public:
  Client(Shared& shared, std::shared_ptr<grpc::Channel> channel, grpc::CompletionQueue* cq, uint64_t seed)
      : shared_(shared), stub_(v1::MemberService::NewStub(channel)), cq_(cq), rng_(seed) {
    latencies_us_.reserve(1 << 18);
  }

  void Issue() {
    if (shared_.phase.load(std::memory_order_acquire) == kStop) {
      std::lock_guard<std::mutex> lock(shared_.mu);
      if (--shared_.running == 0) shared_.cv.notify_all();
      return;
    }
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(std::chrono::system_clock::now() + shared_.deadline);
    if (shared_.pii) context_->AddMetadata("x-grassroots-pii", "allow");
    request_.set_member_id(shared_.ids[rng_() % shared_.ids.size()]);
    response_.Clear();
    sent_ = Clock::now();
    reader_ = stub_->AsyncGetMember(context_.get(), request_, cq_);
    reader_->Finish(&response_, &status_, this);
  }
  // The call issued last completed (the completion queue returned this client as its tag).
  void Done() { Done(status_); }

  const std::vector<uint32_t>& latencies_us() const { return latencies_us_; }
  int64_t calls() const { return calls_; }
  int64_t errors() const { return errors_; }
  const std::map<std::string, int64_t>& error_kinds() const { return error_kinds_; }

 private:
  void Done(const grpc::Status& status) {
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent_).count();
    const bool measured = shared_.phase.load(std::memory_order_acquire) == kMeasure;
    std::string error;
    if (!status.ok()) {
      error = std::to_string(static_cast<int>(status.error_code())) + " " + status.error_message();
    } else if (response_.member_id() != request_.member_id()) {
      error = "answer for another member";
    }
    if (!error.empty()) {
      ++errors_;  // counted in every phase: no call may fail
      ++error_kinds_[error.substr(0, 120)];
    }
    if (measured) {
      ++calls_;
      latencies_us_.push_back(static_cast<uint32_t>(std::min<int64_t>(took, UINT32_MAX)));
    }
    Issue();
  }

  Shared& shared_;
  std::unique_ptr<v1::MemberService::Stub> stub_;
  grpc::CompletionQueue* cq_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Member>> reader_;
  grpc::Status status_;
  std::mt19937_64 rng_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::GetMemberRequest request_;
  v1::Member response_;
  Clock::time_point sent_;
  std::vector<uint32_t> latencies_us_;
  int64_t calls_ = 0;
  int64_t errors_ = 0;
  std::map<std::string, int64_t> error_kinds_;
};

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("closed-loop GetMember load: --target HOST:PORT --ids FILE");
  absl::ParseCommandLine(argc, argv);
  Shared shared;
  shared.deadline = std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  shared.pii = absl::GetFlag(FLAGS_pii);
  {
    std::ifstream in(absl::GetFlag(FLAGS_ids));
    int64_t id = 0;
    while (in >> id) shared.ids.push_back(id);
  }
  const int n = absl::GetFlag(FLAGS_clients);
  if (shared.ids.empty() || n < 1) {
    std::fprintf(stderr, "get_member_load: need --ids FILE with at least one member id and --clients >= 1\n");
    return 2;
  }

  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs(std::max(1, absl::GetFlag(FLAGS_threads)));
  for (auto& cq : cqs) cq = std::make_unique<grpc::CompletionQueue>();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own per client
    auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
      std::fprintf(stderr, "get_member_load: cannot connect to %s\n", absl::GetFlag(FLAGS_target).c_str());
      return 1;
    }
    clients.push_back(
        std::make_unique<Client>(shared, channel, cqs[i % cqs.size()].get(), 0x9e3779b97f4a7c15ULL * (i + 1)));
  }

  shared.running = n;
  for (auto& c : clients) c->Issue();
  std::vector<std::thread> drivers;
  for (auto& cq : cqs) {
    drivers.emplace_back([q = cq.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<Client*>(tag)->Done();
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup_seconds)));
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  shared.phase.store(kMeasure, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  shared.phase.store(kStop, std::memory_order_release);
  const auto t1 = Clock::now();
  const double cpu1 = CpuSeconds();
  {
    std::unique_lock<std::mutex> lock(shared.mu);
    shared.cv.wait(lock, [&] { return shared.running == 0; });
  }
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& t : drivers) t.join();

  std::vector<uint32_t> all;
  int64_t calls = 0, errors = 0;
  std::map<std::string, int64_t> kinds;
  for (const auto& c : clients) {
    all.insert(all.end(), c->latencies_us().begin(), c->latencies_us().end());
    calls += c->calls();
    errors += c->errors();
    for (const auto& [k, v] : c->error_kinds()) kinds[k] += v;
  }
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  const auto s = grassroots::bench::Summarise(std::move(all));
  for (const auto& [k, v] : kinds) std::fprintf(stderr, "error x%lld: %s\n", static_cast<long long>(v), k.c_str());
  std::printf("RESULT qps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f calls=%lld errors=%lld client_cpu_s=%.2f\n",
              static_cast<double>(calls) / secs, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, static_cast<long long>(calls),
              static_cast<long long>(errors), cpu1 - cpu0);
  return errors == 0 ? 0 : 1;
}
