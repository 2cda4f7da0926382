// membership: party organisations and their members.
#include <condition_variable>
#include <mutex>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/flags/flag.h"
#include "grassroots/common/log.h"
#include "grassroots/common/pii.h"
#include "grassroots/common/checks/scheduler.h"
#include "grassroots/common/service_main.h"
#include "change_feed.h"
#include "member_cache.h"
#include "member_grpc.h"
#include "member_logic.h"
#include "organisation_grpc.h"
#include "organisation_logic.h"

ABSL_FLAG(int, member_cache_mb, 128,
          "memory for the GetMember cache of current member records (0 disables it)");
ABSL_FLAG(int, member_cache_refresh_ms, 200,
          "how often the member cache follows the change feed for other replicas' writes");
ABSL_FLAG(int, member_cache_max_stale_ms, 2000,
          "the member cache is bypassed while its last successful follow is older than this");

namespace grassroots::generated {
const std::vector<common::Migration>& membership_migrations();
}

namespace {

// The member cache's figures as Prometheus series, brought up to date after each follow.
class MemberCacheMetrics final {
 public:
  MemberCacheMetrics(const grassroots::membership::MemberCache& cache, prometheus::Registry& registry)
      : cache_(cache) {
    auto& lookups = prometheus::BuildCounter()
                        .Name("grassroots_membership_member_cache_lookups_total")
                        .Help("GetMember cache lookups by result (bypass: the cache was not fresh enough to use)")
                        .Register(registry);
    hits_ = &lookups.Add({{"result", "hit"}});
    misses_ = &lookups.Add({{"result", "miss"}});
    bypassed_ = &lookups.Add({{"result", "bypass"}});
    invalidations_ = &prometheus::BuildCounter()
                          .Name("grassroots_membership_member_cache_invalidations_total")
                          .Help("Members dropped from the cache because they changed")
                          .Register(registry)
                          .Add({});
    evictions_ = &prometheus::BuildCounter()
                      .Name("grassroots_membership_member_cache_evictions_total")
                      .Help("Members dropped from the cache to stay within its memory")
                      .Register(registry)
                      .Add({});
    entries_ = &prometheus::BuildGauge()
                    .Name("grassroots_membership_member_cache_entries")
                    .Help("Members held in the cache")
                    .Register(registry)
                    .Add({});
    bytes_ = &prometheus::BuildGauge()
                  .Name("grassroots_membership_member_cache_bytes")
                  .Help("Estimated memory held by the cache's entries")
                  .Register(registry)
                  .Add({});
  }
  void Update() {
    const auto now = cache_.stats();
    hits_->Increment(static_cast<double>(now.hits - last_.hits));
    misses_->Increment(static_cast<double>(now.misses - last_.misses));
    bypassed_->Increment(static_cast<double>(now.bypassed - last_.bypassed));
    invalidations_->Increment(static_cast<double>(now.invalidations - last_.invalidations));
    evictions_->Increment(static_cast<double>(now.evictions - last_.evictions));
    entries_->Set(static_cast<double>(now.entries));
    bytes_->Set(static_cast<double>(now.bytes));
    last_ = now;
  }

 private:
  const grassroots::membership::MemberCache& cache_;
  grassroots::membership::MemberCache::Stats last_;
  prometheus::Counter *hits_, *misses_, *bypassed_, *invalidations_, *evictions_;
  prometheus::Gauge *entries_, *bytes_;
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
      common::LogError("cannot start", {{"error", std::string(pii.status().message())}});
      std::exit(2);
    }
    auto org_logic = std::make_shared<membership::OrganisationLogic>(pool);
    auto org_grpc = std::make_shared<membership::OrganisationGrpc>(*org_logic);
    auto member_logic = std::make_shared<membership::MemberLogic>(pool, *std::move(pii));
    auto cache = std::make_shared<membership::MemberCache>(membership::MemberCache::Options{
        static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_member_cache_mb))) << 20,
        absl::Milliseconds(absl::GetFlag(FLAGS_member_cache_max_stale_ms))});
    member_logic->AttachCache(cache.get());
    auto cache_metrics = std::make_shared<MemberCacheMetrics>(*cache, registry);
    auto follower = std::make_shared<membership::MemberCacheFollower>(
        pool, *cache, absl::Milliseconds(std::max(10, absl::GetFlag(FLAGS_member_cache_refresh_ms))),
        [m = cache_metrics.get()] { m->Update(); });
    auto feed = std::make_shared<membership::ChangeFeed>(pool);
    auto member_grpc = std::make_shared<membership::MemberGrpc>(*member_logic, *feed);
    auto& gauge = prometheus::BuildGauge()
                      .Name("grassroots_membership_overdue_probations")
                      .Help("Probationary members whose probation ended without a decision (last daily run)")
                      .Register(registry)
                      .Add({});
    // The daily date-rule run: counts probationary members whose probation (plus extension)
    // ended without a decision; a gauge and a log line (a count only, never who). Shortly after
    // start, then once a day.
    auto scheduler = std::make_shared<common::checks::PeriodicTask>(
        "membership_overdue_probations", absl::Seconds(10), absl::Hours(24), [logic = member_logic.get(), &gauge] {
          auto n = logic->CountOverdue(absl::Now() + absl::Seconds(60));
          if (n.ok()) {
            gauge.Set(static_cast<double>(*n));
            common::LogInfo("date-rule run: overdue probations", {{"count", *n}});
          } else {
            common::LogWarning("date-rule run failed", {{"error", n.status().ToString()}});
          }
        });
    parts.services = {org_grpc.get(), member_grpc.get()};
    // Destroyed in reverse: the follower and the logic go before the cache they use.
    parts.owned = {cache, cache_metrics, org_logic, org_grpc, member_logic, follower, feed, member_grpc, scheduler};
    parts.start = [s = scheduler.get(), f = follower.get()] {
      s->Start();
      f->Start();
    };
    parts.stop = [s = scheduler.get(), f = follower.get()] {
      f->Stop();
      s->Stop();
    };
    return parts;
  };
  return common::RunServiceMain(argc, argv, spec);
}
