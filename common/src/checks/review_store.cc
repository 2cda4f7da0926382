#include "grassroots/common/checks/review_store.h"

#include <memory>

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grassroots/common/db.h"

namespace grassroots::common::checks {

absl::StatusOr<ReviewDecision> ReviewStore::Record(sql::Connection& conn, const std::string& finding_id,
                                                   ReviewState to, const std::string& reason,
                                                   const std::string& reviewer, absl::Time now) const {
  Transaction tx(conn);
  if (auto s = tx.Begin(); !s.ok()) return s;
  try {
    ReviewDecision d;
    d.finding_id = finding_id;
    d.to = to;
    d.reason = reason;
    d.reviewer = reviewer;
    d.decided_at = absl::FromUnixMicros(absl::ToUnixMicros(now));
    absl::Time last = absl::InfinitePast();
    {
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          "SELECT state, DATE_FORMAT(reviewed_at, '%Y-%m-%d %H:%i:%s.%f') FROM finding_reviews WHERE finding_id = ? FOR UPDATE"));
      st->setString(1, finding_id);
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      if (rs->next()) {
        d.from = ParseReviewState(std::string(rs->getString(1))).value_or(ReviewState::kOpen);
        last = ParseSqlDateTimeUtc(rs->getString(2));
      }
    }
    if (auto s = CheckReview(d.from, d.to, reason, reviewer); !s.ok()) return s;
    // The history's key orders decisions: a decision in the same microsecond as the last (a
    // clock that went back, two replicas) is dated a microsecond after it.
    if (d.decided_at <= last) d.decided_at = last + absl::Microseconds(1);
    {
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          "INSERT INTO finding_reviews (finding_id, state, reason, reviewed_by, reviewed_at) VALUES (?, ?, ?, ?, ?) "
          "ON DUPLICATE KEY UPDATE state = VALUES(state), reason = VALUES(reason), "
          "reviewed_by = VALUES(reviewed_by), reviewed_at = VALUES(reviewed_at)"));
      st->setString(1, finding_id);
      st->setString(2, std::string(ReviewStateName(d.to)));
      st->setString(3, reason);
      st->setString(4, reviewer);
      st->setString(5, SqlDateTimeUtc(d.decided_at));
      st->executeUpdate();
    }
    {
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          "INSERT INTO finding_review_history (finding_id, decided_at, from_state, to_state, reason, reviewer) "
          "VALUES (?, ?, ?, ?, ?, ?)"));
      st->setString(1, finding_id);
      st->setString(2, SqlDateTimeUtc(d.decided_at));
      st->setString(3, std::string(ReviewStateName(d.from)));
      st->setString(4, std::string(ReviewStateName(d.to)));
      st->setString(5, reason);
      st->setString(6, reviewer);
      st->executeUpdate();
    }
    if (auto s = tx.Commit(); !s.ok()) return s;
    return d;
  } catch (const sql::SQLException& e) {
    return SqlError(e, "record a review");
  }
}

absl::StatusOr<std::vector<ReviewDecision>> ReviewStore::History(sql::Connection& conn,
                                                                 const std::string& finding_id) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT DATE_FORMAT(decided_at, '%Y-%m-%d %H:%i:%s.%f'), from_state, to_state, reason, reviewer "
        "FROM finding_review_history WHERE finding_id = ? ORDER BY decided_at"));
    st->setString(1, finding_id);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<ReviewDecision> out;
    while (rs->next()) {
      ReviewDecision d;
      d.finding_id = finding_id;
      d.decided_at = ParseSqlDateTimeUtc(rs->getString(1));
      d.from = ParseReviewState(std::string(rs->getString(2))).value_or(ReviewState::kOpen);
      d.to = ParseReviewState(std::string(rs->getString(3))).value_or(ReviewState::kOpen);
      d.reason = rs->getString(4);
      d.reviewer = rs->getString(5);
      out.push_back(std::move(d));
    }
    return out;
  } catch (const sql::SQLException& e) {
    return SqlError(e, "read a review history");
  }
}

}  // namespace grassroots::common::checks
