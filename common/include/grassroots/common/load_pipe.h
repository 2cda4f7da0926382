#pragma once
// LOAD DATA LOCAL INFILE without a file: the rows go through a named pipe (mode 0600) in a
// private directory (mode 0700) made under $TMPDIR (default /tmp), both removed by the
// destructor. A thread writes the rows while the client library reads them, so personal data
// never rests in a file and nothing of it stays behind on any path. Used by every bulk writer
// (membership's import, cadrepay's ingests).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sql {
class Connection;
}

namespace grassroots::common {

class LoadPipe final {
 public:
  static absl::StatusOr<std::unique_ptr<LoadPipe>> Create();
  ~LoadPipe();
  LoadPipe(const LoadPipe&) = delete;
  LoadPipe& operator=(const LoadPipe&) = delete;
  const std::string& path() const { return path_; }
  // The path quoted as an SQL string literal, for the statement.
  std::string SqlPath() const;

 private:
  LoadPipe(std::string dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}
  std::string dir_, path_;
};

struct LoadResult {
  int64_t stored = 0;    // rows the statement stored
  int64_t warnings = 0;  // @@warning_count after it
};

// Runs `statement` (a LOAD DATA LOCAL INFILE of pipe.path()) on `conn` while a thread of its own
// writes into the pipe what `produce` appends to its argument (an empty string each call; it
// returns false once it has appended the last of it): constant memory however many rows. When
// the statement ends without reading the pipe (refused before the file was asked for), the
// writer is released; when the reader stops early, the writes fail quietly (SIGPIPE is blocked
// on the writer's thread) and the statement reports the error. SQL errors are thrown
// (sql::SQLException) as by the driver: catch them at the repository boundary.
LoadResult LoadThroughPipe(sql::Connection& conn, const LoadPipe& pipe, const std::string& statement,
                           const std::function<bool(std::string& chunk)>& produce);
// The same for text already in memory.
LoadResult LoadThroughPipe(sql::Connection& conn, const LoadPipe& pipe, const std::string& statement,
                           const std::string& data);

// Appends `v` as one field of LOAD DATA's default escaping (FIELDS TERMINATED BY '\t' ESCAPED BY
// '\\'): backslash, tab, newline, carriage return and NUL escaped; runs without one of them (nearly
// every value) appended whole. Any bytes (binary values too, with CHARACTER SET binary).
void AppendLoadField(std::string& out, std::string_view v);

}  // namespace grassroots::common
