#include "grassroots/common/import_errors.h"

#include <algorithm>
#include <memory>

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "grassroots/common/status.h"

namespace grassroots::common {
namespace {

constexpr size_t kRowsPerInsert = 1000;
constexpr char kTokenScope[] = "import-errors";

std::string NewReportId() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(*gen), absl::Uniform<uint64_t>(*gen));
}

bool IsReportId(const std::string& s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

absl::Status BoundImportReport(ConnectionPool& pool, exchange::v1::ImportReport& report, int64_t inline_errors) {
  auto* errors = report.mutable_errors();
  std::stable_sort(errors->begin(), errors->end(), [](const auto& a, const auto& b) { return a.line() < b.line(); });
  report.set_errors_total(errors->size());
  if (errors->size() <= inline_errors) return absl::OkStatus();
  auto conn = OpenConnection(pool.options());
  if (!conn.ok()) return conn.status();
  const std::string id = NewReportId();
  try {
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    // What has been kept long enough goes first (bounded: an old backlog goes over several imports).
    st->execute("DELETE FROM import_errors WHERE created_at < UTC_TIMESTAMP() - INTERVAL 30 DAY LIMIT 100000");
    (*conn)->setAutoCommit(false);
    for (int64_t at = 0; at < errors->size(); at += kRowsPerInsert) {
      const int64_t n = std::min<int64_t>(kRowsPerInsert, errors->size() - at);
      std::string sql = "INSERT INTO import_errors (report_id, seq, line, column_name, code, message, created_at) VALUES ";
      for (int64_t i = 0; i < n; ++i) absl::StrAppend(&sql, i == 0 ? "" : ",", "(?, ?, ?, ?, ?, ?, UTC_TIMESTAMP())");
      std::unique_ptr<sql::PreparedStatement> ins((*conn)->prepareStatement(sql));
      for (int64_t i = 0; i < n; ++i) {
        const auto& e = errors->Get(static_cast<int>(at + i));
        ins->setString(static_cast<unsigned>(6 * i + 1), id);
        ins->setInt64(static_cast<unsigned>(6 * i + 2), at + i + 1);
        ins->setInt64(static_cast<unsigned>(6 * i + 3), e.line());
        ins->setString(static_cast<unsigned>(6 * i + 4), e.column().substr(0, 200));
        ins->setString(static_cast<unsigned>(6 * i + 5), e.code().substr(0, 64));
        ins->setString(static_cast<unsigned>(6 * i + 6), e.message().substr(0, 2000));
      }
      ins->executeUpdate();
    }
    (*conn)->commit();
  } catch (const sql::SQLException& e) {
    return SqlError(e, "keep an import's errors");
  }
  errors->DeleteSubrange(static_cast<int>(inline_errors), errors->size() - static_cast<int>(inline_errors));
  report.set_report_id(id);
  return absl::OkStatus();
}

absl::StatusOr<exchange::v1::ListImportErrorsResponse> ListImportErrors(
    ConnectionPool& pool, const exchange::v1::ListImportErrorsRequest& request, absl::Time deadline) {
  if (!IsReportId(request.report_id())) return InvalidField("report_id", "is not the report_id of an import report");
  if (request.page_size() < 0 || request.page_size() > 10000) return InvalidField("page_size", "must be 1 to 10000");
  if (request.offset() < 0) return InvalidField("offset", "must not be negative");
  const int page_size = request.page_size() == 0 ? 1000 : request.page_size();
  const std::string scope = absl::StrCat(kTokenScope, ":", request.report_id());
  int64_t after = request.offset();
  if (!request.page_token().empty()) {
    auto position = ReadPageToken(request.page_token(), scope);
    if (!position.ok()) return position.status();
    if (!absl::SimpleAtoi(*position, &after) || after < 0) {
      return InvalidField("page_token", "is not a token this service issued");
    }
  }
  auto conn = pool.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  try {
    std::unique_ptr<sql::PreparedStatement> st((*conn)->prepareStatement(
        "SELECT seq, line, column_name, code, message FROM import_errors WHERE report_id = ? AND seq > ? "
        "ORDER BY seq LIMIT ?"));
    st->setString(1, request.report_id());
    st->setInt64(2, after);
    st->setInt(3, page_size + 1);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    exchange::v1::ListImportErrorsResponse out;
    int64_t last = after;
    while (rs->next()) {
      if (out.errors_size() == page_size) {
        out.set_next_page_token(MakePageToken(scope, std::to_string(last)));
        break;
      }
      last = rs->getInt64(1);
      auto* e = out.add_errors();
      e->set_line(rs->getInt64(2));
      e->set_column(rs->getString(3));
      e->set_code(rs->getString(4));
      e->set_message(rs->getString(5));
    }
    if (out.errors_size() == 0 && after == 0) {
      std::unique_ptr<sql::PreparedStatement> any(
          (*conn)->prepareStatement("SELECT 1 FROM import_errors WHERE report_id = ? LIMIT 1"));
      any->setString(1, request.report_id());
      std::unique_ptr<sql::ResultSet> found(any->executeQuery());
      if (!found->next()) {
        return absl::NotFoundError("report_id: no errors are kept under this report id (unknown, or older than 30 days)");
      }
    }
    return out;
  } catch (const sql::SQLException& e) {
    return Track(*conn, SqlError(e, "read an import's errors"));
  }
}

}  // namespace grassroots::common
