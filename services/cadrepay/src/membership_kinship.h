#pragma once
// CADRE_KIN's kinship from the member registry: the recorded kin of a run's village cadres,
// asked of the membership service (MemberService.ListKinOfPersons) over gRPC in batches.
//
// What could not be looked up is never skipped silently: when membership cannot be reached or
// answers with an error, the run continues with the cadres' flags and households only and its
// warnings name the cadres whose kin were not checked (masked ID numbers), how many they are and
// why. After the first failed call no further call is made in that run (a peer that is down would
// otherwise cost one timeout per batch).
//
// The mapping (batching, answers to keys, warnings) is a plain class over a call function, so it
// is tested with a fake; GrpcListKinOfPersons makes the real call (common::PeerClient).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grassroots/common/peer_client.h"
#include "grassroots/membership/v1/members.pb.h"
#include "kinship_source.h"

namespace grassroots::cadrepay {

// One ListKinOfPersons call: membership's answer or the status the call ended with.
using ListKinOfPersonsCall = std::function<absl::StatusOr<membership::v1::ListKinOfPersonsResponse>(
    const membership::v1::ListKinOfPersonsRequest&)>;

class MembershipKinship final : public KinshipSource {
 public:
  // The RPC's limit of persons per call.
  static constexpr int kMaxPersonsPerCall = 1000;
  // At most this many cadres are named (masked) in a warning; the rest are counted.
  static constexpr size_t kNamedInWarning = 20;

  // `target` names membership in warnings ("membership at host:port"); `batch_size` persons per
  // call, 1 to kMaxPersonsPerCall.
  MembershipKinship(ListKinOfPersonsCall call, std::string target, int batch_size = kMaxPersonsPerCall);

  // Never fails: a lookup that went wrong is a warning, the run goes on without those kin.
  absl::StatusOr<std::vector<PersonKey>> KinOfCadres(const std::vector<PersonKey>& cadres,
                                                     std::vector<std::string>& warnings) override;

 private:
  ListKinOfPersonsCall call_;
  std::string target_;
  int batch_size_;
};

// MemberService.ListKinOfPersons through `peer` (common::PeerClient: request id, retries of
// UNAVAILABLE, the peer's call timeout, metrics), with the personal-data right: the clear ID
// numbers of the kin are needed to match payments.
ListKinOfPersonsCall GrpcListKinOfPersons(std::shared_ptr<common::PeerClient> peer);

}  // namespace grassroots::cadrepay
