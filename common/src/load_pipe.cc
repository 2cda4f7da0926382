#include "grassroots/common/load_pipe.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <cppconn/connection.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>

#include "absl/strings/str_cat.h"

namespace grassroots::common {

absl::StatusOr<std::unique_ptr<LoadPipe>> LoadPipe::Create() {
  const char* base = std::getenv("TMPDIR");
  std::string dir = absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/grassroots-load-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {  // mode 0700
    return absl::InternalError("cannot make the bulk load's private directory");
  }
  std::string path = dir + "/rows";
  if (mkfifo(path.c_str(), 0600) != 0) {
    rmdir(dir.c_str());
    return absl::InternalError("cannot make the bulk load's pipe");
  }
  return std::unique_ptr<LoadPipe>(new LoadPipe(std::move(dir), std::move(path)));
}

LoadPipe::~LoadPipe() {
  unlink(path_.c_str());
  rmdir(dir_.c_str());
}

std::string LoadPipe::SqlPath() const {
  std::string out = "'";
  for (const char c : path_) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

LoadResult LoadThroughPipe(sql::Connection& conn, const LoadPipe& pipe, const std::string& statement,
                           const std::function<bool(std::string& chunk)>& produce) {
  std::atomic<bool> finished{false};
  std::thread writer([&] {
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    const int fd = open(pipe.path().c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      std::string chunk;
      bool more = true, failed = false;
      while (more && !failed) {
        chunk.clear();
        more = produce(chunk);
        size_t done = 0;
        while (done < chunk.size()) {
          const ssize_t n = write(fd, chunk.data() + done, chunk.size() - done);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {  // the reader went away: the statement reports the error
            failed = true;
            break;
          }
          done += static_cast<size_t>(n);
        }
      }
      close(fd);
    }
    finished.store(true);
  });
  struct Join {
    std::thread& t;
    const LoadPipe& pipe;
    std::atomic<bool>& finished;
    ~Join() {
      // Release a writer that is still waiting for a reader (or about to wait for one).
      while (!finished.load()) {
        const int fd = open(pipe.path().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) close(fd);
        if (!finished.load()) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      t.join();
    }
  } join{writer, pipe, finished};
  std::unique_ptr<sql::Statement> st(conn.createStatement());
  LoadResult r;
  r.stored = st->executeUpdate(statement);
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT @@warning_count"));
  r.warnings = rs->next() ? rs->getInt64(1) : -1;
  return r;
}

LoadResult LoadThroughPipe(sql::Connection& conn, const LoadPipe& pipe, const std::string& statement,
                           const std::string& data) {
  bool given = false;
  return LoadThroughPipe(conn, pipe, statement, [&](std::string& chunk) {
    if (!given) chunk.assign(data);  // one copy per batch, as the pipe's writes would make anyway
    given = true;
    return false;
  });
}

namespace {
constexpr std::array<bool, 256> kLoadEscaped = [] {
  std::array<bool, 256> t{};
  for (const unsigned char c : {'\\', '\t', '\n', '\r', '\0'}) t[c] = true;
  return t;
}();
}  // namespace

void AppendLoadField(std::string& out, std::string_view v) {
  size_t start = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (!kLoadEscaped[static_cast<unsigned char>(c)]) continue;
    out.append(v.data() + start, i - start);
    out += '\\';
    out += c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\0' ? '0' : '\\';
    start = i + 1;
  }
  out.append(v.data() + start, v.size() - start);
}

}  // namespace grassroots::common
