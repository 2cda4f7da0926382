#include "member_repository.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/db.h"
#include "grassroots/common/log.h"

namespace grassroots::membership {
namespace {

#define GR_DATE(c) "DATE_FORMAT(" c ", '%Y-%m-%d')"
constexpr char kColumns[] =
    "m.member_id, HEX(m.id_hash), HEX(m.id_sealed), m.id_masked, m.name, m.gender, m.ethnicity, " GR_DATE("m.birth_date")
    ", m.education, m.occupation, m.phone, m.org_code, m.status, " GR_DATE("m.applied_on") ", " GR_DATE("m.activist_on")
    ", " GR_DATE("m.target_on") ", " GR_DATE("m.joined_on") ", " GR_DATE("m.full_on")
    ", m.extension_months, " GR_DATE("m.exited_on") ", m.monthly_income_fen, m.is_mobile, m.version";
constexpr int kNumColumns = 23;
// The same columns as stored (binary and DATE values converted by the client, not by the server:
// cheaper for the database on the hot read path).
constexpr char kRawColumns[] =
    "m.member_id, m.id_hash, m.id_sealed, m.id_masked, m.name, m.gender, m.ethnicity, m.birth_date, m.education, "
    "m.occupation, m.phone, m.org_code, m.status, m.applied_on, m.activist_on, m.target_on, m.joined_on, m.full_on, "
    "m.extension_months, m.exited_on, m.monthly_income_fen, m.is_mobile, m.version";
constexpr size_t kMaxCurrentBatch = 32;

std::string Str(sql::ResultSet& rs, int i) { return rs.isNull(i) ? std::string() : std::string(rs.getString(i)); }

std::string Unhex(const std::string& hex) { return absl::HexStringToBytes(hex); }

// One row of kColumns, or of kRawColumns (from a prepared statement, which gives DATE values as
// YYYY-MM-DD and binary values as they are) when `raw`.
StoredMember Read(sql::ResultSet& rs, bool raw = false) {
  StoredMember s;
  v1::Member& m = s.m;
  m.set_member_id(rs.getInt64(1));
  s.id_hash = raw ? Str(rs, 2) : Unhex(Str(rs, 2));
  s.id_sealed = raw ? Str(rs, 3) : Unhex(Str(rs, 3));
  s.id_masked = Str(rs, 4);
  m.set_name(Str(rs, 5));
  m.set_gender(Str(rs, 6));
  m.set_ethnicity(Str(rs, 7));
  m.set_birth_date(Str(rs, 8));
  m.set_education(Str(rs, 9));
  m.set_occupation(Str(rs, 10));
  m.set_phone(Str(rs, 11));
  m.set_org_code(Str(rs, 12));
  m.set_status(Str(rs, 13));
  m.set_applied_on(Str(rs, 14));
  m.set_activist_on(Str(rs, 15));
  m.set_target_on(Str(rs, 16));
  m.set_joined_on(Str(rs, 17));
  m.set_full_on(Str(rs, 18));
  m.set_extension_months(rs.getInt(19));
  m.set_exited_on(Str(rs, 20));
  if (!rs.isNull(21)) m.set_monthly_income_fen(rs.getInt64(21));
  m.set_is_mobile(rs.getInt(22) != 0);
  m.set_version(rs.getInt(23));
  return s;
}

std::string Marks(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += i == 0 ? "?" : ",?";
  return out;
}

// Literal SQL text (no prepared statement: a multi-row statement with tens of thousands of
// parameters costs more to prepare and bind than to run). Strings made only of characters that
// need no escaping in any sql_mode are quoted as they are; every other string is sent as a
// hex literal with the utf8mb4 introducer, so no value is ever interpreted as SQL.
bool Plain(std::string_view v) {
  for (const char c : v) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                    c == '_' || c == ':' || c == '.' || c == ' ' || c == '*';
    if (!ok) return false;
  }
  return true;
}

void AppendHex(std::string& out, std::string_view v) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  const size_t at = out.size();
  out.resize(at + 2 * v.size());
  char* p = out.data() + at;
  for (const char c : v) {
    const auto b = static_cast<unsigned char>(c);
    *p++ = kDigits[b >> 4];
    *p++ = kDigits[b & 15];
  }
}

void Text(std::string& out, std::string_view v) {
  if (Plain(v)) {
    out += '\'';
    out += v;
    out += '\'';
  } else {
    out += "_utf8mb4 X'";
    AppendHex(out, v);
    out += '\'';
  }
}
void OptText(std::string& out, std::string_view v) {
  if (v.empty()) out += "NULL"; else Text(out, v);
}
void Bytes(std::string& out, std::string_view v) {
  out += "X'";
  AppendHex(out, v);
  out += '\'';
}
void Int(std::string& out, int64_t v) { absl::StrAppend(&out, v); }

void Execute(sql::Connection& conn, const std::string& text) {
  std::unique_ptr<sql::Statement> st(conn.createStatement());
  st->execute(text);
}

template <typename F>
auto Guard(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, what);
  }
}

}  // namespace

absl::StatusOr<std::optional<StoredMember>> MemberRepository::Find(sql::Connection& conn, int64_t member_id,
                                                                   bool for_update) const {
  return Guard("read member", [&]() -> absl::StatusOr<std::optional<StoredMember>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(absl::StrCat(
        "SELECT ", kColumns, ", (SELECT " GR_DATE("MAX(e.effective_on)") " FROM member_events e WHERE e.member_id = m.member_id)"
        " FROM members m WHERE m.member_id = ?", for_update ? " FOR UPDATE" : "")));
    st->setInt64(1, member_id);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return std::optional<StoredMember>();
    StoredMember s = Read(*rs);
    s.last_effective = Str(*rs, kNumColumns + 1);
    rs.reset();
    // An imported member's first event may be stored compactly (V005).
    auto created = FindCreatedEvent(conn, member_id);
    if (!created.ok()) return created.status();
    if (*created && (*created)->effective_on > s.last_effective) s.last_effective = (*created)->effective_on;
    return std::optional<StoredMember>(std::move(s));
  });
}

absl::StatusOr<std::vector<StoredMember>> MemberRepository::FindCurrent(common::PooledConnection& conn,
                                                                        const std::vector<int64_t>& ids) const {
  return Guard("read members", [&]() -> absl::StatusOr<std::vector<StoredMember>> {
    std::vector<StoredMember> out;
    out.reserve(ids.size());
    for (size_t start = 0; start < ids.size(); start += kMaxCurrentBatch) {
      const size_t n = std::min(kMaxCurrentBatch, ids.size() - start);
      // Statements for 1, 2, 4, 8... ids: the list is padded by repeating its last id.
      size_t marks = 1;
      while (marks < n) marks *= 2;
      sql::PreparedStatement& st = conn.Prepared(
          absl::StrCat("SELECT ", kRawColumns, " FROM members m WHERE m.member_id IN (", Marks(marks), ")"));
      for (size_t i = 0; i < marks; ++i) st.setInt64(static_cast<unsigned>(i + 1), ids[start + std::min(i, n - 1)]);
      std::unique_ptr<sql::ResultSet> rs(st.executeQuery());
      while (rs->next()) out.push_back(Read(*rs, /*raw=*/true));
    }
    return out;
  });
}

absl::StatusOr<std::optional<StoredMember>> MemberRepository::FindByHash(sql::Connection& conn, const std::string& hash,
                                                                         bool for_update) const {
  auto found = FindByHashes(conn, {hash}, for_update);
  if (!found.ok()) return found.status();
  if (found->empty()) return std::optional<StoredMember>();
  return Find(conn, found->front().m.member_id(), for_update);
}

absl::StatusOr<std::vector<StoredMember>> MemberRepository::FindByHashes(sql::Connection& conn,
                                                                         const std::vector<std::string>& hashes,
                                                                         bool for_update) const {
  return Guard("read members", [&]() -> absl::StatusOr<std::vector<StoredMember>> {
    std::vector<StoredMember> out;
    constexpr size_t kBatch = 5000;
    std::unique_ptr<sql::Statement> st(conn.createStatement());
    for (size_t start = 0; start < hashes.size(); start += kBatch) {
      const size_t n = std::min(kBatch, hashes.size() - start);
      std::string text = absl::StrCat("SELECT ", kColumns, " FROM members m WHERE m.id_hash IN (");
      for (size_t i = 0; i < n; ++i) {
        if (i) text += ',';
        Bytes(text, hashes[start + i]);
      }
      text += for_update ? ") FOR UPDATE" : ")";
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery(text));
      while (rs->next()) out.push_back(Read(*rs));
    }
    return out;
  });
}

namespace {

// One members tuple: (member_id?, id_hash, id_sealed, id_masked, name, ..., version).
void AppendMember(std::string& out, const StoredMember& r, bool with_id) {
  const v1::Member& m = r.m;
  out += '(';
  if (with_id) {
    Int(out, m.member_id());
    out += ',';
  }
  Bytes(out, r.id_hash);
  out += ',';
  Bytes(out, r.id_sealed);
  out += ',';
  Text(out, r.id_masked);
  out += ',';
  Text(out, m.name());
  out += ',';
  Text(out, m.gender());
  out += ',';
  OptText(out, m.ethnicity());
  out += ',';
  Text(out, m.birth_date());
  out += ',';
  OptText(out, m.education());
  out += ',';
  OptText(out, m.occupation());
  out += ',';
  OptText(out, m.phone());
  out += ',';
  Text(out, m.org_code());
  out += ',';
  Text(out, m.status());
  for (const std::string* d : {&m.applied_on(), &m.activist_on(), &m.target_on(), &m.joined_on(), &m.full_on()}) {
    out += ',';
    OptText(out, *d);
  }
  out += ',';
  Int(out, m.extension_months());
  out += ',';
  OptText(out, m.exited_on());
  out += ',';
  if (m.has_monthly_income_fen()) Int(out, m.monthly_income_fen()); else out += "NULL";
  out += m.is_mobile() ? ",1," : ",0,";
  Int(out, m.version());
  out += ')';
}

constexpr char kMemberColumns[] =
    "id_hash, id_sealed, id_masked, name, gender, ethnicity, birth_date, education, occupation, phone, org_code, "
    "status, applied_on, activist_on, target_on, joined_on, full_on, extension_months, exited_on, "
    "monthly_income_fen, is_mobile, version";

}  // namespace

namespace {

// INSERT INTO members (member_id, ...) VALUES (...), (...) of the rows.
std::string InsertText(const std::vector<const StoredMember*>& rows) {
  std::string text = absl::StrCat("INSERT INTO members (member_id, ", kMemberColumns, ") VALUES ");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) text += ',';
    AppendMember(text, *rows[i], true);
  }
  return text;
}

}  // namespace

absl::Status MemberRepository::InsertMembers(sql::Connection& conn,
                                            const std::vector<const StoredMember*>& rows) const {
  if (rows.empty()) return absl::OkStatus();
  return Guard("write members", [&]() -> absl::Status {
    // A plain multi-row INSERT: a registered id_hash is an error, never an update.
    Execute(conn, InsertText(rows));
    return absl::OkStatus();
  });
}

absl::Status MemberRepository::UpdateMembers(sql::Connection& conn,
                                            const std::vector<const StoredMember*>& rows) const {
  if (rows.empty()) return absl::OkStatus();
  return Guard("write members", [&]() -> absl::Status {
    std::string upd = InsertText(rows);
    upd +=
        " ON DUPLICATE KEY UPDATE name=VALUES(name), gender=VALUES(gender), ethnicity=VALUES(ethnicity), "
        "birth_date=VALUES(birth_date), education=VALUES(education), occupation=VALUES(occupation), "
        "phone=VALUES(phone), org_code=VALUES(org_code), status=VALUES(status), applied_on=VALUES(applied_on), "
        "activist_on=VALUES(activist_on), target_on=VALUES(target_on), joined_on=VALUES(joined_on), "
        "full_on=VALUES(full_on), extension_months=VALUES(extension_months), exited_on=VALUES(exited_on), "
        "monthly_income_fen=VALUES(monthly_income_fen), is_mobile=VALUES(is_mobile), version=VALUES(version)";
    Execute(conn, upd);
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> MemberRepository::AllocateMemberIds(sql::Connection& conn, int64_t n) const {
  common::Transaction tx(conn);
  if (auto s = tx.Begin(); !s.ok()) return s;
  auto first = Guard("allocate member ids", [&]() -> absl::StatusOr<int64_t> {
    {
      std::unique_ptr<sql::PreparedStatement> st(
          conn.prepareStatement("UPDATE member_id_counter SET next_id = next_id + ? WHERE id = 1"));
      st->setInt64(1, n);
      st->execute();
    }
    std::unique_ptr<sql::Statement> st(conn.createStatement());
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT next_id FROM member_id_counter WHERE id = 1"));
    if (!rs->next()) return absl::InternalError("member_id_counter has no row");
    return rs->getInt64(1) - n;
  });
  if (!first.ok()) return first.status();
  if (auto s = tx.Commit(); !s.ok()) return s;
  return first;
}

absl::StatusOr<std::vector<int64_t>> MemberRepository::IdsBetween(sql::Connection& conn, int64_t first,
                                                                   int64_t last) const {
  return Guard("read member ids", [&]() -> absl::StatusOr<std::vector<int64_t>> {
    std::unique_ptr<sql::Statement> st(conn.createStatement());
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery(absl::StrCat(
        "SELECT member_id FROM members WHERE member_id BETWEEN ", first, " AND ", last, " ORDER BY member_id")));
    std::vector<int64_t> out;
    while (rs->next()) out.push_back(rs->getInt64(1));
    return out;
  });
}

absl::StatusOr<std::unordered_map<std::string, int64_t>> MemberRepository::IdsOf(
    sql::Connection& conn, const std::vector<std::string>& hashes) const {
  return Guard("read member ids", [&]() -> absl::StatusOr<std::unordered_map<std::string, int64_t>> {
    std::unordered_map<std::string, int64_t> out;
    out.reserve(hashes.size());
    constexpr size_t kBatch = 5000;
    std::unique_ptr<sql::Statement> st(conn.createStatement());
    for (size_t start = 0; start < hashes.size(); start += kBatch) {
      const size_t n = std::min(kBatch, hashes.size() - start);
      std::string text = "SELECT HEX(id_hash), member_id FROM members WHERE id_hash IN (";
      for (size_t i = 0; i < n; ++i) {
        if (i) text += ',';
        Bytes(text, hashes[start + i]);
      }
      text += ')';
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery(text));
      while (rs->next()) out.emplace(Unhex(Str(*rs, 1)), rs->getInt64(2));
    }
    return out;
  });
}

absl::Status MemberRepository::InsertEvents(sql::Connection& conn, const std::vector<EventRow>& events) const {
  if (events.empty()) return absl::OkStatus();
  return Guard("write member events", [&]() -> absl::Status {
    std::string text =
        "INSERT INTO member_events (change_seq, member_id, version, kind, status_after, org_code, effective_on, "
        "deciding_org, recorded_by, details) VALUES ";
    bool first = true;
    for (const EventRow& e : events) {
      text += first ? "(" : ",(";
      first = false;
      Int(text, e.change_seq);
      text += ',';
      Int(text, e.member_id);
      text += ',';
      Int(text, e.version);
      text += ',';
      Text(text, e.kind);
      text += ',';
      Text(text, e.status_after);
      text += ',';
      Text(text, e.org_code);
      text += ',';
      Text(text, e.effective_on);
      text += ',';
      OptText(text, e.deciding_org);
      text += ',';
      Text(text, e.recorded_by);
      text += ',';
      OptText(text, e.details);
      text += ')';
    }
    Execute(conn, text);
    return absl::OkStatus();
  });
}

namespace {

// LOAD DATA text: tab-separated, backslash escapes (common::AppendLoadField), \N for NULL.
void Tsv(std::string& out, std::string_view v) { common::AppendLoadField(out, v); }
void OptTsv(std::string& out, std::string_view v) {
  if (v.empty()) out += "\\N"; else Tsv(out, v);
}
void OptRaw(std::string& out, std::string_view v) {
  if (v.empty()) out += "\\N"; else out += v;
}

}  // namespace

absl::StatusOr<LoadResult> MemberRepository::LoadNewMembers(sql::Connection& conn,
                                                            const std::vector<NewMemberRow>& rows,
                                                            LoadPipe& pipe) const {
  if (rows.empty()) return LoadResult{};
  thread_local std::string data;  // kept between batches: no large allocation per batch
  data.clear();
  data.reserve(rows.size() * 220);
  for (const NewMemberRow& r : rows) {
    const v1::Member& m = *r.m;
    if (m.version() != 1 || !m.activist_on().empty() || !m.target_on().empty() || m.extension_months() != 0) {
      return absl::InternalError("write members: a new member has version 1 and no lifecycle step yet");
    }
    // Free text and binary values escaped; the validated ones (masked number, codes, digits,
    // dates) hold no tab, newline, backslash or NUL and go as they are.
    Int(data, m.member_id());
    data += '\t';
    Tsv(data, r.id_hash);
    data += '\t';
    Tsv(data, r.id_sealed);
    data += '\t';
    data += r.id_masked;
    data += '\t';
    Tsv(data, m.name());
    data += '\t';
    data += m.gender();
    data += '\t';
    OptTsv(data, m.ethnicity());
    data += '\t';
    data += m.birth_date();
    data += '\t';
    OptRaw(data, m.education());
    data += '\t';
    OptTsv(data, m.occupation());
    data += '\t';
    OptRaw(data, m.phone());
    data += '\t';
    data += m.org_code();
    data += '\t';
    data += m.status();
    for (const std::string* d : {&m.applied_on(), &m.joined_on(), &m.full_on(), &m.exited_on()}) {
      data += '\t';
      OptRaw(data, *d);
    }
    data += '\t';
    if (m.has_monthly_income_fen()) Int(data, m.monthly_income_fen()); else data += "\\N";
    data += m.is_mobile() ? "\t1\n" : "\t0\n";
  }
  // activist_on, target_on, extension_months and version take their defaults (NULL, NULL, 0, 1):
  // fewer fields for the server to parse.
  return Guard("write members", [&]() -> absl::StatusOr<LoadResult> {
    return common::LoadThroughPipe(
        conn, pipe,
        absl::StrCat("LOAD DATA LOCAL INFILE ", pipe.SqlPath(),
                     " INTO TABLE members CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
                     "LINES TERMINATED BY '\\n' (member_id, id_hash, id_sealed, id_masked, name, gender, "
                     "ethnicity, birth_date, education, occupation, phone, org_code, status, applied_on, joined_on, "
                     "full_on, exited_on, monthly_income_fen, is_mobile)"),
        data);
  });
}

absl::Status MemberRepository::LoadEvents(sql::Connection& conn, const std::vector<EventRow>& events,
                                          LoadPipe& pipe) const {
  if (events.empty()) return absl::OkStatus();
  thread_local std::string data;  // kept between batches: no large allocation per batch
  data.clear();
  data.reserve(events.size() * 160);
  for (const EventRow& e : events) {
    Int(data, e.change_seq);
    data += '\t';
    Int(data, e.member_id);
    data += '\t';
    Int(data, e.version);
    data += '\t';
    Tsv(data, e.kind);
    data += '\t';
    Tsv(data, e.status_after);
    data += '\t';
    Tsv(data, e.org_code);
    data += '\t';
    Tsv(data, e.effective_on);
    data += '\t';
    OptTsv(data, e.deciding_org);
    data += '\t';
    Tsv(data, e.recorded_by);
    data += '\t';
    OptTsv(data, e.details);
    data += '\n';
  }
  return Guard("write member events", [&]() -> absl::Status {
    const LoadResult r = common::LoadThroughPipe(
        conn, pipe,
        absl::StrCat("LOAD DATA LOCAL INFILE ", pipe.SqlPath(),
                     " INTO TABLE member_events CHARACTER SET binary FIELDS TERMINATED BY '\\t' "
                     "ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (change_seq, member_id, version, kind, "
                     "status_after, org_code, effective_on, deciding_org, recorded_by, details)"),
        data);
    if (r.stored != static_cast<int64_t>(events.size()) || r.warnings != 0) {
      return absl::InternalError(absl::StrCat("write member events: ", r.stored, " of ", events.size(),
                                              " rows stored, ", r.warnings, " warnings; nothing of this batch is kept"));
    }
    return absl::OkStatus();
  });
}

namespace {

// The facts of a member in the order MemberLogic's details list them; one key letter each.
constexpr std::array<std::string_view, 18> kDetailFields = {
    "name",      "gender",  "ethnicity", "birth_date",       "education", "occupation",
    "phone",     "org_code", "status",   "applied_on",       "activist_on", "target_on",
    "joined_on", "full_on", "exited_on", "extension_months", "monthly_income_fen", "is_mobile"};
constexpr char kSep = '\x1f';

}  // namespace

std::string CompactCreatedDetails(const v1::Member& m) {
  const std::string income = m.has_monthly_income_fen() ? std::to_string(m.monthly_income_fen()) : std::string();
  const std::string extension = m.extension_months() != 0 ? std::to_string(m.extension_months()) : std::string();
  const std::array<std::string_view, 18> values = {
      m.name(),      m.gender(),     m.ethnicity(),  m.birth_date(), m.education(), m.occupation(),
      m.phone(),     m.org_code(),   m.status(),     m.applied_on(), m.activist_on(), m.target_on(),
      m.joined_on(), m.full_on(),    m.exited_on(),  extension,      income,          m.is_mobile() ? "1" : ""};
  std::string out;
  out.reserve(128);
  bool compact = true;
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].empty()) continue;
    if (values[i].find(kSep) != std::string_view::npos) compact = false;
    out += static_cast<char>('a' + i);
    if (kDetailFields[i] != "phone") out += values[i];
    out += kSep;
  }
  if (compact) return out;
  std::string json;
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].empty()) continue;
    json += json.empty() ? "{" : ",";
    common::AppendJsonString(json, kDetailFields[i]);
    json += ':';
    common::AppendJsonString(json, kDetailFields[i] == "phone" ? "(changed)" : values[i]);
  }
  return json.empty() ? "{}" : json + "}";
}

std::string DetailsJson(std::string_view stored) {
  if (stored.empty() || stored.front() == '{') return std::string(stored);
  std::string json;
  size_t pos = 0;
  while (pos < stored.size()) {
    size_t end = stored.find(kSep, pos);
    if (end == std::string_view::npos) end = stored.size();
    const size_t key = static_cast<unsigned char>(stored[pos]) - 'a';
    if (key < kDetailFields.size()) {
      json += json.empty() ? "{" : ",";
      common::AppendJsonString(json, kDetailFields[key]);
      json += ':';
      common::AppendJsonString(json, kDetailFields[key] == "phone" ? std::string_view("(changed)")
                                                                    : stored.substr(pos + 1, end - pos - 1));
    }
    pos = end + 1;
  }
  return json.empty() ? "{}" : json + "}";
}

void ToMemberEvent(const EventRow& row, v1::MemberEvent& out) {
  out.set_change_seq(row.change_seq);
  out.set_member_id(row.member_id);
  out.set_version(row.version);
  out.set_kind(row.kind);
  out.set_status_after(row.status_after);
  out.set_org_code(row.org_code);
  out.set_effective_on(row.effective_on);
  out.set_deciding_org_code(row.deciding_org);
  out.set_recorded_by(row.recorded_by);
  out.set_recorded_at(row.recorded_at);
  out.set_details(row.details);
}

void EncodeCreatedEvents(const EventRow* begin, const EventRow* end, std::string& out) {
  for (const EventRow* e = begin; e != end; ++e) {
    Int(out, e->member_id);
    out += '\t';
    out += e->status_after;
    out += '\t';
    out += e->org_code;
    out += '\t';
    out += e->effective_on;
    out += '\t';
    Int(out, static_cast<int64_t>(e->details.size()));
    out += '\t';
    out += e->details;
  }
}

absl::Status DecodeCreatedEvents(std::string_view blob, int64_t first_seq, int64_t last_seq,
                                 const std::string& recorded_by, std::vector<EventRow>& out,
                                 int64_t only_member_id) {
  const auto bad = [] { return absl::DataLossError("member_created_events: a malformed row"); };
  size_t pos = 0;
  const auto next = [&](std::string_view& field) {
    const size_t tab = blob.find('\t', pos);
    if (tab == std::string_view::npos) return false;
    field = blob.substr(pos, tab - pos);
    pos = tab + 1;
    return true;
  };
  int64_t seq = first_seq;
  while (pos < blob.size()) {
    std::string_view id, status, org, effective, length;
    if (!next(id) || !next(status) || !next(org) || !next(effective) || !next(length)) return bad();
    EventRow e;
    size_t n = 0;
    if (!absl::SimpleAtoi(absl::string_view(id.data(), id.size()), &e.member_id) ||
        !absl::SimpleAtoi(absl::string_view(length.data(), length.size()), &n) || n > blob.size() - pos) {
      return bad();
    }
    e.change_seq = seq++;
    if (only_member_id != 0 && e.member_id != only_member_id) {
      pos += n;
      continue;
    }
    e.version = 1;
    e.kind = "created";
    e.status_after = std::string(status);
    e.org_code = std::string(org);
    e.deciding_org = e.org_code;
    e.effective_on = std::string(effective);
    e.recorded_by = recorded_by;
    e.details = std::string(blob.substr(pos, n));
    pos += n;
    out.push_back(std::move(e));
  }
  if (seq != last_seq + 1) return bad();
  return absl::OkStatus();
}

absl::Status MemberRepository::InsertCreatedEvents(sql::Connection& conn, const std::vector<EventRow>& created) const {
  if (created.empty()) return absl::OkStatus();
  for (size_t i = 1; i < created.size(); ++i) {
    if (created[i].change_seq != created[i - 1].change_seq + 1 || created[i].member_id <= created[i - 1].member_id ||
        created[i].recorded_by != created[0].recorded_by) {
      return absl::InternalError("write member events: created events out of order");
    }
  }
  const size_t rows = (created.size() + kCreatedEventsPerRow - 1) / kCreatedEventsPerRow;
  return Guard("write member events", [&]() -> absl::Status {
    std::string text =
        "INSERT INTO member_created_events (last_seq, first_seq, first_member_id, last_member_id, recorded_by, "
        "events) VALUES ";
    for (size_t r = 0; r < rows; ++r) text += r == 0 ? "(?,?,?,?,?,?)" : ",(?,?,?,?,?,?)";
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(text));
    thread_local std::string blob;
    for (size_t r = 0; r < rows; ++r) {
      const EventRow* begin = created.data() + r * kCreatedEventsPerRow;
      const EventRow* end = created.data() + std::min(created.size(), (r + 1) * kCreatedEventsPerRow);
      blob.clear();
      EncodeCreatedEvents(begin, end, blob);
      const int p = static_cast<int>(r) * 6;
      st->setInt64(p + 1, (end - 1)->change_seq);
      st->setInt64(p + 2, begin->change_seq);
      st->setInt64(p + 3, begin->member_id);
      st->setInt64(p + 4, (end - 1)->member_id);
      st->setString(p + 5, begin->recorded_by);
      st->setString(p + 6, blob);
    }
    if (st->executeUpdate() != static_cast<int>(rows)) {
      return absl::InternalError("write member events: not every row of created events was stored");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<EventRow>> MemberRepository::FindCreatedEvent(sql::Connection& conn,
                                                                            int64_t member_id) const {
  return Guard("read member events", [&]() -> absl::StatusOr<std::optional<EventRow>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT first_seq, last_seq, last_member_id, recorded_by, events, " GR_SQL_RFC3339("recorded_at")
        " FROM member_created_events WHERE first_member_id <= ? ORDER BY first_member_id DESC LIMIT 1"));
    st->setInt64(1, member_id);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next() || rs->getInt64(3) < member_id) return std::optional<EventRow>();
    std::vector<EventRow> events;
    if (auto s = DecodeCreatedEvents(Str(*rs, 5), rs->getInt64(1), rs->getInt64(2), Str(*rs, 4), events, member_id);
        !s.ok()) {
      return s;
    }
    for (auto& e : events) {
      if (e.member_id != member_id) continue;
      e.details = DetailsJson(e.details);
      e.recorded_at = Str(*rs, 6);
      return std::optional<EventRow>(std::move(e));
    }
    return std::optional<EventRow>();
  });
}

absl::StatusOr<std::vector<EventRow>> MemberRepository::ListEvents(sql::Connection& conn, int64_t member_id) const {
  auto created = FindCreatedEvent(conn, member_id);
  if (!created.ok()) return created.status();
  return Guard("read member events", [&]() -> absl::StatusOr<std::vector<EventRow>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT change_seq, member_id, version, kind, status_after, org_code, " GR_DATE("effective_on")
        ", deciding_org, recorded_by, details, " GR_SQL_RFC3339("recorded_at")
        " FROM member_events WHERE member_id = ? ORDER BY version"));
    st->setInt64(1, member_id);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<EventRow> out;
    if (*created) out.push_back(std::move(**created));
    while (rs->next()) {
      EventRow e;
      e.change_seq = rs->getInt64(1);
      e.member_id = rs->getInt64(2);
      e.version = rs->getInt(3);
      e.kind = Str(*rs, 4);
      e.status_after = Str(*rs, 5);
      e.org_code = Str(*rs, 6);
      e.effective_on = Str(*rs, 7);
      e.deciding_org = Str(*rs, 8);
      e.recorded_by = Str(*rs, 9);
      e.details = DetailsJson(Str(*rs, 10));
      e.recorded_at = Str(*rs, 11);
      out.push_back(std::move(e));
    }
    return out;
  });
}

absl::StatusOr<std::vector<StoredMember>> MemberRepository::ListSubtree(sql::Connection& conn,
                                                                        const std::string& path_prefix,
                                                                        const std::vector<std::string>& statuses,
                                                                        int64_t after, int limit) const {
  return Guard("list members", [&]() -> absl::StatusOr<std::vector<StoredMember>> {
    std::string where;
    if (!statuses.empty()) where = absl::StrCat(" AND m.status IN (", Marks(statuses.size()), ")");
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(absl::StrCat(
        "SELECT ", kColumns, " FROM members m JOIN organisations o ON o.org_code = m.org_code "
        "WHERE o.path LIKE CONCAT(?, '%') AND m.member_id > ?", where, " ORDER BY m.member_id LIMIT ?")));
    int i = 1;
    st->setString(i++, path_prefix);
    st->setInt64(i++, after);
    for (const auto& s : statuses) st->setString(i++, s);
    st->setInt(i, limit);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<StoredMember> out;
    while (rs->next()) out.push_back(Read(*rs));
    return out;
  });
}

absl::StatusOr<std::vector<StoredMember>> MemberRepository::ScanOrganisation(sql::Connection& conn,
                                                                             const std::string& org_code, int64_t after,
                                                                             int limit) const {
  return Guard("read members", [&]() -> absl::StatusOr<std::vector<StoredMember>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(absl::StrCat(
        "SELECT ", kColumns, " FROM members m WHERE m.org_code = ? AND m.member_id > ? ORDER BY m.member_id LIMIT ?")));
    st->setString(1, org_code);
    st->setInt64(2, after);
    st->setInt(3, limit);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<StoredMember> out;
    while (rs->next()) out.push_back(Read(*rs));
    return out;
  });
}

absl::StatusOr<std::vector<SubtreeOrg>> MemberRepository::SubtreeOrganisations(sql::Connection& conn,
                                                                              const std::string& path_prefix) const {
  return Guard("read subtree", [&]() -> absl::StatusOr<std::vector<SubtreeOrg>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT org_code, org_type, parent_code FROM organisations WHERE path LIKE CONCAT(?, '%') ORDER BY path"));
    st->setString(1, path_prefix);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<SubtreeOrg> out;
    while (rs->next()) out.push_back({Str(*rs, 1), Str(*rs, 2), Str(*rs, 3)});
    return out;
  });
}

absl::StatusOr<std::vector<OrgCount>> MemberRepository::CountByOrganisation(sql::Connection& conn,
                                                                           const std::string& path_prefix) const {
  return Guard("count members", [&]() -> absl::StatusOr<std::vector<OrgCount>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT m.org_code, SUM(m.status = 'full'), COUNT(*) FROM organisations o "
        "JOIN members m ON m.org_code = o.org_code AND m.status IN ('full', 'probationary') "
        "WHERE o.path LIKE CONCAT(?, '%') GROUP BY m.org_code"));
    st->setString(1, path_prefix);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<OrgCount> out;
    while (rs->next()) out.push_back({Str(*rs, 1), rs->getInt64(2), rs->getInt64(3)});
    return out;
  });
}

absl::StatusOr<int64_t> MemberRepository::CountInOrganisation(sql::Connection& conn, const std::string& org_code) const {
  return Guard("count members", [&]() -> absl::StatusOr<int64_t> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement("SELECT COUNT(*) FROM members WHERE org_code = ?"));
    st->setString(1, org_code);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    rs->next();
    return rs->getInt64(1);
  });
}

absl::StatusOr<std::vector<StoredMember>> MemberRepository::Overdue(sql::Connection& conn,
                                                                    const std::string& path_prefix,
                                                                    const std::string& as_of) const {
  return Guard("read overdue probation", [&]() -> absl::StatusOr<std::vector<StoredMember>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(absl::StrCat(
        "SELECT ", kColumns, " FROM members m JOIN organisations o ON o.org_code = m.org_code "
        "WHERE o.path LIKE CONCAT(?, '%') AND m.status = 'probationary' "
        "AND DATE_ADD(m.joined_on, INTERVAL 12 + m.extension_months MONTH) < ? "
        "ORDER BY DATE_ADD(m.joined_on, INTERVAL 12 + m.extension_months MONTH), m.member_id")));
    st->setString(1, path_prefix);
    st->setString(2, as_of);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<StoredMember> out;
    while (rs->next()) out.push_back(Read(*rs));
    return out;
  });
}

absl::StatusOr<int64_t> MemberRepository::CountOverdue(sql::Connection& conn, const std::string& as_of) const {
  return Guard("count overdue probation", [&]() -> absl::StatusOr<int64_t> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT COUNT(*) FROM members WHERE status = 'probationary' "
        "AND DATE_ADD(joined_on, INTERVAL 12 + extension_months MONTH) < ?"));
    st->setString(1, as_of);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    rs->next();
    return rs->getInt64(1);
  });
}

absl::StatusOr<bool> MemberRepository::InsertKin(sql::Connection& conn, int64_t member_id, int64_t kin_member_id,
                                                 const std::string& relation, const std::string& source,
                                                 const std::string& recorded_by) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "INSERT INTO member_kin (member_id, kin_member_id, relation, source, recorded_by) VALUES (?, ?, ?, ?, ?)"));
    st->setInt64(1, member_id);
    st->setInt64(2, kin_member_id);
    st->setString(3, relation);
    st->setString(4, source);
    st->setString(5, recorded_by);
    st->execute();
    return true;
  } catch (const sql::SQLException& e) {
    if (e.getErrorCode() == 1062) return false;
    return common::SqlError(e, "record kin");
  }
}

absl::StatusOr<std::vector<KinRow>> MemberRepository::ListKin(sql::Connection& conn,
                                                              const std::vector<int64_t>& member_ids) const {
  if (member_ids.empty()) return std::vector<KinRow>();
  return Guard("read kin", [&]() -> absl::StatusOr<std::vector<KinRow>> {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(absl::StrCat(
        "SELECT k.member_id, HEX(a.id_hash), k.kin_member_id, HEX(b.id_hash), b.id_masked, HEX(b.id_sealed), b.name, "
        "k.relation, k.source FROM member_kin k JOIN members a ON a.member_id = k.member_id "
        "JOIN members b ON b.member_id = k.kin_member_id WHERE k.member_id IN (", Marks(member_ids.size()),
        ") ORDER BY k.member_id, k.kin_member_id, k.relation")));
    for (size_t i = 0; i < member_ids.size(); ++i) st->setInt64(static_cast<int>(i + 1), member_ids[i]);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<KinRow> out;
    while (rs->next()) {
      KinRow k;
      k.member_id = rs->getInt64(1);
      k.id_hash = Unhex(Str(*rs, 2));
      k.kin_member_id = rs->getInt64(3);
      k.kin_id_hash = Unhex(Str(*rs, 4));
      k.kin_id_masked = Str(*rs, 5);
      k.kin_id_sealed = Unhex(Str(*rs, 6));
      k.kin_name = Str(*rs, 7);
      k.relation = Str(*rs, 8);
      k.source = Str(*rs, 9);
      out.push_back(std::move(k));
    }
    return out;
  });
}

}  // namespace grassroots::membership
