#pragma once
// Where a check's review decisions are kept, the same tables in every service's schema (created by
// the service's own migration):
//   finding_reviews (finding_id PK, state, reason, reviewed_by, reviewed_at): the last decision,
//     which listings join;
//   finding_review_history (finding_id, decided_at, from_state, to_state, reason, reviewer;
//     PK (finding_id, decided_at)): every decision, oldest first.
// SQL only, plus the one transaction that records a decision against the state it finds.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grassroots/common/checks/review.h"

namespace sql {
class Connection;
}

namespace grassroots::common::checks {

class ReviewStore final {
 public:
  // Records a decision on `finding_id` (which the caller has found to exist): reads its current
  // state under a lock (open when never reviewed), checks the transition (CheckReview), writes the
  // last decision and appends it to the history, in one transaction. Returns the decision.
  absl::StatusOr<ReviewDecision> Record(sql::Connection& conn, const std::string& finding_id, ReviewState to,
                                        const std::string& reason, const std::string& reviewer,
                                        absl::Time now) const;
  // Every decision on `finding_id`, oldest first.
  absl::StatusOr<std::vector<ReviewDecision>> History(sql::Connection& conn, const std::string& finding_id) const;
};

}  // namespace grassroots::common::checks
