#include "change_feed.h"

#include <algorithm>
#include <memory>
#include <thread>
#include <unordered_map>

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/db.h"
#include "grassroots/common/status.h"
#include "member_repository.h"

namespace grassroots::membership {
namespace {

constexpr int kPage = 1000;

std::string Str(sql::ResultSet& rs, int i) { return rs.isNull(i) ? std::string() : std::string(rs.getString(i)); }

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// A member's change: the event as JSON with the member's keyed hash (lower-case hex, as
// Member.id_hash) riding along so consumers can match persons.
v1::Change MemberChange(const v1::MemberEvent& e, std::string_view id_hash_hex) {
  std::string json = ToJson(e);
  if (!json.empty() && json.back() == '}') {
    json.pop_back();
    absl::StrAppend(&json, json.size() > 1 ? "," : "", "\"id_hash\":\"", absl::string_view(id_hash_hex.data(), id_hash_hex.size()), "\"}");
  }
  v1::Change c;
  c.set_seq(e.change_seq());
  c.set_entity("member");
  c.set_key(std::to_string(e.member_id()));
  c.set_kind(e.kind());
  c.set_payload(std::move(json));
  c.set_recorded_at(e.recorded_at());
  return c;
}

// Rows of member_created_events read per query while the feed fills a page.
constexpr int kCreatedRowsPerRead = 4;

}  // namespace

absl::StatusOr<int64_t> ChangeFeedRepository::Reserve(sql::Connection& conn, int64_t n) const {
  try {
    {
      std::unique_ptr<sql::PreparedStatement> st(
          conn.prepareStatement("UPDATE change_counter SET seq = seq + ? WHERE id = 1"));
      st->setInt64(1, n);
      st->execute();
    }
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement("SELECT seq FROM change_counter WHERE id = 1"));
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return absl::InternalError("change_counter has no row");
    return rs->getInt64(1) - n + 1;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "reserve change sequence");
  }
}

absl::Status ChangeFeedRepository::Lock(sql::Connection& conn) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(
        conn.prepareStatement("SELECT seq FROM change_counter WHERE id = 1 FOR UPDATE"));
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "lock change sequence");
  }
}

absl::StatusOr<int64_t> ChangeFeedRepository::LastCommitted(sql::Connection& conn) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement("SELECT seq FROM change_counter WHERE id = 1"));
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return absl::InternalError("change_counter has no row");
    return rs->getInt64(1);
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read change sequence");
  }
}

absl::Status ChangeFeedRepository::AppendOrganisation(sql::Connection& conn, const std::string& org_code,
                                                      const std::string& kind, const v1::Organisation& after) const {
  auto seq = Reserve(conn, 1);
  if (!seq.ok()) return seq.status();
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "INSERT INTO organisation_changes (change_seq, org_code, kind, payload) VALUES (?, ?, ?, ?)"));
    st->setInt64(1, *seq);
    st->setString(2, org_code);
    st->setString(3, kind);
    st->setString(4, ToJson(after));
    st->execute();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "record organisation change");
  }
}

absl::Status ChangeFeedRepository::AppendKin(sql::Connection& conn, const std::string& kind, int64_t member_id,
                                             int64_t kin_member_id, const std::string& relation,
                                             const std::string& source, const std::string& recorded_by) const {
  auto seq = Reserve(conn, 1);
  if (!seq.ok()) return seq.status();
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "INSERT INTO kin_changes (change_seq, kind, member_id, kin_member_id, relation, source, recorded_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"));
    st->setInt64(1, *seq);
    st->setString(2, kind);
    st->setInt64(3, member_id);
    st->setInt64(4, kin_member_id);
    st->setString(5, relation);
    st->setString(6, source);
    st->setString(7, recorded_by);
    st->execute();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "record kin change");
  }
}

absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ChangeFeedRepository::MemberChangesAfter(
    sql::Connection& conn, int64_t after, int64_t upto, int limit) const {
  try {
    // A member's first event is left out: no reader can
    // hold a member before it exists (member ids are never reused), so there is nothing to forget.
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT change_seq, member_id FROM member_events WHERE change_seq > ? AND change_seq <= ? "
        "AND version > 1 ORDER BY change_seq LIMIT ?"));
    st->setInt64(1, after);
    st->setInt64(2, upto);
    st->setInt(3, limit);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<std::pair<int64_t, int64_t>> out;
    while (rs->next()) out.emplace_back(rs->getInt64(1), rs->getInt64(2));
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read member changes");
  }
}

absl::StatusOr<std::vector<v1::Change>> ChangeFeedRepository::Read(sql::Connection& conn, int64_t after,
                                                                   int limit) const {
  try {
    // The three tables are read in one snapshot. Separate autocommit reads could see a change
    // committed between them in a later table but not an earlier change of a former one
    // (a false gap). In one REPEATABLE READ snapshot the visible sequence numbers are a prefix:
    // number n+1 is only handed out after the transaction holding n has committed.
    std::unique_ptr<sql::Statement> snapshot(conn.createStatement());
    snapshot->execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    snapshot->execute("START TRANSACTION WITH CONSISTENT SNAPSHOT");
    struct EndSnapshot {
      sql::Statement& st;
      ~EndSnapshot() {
        try {
          st.execute("COMMIT");
        } catch (const sql::SQLException&) {
          // The connection is then reported broken by the caller's error path.
        }
      }
    } end_snapshot{*snapshot};
    std::vector<v1::Change> orgs, members;
    {
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          "SELECT change_seq, org_code, kind, payload, " GR_SQL_RFC3339("recorded_at") " "
          "FROM organisation_changes WHERE change_seq > ? ORDER BY change_seq LIMIT ?"));
      st->setInt64(1, after);
      st->setInt(2, limit);
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      while (rs->next()) {
        v1::Change c;
        c.set_seq(rs->getInt64(1));
        c.set_entity("organisation");
        c.set_key(Str(*rs, 2));
        c.set_kind(Str(*rs, 3));
        c.set_payload(Str(*rs, 4));
        c.set_recorded_at(Str(*rs, 5));
        orgs.push_back(std::move(c));
      }
    }
    {
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          "SELECT e.change_seq, e.member_id, e.version, e.kind, e.status_after, e.org_code, "
          "DATE_FORMAT(e.effective_on, '%Y-%m-%d'), e.deciding_org, e.recorded_by, "
          GR_SQL_RFC3339("e.recorded_at") ", e.details, LOWER(HEX(m.id_hash)) "
          "FROM member_events e JOIN members m ON m.member_id = e.member_id "
          "WHERE e.change_seq > ? ORDER BY e.change_seq LIMIT ?"));
      st->setInt64(1, after);
      st->setInt(2, limit);
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      while (rs->next()) {
        v1::MemberEvent e;
        e.set_change_seq(rs->getInt64(1));
        e.set_member_id(rs->getInt64(2));
        e.set_version(rs->getInt(3));
        e.set_kind(Str(*rs, 4));
        e.set_status_after(Str(*rs, 5));
        e.set_org_code(Str(*rs, 6));
        e.set_effective_on(Str(*rs, 7));
        e.set_deciding_org_code(Str(*rs, 8));
        e.set_recorded_by(Str(*rs, 9));
        e.set_recorded_at(Str(*rs, 10));
        e.set_details(DetailsJson(Str(*rs, 11)));
        members.push_back(MemberChange(e, Str(*rs, 12)));
      }
    }
    // The import's created events (V005): rows of consecutive events, expanded here into the
    // same changes as member_events rows, until the page is full.
    std::vector<v1::Change> created;
    {
      std::unique_ptr<sql::PreparedStatement> rows_st(conn.prepareStatement(
          "SELECT first_seq, last_seq, first_member_id, last_member_id, recorded_by, "
          GR_SQL_RFC3339("recorded_at") ", events FROM member_created_events "
          "WHERE last_seq > ? ORDER BY last_seq LIMIT ?"));
      std::unique_ptr<sql::PreparedStatement> hash_st(conn.prepareStatement(
          "SELECT member_id, LOWER(HEX(id_hash)) FROM members WHERE member_id BETWEEN ? AND ?"));
      int64_t from = after;
      while (static_cast<int>(created.size()) < limit) {
        rows_st->setInt64(1, from);
        rows_st->setInt(2, kCreatedRowsPerRead);
        std::unique_ptr<sql::ResultSet> rs(rows_st->executeQuery());
        int got = 0;
        while (rs->next() && static_cast<int>(created.size()) < limit) {
          ++got;
          std::vector<EventRow> events;
          if (auto s = DecodeCreatedEvents(Str(*rs, 7), rs->getInt64(1), rs->getInt64(2), Str(*rs, 5), events);
              !s.ok()) {
            return s;
          }
          hash_st->setInt64(1, rs->getInt64(3));
          hash_st->setInt64(2, rs->getInt64(4));
          std::unique_ptr<sql::ResultSet> hs(hash_st->executeQuery());
          std::unordered_map<int64_t, std::string> hashes;
          while (hs->next()) hashes.emplace(hs->getInt64(1), Str(*hs, 2));
          const std::string recorded_at = Str(*rs, 6);
          for (const EventRow& row : events) {
            if (row.change_seq <= after) continue;
            if (static_cast<int>(created.size()) == limit) break;
            v1::MemberEvent e;
            ToMemberEvent(row, e);
            e.set_recorded_at(recorded_at);
            e.set_details(DetailsJson(row.details));
            created.push_back(MemberChange(e, hashes[row.member_id]));
          }
          from = rs->getInt64(2);
        }
        if (got < kCreatedRowsPerRead) break;
      }
    }
    std::vector<v1::Change> kin;
    {
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          "SELECT c.change_seq, c.kind, c.member_id, c.kin_member_id, c.relation, c.source, c.recorded_by, "
          GR_SQL_RFC3339("c.recorded_at") ", LOWER(HEX(a.id_hash)), LOWER(HEX(b.id_hash)) "
          "FROM kin_changes c JOIN members a ON a.member_id = c.member_id "
          "JOIN members b ON b.member_id = c.kin_member_id "
          "WHERE c.change_seq > ? ORDER BY c.change_seq LIMIT ?"));
      st->setInt64(1, after);
      st->setInt(2, limit);
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      while (rs->next()) {
        v1::KinChange k;
        k.set_member_id(rs->getInt64(3));
        k.set_kin_member_id(rs->getInt64(4));
        k.set_relation(Str(*rs, 5));
        k.set_source(Str(*rs, 6));
        k.set_recorded_by(Str(*rs, 7));
        k.set_id_hash(Str(*rs, 9));
        k.set_kin_id_hash(Str(*rs, 10));
        v1::Change c;
        c.set_seq(rs->getInt64(1));
        c.set_entity("kin");
        c.set_key(absl::StrCat(k.member_id(), ":", k.kin_member_id(), ":", k.relation()));
        c.set_kind(Str(*rs, 2));
        c.set_payload(ToJson(k));
        c.set_recorded_at(Str(*rs, 8));
        kin.push_back(std::move(c));
      }
    }
    // Each list is in sequence order; the first `limit` of their union is the page.
    std::vector<v1::Change> out;
    out.reserve(orgs.size() + members.size() + created.size() + kin.size());
    for (auto* part : {&orgs, &members, &created, &kin}) {
      for (auto& c : *part) out.push_back(std::move(c));
    }
    std::sort(out.begin(), out.end(), [](const v1::Change& a, const v1::Change& b) { return a.seq() < b.seq(); });
    if (static_cast<int>(out.size()) > limit) out.resize(limit);
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read changes");
  }
}

absl::Status ChangeFeed::Watch(int64_t after_seq, bool follow, const std::function<bool(const v1::Change&)>& sink,
                               const std::function<bool()>& cancelled, absl::Duration poll) {
  if (after_seq < 0) return common::InvalidField("after_seq", "must not be negative");
  int64_t cursor = after_seq;
  bool first = true;
  while (true) {
    if (cancelled()) return absl::CancelledError("the caller went away");
    std::vector<v1::Change> page;
    {
      auto conn = pool_.Acquire(absl::Now() + absl::Seconds(5));
      if (!conn.ok()) return conn.status();
      if (first) {
        auto last = repo_.LastCommitted(**conn);
        if (!last.ok()) return last.status();
        if (after_seq > *last) {
          return absl::OutOfRangeError(absl::StrCat("after_seq: ", after_seq, " is beyond the last change (", *last,
                                                    "); resume from the last seq you received"));
        }
        first = false;
      }
      auto read = repo_.Read(**conn, cursor, kPage);
      if (!read.ok()) {
        if (read.status().code() == absl::StatusCode::kUnavailable) conn->MarkBroken();
        return read.status();
      }
      page = std::move(*read);
    }
    for (const v1::Change& c : page) {
      if (c.seq() != cursor + 1) {
        // Cannot happen with the counter's row lock; refuse to deliver a gap.
        return absl::DataLossError(absl::StrCat("change feed gap after ", cursor));
      }
      if (!sink(c)) return absl::OkStatus();
      cursor = c.seq();
    }
    if (static_cast<int>(page.size()) == kPage) continue;
    if (!follow) return absl::OkStatus();
    const absl::Time until = absl::Now() + poll;
    while (absl::Now() < until) {
      if (cancelled()) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace grassroots::membership
