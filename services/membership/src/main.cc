// membership: party organisations and their members.
#include <condition_variable>
#include <mutex>
#include <thread>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "grassroots/common/log.h"
#include "grassroots/common/pii.h"
#include "grassroots/common/service_main.h"
#include "change_feed.h"
#include "member_grpc.h"
#include "member_logic.h"
#include "organisation_grpc.h"
#include "organisation_logic.h"

namespace grassroots::generated {
const std::vector<common::Migration>& membership_migrations();
}

namespace {

// The daily date-rule run: counts probationary members whose probation (plus extension) ended
// without a decision; exported as a gauge and logged (a count only, never who).
class OverdueScheduler final {
 public:
  OverdueScheduler(grassroots::membership::MemberLogic& logic, prometheus::Gauge& gauge)
      : logic_(logic), gauge_(gauge) {}
  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    // First run shortly after start, then once a day.
    auto next = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!stop_) {
      if (cv_.wait_until(lock, next, [this] { return stop_; })) break;
      lock.unlock();
      auto n = logic_.CountOverdue(absl::Now() + absl::Seconds(60));
      if (n.ok()) {
        gauge_.Set(static_cast<double>(*n));
        grassroots::common::LogInfo("date-rule run: overdue probations", {{"count", *n}});
      } else {
        grassroots::common::LogWarning("date-rule run failed", {{"error", n.status().ToString()}});
      }
      lock.lock();
      next = std::chrono::steady_clock::now() + std::chrono::hours(24);
    }
  }
  grassroots::membership::MemberLogic& logic_;
  prometheus::Gauge& gauge_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace grassroots;
  common::ServiceSpec spec;
  spec.name = "membership";
  spec.migrations = &generated::membership_migrations();
  spec.build = [](common::ConnectionPool& pool, prometheus::Registry& registry) {
    common::ServiceParts parts;
    auto pii = common::PiiProtector::FromFlags();
    if (!pii.ok()) {
      common::LogError("invalid --pii_key", {{"error", std::string(pii.status().message())}});
      std::exit(2);
    }
    auto org_logic = std::make_shared<membership::OrganisationLogic>(pool);
    auto org_grpc = std::make_shared<membership::OrganisationGrpc>(*org_logic);
    auto member_logic = std::make_shared<membership::MemberLogic>(pool, *std::move(pii));
    auto feed = std::make_shared<membership::ChangeFeed>(pool);
    auto member_grpc = std::make_shared<membership::MemberGrpc>(*member_logic, *feed);
    auto& gauge = prometheus::BuildGauge()
                      .Name("membership_overdue_probations")
                      .Help("Probationary members whose probation ended without a decision (last daily run)")
                      .Register(registry)
                      .Add({});
    auto scheduler = std::make_shared<OverdueScheduler>(*member_logic, gauge);
    parts.services = {org_grpc.get(), member_grpc.get()};
    parts.owned = {org_logic, org_grpc, member_logic, feed, member_grpc, scheduler};
    parts.start = [s = scheduler.get()] { s->Start(); };
    parts.stop = [s = scheduler.get()] { s->Stop(); };
    return parts;
  };
  return common::RunServiceMain(argc, argv, spec);
}
