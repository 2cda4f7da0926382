#include "disbursement_repository.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <mysql_driver.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grassroots/common/db.h"
#include "grassroots/common/load_pipe.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
namespace {

constexpr size_t kInBatch = 1000;
constexpr int kScanPage = 50000;

void Bind(sql::PreparedStatement& st, int index, const SqlValue& v) {
  switch (v.kind) {
    case SqlValue::Kind::kNull: st.setNull(index, 0); break;
    case SqlValue::Kind::kInt: st.setInt64(index, v.i); break;
    case SqlValue::Kind::kText: st.setString(index, sql::SQLString(v.s)); break;
  }
}

std::unique_ptr<sql::PreparedStatement> Prepare(sql::Connection& conn, const std::string& text, const SqlRow& params) {
  std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(text));
  for (size_t i = 0; i < params.size(); ++i) Bind(*st, static_cast<int>(i + 1), params[i]);
  return st;
}

std::string Marks(size_t n) {
  std::string m;
  for (size_t i = 0; i < n; ++i) m += i == 0 ? "?" : ",?";
  return m;
}

std::string Str(sql::ResultSet& rs, int col) {
  sql::SQLString s = rs.getString(col);
  return std::string(s.asStdString());
}

std::optional<int64_t> OptInt(sql::ResultSet& rs, int col) {
  if (rs.isNull(col)) return std::nullopt;
  return rs.getInt64(col);
}

absl::CivilDay Day(sql::ResultSet& rs, int col) {
  auto d = common::ParseDate(Str(rs, col));
  return d.ok() ? *d : absl::CivilDay();
}

std::string DayText(absl::CivilDay d) { return common::FormatDate(d); }

// A scan in pages read one page ahead: `fetch` runs on a thread of its own and appends the next
// page of rows to its argument (it returns whether another page may follow); `fn` works through
// the pages on the calling thread meanwhile. So the server and the driver produce page k+1 while
// the caller works on page k (a scan of pages one after the other left each side idle while the
// other worked). At most two pages wait beside the one being worked through. `fetch` is the only
// user of the connection until this returns.
template <typename Row>
absl::Status ReadAhead(const std::function<absl::StatusOr<bool>(std::vector<Row>&)>& fetch,
                       const std::function<void(const Row&)>& fn) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<Row>> ready;
  bool done = false, stop = false;
  absl::Status status;
  std::thread reader([&] {
    sql::Driver* driver = sql::mysql::get_mysql_driver_instance();
    driver->threadInit();
    while (true) {
      std::vector<Row> page;
      absl::StatusOr<bool> more = false;
      try {
        more = fetch(page);
      } catch (const std::exception& e) {  // e.g. bad_alloc: a Status, never a terminate on a thread
        more = absl::InternalError(absl::StrCat("read ahead: ", e.what()));
      }
      std::unique_lock<std::mutex> lock(mu);
      if (!more.ok()) status = more.status();
      if (!page.empty()) ready.push_back(std::move(page));
      if (!more.ok() || !*more) done = true;
      cv.notify_all();
      if (done) break;
      cv.wait(lock, [&] { return ready.size() < 2 || stop; });
      if (stop) break;
    }
    driver->threadEnd();
  });
  // Stops and joins the reader however the caller leaves (fn may throw).
  struct Join {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& stop;
    std::thread& reader;
    ~Join() {
      {
        std::lock_guard<std::mutex> lock(mu);
        stop = true;
      }
      cv.notify_all();
      reader.join();
    }
  } join{mu, cv, stop, reader};
  while (true) {
    std::vector<Row> page;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !ready.empty() || done; });
      if (ready.empty()) break;
      page = std::move(ready.front());
      ready.pop_front();
    }
    cv.notify_all();
    for (const Row& row : page) fn(row);
  }
  std::lock_guard<std::mutex> lock(mu);
  return status;
}


// Runs `query` (a SELECT ... WHERE <col> IN (%s) ...) over `keys` in groups.
template <typename Fn>
absl::Status ForEachInGroup(sql::Connection& conn, const std::string& prefix, const std::string& suffix,
                            const std::vector<std::string>& keys, const char* what, Fn&& on_row) {
  try {
    for (size_t start = 0; start < keys.size(); start += kInBatch) {
      const size_t n = std::min(kInBatch, keys.size() - start);
      SqlRow params;
      for (size_t i = 0; i < n; ++i) params.push_back(SqlValue::Text(keys[start + i]));
      auto st = Prepare(conn, absl::StrCat(prefix, "(", Marks(n), ")", suffix), params);
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      while (rs->next()) on_row(*rs);
    }
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, what);
  }
}

// Text in LOAD DATA's default escaping (FIELDS TERMINATED BY '\t' ESCAPED BY '\\').
void LoadTextField(std::string& out, std::string_view v) { common::AppendLoadField(out, v); }

// One field in that escaping.
void AppendLoadField(std::string& out, const SqlValue& v) {
  switch (v.kind) {
    case SqlValue::Kind::kNull: out += "\\N"; return;
    case SqlValue::Kind::kInt: absl::StrAppend(&out, v.i); return;
    case SqlValue::Kind::kText: LoadTextField(out, v.s); return;
  }
}

// Whether `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// One value as SQL literal text that reads the same whether or not the server treats the
// backslash as an escape: a quoted string with quotes doubled, or X'..' for text holding a
// backslash or NUL or bytes that are not UTF-8 (hashes, sealed values).
void AppendSqlLiteral(std::string& out, const SqlValue& v) {
  switch (v.kind) {
    case SqlValue::Kind::kNull: out += "NULL"; return;
    case SqlValue::Kind::kInt: absl::StrAppend(&out, v.i); return;
    case SqlValue::Kind::kText:
      if (v.s.find_first_of(std::string_view("\\\0", 2)) != std::string::npos || !IsUtf8(v.s)) {
        absl::StrAppend(&out, "X'", absl::BytesToHexString(v.s), "'");
        return;
      }
      out += '\'';
      for (char c : v.s) {
        if (c == '\'') out += '\'';
        out += c;
      }
      out += '\'';
      return;
  }
}

void AppendSqlTuple(std::string& out, const SqlRow& row) {
  out += '(';
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) out += ',';
    AppendSqlLiteral(out, row[i]);
  }
  out += ')';
}

// A load of new rows: LOCAL skips a row whose key exists (a warning, not an error), so fewer rows
// written than sent means another ingest wrote some of them meanwhile.
absl::Status CheckLoaded(const absl::StatusOr<int64_t>& loaded, size_t sent, const char* what) {
  if (!loaded.ok()) return loaded.status();
  if (*loaded != static_cast<int64_t>(sent)) {
    return absl::AbortedError(absl::StrCat("write ", what, ": ", static_cast<int64_t>(sent) - *loaded, " of the new ",
                                           what, " were written by another ingest meanwhile; "
                                           "nothing of this file was kept, send it again"));
  }
  return absl::OkStatus();
}

std::vector<std::string> Unique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

std::string KeysetAfter(const std::vector<std::string>& columns, const SqlRow& values, SqlRow& params) {
  std::string tail;
  for (size_t i = columns.size(); i-- > 0;) {
    tail = i + 1 == columns.size()
               ? absl::StrCat(columns[i], " > ?")
               : absl::StrCat("(", columns[i], " > ? OR (", columns[i], " = ? AND ", tail, "))");
  }
  params.push_back(values[0]);
  for (size_t i = 0; i < columns.size(); ++i) {
    params.push_back(values[i]);
    if (i + 1 < columns.size()) params.push_back(values[i]);
  }
  return absl::StrCat("(", columns[0], " >= ? AND ", tail, ")");
}

// A whole table (or join) in the order of `key`, as one query whose rows stream from the server
// (a forward-only result: the driver reads them off the connection as they are asked for, in
// constant memory) and are handed over in pages read one page ahead (ReadAhead). The server
// sends rows while the driver turns earlier ones into rows here: keyset pages of prepared
// statements (the binary protocol's results cannot stream in this driver, which buffers each
// page whole) left one side idle while the other worked, and at 5,000,000 recipients the
// check's scans took twice the time the server needs to send them. `select` is
// "SELECT ... FROM ..."; `where` optional conditions with their values in `where_params`
// (written into the text as literals: a plain statement has no parameters); `read` makes a row
// of a result row. The connection is this scan's until it returns.
template <typename Row>
absl::Status ScanByKey(sql::Connection& conn, const char* what, const std::string& select, const std::string& where,
                       const SqlRow& where_params, const std::vector<std::string>& key,
                       const std::function<Row(sql::ResultSet&)>& read, const std::function<void(const Row&)>& fn) {
  std::string text = select;
  if (!where.empty()) {
    std::string conditions;
    size_t param = 0;
    for (char c : where) {
      if (c == '?' && param < where_params.size()) {
        AppendSqlLiteral(conditions, where_params[param++]);
      } else {
        conditions += c;
      }
    }
    absl::StrAppend(&text, " WHERE ", conditions);
  }
  absl::StrAppend(&text, " ORDER BY ", absl::StrJoin(key, ", "));
  std::unique_ptr<sql::Statement> st;
  std::unique_ptr<sql::ResultSet> rs;
  auto status = ReadAhead<Row>(
      [&](std::vector<Row>& page) -> absl::StatusOr<bool> {
        try {
          if (rs == nullptr) {
            st.reset(conn.createStatement());
            st->setResultSetType(sql::ResultSet::TYPE_FORWARD_ONLY);
            rs.reset(st->executeQuery(text));
          }
          page.reserve(kScanPage);
          while (page.size() < static_cast<size_t>(kScanPage) && rs->next()) page.push_back(read(*rs));
          return page.size() == static_cast<size_t>(kScanPage);
        } catch (const sql::SQLException& e) {
          return common::SqlError(e, what);
        }
      },
      fn);
  // A scan left early reads the rest of its rows off the connection as the result closes.
  try {
    rs.reset();
    st.reset();
  } catch (const sql::SQLException& e) {
    if (status.ok()) status = common::SqlError(e, what);
  }
  return status;
}


std::string ToSqlDateTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S", t, common::ChinaTimeZone());
}

absl::Time FromSqlDateTime(const std::string& s) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%d %H:%M:%E*S", s, common::ChinaTimeZone(), &t, &err)) return absl::UnixEpoch();
  return t;
}

absl::StatusOr<int64_t> DisbursementRepository::InsertRows(sql::Connection& conn, const std::string& table,
                                                           const std::vector<std::string>& columns,
                                                           const std::vector<SqlRow>& rows,
                                                           const std::string& suffix) const {
  // Literal text, one statement per ~2 MB (well under max_allowed_packet): one round trip and
  // one parse, where a prepared statement of thousands of placeholders costs a prepare, a
  // bind of every value and a close.
  if (rows.empty()) return 0;
  constexpr size_t kStatementBytes = 2 << 20;
  const std::string head = absl::StrCat("INSERT INTO ", table, " (", absl::StrJoin(columns, ", "), ") VALUES ");
  int64_t affected = 0;
  try {
    std::unique_ptr<sql::Statement> st(conn.createStatement());
    std::string text;
    text.reserve(kStatementBytes + 4096);
    size_t i = 0;
    while (i < rows.size()) {
      text = head;
      bool first = true;
      while (i < rows.size() && (first || text.size() < kStatementBytes)) {
        if (!first) text += ',';
        AppendSqlTuple(text, rows[i]);
        first = false;
        ++i;
      }
      text += suffix;
      affected += st->executeUpdate(text);
    }
    return affected;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, absl::StrCat("write ", table));
  }
}

absl::Status DisbursementRepository::Execute(sql::Connection& conn, const std::string& statement,
                                             const SqlRow& params) const {
  try {
    Prepare(conn, statement, params)->executeUpdate();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "write");
  }
}

namespace {

// LOAD DATA LOCAL INFILE of `n` rows into `table`, each appended to the text by `row(i, text)`
// as tab-separated fields (AppendLoadField's escaping) ending in '\n', through a private named
// pipe (common::LoadPipe: no file holds the rows) a megabyte at a time: `row` runs on the pipe's
// writer thread while this one waits for the statement. No row is held twice.
// `charset` is the text's: "ascii" for tables whose every text field is validated ASCII
// (references, codes, digits, periods, hex): the server then converts nothing (utf8mb4 into ASCII
// columns cost it about a tenth of a payments load). No byte outside ASCII reaches these loads:
// validation refuses it first (LOAD DATA LOCAL would only warn).
// "binary" for a load of raw bytes (hashes, sealed values) beside ASCII text: stored as sent,
// with no conversion and no UNHEX per value.
enum class LoadCharset { kUtf8mb4, kAscii, kBinary };
absl::StatusOr<int64_t> LoadText(sql::Connection& conn, const std::string& table, const std::string& fields,
                                 const std::string& set, size_t n,
                                 const std::function<void(size_t, std::string&)>& row,
                                 LoadCharset charset = LoadCharset::kUtf8mb4) {
  if (n == 0) return 0;
  auto pipe = common::LoadPipe::Create();
  if (!pipe.ok()) return absl::InternalError(absl::StrCat("write ", table, ": ", pipe.status().message()));
  const std::string statement =
      absl::StrCat("LOAD DATA LOCAL INFILE ", (*pipe)->SqlPath(), " INTO TABLE ", table,
                   " CHARACTER SET ",
                   charset == LoadCharset::kAscii ? "ascii" : charset == LoadCharset::kBinary ? "binary" : "utf8mb4",
                   " FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (",
                   fields, ")", set.empty() ? "" : " SET ", set);
  size_t k = 0;
  try {
    return common::LoadThroughPipe(conn, **pipe, statement, [&](std::string& chunk) {
             constexpr size_t kChunk = 1 << 20;
             while (k < n && chunk.size() < kChunk) row(k++, chunk);
             return k < n;
           }).stored;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, absl::StrCat("write ", table));
  }
}

// Fields for LoadText, without a temporary string per value.
void LoadIntField(std::string& out, int64_t v) {
  char buf[absl::numbers_internal::kFastToBufferSize];
  out.append(buf, absl::numbers_internal::FastIntToBuffer(v, buf));
}
void LoadHexField(std::string& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out += kHex[u >> 4];
    out += kHex[u & 15];
  }
}

// One row for LoadText: its fields tab-separated, NULL as \N.
void LoadField(std::string& out, int64_t v) { LoadIntField(out, v); }
void LoadField(std::string& out, std::string_view v) { LoadTextField(out, v); }
template <typename T>
void LoadField(std::string& out, const std::optional<T>& v) {
  if (v) LoadField(out, *v); else out += "\\N";
}
std::optional<std::string_view> OrNull(const std::string& v) {
  return v.empty() ? std::nullopt : std::optional<std::string_view>(v);
}
template <typename... Fields>
void LoadRow(std::string& out, const Fields&... fields) {
  bool first = true;
  auto one = [&](const auto& f) {
    if (!first) out += '\t';
    first = false;
    LoadField(out, f);
  };
  (one(fields), ...);
  out += '\n';
}

}  // namespace

absl::StatusOr<int64_t> DisbursementRepository::LoadRows(sql::Connection& conn, const std::string& table,
                                                         const std::string& fields, const std::string& set,
                                                         const std::vector<SqlRow>& rows) const {
  return LoadText(conn, table, fields, set, rows.size(), [&](size_t k, std::string& text) {
    const SqlRow& row = rows[k];
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) text += '\t';
      AppendLoadField(text, row[i]);
    }
    text += '\n';
  });
}

absl::StatusOr<bool> DisbursementRepository::TableIsEmpty(sql::Connection& conn, const std::string& table) const {
  try {
    std::unique_ptr<sql::Statement> st(conn.createStatement());
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery(absl::StrCat("SELECT 1 FROM ", table, " LIMIT 1")));
    return !rs->next();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, absl::StrCat("read ", table));
  }
}

// ---- persons

absl::StatusOr<int64_t> DisbursementRepository::NextPersonNumber(sql::Connection& conn) const {
  try {
    auto st = Prepare(conn, "SELECT next_value FROM counters WHERE name = 'person_no'", {});
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return absl::FailedPreconditionError("read the person number counter: its row is missing");
    return rs->getInt64(1);
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read the person number counter");
  }
}

absl::StatusOr<int64_t> DisbursementRepository::AllocatePersonNumbers(sql::Connection& conn, int64_t count) const {
  if (count <= 0) return absl::InvalidArgumentError("allocate person numbers: count must be positive");
  common::Transaction tx(conn);
  if (auto s = tx.Begin(); !s.ok()) return s;
  try {
    int64_t first = 0;
    {
      auto st = Prepare(conn, "SELECT next_value FROM counters WHERE name = 'person_no' FOR UPDATE", {});
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      if (!rs->next()) return absl::FailedPreconditionError("allocate person numbers: the counter row is missing");
      first = rs->getInt64(1);
    }
    Prepare(conn, "UPDATE counters SET next_value = ? WHERE name = 'person_no'", {SqlValue::Int(first + count)})
        ->executeUpdate();
    if (auto s = tx.Commit(); !s.ok()) return s;
    return first;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "allocate person numbers");
  }
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> DisbursementRepository::LookupPersonNumbers(
    sql::Connection& conn, const std::vector<std::string>& hashes) const {
  // Literal X'..' keys, thousands a statement: one round trip and one parse, where a prepared
  // statement of as many placeholders costs a prepare, a bind of every key and a close (an
  // ingest of a province looks up millions of persons).
  constexpr size_t kKeys = 5000;
  std::vector<std::pair<std::string, int64_t>> out;
  const std::vector<std::string> keys = Unique(hashes);
  try {
    std::unique_ptr<sql::Statement> st(conn.createStatement());
    std::string text;
    for (size_t start = 0; start < keys.size(); start += kKeys) {
      text = "SELECT id_hash, person_no FROM persons WHERE id_hash IN (";
      for (size_t i = start; i < std::min(keys.size(), start + kKeys); ++i) {
        if (i > start) text += ',';
        text += "X'";
        LoadHexField(text, keys[i]);
        text += '\'';
      }
      text += ')';
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery(text));
      while (rs->next()) out.emplace_back(Str(*rs, 1), rs->getInt64(2));
    }
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read persons");
  }
}

absl::Status DisbursementRepository::InsertPersons(sql::Connection& conn,
                                                   const std::vector<PersonRecord>& persons) const {
  // LOCAL: a person already stored (by number or hash) is skipped, and counted here. The hash
  // and the sealed number go as their bytes (escaped), the masked number is ASCII.
  auto loaded = LoadText(conn, "persons", "person_no, id_hash, id_sealed, id_masked", "", persons.size(),
                         [&](size_t k, std::string& out) {
                           const PersonRecord& p = persons[k];
                           LoadRow(out, p.person_no, std::string_view(p.id_hash), std::string_view(p.id_sealed),
                                   std::string_view(p.id_masked));
                         },
                         LoadCharset::kBinary);
  return CheckLoaded(loaded, persons.size(), "persons");
}

absl::StatusOr<std::vector<PersonRecord>> DisbursementRepository::FindPersons(
    sql::Connection& conn, const std::vector<std::string>& hashes) const {
  std::vector<PersonRecord> out;
  auto s = ForEachInGroup(conn, "SELECT person_no, id_hash, id_sealed, id_masked FROM persons WHERE id_hash IN ", "",
                          Unique(hashes), "read persons", [&](sql::ResultSet& rs) {
                            out.push_back({rs.getInt64(1), Str(rs, 2), Str(rs, 3), Str(rs, 4)});
                          });
  if (!s.ok()) return s;
  return out;
}

absl::Status DisbursementRepository::ScanPersons(sql::Connection& conn,
                                                 const std::function<void(const PersonRecord&)>& fn) const {
  return ScanByKey<PersonRecord>(
      conn, "read persons", "SELECT person_no, id_sealed FROM persons", "", {}, {"person_no"},
      [](sql::ResultSet& rs) { return PersonRecord{rs.getInt64(1), "", Str(rs, 2), ""}; }, fn);
}

absl::StatusOr<int64_t> DisbursementRepository::MaxPersonNumber(sql::Connection& conn) const {
  try {
    auto st = Prepare(conn, "SELECT COALESCE(MAX(person_no), 0) FROM persons", {});
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    return rs->next() ? rs->getInt64(1) : 0;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read persons");
  }
}

absl::StatusOr<int64_t> DisbursementRepository::EstimatedRows(sql::Connection& conn, const std::string& table) const {
  try {
    auto st = Prepare(conn,
                      "SELECT COALESCE(MAX(TABLE_ROWS), 0) FROM information_schema.TABLES "
                      "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                      {SqlValue::Text(table)});
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    return rs->next() ? std::max<int64_t>(rs->getInt64(1), 0) : 0;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, absl::StrCat("read the size of ", table));
  }
}

// ---- programmes

absl::StatusOr<std::vector<ProgrammeRow>> DisbursementRepository::LoadProgrammes(sql::Connection& conn) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT program_code, name, unit, frequency, amount_fen, valid_from, valid_to, excludes_cadre_households, "
        "grace_days FROM programmes ORDER BY program_code"));
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<ProgrammeRow> out;
    while (rs->next()) {
      ProgrammeRow p;
      p.program_code = Str(*rs, 1);
      p.name = Str(*rs, 2);
      p.unit = Str(*rs, 3);
      p.frequency = Str(*rs, 4);
      p.amount_fen = rs->getInt64(5);
      p.valid_from = common::ParsePeriod(Str(*rs, 6)).value_or(common::Period{});
      if (!rs->isNull(7)) p.valid_to = common::ParsePeriod(Str(*rs, 7)).value_or(common::Period{});
      p.excludes_cadre_households = rs->getInt(8) != 0;
      p.grace_days = rs->getInt(9);
      out.push_back(std::move(p));
    }
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read programmes");
  }
}

absl::Status DisbursementRepository::UpsertProgrammes(sql::Connection& conn,
                                                      const std::vector<ProgrammeRow>& rows) const {
  std::vector<SqlRow> values;
  for (const auto& p : rows) {
    values.push_back({SqlValue::Text(p.program_code), SqlValue::Text(p.name), SqlValue::Text(p.unit),
                      SqlValue::Text(p.frequency), SqlValue::Int(p.amount_fen), SqlValue::Text(p.valid_from.ToString()),
                      p.valid_to ? SqlValue::Text(p.valid_to->ToString()) : SqlValue::Null(),
                      SqlValue::Int(p.excludes_cadre_households ? 1 : 0), SqlValue::Int(p.grace_days)});
  }
  return InsertRows(conn, "programmes",
                    {"program_code", "name", "unit", "frequency", "amount_fen", "valid_from", "valid_to",
                     "excludes_cadre_households", "grace_days"},
                    values,
                    " ON DUPLICATE KEY UPDATE name = VALUES(name), unit = VALUES(unit), frequency = VALUES(frequency), "
                    "amount_fen = VALUES(amount_fen), valid_from = VALUES(valid_from), valid_to = VALUES(valid_to), "
                    "excludes_cadre_households = VALUES(excludes_cadre_households), grace_days = VALUES(grace_days), "
                    "updated_at = CURRENT_TIMESTAMP(6)")
      .status();
}

// ---- enrolments

namespace {
// Columns: program_code, person_no, from_period, to_period, amount_fen[, id_hash].
StoredEnrolment ReadEnrolment(sql::ResultSet& rs, bool with_hash) {
  StoredEnrolment e;
  e.program_code = Str(rs, 1);
  e.person_no = rs.getInt64(2);
  e.from_period = Str(rs, 3);
  if (!rs.isNull(4)) e.to_period = Str(rs, 4);
  e.amount_fen = OptInt(rs, 5);
  if (with_hash) e.id_hash = Str(rs, 6);
  return e;
}
constexpr char kEnrolmentColumns[] = "program_code, person_no, from_period, to_period, amount_fen";
}  // namespace

absl::StatusOr<std::vector<StoredEnrolment>> DisbursementRepository::FindEnrolments(
    sql::Connection& conn, const std::vector<StoredEnrolment>& keys) const {
  std::vector<std::string> hashes;
  for (const auto& k : keys) hashes.push_back(k.id_hash);
  std::vector<StoredEnrolment> out;
  auto s = ForEachInGroup(conn,
                          "SELECT e.program_code, e.person_no, e.from_period, e.to_period, e.amount_fen, pe.id_hash "
                          "FROM persons pe JOIN enrolments e ON e.person_no = pe.person_no WHERE pe.id_hash IN ",
                          "", Unique(hashes), "read enrolments",
                          [&](sql::ResultSet& rs) { out.push_back(ReadEnrolment(rs, true)); });
  if (!s.ok()) return s;
  return out;
}

absl::Status DisbursementRepository::UpsertEnrolments(sql::Connection& conn,
                                                      const std::vector<StoredEnrolment>& rows) const {
  std::vector<SqlRow> values;
  for (const auto& e : rows) {
    values.push_back({SqlValue::Text(e.program_code), SqlValue::Int(e.person_no), SqlValue::Text(e.from_period),
                      e.to_period.empty() ? SqlValue::Null() : SqlValue::Text(e.to_period),
                      e.amount_fen ? SqlValue::Int(*e.amount_fen) : SqlValue::Null()});
  }
  return InsertRows(conn, "enrolments", {"program_code", "person_no", "from_period", "to_period", "amount_fen"}, values,
                    " ON DUPLICATE KEY UPDATE to_period = VALUES(to_period), amount_fen = VALUES(amount_fen), "
                    "updated_at = CURRENT_TIMESTAMP(6)")
      .status();
}

absl::Status DisbursementRepository::LoadEnrolments(sql::Connection& conn,
                                                    const std::vector<StoredEnrolment>& rows) const {
  auto loaded = LoadText(conn, "enrolments", kEnrolmentColumns, "", rows.size(), [&](size_t k, std::string& out) {
    const StoredEnrolment& e = rows[k];
    LoadRow(out, std::string_view(e.program_code), e.person_no, std::string_view(e.from_period), OrNull(e.to_period),
            e.amount_fen);
  }, LoadCharset::kAscii);
  if (!loaded.ok()) return loaded.status();
  if (*loaded != static_cast<int64_t>(rows.size())) {
    return absl::AbortedError(absl::StrCat("write enrolments: ", rows.size() - *loaded,
                                           " of the enrolments were written by another ingest meanwhile; "
                                           "nothing of this file was kept, send it again"));
  }
  return absl::OkStatus();
}

absl::Status DisbursementRepository::ScanEnrolments(sql::Connection& conn, const std::string& program_code,
                                                    const std::function<void(const StoredEnrolment&)>& fn) const {
  SqlRow params;
  if (!program_code.empty()) params.push_back(SqlValue::Text(program_code));
  return ScanByKey<StoredEnrolment>(
      conn, "read enrolments", absl::StrCat("SELECT ", kEnrolmentColumns, " FROM enrolments"),
      program_code.empty() ? "" : "program_code = ?", params, {"person_no", "program_code", "from_period"},
      [](sql::ResultSet& rs) { return ReadEnrolment(rs, false); }, fn);
}

// ---- recipients

namespace {
// From recipients r joined with persons pe.
constexpr char kRecipientColumns[] =
    "pe.id_hash, r.name, r.org_code, r.household_id, r.is_household_head, r.is_cadre, "
    "DATE_FORMAT(r.latest_since, '%Y-%m-%d'), r.person_no";
StoredRecipient ReadRecipient(sql::ResultSet& rs) {
  StoredRecipient r;
  r.id_hash = Str(rs, 1);
  r.person_no = rs.getInt64(8);
  r.name = Str(rs, 2);
  r.org_code = Str(rs, 3);
  r.household_id = Str(rs, 4);
  r.is_household_head = rs.getInt(5) != 0;
  r.is_cadre = rs.getInt(6) != 0;
  r.latest_since = Day(rs, 7);
  return r;
}
}  // namespace

absl::StatusOr<std::vector<StoredRecipient>> DisbursementRepository::FindRecipients(
    sql::Connection& conn, const std::vector<std::string>& hashes) const {
  std::vector<StoredRecipient> out;
  auto s = ForEachInGroup(conn,
                          absl::StrCat("SELECT ", kRecipientColumns,
                                       " FROM persons pe JOIN recipients r ON r.person_no = pe.person_no "
                                       "WHERE pe.id_hash IN "),
                          "",
                          Unique(hashes), "read recipients",
                          [&](sql::ResultSet& rs) { out.push_back(ReadRecipient(rs)); });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::tuple<std::string, absl::CivilDay, std::string>>> DisbursementRepository::FindAccounts(
    sql::Connection& conn, const std::vector<std::string>& hashes) const {
  std::vector<std::tuple<std::string, absl::CivilDay, std::string>> out;
  auto s = ForEachInGroup(
      conn,
      "SELECT pe.id_hash, DATE_FORMAT(a.account_since, '%Y-%m-%d'), a.account_no FROM persons pe "
      "JOIN recipient_accounts a ON a.person_no = pe.person_no WHERE pe.id_hash IN ",
      "", Unique(hashes), "read accounts",
      [&](sql::ResultSet& rs) { out.emplace_back(Str(rs, 1), Day(rs, 2), Str(rs, 3)); });
  if (!s.ok()) return s;
  return out;
}

namespace {
// (household_id, id_hash) of the roll entries of these households (`heads_only`: their heads).
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> InHouseholds(
    sql::Connection& conn, const std::vector<std::string>& households, bool heads_only) {
  std::vector<std::pair<std::string, std::string>> out;
  auto s = ForEachInGroup(conn,
                          "SELECT r.household_id, pe.id_hash FROM recipients r "
                          "JOIN persons pe ON pe.person_no = r.person_no WHERE r.household_id IN ",
                          heads_only ? " AND r.is_household_head = 1" : "", Unique(households), "read households",
                          [&](sql::ResultSet& rs) { out.emplace_back(Str(rs, 1), Str(rs, 2)); });
  if (!s.ok()) return s;
  return out;
}
}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DisbursementRepository::FindHouseholdMembers(
    sql::Connection& conn, const std::vector<std::string>& households) const {
  return InHouseholds(conn, households, false);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DisbursementRepository::FindHeads(
    sql::Connection& conn, const std::vector<std::string>& households) const {
  return InHouseholds(conn, households, true);
}

absl::Status DisbursementRepository::UpsertRecipients(sql::Connection& conn,
                                                      const std::vector<StoredRecipient>& rows) const {
  std::vector<SqlRow> values;
  for (const auto& r : rows) {
    values.push_back({SqlValue::Int(r.person_no), SqlValue::Text(r.name), SqlValue::Text(r.org_code),
                      SqlValue::Text(r.household_id), SqlValue::Int(r.is_household_head ? 1 : 0),
                      SqlValue::Int(r.is_cadre ? 1 : 0), SqlValue::Text(DayText(r.latest_since))});
  }
  return InsertRows(conn, "recipients",
                    {"person_no", "name", "org_code", "household_id", "is_household_head", "is_cadre", "latest_since"},
                    values,
                    " ON DUPLICATE KEY UPDATE name = VALUES(name), org_code = VALUES(org_code), "
                    "household_id = VALUES(household_id), is_household_head = VALUES(is_household_head), "
                    "is_cadre = VALUES(is_cadre), latest_since = VALUES(latest_since), "
                    "updated_at = CURRENT_TIMESTAMP(6)")
      .status();
}

absl::Status DisbursementRepository::LoadRecipients(sql::Connection& conn,
                                                    const std::vector<StoredRecipient>& rows) const {
  return CheckLoaded(LoadText(conn, "recipients",
                              "person_no, name, org_code, household_id, is_household_head, is_cadre, latest_since", "",
                              rows.size(),
                              [&](size_t k, std::string& out) {
                                const StoredRecipient& r = rows[k];
                                LoadRow(out, r.person_no, std::string_view(r.name), std::string_view(r.org_code),
                                        std::string_view(r.household_id), int64_t{r.is_household_head ? 1 : 0},
                                        int64_t{r.is_cadre ? 1 : 0}, std::string_view(DayText(r.latest_since)));
                              }),
                     rows.size(), "recipients");
}

absl::Status DisbursementRepository::LoadAccounts(
    sql::Connection& conn, const std::vector<std::tuple<int64_t, absl::CivilDay, std::string>>& rows) const {
  return CheckLoaded(LoadText(conn, "recipient_accounts", "person_no, account_since, account_no", "", rows.size(),
                              [&](size_t k, std::string& out) {
                                const auto& [person_no, since, account] = rows[k];
                                LoadRow(out, person_no, std::string_view(DayText(since)), std::string_view(account));
                              },
                              LoadCharset::kAscii),
                     rows.size(), "accounts");
}

absl::Status DisbursementRepository::InsertAccounts(
    sql::Connection& conn, const std::vector<std::tuple<int64_t, absl::CivilDay, std::string>>& rows) const {
  std::vector<SqlRow> values;
  for (const auto& [person_no, since, account] : rows) {
    values.push_back({SqlValue::Int(person_no), SqlValue::Text(DayText(since)), SqlValue::Text(account)});
  }
  return InsertRows(conn, "recipient_accounts", {"person_no", "account_since", "account_no"}, values, "").status();
}

absl::Status DisbursementRepository::ScanAccounts(sql::Connection& conn,
                                                  const std::function<void(const AccountRow&)>& fn) const {
  return ScanByKey<AccountRow>(
      conn, "read accounts",
      "SELECT a.person_no, DATE_FORMAT(a.account_since, '%Y-%m-%d'), a.account_no FROM recipient_accounts a", "", {},
      {"a.person_no", "a.account_since"},
      [](sql::ResultSet& rs) {
        AccountRow a;
        a.person_no = rs.getInt64(1);
        a.since = Day(rs, 2);
        a.account_no = Str(rs, 3);
        return a;
      },
      fn);
}

absl::Status DisbursementRepository::ScanRoll(sql::Connection& conn,
                                              const std::function<void(const RollEntry&)>& fn) const {
  return ScanByKey<RollEntry>(
      conn, "read recipients", "SELECT r.person_no, r.household_id, r.is_household_head, r.is_cadre FROM recipients r",
      "", {}, {"r.person_no"},
      [](sql::ResultSet& rs) {
        RollEntry r;
        r.person_no = rs.getInt64(1);
        r.household_id = Str(rs, 2);
        r.is_household_head = rs.getInt(3) != 0;
        r.is_cadre = rs.getInt(4) != 0;
        return r;
      },
      fn);
}

absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> DisbursementRepository::ListEnrolledPersons(
    sql::Connection& conn, const std::string& program_code, int64_t after_no, int limit) const {
  try {
    auto st = Prepare(conn,
                      "SELECT e.person_no, pe.id_hash FROM (SELECT DISTINCT person_no FROM enrolments "
                      "WHERE program_code = ? AND person_no > ? ORDER BY person_no LIMIT ?) e "
                      "JOIN persons pe ON pe.person_no = e.person_no ORDER BY e.person_no",
                      {SqlValue::Text(program_code), SqlValue::Int(after_no), SqlValue::Int(limit)});
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<std::pair<int64_t, std::string>> out;
    while (rs->next()) out.emplace_back(rs->getInt64(1), Str(*rs, 2));
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "list enrolments");
  }
}

absl::StatusOr<std::vector<std::string>> DisbursementRepository::CadreHouseholds(
    sql::Connection& conn, const std::vector<std::string>& households) const {
  std::vector<std::string> out;
  auto s = ForEachInGroup(conn, "SELECT DISTINCT household_id FROM recipients WHERE household_id IN ",
                          " AND is_cadre = 1", Unique(households), "read households",
                          [&](sql::ResultSet& rs) { out.push_back(Str(rs, 1)); });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<StoredRecipient>> DisbursementRepository::ListRecipients(
    sql::Connection& conn, const std::vector<std::string>& org_codes, const std::string& after_household,
    int64_t after_no, int limit) const {
  if (org_codes.empty()) return std::vector<StoredRecipient>{};
  if (after_no > 0 && org_codes.size() > 1) {
    return absl::InternalError("list recipients: a keyset position belongs to one village");
  }
  try {
    SqlRow params;
    std::string where = "WHERE r.org_code IN (";
    for (size_t i = 0; i < org_codes.size(); ++i) {
      absl::StrAppend(&where, i == 0 ? "?" : ",?");
      params.push_back(SqlValue::Text(org_codes[i]));
    }
    where += ")";
    if (after_no > 0) {
      absl::StrAppend(&where, " AND ",
                      KeysetAfter({"r.household_id", "r.person_no"},
                                  {SqlValue::Text(after_household), SqlValue::Int(after_no)}, params));
    }
    params.push_back(SqlValue::Int(limit));
    auto st = Prepare(conn,
                      absl::StrCat("SELECT ", kRecipientColumns,
                                   " FROM recipients r JOIN persons pe ON pe.person_no = r.person_no ", where,
                                   " ORDER BY r.org_code, r.household_id, r.person_no LIMIT ?"),
                      params);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<StoredRecipient> out;
    while (rs->next()) out.push_back(ReadRecipient(*rs));
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "list recipients");
  }
}

namespace {

// One village's rows of `table` (alias `t`, joined to the roll by person_no), each with the roll
// entry of its person, in (household_id, person_no, `own_key`...) order after `after` (values
// of that whole key; none: from the start). `columns` are read after the roll's, from column 9.
template <typename Row>
absl::StatusOr<std::vector<std::pair<StoredRecipient, Row>>> ListVillageRows(
    sql::Connection& conn, const char* what, const std::string& table, const std::string& columns,
    const std::vector<std::string>& own_key, const std::string& org_code, const std::string& condition,
    SqlRow params, const std::optional<SqlRow>& after, int limit, const std::function<Row(sql::ResultSet&)>& read) {
  try {
    std::string where = "WHERE r.org_code = ?";
    params.insert(params.begin(), SqlValue::Text(org_code));
    if (!condition.empty()) absl::StrAppend(&where, " AND ", condition);
    std::vector<std::string> key = {"r.household_id", "r.person_no"};
    key.insert(key.end(), own_key.begin(), own_key.end());
    if (after) absl::StrAppend(&where, " AND ", KeysetAfter(key, *after, params));
    params.push_back(SqlValue::Int(limit));
    auto st = Prepare(conn,
                      absl::StrCat("SELECT ", kRecipientColumns, ", ", columns,
                                   " FROM recipients r JOIN persons pe ON pe.person_no = r.person_no JOIN ", table,
                                   " t ON t.person_no = r.person_no ", where, " ORDER BY ", absl::StrJoin(key, ", "),
                                   " LIMIT ?"),
                      params);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<std::pair<StoredRecipient, Row>> out;
    while (rs->next()) out.emplace_back(ReadRecipient(*rs), read(*rs));
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, what);
  }
}

}  // namespace

absl::StatusOr<std::vector<std::pair<StoredRecipient, StoredEnrolment>>> DisbursementRepository::ListVillageEnrolments(
    sql::Connection& conn, const std::string& org_code, const std::string& program_code,
    const std::optional<SqlRow>& after, int limit) const {
  SqlRow params;
  if (!program_code.empty()) params.push_back(SqlValue::Text(program_code));
  auto rows = ListVillageRows<StoredEnrolment>(
      conn, "list enrolments", "enrolments", "t.program_code, t.from_period, t.to_period, t.amount_fen",
      {"t.program_code", "t.from_period"}, org_code, program_code.empty() ? "" : "t.program_code = ?", params, after,
      limit, [](sql::ResultSet& rs) {
        StoredEnrolment e;
        e.program_code = Str(rs, 9);
        e.from_period = Str(rs, 10);
        e.to_period = rs.isNull(11) ? std::string() : Str(rs, 11);
        if (!rs.isNull(12)) e.amount_fen = rs.getInt64(12);
        return e;
      });
  if (rows.ok()) {
    for (auto& [who, e] : *rows) {
      e.id_hash = who.id_hash;
      e.person_no = who.person_no;
    }
  }
  return rows;
}

absl::StatusOr<std::vector<std::pair<StoredRecipient, CivilEventRow>>> DisbursementRepository::ListVillageCivilEvents(
    sql::Connection& conn, const std::string& org_code, const std::optional<SqlRow>& after, int limit) const {
  return ListVillageRows<CivilEventRow>(
      conn, "list civil events", "civil_events", "t.event, DATE_FORMAT(t.event_date, '%Y-%m-%d'), t.source_ref",
      {"t.event", "t.event_date"}, org_code, "", {}, after, limit, [](sql::ResultSet& rs) {
        CivilEventRow c;
        c.event = Str(rs, 9);
        c.event_date = Day(rs, 10);
        c.source_ref = rs.isNull(11) ? std::string() : Str(rs, 11);
        return c;
      });
}

// ---- civil events

absl::StatusOr<std::vector<CivilEventRow>> DisbursementRepository::FindCivilEvents(
    sql::Connection& conn, const std::vector<std::pair<std::string, CivilEventRow>>& keys,
    std::vector<std::string>* hashes_out) const {
  std::vector<std::string> hashes;
  for (const auto& k : keys) hashes.push_back(k.first);
  std::vector<CivilEventRow> out;
  auto s = ForEachInGroup(
      conn,
      "SELECT pe.id_hash, c.event, DATE_FORMAT(c.event_date, '%Y-%m-%d'), c.source_ref FROM persons pe "
      "JOIN civil_events c ON c.person_no = pe.person_no WHERE pe.id_hash IN ",
      "",
      Unique(hashes), "read civil events", [&](sql::ResultSet& rs) {
        CivilEventRow e;
        hashes_out->push_back(Str(rs, 1));
        e.event = Str(rs, 2);
        e.event_date = Day(rs, 3);
        if (!rs.isNull(4)) e.source_ref = Str(rs, 4);
        out.push_back(std::move(e));
      });
  if (!s.ok()) return s;
  return out;
}

absl::Status DisbursementRepository::UpsertCivilEvents(
    sql::Connection& conn, const std::vector<std::pair<int64_t, CivilEventRow>>& rows) const {
  std::vector<SqlRow> values;
  for (const auto& [person_no, e] : rows) {
    values.push_back({SqlValue::Int(person_no), SqlValue::Text(e.event), SqlValue::Text(DayText(e.event_date)),
                      e.source_ref.empty() ? SqlValue::Null() : SqlValue::Text(e.source_ref)});
  }
  return InsertRows(conn, "civil_events", {"person_no", "event", "event_date", "source_ref"}, values,
                    " ON DUPLICATE KEY UPDATE source_ref = VALUES(source_ref)")
      .status();
}

absl::Status DisbursementRepository::ScanDeaths(sql::Connection& conn,
                                                const std::function<void(int64_t, absl::CivilDay)>& fn) const {
  try {
    int64_t after = 0;
    while (true) {
      auto st = Prepare(conn,
                        "SELECT person_no, DATE_FORMAT(MIN(event_date), '%Y-%m-%d') FROM civil_events "
                        "WHERE event = 'death' AND person_no > ? GROUP BY person_no ORDER BY person_no LIMIT ?",
                        {SqlValue::Int(after), SqlValue::Int(kScanPage)});
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      int n = 0;
      while (rs->next()) {
        after = rs->getInt64(1);
        fn(after, Day(*rs, 2));
        ++n;
      }
      if (n < kScanPage) return absl::OkStatus();
    }
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read civil events");
  }
}

// ---- batches

namespace {
constexpr char kBatchColumns[] =
    "batch_id, program_code, period, declared_count, declared_total_fen, DATE_FORMAT(scheduled_on, '%Y-%m-%d')";
BatchRow ReadBatch(sql::ResultSet& rs) {
  BatchRow b;
  b.batch_id = Str(rs, 1);
  b.program_code = Str(rs, 2);
  b.period = common::ParsePeriod(Str(rs, 3)).value_or(common::Period{});
  b.declared_count = rs.getInt64(4);
  b.declared_total_fen = rs.getInt64(5);
  b.scheduled_on = Day(rs, 6);
  return b;
}
}  // namespace

absl::StatusOr<std::vector<BatchRow>> DisbursementRepository::FindBatches(sql::Connection& conn,
                                                                          const std::vector<std::string>& ids) const {
  std::vector<BatchRow> out;
  auto s = ForEachInGroup(conn, absl::StrCat("SELECT ", kBatchColumns, " FROM batches WHERE batch_id IN "), "",
                          Unique(ids), "read batches", [&](sql::ResultSet& rs) { out.push_back(ReadBatch(rs)); });
  if (!s.ok()) return s;
  return out;
}

absl::Status DisbursementRepository::UpsertBatches(sql::Connection& conn, const std::vector<BatchRow>& rows) const {
  std::vector<SqlRow> values;
  for (const auto& b : rows) {
    values.push_back({SqlValue::Text(b.batch_id), SqlValue::Text(b.program_code), SqlValue::Text(b.period.ToString()),
                      SqlValue::Int(b.declared_count), SqlValue::Int(b.declared_total_fen),
                      SqlValue::Text(DayText(b.scheduled_on))});
  }
  return InsertRows(conn, "batches",
                    {"batch_id", "program_code", "period", "declared_count", "declared_total_fen", "scheduled_on"},
                    values,
                    " ON DUPLICATE KEY UPDATE program_code = VALUES(program_code), period = VALUES(period), "
                    "declared_count = VALUES(declared_count), declared_total_fen = VALUES(declared_total_fen), "
                    "scheduled_on = VALUES(scheduled_on), updated_at = CURRENT_TIMESTAMP(6)")
      .status();
}

absl::StatusOr<std::vector<BatchRow>> DisbursementRepository::LoadBatches(sql::Connection& conn) const {
  try {
    auto st = Prepare(conn, absl::StrCat("SELECT ", kBatchColumns, " FROM batches ORDER BY batch_id"), {});
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<BatchRow> out;
    while (rs->next()) out.push_back(ReadBatch(*rs));
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read batches");
  }
}

// ---- payments

namespace {
// Columns of payments p[, then persons pe's id_hash].
// What the check reads of a payment; kPaymentColumns adds the file row that brought it.
constexpr char kScannedPaymentColumns[] =
    "p.payment_id, p.batch_id, p.program_code, p.period, p.person_no, p.account_no, p.amount_fen, "
    "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 08:00:00', p.paid_at), p.reverses";
constexpr char kPaymentColumns[] =
    "p.payment_id, p.batch_id, p.program_code, p.period, p.person_no, p.account_no, p.amount_fen, "
    "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 08:00:00', p.paid_at), p.reverses, p.ingest_id, p.source_line";
// A row of kScannedPaymentColumns, or (with_source) of kPaymentColumns, then (with_hash) id_hash.
StoredPayment ReadPayment(sql::ResultSet& rs, bool with_source, bool with_hash) {
  StoredPayment p;
  p.payment_id = Str(rs, 1);
  p.batch_id = Str(rs, 2);
  p.program_code = Str(rs, 3);
  p.period = Str(rs, 4);
  p.person_no = rs.getInt64(5);
  p.account_no = Str(rs, 6);
  p.amount_fen = rs.getInt64(7);
  // paid_at is China Standard Time (UTC+8, fixed): its distance from 1970-01-01 08:00 is the
  // Unix time, read as one integer (no text to parse per payment).
  p.paid_at = absl::FromUnixMicros(rs.getInt64(8));
  if (!rs.isNull(9)) p.reverses = Str(rs, 9);
  if (with_source) {
    p.ingest_id = Str(rs, 10);
    p.source_line = rs.getInt64(11);
  }
  if (with_hash) p.id_hash = Str(rs, 12);
  return p;
}
}  // namespace

absl::StatusOr<std::vector<StoredPayment>> DisbursementRepository::FindPayments(
    sql::Connection& conn, const std::vector<std::string>& ids) const {
  std::vector<StoredPayment> out;
  auto s = ForEachInGroup(conn,
                          absl::StrCat("SELECT ", kPaymentColumns,
                                       ", pe.id_hash FROM payments p JOIN persons pe ON pe.person_no = p.person_no "
                                       "WHERE p.payment_id IN "),
                          "", Unique(ids), "read payments",
                          [&](sql::ResultSet& rs) { out.push_back(ReadPayment(rs, true, true)); });
  if (!s.ok()) return s;
  return out;
}

absl::Status DisbursementRepository::InsertPayments(sql::Connection& conn,
                                                    const std::vector<StoredPayment>& rows) const {
  // paid_at as Unix microseconds, made China Standard Time (UTC+8, fixed) by the server: the
  // inverse of ReadPayment's TIMESTAMPDIFF, no date text formatted per row.
  auto loaded = LoadText(conn, "payments",
                         "payment_id, batch_id, program_code, period, person_no, account_no, amount_fen, @paid_us, "
                         "reverses, ingest_id, source_line",
                         "paid_at = TIMESTAMPADD(MICROSECOND, @paid_us, '1970-01-01 08:00:00')", rows.size(),
                         [&](size_t k, std::string& out) {
                           const StoredPayment& p = rows[k];
                           LoadRow(out, std::string_view(p.payment_id), std::string_view(p.batch_id),
                                   std::string_view(p.program_code), std::string_view(p.period), p.person_no,
                                   std::string_view(p.account_no), p.amount_fen, absl::ToUnixMicros(p.paid_at),
                                   OrNull(p.reverses), std::string_view(p.ingest_id), p.source_line);
                         },
                         LoadCharset::kAscii);
  if (!loaded.ok()) return loaded.status();
  if (*loaded != static_cast<int64_t>(rows.size())) {
    return absl::AbortedError(absl::StrCat("write payments: ", rows.size() - *loaded,
                                           " of the payments were written by another ingest meanwhile; "
                                           "nothing of this file was kept, send it again"));
  }
  // The reversals among them, also in payment_reversals (V004: what the disclosure nets by).
  std::vector<const StoredPayment*> reversals;
  for (const auto& p : rows) {
    if (!p.reverses.empty()) reversals.push_back(&p);
  }
  auto reversed = LoadText(conn, "payment_reversals", "reverses, payment_id, amount_fen", "", reversals.size(),
                           [&](size_t k, std::string& out) {
                             const StoredPayment& p = *reversals[k];
                             LoadRow(out, std::string_view(p.reverses), std::string_view(p.payment_id), p.amount_fen);
                           },
                           LoadCharset::kAscii);
  if (!reversed.ok()) return reversed.status();
  if (*reversed != static_cast<int64_t>(reversals.size())) {
    return absl::AbortedError(absl::StrCat("write payment reversals: ", reversals.size() - *reversed,
                                           " of the reversals were written by another ingest meanwhile; "
                                           "nothing of this file was kept, send it again"));
  }
  return absl::OkStatus();
}

absl::Status DisbursementRepository::ScanPayments(sql::Connection& conn,
                                                  const std::function<void(const StoredPayment&)>& fn) const {
  return ScanByKey<StoredPayment>(
      conn, "read payments", absl::StrCat("SELECT ", kScannedPaymentColumns, " FROM payments p"), "", {},
      {"payment_id"},
      [](sql::ResultSet& rs) { return ReadPayment(rs, false, false); }, fn);
}

// ---- data generation

absl::StatusOr<int64_t> DisbursementRepository::DataGeneration(sql::Connection& conn) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(
        conn.prepareStatement("SELECT generation FROM data_state WHERE name = 'disbursement'"));
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    return rs->next() ? rs->getInt64(1) : 0;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read data state");
  }
}

absl::Status DisbursementRepository::BumpDataGeneration(sql::Connection& conn) const {
  return Execute(conn,
                 "UPDATE data_state SET generation = generation + 1, changed_at = CURRENT_TIMESTAMP(6) "
                 "WHERE name = 'disbursement'",
                 {});
}

// ---- runs and findings

absl::Status DisbursementRepository::InsertRun(sql::Connection& conn, const CheckRunRecord& run) const {
  auto s = InsertRows(conn, "check_runs",
                      {"run_id", "program_code", "period", "as_of", "started_at", "finished_at", "data_generation",
                       "payments_checked", "entitlements_checked", "warnings", "triggered_by"},
                      {{SqlValue::Text(run.run_id), SqlValue::Text(run.program_code), SqlValue::Text(run.period),
                        SqlValue::Text(DayText(run.as_of)), SqlValue::Text(ToSqlDateTime(run.started_at)),
                        SqlValue::Text(ToSqlDateTime(run.finished_at)), SqlValue::Int(run.data_generation),
                        SqlValue::Int(run.payments_checked), SqlValue::Int(run.entitlements_checked),
                        SqlValue::Text(absl::StrJoin(run.warnings, "\n")), SqlValue::Text(run.triggered_by)}},
                      "");
  if (!s.ok()) return s.status();
  std::vector<SqlRow> counts;
  for (const auto& [rule, n] : run.counts) {
    counts.push_back({SqlValue::Text(run.run_id), SqlValue::Text(rule), SqlValue::Int(n)});
  }
  return InsertRows(conn, "check_run_counts", {"run_id", "rule", "finding_count"}, counts, "").status();
}

absl::Status DisbursementRepository::InsertFindings(sql::Connection& conn, const std::string& run_id,
                                                    const std::vector<FindingRecord>& findings) const {
  std::vector<SqlRow> values;
  constexpr size_t kChunk = 4000;
  for (size_t start = 0; start < findings.size(); start += kChunk) {
    values.clear();
    for (size_t i = start; i < std::min(findings.size(), start + kChunk); ++i) {
      const FindingRecord& f = findings[i];
      values.push_back({SqlValue::Text(run_id), SqlValue::Int(f.seq), SqlValue::Text(f.finding_id),
                        SqlValue::Text(f.rule), SqlValue::Text(f.program_code), SqlValue::Text(f.period),
                        f.id_hash.empty() ? SqlValue::Null() : SqlValue::Text(f.id_hash),
                        SqlValue::Text(f.payment_id), SqlValue::Text(f.batch_id),
                        f.expected_fen ? SqlValue::Int(*f.expected_fen) : SqlValue::Null(),
                        f.actual_fen ? SqlValue::Int(*f.actual_fen) : SqlValue::Null(),
                        SqlValue::Text(f.detail.substr(0, 1000)), SqlValue::Text(f.evidence)});
    }
    auto s = InsertRows(conn, "findings",
                        {"run_id", "seq", "finding_id", "rule", "program_code", "period", "id_hash", "payment_id",
                         "batch_id", "expected_fen", "actual_fen", "detail", "evidence"},
                        values, "");
    if (!s.ok()) return s.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<CheckRunRecord>> DisbursementRepository::FindRun(sql::Connection& conn,
                                                                              const std::string& run_id) const {
  try {
    const bool latest = run_id.empty() || run_id == "latest";
    SqlRow params;
    if (!latest) params.push_back(SqlValue::Text(run_id));
    auto st = Prepare(conn,
                      absl::StrCat("SELECT run_id, program_code, period, DATE_FORMAT(as_of, '%Y-%m-%d'), "
                                   "DATE_FORMAT(started_at, '%Y-%m-%d %H:%i:%s.%f'), "
                                   "DATE_FORMAT(finished_at, '%Y-%m-%d %H:%i:%s.%f'), data_generation, "
                                   "payments_checked, entitlements_checked, warnings, triggered_by FROM check_runs ",
                                   latest ? "ORDER BY started_at DESC, run_id DESC LIMIT 1" : "WHERE run_id = ?"),
                      params);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return std::optional<CheckRunRecord>();
    CheckRunRecord r;
    r.run_id = Str(*rs, 1);
    r.program_code = Str(*rs, 2);
    r.period = Str(*rs, 3);
    r.as_of = Day(*rs, 4);
    r.started_at = FromSqlDateTime(Str(*rs, 5));
    r.finished_at = FromSqlDateTime(Str(*rs, 6));
    r.data_generation = rs->getInt64(7);
    r.payments_checked = rs->getInt64(8);
    r.entitlements_checked = rs->getInt64(9);
    const std::string warnings = Str(*rs, 10);
    if (!warnings.empty()) r.warnings = absl::StrSplit(warnings, '\n');
    r.triggered_by = Str(*rs, 11);
    auto cst = Prepare(conn, "SELECT rule, finding_count FROM check_run_counts WHERE run_id = ? ORDER BY rule",
                       {SqlValue::Text(r.run_id)});
    std::unique_ptr<sql::ResultSet> crs(cst->executeQuery());
    while (crs->next()) r.counts.emplace_back(Str(*crs, 1), crs->getInt64(2));
    return std::optional<CheckRunRecord>(std::move(r));
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read check run");
  }
}

absl::StatusOr<bool> DisbursementRepository::HasRunAt(sql::Connection& conn, const std::string& program_code,
                                                      const std::string& period, int64_t generation,
                                                      absl::CivilDay due) const {
  try {
    auto st = Prepare(conn,
                      "SELECT 1 FROM check_runs WHERE ((program_code = ? AND period = ?) OR "
                      "(program_code = '' AND period = '')) AND data_generation = ? AND as_of > ? LIMIT 1",
                      {SqlValue::Text(program_code), SqlValue::Text(period), SqlValue::Int(generation),
                       SqlValue::Text(common::FormatDate(due))});
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    return rs->next();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read check runs");
  }
}

namespace {
constexpr char kFindingSelect[] =
    "SELECT f.seq, f.finding_id, f.rule, f.program_code, f.period, f.id_hash, f.payment_id, f.batch_id, "
    "f.expected_fen, f.actual_fen, f.detail, f.evidence, p.id_masked, p.id_sealed, r.state, r.reason, "
    "r.reviewed_by, DATE_FORMAT(r.reviewed_at, '%Y-%m-%d %H:%i:%s.%f') "
    "FROM findings f LEFT JOIN persons p ON p.id_hash = f.id_hash "
    "LEFT JOIN finding_reviews r ON r.finding_id = f.finding_id ";
FindingRecord ReadFinding(sql::ResultSet& rs) {
  FindingRecord f;
  f.seq = rs.getInt64(1);
  f.finding_id = Str(rs, 2);
  f.rule = Str(rs, 3);
  f.program_code = Str(rs, 4);
  f.period = Str(rs, 5);
  if (!rs.isNull(6)) f.id_hash = Str(rs, 6);
  f.payment_id = Str(rs, 7);
  f.batch_id = Str(rs, 8);
  f.expected_fen = OptInt(rs, 9);
  f.actual_fen = OptInt(rs, 10);
  f.detail = Str(rs, 11);
  f.evidence = Str(rs, 12);
  if (!rs.isNull(13)) f.id_masked = Str(rs, 13);
  if (!rs.isNull(14)) f.id_sealed = Str(rs, 14);
  if (!rs.isNull(15)) {
    f.review_state = Str(rs, 15);
    f.review_reason = Str(rs, 16);
    f.reviewed_by = Str(rs, 17);
    f.reviewed_at = FromSqlDateTime(Str(rs, 18));
  }
  return f;
}
}  // namespace

absl::Status DisbursementRepository::ScanFindingsInMaskedCsvOrder(
    sql::Connection& conn, const std::string& run_id, const std::function<void(const FindingRecord&)>& fn) const {
  // findings.csv's order with masked ID numbers; ties in the engine's order (seq). Bytewise
  // columns (ascii_bin, utf8mb4_bin): the order the file's writer sorts by.
  return ScanByKey<FindingRecord>(conn, "read findings", kFindingSelect, "f.run_id = ?", {SqlValue::Text(run_id)},
                                  {"f.rule", "f.program_code", "f.period", "COALESCE(p.id_masked, '')",
                                   "f.payment_id", "f.seq"},
                                  [](sql::ResultSet& rs) { return ReadFinding(rs); }, fn);
}

absl::StatusOr<std::vector<FindingRecord>> DisbursementRepository::ListFindings(
    sql::Connection& conn, const std::string& run_id, const std::string& rule, const std::string& review_state,
    int64_t after_seq, int limit) const {
  try {
    SqlRow params = {SqlValue::Text(run_id), SqlValue::Int(after_seq)};
    std::string where = "WHERE f.run_id = ? AND f.seq > ?";
    if (!rule.empty()) {
      where += " AND f.rule = ?";
      params.push_back(SqlValue::Text(rule));
    }
    if (review_state == "open") {
      where += " AND (r.state IS NULL OR r.state = 'open')";
    } else if (!review_state.empty()) {
      where += " AND r.state = ?";
      params.push_back(SqlValue::Text(review_state));
    }
    params.push_back(SqlValue::Int(limit));
    auto st = Prepare(conn, absl::StrCat(kFindingSelect, where, " ORDER BY f.seq LIMIT ?"), params);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<FindingRecord> out;
    while (rs->next()) out.push_back(ReadFinding(*rs));
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "list findings");
  }
}

absl::StatusOr<std::optional<FindingRecord>> DisbursementRepository::FindFinding(
    sql::Connection& conn, const std::string& finding_id) const {
  try {
    auto st = Prepare(conn,
                      absl::StrCat(kFindingSelect,
                                   "JOIN check_runs c ON c.run_id = f.run_id WHERE f.finding_id = ? "
                                   "ORDER BY c.started_at DESC, c.run_id DESC LIMIT 1"),
                      {SqlValue::Text(finding_id)});
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return std::optional<FindingRecord>();
    return std::optional<FindingRecord>(ReadFinding(*rs));
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read finding");
  }
}

absl::Status DisbursementRepository::UpsertReview(sql::Connection& conn, const ReviewRecord& r) const {
  return InsertRows(conn, "finding_reviews", {"finding_id", "state", "reason", "reviewed_by", "reviewed_at"},
                    {{SqlValue::Text(r.finding_id), SqlValue::Text(r.state), SqlValue::Text(r.reason),
                      SqlValue::Text(r.reviewed_by), SqlValue::Text(ToSqlDateTime(r.reviewed_at))}},
                    " ON DUPLICATE KEY UPDATE state = VALUES(state), reason = VALUES(reason), "
                    "reviewed_by = VALUES(reviewed_by), reviewed_at = VALUES(reviewed_at)")
      .status();
}

absl::StatusOr<std::vector<DisclosureRow>> DisbursementRepository::ListDisclosure(
    sql::Connection& conn, const std::string& org_code, const std::string& period, const std::string& program_code,
    const std::string& after_program, const std::string& after_masked, const std::string& after_payment,
    int limit) const {
  try {
    SqlRow params = {SqlValue::Text(org_code), SqlValue::Text(period)};
    std::string where = "WHERE r.org_code = ? AND p.period = ? AND p.reverses IS NULL";
    if (!program_code.empty()) {
      where += " AND p.program_code = ?";
      params.push_back(SqlValue::Text(program_code));
    }
    if (!after_payment.empty()) {
      absl::StrAppend(&where, " AND ",
                      KeysetAfter({"p.program_code", "pe.id_masked", "p.payment_id"},
                                  {SqlValue::Text(after_program), SqlValue::Text(after_masked),
                                   SqlValue::Text(after_payment)},
                                  params));
    }
    params.push_back(SqlValue::Int(limit));
    auto st = Prepare(
        conn,
        absl::StrCat("SELECT p.program_code, p.period, r.name, pe.id_masked, pe.id_hash, p.amount_fen, "
                     "DATE_FORMAT(p.paid_at, '%Y-%m-%d %H:%i:%s.%f'), p.payment_id "
                     "FROM payments p JOIN recipients r ON r.person_no = p.person_no "
                     "JOIN persons pe ON pe.person_no = p.person_no ",
                     where, " ORDER BY p.program_code, pe.id_masked, p.payment_id LIMIT ?"),
        params);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<DisclosureRow> out;
    while (rs->next()) {
      DisclosureRow d;
      d.program_code = Str(*rs, 1);
      d.period = Str(*rs, 2);
      d.name = Str(*rs, 3);
      d.id_masked = Str(*rs, 4);
      d.id_hash = Str(*rs, 5);
      d.amount_fen = rs->getInt64(6);
      d.paid_at = FromSqlDateTime(Str(*rs, 7));
      d.payment_id = Str(*rs, 8);
      out.push_back(std::move(d));
    }
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "list disclosure");
  }
}

absl::StatusOr<std::vector<ReversalRow>> DisbursementRepository::FindReversalsOf(
    sql::Connection& conn, const std::vector<std::string>& payment_ids) const {
  std::vector<ReversalRow> out;
  auto s = ForEachInGroup(conn,
                          "SELECT x.reverses, x.payment_id, x.amount_fen, "
                          "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 08:00:00', r.paid_at) "
                          "FROM payment_reversals x JOIN payments r ON r.payment_id = x.payment_id "
                          "WHERE x.reverses IN ",
                          "", Unique(payment_ids), "read reversals", [&](sql::ResultSet& rs) {
                            out.push_back({Str(rs, 1), Str(rs, 2), rs.getInt64(3),
                                           absl::FromUnixMicros(rs.getInt64(4))});
                          });
  if (!s.ok()) return s;
  std::sort(out.begin(), out.end(), [](const ReversalRow& a, const ReversalRow& b) {
    return std::tie(a.reverses, a.paid_at, a.payment_id) < std::tie(b.reverses, b.paid_at, b.payment_id);
  });
  return out;
}

}  // namespace grassroots::cadrepay
