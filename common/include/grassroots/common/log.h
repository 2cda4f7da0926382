#pragma once
// Structured logs: one JSON object a line on stderr. Never pass personal data (ID numbers,
// phone numbers, names of members) as a field or in a message.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace grassroots::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

using LogValue = std::variant<std::string_view, int64_t, double, bool>;
using LogField = std::pair<std::string_view, LogValue>;

// Sets the process-wide service name and minimum level ("debug", "info", "warning", "error").
void InitLogging(std::string_view service, std::string_view min_level);
void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});
// True when a line of `level` would be written (to skip preparing fields of a line that is not).
bool LogEnabled(LogLevel level);
inline void LogInfo(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogWarning(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kWarning, m, f); }
inline void LogError(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kError, m, f); }

// The request id of the work on this thread (set by RequestScope), added to every line.
class RequestScope final {
 public:
  explicit RequestScope(std::string request_id);
  ~RequestScope();
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;
 private:
  std::string previous_;
};
std::string_view CurrentRequestId();
// A new random request id (16 hex characters).
std::string NewRequestId();

// JSON string escaping, shared with anything else that writes JSON by hand.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace grassroots::common
