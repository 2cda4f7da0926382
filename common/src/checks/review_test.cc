#include "grassroots/common/checks/review.h"

#include <gtest/gtest.h>

#include <set>

namespace grassroots::common::checks {
namespace {

using S = ReviewState;

TEST(ReviewTest, TheTransitionsAllowedAreExactlyTheWrittenOnes) {
  const S all[] = {S::kOpen, S::kConfirmed, S::kDismissed, S::kResolved};
  std::set<std::pair<S, S>> allowed;
  for (S from : all) {
    for (S to : all) {
      absl::Status s = CheckReview(from, to, "because", "zhang");
      if (s.ok()) {
        allowed.insert({from, to});
      } else {
        EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
        EXPECT_NE(s.message().find("REVIEW_TRANSITION"), std::string_view::npos) << s;
      }
    }
  }
  EXPECT_EQ(allowed, (std::set<std::pair<S, S>>{{S::kOpen, S::kConfirmed},
                                                 {S::kOpen, S::kDismissed},
                                                 {S::kConfirmed, S::kResolved},
                                                 {S::kConfirmed, S::kOpen},
                                                 {S::kDismissed, S::kOpen},
                                                 {S::kResolved, S::kOpen}}));
}

TEST(ReviewTest, DismissingAndReopeningNeedAReasonAndEveryDecisionAReviewer) {
  EXPECT_EQ(CheckReview(S::kOpen, S::kDismissed, "  ", "zhang").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckReview(S::kResolved, S::kOpen, "", "zhang").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckReview(S::kOpen, S::kConfirmed, "", "zhang").ok());
  EXPECT_EQ(CheckReview(S::kOpen, S::kConfirmed, "", " ").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckReview(S::kOpen, S::kConfirmed, std::string(501, 'x'), "zhang").code(),
            absl::StatusCode::kInvalidArgument);
  // A refused transition is refused whatever the reason says.
  EXPECT_EQ(CheckReview(S::kOpen, S::kResolved, "fixed", "zhang").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ReviewTest, StatesReadBackByName) {
  for (S s : {S::kOpen, S::kConfirmed, S::kDismissed, S::kResolved}) EXPECT_EQ(ParseReviewState(ReviewStateName(s)), s);
  EXPECT_EQ(ParseReviewState("Open"), std::nullopt);
  EXPECT_EQ(ParseReviewState(""), std::nullopt);
}

}  // namespace
}  // namespace grassroots::common::checks
