// MembershipOrganisationTree over a fake ListChildren (no server): the walk down the levels,
// paging, codes met twice, and what an unknown organisation or an unreachable registry gives.
#include "organisation_tree.h"

#include <gtest/gtest.h>

#include <map>

#include "absl/strings/str_cat.h"

namespace grassroots::cadrepay {
namespace {

namespace mv1 = membership::v1;

// The member registry's tree as parent -> children, answered in pages of `page` children.
class FakeTree {
 public:
  std::map<std::string, std::vector<std::string>> children;
  size_t page = 2;
  std::vector<std::string> asked;       // parent of each call
  int fail_from_call = -1;              // calls from this one on fail (0-based); -1 never
  absl::Status failure = absl::UnavailableError("failed to connect to all addresses");

  ListChildrenCall Call() {
    return [this](const mv1::ListChildrenRequest& request) -> absl::StatusOr<mv1::ListChildrenResponse> {
      const int call = static_cast<int>(asked.size());
      asked.push_back(request.org_code());
      if (fail_from_call >= 0 && call >= fail_from_call) return failure;
      auto it = children.find(request.org_code());
      if (it == children.end()) return absl::NotFoundError("org_code: no such organisation");
      size_t from = 0;
      if (!request.page_token().empty()) from = std::stoul(request.page_token());
      mv1::ListChildrenResponse response;
      for (size_t i = from; i < it->second.size() && i < from + page; ++i) {
        response.add_organisations()->set_org_code(it->second[i]);
      }
      if (from + page < it->second.size()) response.set_next_page_token(std::to_string(from + page));
      return response;
    };
  }
};

FakeTree County() {
  FakeTree t;
  t.children = {{"C", {"T1", "T2"}},
                {"T1", {"V3", "V1", "V2"}},
                {"T2", {"V4"}},
                {"V1", {}},
                {"V2", {}},
                {"V3", {}},
                {"V4", {}},
                {"X", {}}};
  return t;
}

TEST(MembershipOrganisationTree, WalksEveryLevelAndPageAndSortsTheCodes) {
  FakeTree t = County();
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("C");
  ASSERT_TRUE(codes.ok()) << codes.status();
  EXPECT_EQ(*codes, (std::vector<std::string>{"C", "T1", "T2", "V1", "V2", "V3", "V4"}));
  // C, T1 twice (three children in pages of two), T2, and each village once.
  EXPECT_EQ(t.asked.size(), 8u);
  auto township = tree.Subtree("T2");
  ASSERT_TRUE(township.ok());
  EXPECT_EQ(*township, (std::vector<std::string>{"T2", "V4"}));
  auto village = tree.Subtree("V1");
  ASSERT_TRUE(village.ok());
  EXPECT_EQ(*village, (std::vector<std::string>{"V1"}));
}

TEST(MembershipOrganisationTree, AnUnknownOrganisationIsNotFoundAndNamesTheField) {
  FakeTree t = County();
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("NOPE");
  EXPECT_EQ(codes.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(codes.status().message().find("org_code"), std::string::npos);
  EXPECT_NE(codes.status().message().find("NOPE"), std::string::npos);
}

TEST(MembershipOrganisationTree, AChildGoneMeanwhileHasNoChildrenAndACodeMetTwiceCountsOnce) {
  FakeTree t = County();
  t.children.erase("V2");             // listed under T1, deleted before it is asked about
  t.children["T2"].push_back("V1");   // moved while the walk runs: listed under both
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("C");
  ASSERT_TRUE(codes.ok()) << codes.status();
  EXPECT_EQ(*codes, (std::vector<std::string>{"C", "T1", "T2", "V1", "V2", "V3", "V4"}));
}

TEST(MembershipOrganisationTree, ACycleEnds) {
  FakeTree t;
  t.children = {{"A", {"B"}}, {"B", {"A"}}};
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("A");
  ASSERT_TRUE(codes.ok()) << codes.status();
  EXPECT_EQ(*codes, (std::vector<std::string>{"A", "B"}));
}

TEST(MembershipOrganisationTree, AnUnreachableRegistryIsUnavailableNeverAPartialSubtree) {
  FakeTree t = County();
  t.fail_from_call = 2;  // the root and T1's first page answer, then nothing does
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("C");
  EXPECT_EQ(codes.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(codes.status().message().find("membership at membership:1"), std::string::npos) << codes.status();
  t.asked.clear();
  t.failure = absl::PermissionDeniedError("no");
  t.fail_from_call = 0;
  EXPECT_EQ(tree.Subtree("C").status().code(), absl::StatusCode::kInternal);
}

TEST(MembershipOrganisationTree, ATreeLargerThanTheLimitIsRefused) {
  FakeTree t = County();
  MembershipOrganisationTree tree(t.Call(), "membership:1", /*max_organisations=*/4);
  EXPECT_EQ(tree.Subtree("C").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(tree.Subtree("T1").ok());  // 4 codes
}

TEST(MembershipOrganisationTree, KnownAsksOnceAndSaysNotFoundOrUnavailable) {
  FakeTree t = County();
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  EXPECT_TRUE(tree.Known("C").ok());
  EXPECT_EQ(t.asked.size(), 1u);
  EXPECT_EQ(tree.Known("NOPE").code(), absl::StatusCode::kNotFound);
  t.fail_from_call = 0;
  EXPECT_EQ(tree.Known("C").code(), absl::StatusCode::kUnavailable);
}

TEST(SingleOrganisation, IsTheOrganisationAlone) {
  SingleOrganisation tree;
  auto codes = tree.Subtree("V9");
  ASSERT_TRUE(codes.ok());
  EXPECT_EQ(*codes, (std::vector<std::string>{"V9"}));
  EXPECT_TRUE(tree.Known("V9").ok());
}

}  // namespace
}  // namespace grassroots::cadrepay
