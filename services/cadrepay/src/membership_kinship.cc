#include "membership_kinship.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grassroots/common/log.h"
#include "grassroots/membership/v1/members.grpc.pb.h"

namespace grassroots::cadrepay {
namespace {

namespace mv1 = membership::v1;

// "3207**********123X, 3207**********456X (and 3 more)" for the cadres in [first, last).
std::string NameSome(std::vector<PersonKey>::const_iterator first, std::vector<PersonKey>::const_iterator last) {
  const size_t n = static_cast<size_t>(last - first);
  const size_t named = std::min(n, MembershipKinship::kNamedInWarning);
  std::vector<std::string> masked;
  masked.reserve(named);
  for (size_t i = 0; i < named; ++i) masked.push_back(MaskedIdNumberOf(first[static_cast<std::ptrdiff_t>(i)]));
  std::string out = absl::StrJoin(masked, ", ");
  if (n > named) absl::StrAppend(&out, " (and ", n - named, " more)");
  return out;
}

}  // namespace

MembershipKinship::MembershipKinship(ListKinOfPersonsCall call, std::string target, int batch_size)
    : call_(std::move(call)),
      target_(std::move(target)),
      batch_size_(std::clamp(batch_size, 1, kMaxPersonsPerCall)) {}

absl::StatusOr<std::vector<PersonKey>> MembershipKinship::KinOfCadres(const std::vector<PersonKey>& cadres,
                                                                      std::vector<std::string>& warnings) {
  std::vector<PersonKey> asked = cadres;
  std::sort(asked.begin(), asked.end());
  asked.erase(std::unique(asked.begin(), asked.end()), asked.end());

  std::vector<PersonKey> kin;
  std::vector<PersonKey> with_unreadable_kin;  // cadres with a relative whose number came back unusable
  int64_t unreadable = 0;
  int64_t members = 0;
  size_t done = 0;
  absl::Status failure;
  while (done < asked.size()) {
    const size_t end = std::min(asked.size(), done + static_cast<size_t>(batch_size_));
    mv1::ListKinOfPersonsRequest request;
    for (size_t i = done; i < end; ++i) request.add_id_numbers(IdNumberOf(asked[i]));
    auto response = call_(request);
    if (response.ok() && response->persons_size() != request.id_numbers_size()) {
      response = absl::InternalError(absl::StrCat("membership answered about ", response->persons_size(),
                                                  " persons for ", request.id_numbers_size(), " asked"));
    }
    if (!response.ok()) {
      failure = response.status();
      break;
    }
    for (int i = 0; i < response->persons_size(); ++i) {
      const mv1::PersonKin& person = response->persons(i);
      members += person.is_member();
      bool unusable = false;
      for (const mv1::KinOfPerson& k : person.kin()) {
        // A masked number (no right, or one membership cannot decrypt) names nobody here.
        if (auto key = PersonKeyOf(k.id_number()); key) {
          kin.push_back(*key);
        } else {
          ++unreadable;
          unusable = true;
        }
      }
      if (unusable) with_unreadable_kin.push_back(asked[done + static_cast<size_t>(i)]);
    }
    done = end;
  }
  std::sort(kin.begin(), kin.end());
  kin.erase(std::unique(kin.begin(), kin.end()), kin.end());

  if (!failure.ok()) {
    const size_t missed = asked.size() - done;
    warnings.push_back(absl::StrCat(
        "CADRE_KIN: the member registry (membership at ", target_, ") could not be asked for the recorded kin of ",
        missed, " of ", asked.size(), " cadres (", absl::StatusCodeToString(failure.code()), ": ", failure.message(),
        "); payments to those cadres' recorded kin outside their households were not checked (for them the rule "
        "used cadre flags and households only). Cadres not checked: ",
        NameSome(asked.begin() + static_cast<std::ptrdiff_t>(done), asked.end())));
    common::LogWarning("kinship lookup failed; CADRE_KIN ran without recorded kin for some cadres",
                       {{"target", target_},
                        {"code", absl::StatusCodeToString(failure.code())},
                        {"cadres_not_checked", static_cast<int64_t>(missed)},
                        {"cadres", static_cast<int64_t>(asked.size())}});
  }
  if (unreadable > 0) {
    warnings.push_back(absl::StrCat(
        "CADRE_KIN: the member registry (membership at ", target_, ") returned ", unreadable,
        " recorded kin without a readable ID number (masked: no personal-data right, or membership cannot decrypt "
        "them); payments to those relatives were not checked. Cadres concerned: ",
        NameSome(with_unreadable_kin.begin(), with_unreadable_kin.end())));
  }
  common::LogInfo("kinship lookup", {{"target", target_},
                                     {"cadres", static_cast<int64_t>(asked.size())},
                                     {"cadres_asked", static_cast<int64_t>(done)},
                                     {"cadres_in_registry", members},
                                     {"kin", static_cast<int64_t>(kin.size())}});
  return kin;
}

ListKinOfPersonsCall GrpcListKinOfPersons(std::shared_ptr<common::PeerClient> peer) {
  std::shared_ptr<mv1::MemberService::Stub> stub = mv1::MemberService::NewStub(peer->channel());
  const std::string method = absl::StrCat("/", mv1::MemberService::service_full_name(), "/ListKinOfPersons");
  return [peer, stub, method](const mv1::ListKinOfPersonsRequest& request)
             -> absl::StatusOr<mv1::ListKinOfPersonsResponse> {
    common::CallOptions options;
    options.personal_data = true;
    return peer->Call(*stub, &mv1::MemberService::Stub::ListKinOfPersons, method, request, options);
  };
}

}  // namespace grassroots::cadrepay
