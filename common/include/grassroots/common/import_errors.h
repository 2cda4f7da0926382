#pragma once
// Every refused row reaches the caller, whatever their number: an import report carries at most
// kInlineErrors errors; past that, every error of the import is kept in the table import_errors
// of the service's schema (30 days) under a report id, and read back page by page
// (ListImportErrors of the service). The same for every importer of the suite.
//   import_errors (report_id, seq, line, column_name, code, message, created_at;
//                  PRIMARY KEY (report_id, seq)), seq = position in line order from 1.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grassroots/common/db.h"
#include "grassroots/exchange/v1/exchange.pb.h"

namespace grassroots::common {

inline constexpr int64_t kInlineImportErrors = 10000;

// Sorts the report's errors by line (stable) and sets errors_total. With more than
// `inline_errors`, writes them all to import_errors (on a connection of their own: outside any
// import transaction) under a new report_id, and keeps the first `inline_errors` in the report.
absl::Status BoundImportReport(ConnectionPool& pool, exchange::v1::ImportReport& report,
                               int64_t inline_errors = kInlineImportErrors);

// A page of a kept report's errors (INVALID_ARGUMENT naming the field; NOT_FOUND naming
// report_id for an id with no errors kept).
absl::StatusOr<exchange::v1::ListImportErrorsResponse> ListImportErrors(ConnectionPool& pool,
                                                                       const exchange::v1::ListImportErrorsRequest& request,
                                                                       absl::Time deadline);

}  // namespace grassroots::common
