// cadrepay: subsidy programmes, rolls, payments and the direct-subsidy disbursement checks.
#include <malloc.h>

#include <algorithm>

#include "absl/flags/flag.h"
#include "check_scheduler.h"
#include "disbursement_grpc.h"
#include "disbursement_logic.h"
#include "grassroots/common/log.h"
#include "grassroots/common/pii.h"
#include "grassroots/common/service_main.h"
#include "kinship_source.h"
#include "membership_kinship.h"
#include "organisation_tree.h"

ABSL_FLAG(int, check_interval_seconds, 300,
          "how often the scheduler looks for batches due for a disbursement check (0 disables it)");
ABSL_FLAG(std::string, membership_addr, "",
          "membership service host:port, asked for the recorded kin of village cadres (CADRE_KIN) and for the "
          "organisations under an organisation (rolls by village subtree); empty: none, every run with cadres "
          "warns that their kin were not checked, and a roll covers the one organisation named");
ABSL_FLAG(int, membership_timeout_ms, 10000, "deadline of each call to membership");
ABSL_FLAG(int64_t, person_cache_entries,
          static_cast<int64_t>(grassroots::cadrepay::DisbursementLogic::kDefaultPersonCacheEntries),
          "committed person numbers kept in memory for the ingests (about 30 bytes each; 0 disables the cache)");

namespace grassroots::generated {
const std::vector<common::Migration>& cadrepay_migrations();
}

int main(int argc, char** argv) {
  using namespace grassroots;
  // Every allocation of 1 MiB or more is mapped on its own and goes back to the system when freed.
  // By default glibc raises this threshold after each such free (up to 32 MiB), so the blocks,
  // arenas and sort buffers of a check would land in the heap and stay resident beside the next
  // run's: a province's check held its input twice (2.3 GB at 5M recipients; repeated checks at
  // 500k grew 182 -> 242 -> 338 MB).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  common::ServiceSpec spec;
  spec.name = "cadrepay";
  spec.migrations = &generated::cadrepay_migrations();
  spec.build = [](common::ConnectionPool& pool, prometheus::Registry& registry) {
    common::ServiceParts parts;
    auto pii = common::PiiProtector::FromFlags();
    if (!pii.ok()) {
      common::LogError("cannot start", {{"error", std::string(pii.status().message())}});
      std::exit(2);
    }
    auto protector = std::make_shared<common::PiiProtector>(*pii);
    std::shared_ptr<cadrepay::KinshipSource> kinship;
    std::shared_ptr<cadrepay::OrganisationTree> tree;
    if (const std::string membership = absl::GetFlag(FLAGS_membership_addr); !membership.empty()) {
      common::PeerClientOptions peer_options;
      peer_options.call_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_membership_timeout_ms));
      auto peer = std::make_shared<common::PeerClient>("membership", common::PeerChannel(membership), &registry,
                                                       peer_options);
      kinship = std::make_shared<cadrepay::MembershipKinship>(cadrepay::GrpcListKinOfPersons(peer), membership);
      tree = std::make_shared<cadrepay::MembershipOrganisationTree>(
          cadrepay::GrpcListSubtree(peer), membership, cadrepay::MembershipOrganisationTree::Options(),
          cadrepay::GrpcWatchChanges(peer));
    } else {
      common::LogWarning(
          "no --membership_addr: CADRE_KIN runs without cadres' recorded kin, and says so; reads by village subtree "
          "cover the one organisation named");
      kinship = std::make_shared<cadrepay::NoKinshipRecords>();
      tree = std::make_shared<cadrepay::SingleOrganisation>();
    }
    const int64_t person_cache = absl::GetFlag(FLAGS_person_cache_entries);
    auto logic = std::make_shared<cadrepay::DisbursementLogic>(
        pool, *protector, *kinship, &registry, nullptr, static_cast<size_t>(std::max<int64_t>(0, person_cache)),
        tree.get());
    auto grpc = std::make_shared<cadrepay::DisbursementGrpc>(*logic);
    parts.services.push_back(grpc.get());
    const int interval = absl::GetFlag(FLAGS_check_interval_seconds);
    if (interval > 0) {
      auto scheduler = std::make_shared<cadrepay::CheckScheduler>(*logic, absl::Seconds(interval), &pool);
      parts.start = [scheduler] { scheduler->Start(); };
      parts.stop = [scheduler] { scheduler->Stop(); };
      parts.owned.push_back(scheduler);
    }
    parts.owned.insert(parts.owned.end(), {protector, kinship, tree, logic, grpc});
    return parts;
  };
  return common::RunServiceMain(argc, argv, spec);
}
