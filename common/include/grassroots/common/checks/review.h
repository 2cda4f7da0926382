#pragma once
// The review of a check's findings, the same for every check of the suite: the states, the
// transitions allowed (written here once), and the decision as its history keeps it. Pure: no
// database (review_repository.h stores it).
//
//   open -> confirmed                (an anomaly: someone must act)
//   open -> dismissed                (no anomaly; a reason is required)
//   confirmed -> resolved            (acted on)
//   confirmed | dismissed | resolved -> open   (reopened; a reason is required)
//
// Anything else is FAILED_PRECONDITION naming the rule REVIEW_TRANSITION (a decision that
// changes nothing, such as confirming a confirmed finding, included).

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace grassroots::common::checks {

enum class ReviewState { kOpen, kConfirmed, kDismissed, kResolved };

std::string_view ReviewStateName(ReviewState state);
std::optional<ReviewState> ParseReviewState(std::string_view name);

// One decision, as kept.
struct ReviewDecision {
  std::string finding_id;
  ReviewState from = ReviewState::kOpen;
  ReviewState to = ReviewState::kOpen;
  std::string reason;
  std::string reviewer;  // the caller's identity
  absl::Time decided_at;
};

// Checks a decision from `from` to `to` with `reason` (INVALID_ARGUMENT naming reason when one
// is required and blank or too long; FAILED_PRECONDITION naming REVIEW_TRANSITION when the
// transition is not allowed). `reviewer` must be a non-blank identity (INVALID_ARGUMENT naming
// reviewer otherwise: until authentication lands, a caller that sends none is refused).
absl::Status CheckReview(ReviewState from, ReviewState to, std::string_view reason, std::string_view reviewer);

// "open, confirmed, dismissed or resolved": for messages.
constexpr std::string_view kReviewStatesText = "open, confirmed, dismissed or resolved";

}  // namespace grassroots::common::checks
