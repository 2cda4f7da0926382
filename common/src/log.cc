#include "grassroots/common/log.h"

#include <cstdio>
#include <mutex>
#include <random>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace grassroots::common {
namespace {

std::string& ServiceName() {
  static auto* name = new std::string("grassroots");
  return *name;
}
LogLevel g_min_level = LogLevel::kInfo;
thread_local std::string t_request_id;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void InitLogging(std::string_view service, std::string_view min_level) {
  ServiceName() = std::string(service);
  if (min_level == "debug") g_min_level = LogLevel::kDebug;
  else if (min_level == "warning") g_min_level = LogLevel::kWarning;
  else if (min_level == "error") g_min_level = LogLevel::kError;
  else g_min_level = LogLevel::kInfo;
}

bool LogEnabled(LogLevel level) { return level >= g_min_level; }

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (level < g_min_level) return;
  std::string line;
  line.reserve(256);
  line += "{\"ts\":";
  AppendJsonString(line, absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez", absl::Now(), absl::LocalTimeZone()));
  line += ",\"level\":\"";
  line += LevelName(level);
  line += "\",\"service\":";
  AppendJsonString(line, ServiceName());
  if (!t_request_id.empty()) {
    line += ",\"request_id\":";
    AppendJsonString(line, t_request_id);
  }
  line += ",\"msg\":";
  AppendJsonString(line, message);
  for (const auto& [key, value] : fields) {
    line += ',';
    AppendJsonString(line, key);
    line += ':';
    std::visit(
        [&line](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) AppendJsonString(line, v);
          else if constexpr (std::is_same_v<T, bool>) line += v ? "true" : "false";
          else if constexpr (std::is_same_v<T, int64_t>) line += std::to_string(v);
          else line += absl::StrFormat("%g", v);
        },
        value);
  }
  line += "}\n";
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

RequestScope::RequestScope(std::string request_id) : previous_(std::move(t_request_id)) {
  t_request_id = std::move(request_id);
}
RequestScope::~RequestScope() { t_request_id = std::move(previous_); }

std::string_view CurrentRequestId() { return t_request_id; }

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("%016x", rng());
}

}  // namespace grassroots::common
