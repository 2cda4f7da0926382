#include "grassroots/common/checks/review.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"

namespace grassroots::common::checks {

std::string_view ReviewStateName(ReviewState state) {
  switch (state) {
    case ReviewState::kOpen: return "open";
    case ReviewState::kConfirmed: return "confirmed";
    case ReviewState::kDismissed: return "dismissed";
    case ReviewState::kResolved: return "resolved";
  }
  return "open";
}

std::optional<ReviewState> ParseReviewState(std::string_view name) {
  for (ReviewState s : {ReviewState::kOpen, ReviewState::kConfirmed, ReviewState::kDismissed, ReviewState::kResolved}) {
    if (name == ReviewStateName(s)) return s;
  }
  return std::nullopt;
}

namespace {

bool Allowed(ReviewState from, ReviewState to) {
  switch (from) {
    case ReviewState::kOpen: return to == ReviewState::kConfirmed || to == ReviewState::kDismissed;
    case ReviewState::kConfirmed: return to == ReviewState::kResolved || to == ReviewState::kOpen;
    case ReviewState::kDismissed: return to == ReviewState::kOpen;
    case ReviewState::kResolved: return to == ReviewState::kOpen;
  }
  return false;
}

bool NeedsReason(ReviewState to) { return to == ReviewState::kDismissed || to == ReviewState::kOpen; }

}  // namespace

absl::Status CheckReview(ReviewState from, ReviewState to, std::string_view reason, std::string_view reviewer) {
  const int64_t reason_length = Utf8Length(reason);
  if (reason_length < 0 || reason_length > 500) {
    return InvalidField("reason", "must be UTF-8 text of at most 500 characters");
  }
  if (NeedsReason(to) && absl::StripAsciiWhitespace(absl::string_view(reason.data(), reason.size())).empty()) {
    return InvalidField("reason", to == ReviewState::kOpen ? "is required when reopening a finding (blank is no reason)"
                                                           : "is required when dismissing a finding (blank is no reason)");
  }
  const int64_t reviewer_length = Utf8Length(reviewer);
  if (absl::StripAsciiWhitespace(absl::string_view(reviewer.data(), reviewer.size())).empty() || reviewer_length < 0 || reviewer_length > 100) {
    return InvalidField("reviewer", "the caller's identity is required (metadata x-grassroots-principal)");
  }
  if (!Allowed(from, to)) {
    const char* hint = from == to                                                   ? "it is so already"
                       : from == ReviewState::kOpen && to == ReviewState::kResolved ? "confirm it first"
                                                                                    : "reopen it first";
    return absl::FailedPreconditionError(absl::StrCat("REVIEW_TRANSITION: a finding ", std::string(ReviewStateName(from)),
                                                      " cannot become ", std::string(ReviewStateName(to)), " (", hint,
                                                      ")"));
  }
  return absl::OkStatus();
}

}  // namespace grassroots::common::checks
