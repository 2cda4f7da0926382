// MembershipKinship over a fake call (no server): batching, answers to keys, and the warnings
// that say what was not checked; and GrpcListKinOfPersons against membership in this process.
#include "membership_kinship.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "grassroots/common/log.h"
#include "grassroots/common/server.h"
#include "grassroots/membership/v1/members.grpc.pb.h"

namespace grassroots::cadrepay {
namespace {

namespace mv1 = membership::v1;

// A valid resident ID number for `n` (17 digits and the GB 11643 check character).
std::string Id(int n) {
  static const int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  std::string s = absl::StrCat("32072319800101", 100 + n % 900);
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (s[i] - '0') * kWeights[i];
  return s + "10X98765432"[sum % 11];
}
PersonKey Key(int n) { return *PersonKeyOf(Id(n)); }

// The member registry as a map from ID number to the ID numbers of recorded kin (clear).
class FakeMembership {
 public:
  std::map<std::string, std::vector<std::string>> kin;
  std::vector<int> batch_sizes;  // persons asked per call
  int fail_from_call = -1;       // calls from this one on fail (0-based); -1 never
  absl::Status failure = absl::UnavailableError("failed to connect to all addresses");
  bool short_answer = false;     // answer one person fewer than asked

  ListKinOfPersonsCall Call() {
    return [this](const mv1::ListKinOfPersonsRequest& request) -> absl::StatusOr<mv1::ListKinOfPersonsResponse> {
      const int call = static_cast<int>(batch_sizes.size());
      batch_sizes.push_back(request.id_numbers_size());
      if (fail_from_call >= 0 && call >= fail_from_call) return failure;
      mv1::ListKinOfPersonsResponse response;
      for (const auto& id : request.id_numbers()) {
        auto* person = response.add_persons();
        auto it = kin.find(id);
        if (it == kin.end()) continue;
        person->set_is_member(true);
        for (const auto& k : it->second) {
          auto* x = person->add_kin();
          x->set_id_number(k);
          x->set_relation("sibling");
        }
      }
      if (short_answer) response.mutable_persons()->RemoveLast();
      return response;
    };
  }
};

TEST(MembershipKinshipTest, AsksInBatchesAndReturnsEveryRecordedRelativeOnce) {
  FakeMembership fake;
  fake.kin[Id(1)] = {Id(11), Id(12)};
  fake.kin[Id(2)] = {Id(12)};  // two cadres share a relative
  fake.kin[Id(5)] = {};        // a member with no recorded kin
  MembershipKinship kinship(fake.Call(), "membership:50051", 2);
  std::vector<std::string> warnings;
  // Unordered, with a repeat: each cadre is asked about once.
  auto kin = kinship.KinOfCadres({Key(5), Key(1), Key(3), Key(2), Key(1)}, warnings);
  ASSERT_TRUE(kin.ok()) << kin.status();
  EXPECT_EQ(*kin, (std::vector<PersonKey>{Key(11), Key(12)}));
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  EXPECT_EQ(fake.batch_sizes, (std::vector<int>{2, 2}));
}

TEST(MembershipKinshipTest, NoCadresNoCallNoWarning) {
  FakeMembership fake;
  fake.fail_from_call = 0;
  MembershipKinship kinship(fake.Call(), "membership:50051");
  std::vector<std::string> warnings;
  auto kin = kinship.KinOfCadres({}, warnings);
  ASSERT_TRUE(kin.ok());
  EXPECT_TRUE(kin->empty());
  EXPECT_TRUE(fake.batch_sizes.empty());
  EXPECT_TRUE(warnings.empty());
}

TEST(MembershipKinshipTest, UnreachableMembershipIsAWarningNamingTheCadresNotChecked) {
  FakeMembership fake;
  fake.kin[Id(1)] = {Id(11)};
  fake.fail_from_call = 1;  // the first batch is answered, then membership goes away
  MembershipKinship kinship(fake.Call(), "127.0.0.1:9", 2);
  std::vector<std::string> warnings;
  auto kin = kinship.KinOfCadres({Key(1), Key(2), Key(3), Key(4), Key(5)}, warnings);
  ASSERT_TRUE(kin.ok()) << kin.status();  // the run goes on
  EXPECT_EQ(*kin, std::vector<PersonKey>{Key(11)});
  EXPECT_EQ(fake.batch_sizes, (std::vector<int>{2, 2}));  // no call after the first failure
  ASSERT_EQ(warnings.size(), 1u);
  const std::string& w = warnings[0];
  EXPECT_NE(w.find("CADRE_KIN"), std::string::npos) << w;
  EXPECT_NE(w.find("membership at 127.0.0.1:9"), std::string::npos) << w;
  EXPECT_NE(w.find("3 of 5 cadres"), std::string::npos) << w;
  EXPECT_NE(w.find("UNAVAILABLE: failed to connect"), std::string::npos) << w;
  EXPECT_NE(w.find("not checked"), std::string::npos) << w;
  // The cadres not checked are named, masked; those that were checked are not named.
  for (int n : {3, 4, 5}) EXPECT_NE(w.find(MaskedIdNumberOf(Key(n))), std::string::npos) << w;
  for (int n : {1, 2}) EXPECT_EQ(w.find(MaskedIdNumberOf(Key(n))), std::string::npos) << w;
  for (int n : {1, 2, 3, 4, 5}) EXPECT_EQ(w.find(Id(n)), std::string::npos) << "a clear ID number in " << w;
}

TEST(MembershipKinshipTest, ManyCadresNotCheckedAreCountedBeyondTheNamedOnes) {
  FakeMembership fake;
  fake.fail_from_call = 0;
  fake.failure = absl::DeadlineExceededError("Deadline Exceeded");
  MembershipKinship kinship(fake.Call(), "membership:50051");
  std::vector<PersonKey> cadres;
  for (int n = 1; n <= 25; ++n) cadres.push_back(Key(n));
  std::vector<std::string> warnings;
  ASSERT_TRUE(kinship.KinOfCadres(cadres, warnings).ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("25 of 25 cadres (DEADLINE_EXCEEDED"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("(and 5 more)"), std::string::npos) << warnings[0];
  EXPECT_EQ(fake.batch_sizes, std::vector<int>{25});
}

TEST(MembershipKinshipTest, MaskedOrMalformedRelativesAreWarnedAbout) {
  FakeMembership fake;
  fake.kin[Id(1)] = {Id(11), "3207**********1234", ""};
  fake.kin[Id(2)] = {Id(12)};
  MembershipKinship kinship(fake.Call(), "membership:50051");
  std::vector<std::string> warnings;
  auto kin = kinship.KinOfCadres({Key(1), Key(2)}, warnings);
  ASSERT_TRUE(kin.ok());
  EXPECT_EQ(*kin, (std::vector<PersonKey>{Key(11), Key(12)}));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("returned 2 recorded kin without a readable ID number"), std::string::npos)
      << warnings[0];
  EXPECT_NE(warnings[0].find(MaskedIdNumberOf(Key(1))), std::string::npos) << warnings[0];
  EXPECT_EQ(warnings[0].find(MaskedIdNumberOf(Key(2))), std::string::npos) << warnings[0];
}

TEST(MembershipKinshipTest, AnAnswerOfTheWrongLengthIsAFailureNotAGuess) {
  FakeMembership fake;
  fake.kin[Id(1)] = {Id(11)};
  fake.short_answer = true;
  MembershipKinship kinship(fake.Call(), "membership:50051");
  std::vector<std::string> warnings;
  auto kin = kinship.KinOfCadres({Key(1), Key(2)}, warnings);
  ASSERT_TRUE(kin.ok());
  EXPECT_TRUE(kin->empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("2 of 2 cadres (INTERNAL: membership answered about 1 persons for 2 asked"),
            std::string::npos)
      << warnings[0];
}

// membership in this process (a server without a port): answers clear numbers only to a caller
// with the personal-data right, as membership does, and sheds its first call.
class InProcessMembers final : public mv1::MemberService::Service {
 public:
  grpc::Status ListKinOfPersons(grpc::ServerContext* ctx, const mv1::ListKinOfPersonsRequest* req,
                                mv1::ListKinOfPersonsResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    rights.push_back(common::MaySeePersonalData(*ctx));
    request_ids.push_back(common::RequestIdOf(*ctx));
    if (rights.size() == 1) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shedding load");
    for (int i = 0; i < req->id_numbers_size(); ++i) {
      auto* person = resp->add_persons();
      person->set_is_member(true);
      person->add_kin()->set_id_number(common::MaySeePersonalData(*ctx) ? Id(11) : "3207**********1234");
    }
    return grpc::Status::OK;
  }
  std::mutex mu;
  std::vector<bool> rights;
  std::vector<std::string> request_ids;
};

TEST(GrpcListKinOfPersonsTest, AsksWithThePersonalDataRightAndTheRequestIdAndRetriesUnavailable) {
  InProcessMembers members;
  grpc::ServerBuilder builder;
  builder.RegisterService(&members);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  common::PeerClientOptions po;
  po.retry.initial_backoff = absl::Milliseconds(1);
  auto peer = std::make_shared<common::PeerClient>("membership", server->InProcessChannel(grpc::ChannelArguments()),
                                                   nullptr, po);
  MembershipKinship kinship(GrpcListKinOfPersons(peer), "in-process");
  common::RequestScope scope("req-kin-1");
  std::vector<std::string> warnings;
  auto kin = kinship.KinOfCadres({Key(1), Key(2)}, warnings);
  ASSERT_TRUE(kin.ok()) << kin.status();
  EXPECT_EQ(*kin, std::vector<PersonKey>{Key(11)});
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  std::lock_guard<std::mutex> lock(members.mu);
  EXPECT_EQ(members.rights, (std::vector<bool>{true, true}));  // shed once, asked again
  EXPECT_EQ(members.request_ids, (std::vector<std::string>{"req-kin-1", "req-kin-1"}));
  server->Shutdown();
}

TEST(NoKinshipRecordsTest, WarnsWhenThereAreCadres) {
  NoKinshipRecords none;
  std::vector<std::string> warnings;
  ASSERT_TRUE(none.KinOfCadres({}, warnings).ok());
  EXPECT_TRUE(warnings.empty());
  auto kin = none.KinOfCadres({Key(1)}, warnings);
  ASSERT_TRUE(kin.ok());
  EXPECT_TRUE(kin->empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("--membership_addr"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace grassroots::cadrepay
