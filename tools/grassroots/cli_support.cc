#include "cli_support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "grassroots/common/csv.h"
#include "grassroots/common/log.h"
#include "grassroots/common/server.h"

ABSL_FLAG(std::string, gateway, "", "gateway gRPC address HOST:PORT (default: var/local/endpoints.env)");
ABSL_FLAG(std::string, errors, "", "write refused rows to this file as line,column,code,message");
ABSL_FLAG(std::string, out, "", "output file (default: standard output)");

namespace grassroots::cli {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string FromEndpointsFile(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "GATEWAY_GRPC=")) return std::string(absl::StripPrefix(line, "GATEWAY_GRPC="));
  }
  return "";
}

}  // namespace

std::string GatewayAddress() {
  std::string flag = absl::GetFlag(FLAGS_gateway);
  if (!flag.empty()) return flag;
  std::error_code ec;
  std::vector<std::filesystem::path> starts = {std::filesystem::current_path(ec)};
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(self.parent_path());
  for (auto dir : starts) {
    for (int up = 0; up < 6 && !dir.empty(); ++up) {
      auto file = dir / "var" / "local" / "endpoints.env";
      if (std::filesystem::exists(file, ec)) {
        std::string addr = FromEndpointsFile(file);
        if (!addr.empty()) return addr;
      }
      if (dir == dir.parent_path()) break;
      dir = dir.parent_path();
    }
  }
  return "";
}

namespace {
std::string& ChosenGateway() {
  static std::string address;
  return address;
}
}  // namespace

std::shared_ptr<grpc::Channel> GatewayChannel() {
  ChosenGateway() = GatewayAddress();
  if (ChosenGateway().empty()) {
    std::fprintf(stderr,
                 "error: cannot find the suite: no --gateway HOST:PORT, and no var/local/endpoints.env under the "
                 "working directory, the grassroots binary's directory or their parents (is deploy/local/up "
                 "running?)\n");
    std::exit(kExitUnavailable);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  return grpc::CreateCustomChannel(ChosenGateway(), grpc::InsecureChannelCredentials(), args);
}

void AskForPersonalData(grpc::ClientContext& ctx) { ctx.AddMetadata(common::kPiiMetadata, "allow"); }

std::unique_ptr<grpc::ClientContext> NewContext(int64_t timeout_seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("x-request-id", common::NewRequestId());
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
  return ctx;
}

Progress::Progress(std::string what, int64_t total_bytes)
    : what_(std::move(what)), total_(total_bytes), tty_(isatty(STDERR_FILENO) != 0), start_ns_(NowNs()) {}

void Progress::Update(int64_t bytes_done, int64_t rows_done) {
  if (!tty_) return;
  const int64_t now = NowNs();
  if (now - last_ns_ < 200'000'000) return;
  last_ns_ = now;
  const double seconds = (now - start_ns_) / 1e9;
  const double rate = seconds > 0 ? rows_done / seconds : 0;
  std::string left = "";
  if (total_ > 0 && bytes_done > 0 && seconds > 0) {
    const double remaining = seconds * (static_cast<double>(total_) / bytes_done - 1.0);
    left = absl::StrFormat(", %.0f s left", remaining);
  }
  std::fprintf(stderr, "\r%s: %lld rows, %.0f rows/s, %.0f%%%s   ", what_.c_str(), static_cast<long long>(rows_done),
               rate, total_ > 0 ? 100.0 * bytes_done / total_ : 0.0, left.c_str());
}

void Progress::Done() {
  if (tty_) std::fprintf(stderr, "\r%s: sent in %.1f s%40s\n", what_.c_str(), (NowNs() - start_ns_) / 1e9, "");
}

bool UploadFile(const std::string& path, const std::string& what,
                const std::function<bool(const exchange::v1::FileChunk&)>& write, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = absl::StrCat("cannot read ", path);
    return false;
  }
  std::error_code ec;
  const auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  Progress progress(what, ec ? 0 : size);
  exchange::v1::FileChunk chunk;
  std::string buffer(256 * 1024, '\0');
  int64_t done = 0, rows = 0;
  while (true) {
    const size_t n = std::fread(buffer.data(), 1, buffer.size(), f);
    if (n == 0) break;
    chunk.set_data(buffer.data(), n);
    for (size_t i = 0; i < n; ++i) rows += buffer[i] == '\n';
    if (!write(chunk)) break;  // the server ended the call; its status says why
    done += static_cast<int64_t>(n);
    progress.Update(done, rows);
  }
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  progress.Done();
  if (read_error) {
    *error = absl::StrCat("error reading ", path);
    return false;
  }
  return true;
}

int SendFile(const std::string& path, const std::string& what, grpc::ClientContext& ctx,
             grpc::ClientWriter<exchange::v1::FileChunk>& writer, const exchange::v1::ImportReport& report,
             const MoreErrors& more_errors) {
  // --errors is opened before the file is sent: when it cannot be written, nothing is imported.
  const std::string errors_path = absl::GetFlag(FLAGS_errors);
  std::FILE* errors = nullptr;
  if (!errors_path.empty()) {
    errors = OpenOutput(errors_path);
    if (errors == nullptr) {
      ctx.TryCancel();
      writer.Finish();
      return kExitUnavailable;
    }
    // Its header at once: a call that fails still leaves a file of the documented shape.
    std::fputs("line,column,code,message\n", errors);
  }
  std::string error;
  const bool read_ok =
      UploadFile(path, what, [&](const exchange::v1::FileChunk& c) { return writer.Write(c); }, &error);
  int rc = kExitOk;
  if (!read_ok) {
    ctx.TryCancel();
    writer.Finish();
    std::fprintf(stderr, "error: %s\n", error.c_str());
    rc = kExitFileRefused;
  } else {
    writer.WritesDone();
    rc = FinishImport(writer.Finish(), report, errors, more_errors);
  }
  if (errors != nullptr && !CloseOutput(errors, errors_path) && (rc == kExitOk || rc == kExitSomeRefused)) {
    rc = kExitUnavailable;
  }
  return rc;
}

int ReceiveFile(grpc::ClientReader<exchange::v1::FileChunk>& reader) {
  // A file named by --out is written beside it under a name of its own and renamed over it once
  // the whole export arrived: an export refused or cut short leaves the named file as it was
  // (never emptied, never half-written). stdout, devices and pipes are written as they come.
  const std::string path = absl::GetFlag(FLAGS_out);
  std::string staged;
  std::FILE* out = nullptr;
  struct stat st {};
  const bool regular = !path.empty() && path != "-" &&
                       (stat(path.c_str(), &st) == 0 ? S_ISREG(st.st_mode) : errno == ENOENT);
  if (regular) {
    staged = path + ".partial-XXXXXX";
    const int fd = mkstemp(staged.data());
    if (fd < 0) {
      std::fprintf(stderr, "error: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
      return kExitUnavailable;
    }
    const mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);  // as a file opened by name would be
    out = fdopen(fd, "wb");
    if (out == nullptr) {
      close(fd);
      unlink(staged.c_str());
      std::fprintf(stderr, "error: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
      return kExitUnavailable;
    }
  } else {
    out = OpenOutput(path);
    if (out == nullptr) return kExitUnavailable;
  }
  exchange::v1::FileChunk chunk;
  while (reader.Read(&chunk)) std::fwrite(chunk.data().data(), 1, chunk.data().size(), out);
  grpc::Status status = reader.Finish();
  const bool written = CloseOutput(out, path);
  if (!status.ok() || !written) {
    if (!staged.empty()) unlink(staged.c_str());
    return status.ok() ? kExitUnavailable : ReportFailure(status);
  }
  if (!staged.empty() && std::rename(staged.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "error: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    unlink(staged.c_str());
    return kExitUnavailable;
  }
  return kExitOk;
}

int ReportFailure(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::fprintf(stderr, "error: unavailable through the gateway at %s: %s (%d)\n", ChosenGateway().c_str(),
                 status.error_message().c_str(), static_cast<int>(status.error_code()));
  } else {
    std::fprintf(stderr, "error: %s (%d)\n", status.error_message().c_str(), static_cast<int>(status.error_code()));
  }
  const auto code = status.error_code();
  if (code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::FAILED_PRECONDITION ||
      code == grpc::StatusCode::NOT_FOUND) {
    return kExitFileRefused;
  }
  return kExitUnavailable;
}

int FinishImport(const grpc::Status& status, const exchange::v1::ImportReport& report, std::FILE* errors,
                 const MoreErrors& more_errors) {
  if (!status.ok()) return ReportFailure(status);
  const int64_t total = std::max<int64_t>(report.errors_total(), report.errors_size());
  if (errors != nullptr) {  // its header is written when it is opened
    auto write = [errors](const google::protobuf::RepeatedPtrField<exchange::v1::RowError>& rows) {
      std::string text;
      for (const auto& e : rows) {
        common::AppendCsvRecord(text, {std::to_string(e.line()), e.column(), e.code(), e.message()});
      }
      std::fwrite(text.data(), 1, text.size(), errors);
    };
    write(report.errors());
    // The errors past what the report carries, page by page.
    if (total > report.errors_size() && !report.report_id().empty() && more_errors) {
      exchange::v1::ListImportErrorsRequest request;
      request.set_report_id(report.report_id());
      request.set_offset(report.errors_size());
      request.set_page_size(10000);
      int64_t written = report.errors_size();
      for (;;) {
        exchange::v1::ListImportErrorsResponse page;
        grpc::Status got = more_errors(request, &page);
        if (!got.ok()) {
          std::fprintf(stderr, "error: %lld of the %lld errors were written to --errors; the rest could not be read\n",
                       static_cast<long long>(written), static_cast<long long>(total));
          ReportFailure(got);
          return kExitUnavailable;
        }
        write(page.errors());
        written += page.errors_size();
        if (page.next_page_token().empty()) break;
        request.set_page_token(page.next_page_token());
      }
    }
  }
  if (report.file_refused()) {
    std::fprintf(stderr, "file refused:\n");
    for (const auto& e : report.errors()) {
      std::fprintf(stderr, "  line %lld %s %s: %s\n", static_cast<long long>(e.line()), e.column().c_str(),
                   e.code().c_str(), e.message().c_str());
    }
    return kExitFileRefused;
  }
  std::printf("rows %lld, inserted %lld, updated %lld, unchanged %lld, refused %lld\n",
              static_cast<long long>(report.rows()), static_cast<long long>(report.inserted()),
              static_cast<long long>(report.updated()), static_cast<long long>(report.unchanged()),
              static_cast<long long>(report.refused()));
  if (report.refused() > 0 && errors == nullptr) {
    int shown = 0;
    for (const auto& e : report.errors()) {
      if (++shown > 20) {
        std::fprintf(stderr, "  ... (use --errors FILE for all %lld)\n", static_cast<long long>(total));
        break;
      }
      std::fprintf(stderr, "  line %lld %s %s: %s\n", static_cast<long long>(e.line()), e.column().c_str(),
                   e.code().c_str(), e.message().c_str());
    }
  }
  return report.refused() > 0 ? kExitSomeRefused : kExitOk;
}

std::FILE* OpenOutput(const std::string& path) {
  if (path.empty() || path == "-") return stdout;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::fprintf(stderr, "error: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
  return f;
}

bool CloseOutput(std::FILE* f, const std::string& path) {
  if (f == stdout) return std::fflush(stdout) == 0 && std::ferror(stdout) == 0;  // main reports it
  const bool written = std::ferror(f) == 0;
  const int saved = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::fprintf(stderr, "error: cannot write %s: %s\n", path.c_str(), std::strerror(written ? errno : saved));
  }
  return written && closed;
}

}  // namespace grassroots::cli
