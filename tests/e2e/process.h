#pragma once
// Real processes for end-to-end tests: started with their own log file, always ended.

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace grassroots::testing {

class Process final {
 public:
  // Starts `binary` (a name in GRASSROOTS_BIN_DIR or a path) with args and extra environment;
  // stdout and stderr go to `log_path`.
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env, const std::string& log_path);
  ~Process();  // SIGTERM, then SIGKILL after 5 s
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends SIGTERM and waits up to `seconds`; returns the exit code (or -signal, or -1000 on timeout).
  int Terminate(int seconds = 15);
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = 0;
  std::string log_path_;
};

// Runs a command to completion; returns its exit code and fills output with stdout+stderr.
int RunCommand(const std::vector<std::string>& argv, std::string* output,
               const std::map<std::string, std::string>& env = {});

std::string BinDir();
std::string BinPath(const std::string& name);
// A port that was free a moment ago on 127.0.0.1.
int FreePort();
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

}  // namespace grassroots::testing
