#pragma once
// What every CLI command shares: finding the suite, uploading a file with progress,
// writing the error report, exit codes.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/sync_stream.h>

#include "grassroots/exchange/v1/exchange.pb.h"

namespace grassroots::cli {

// Exit codes of file commands (formats.md).
inline constexpr int kExitOk = 0;            // the file was taken whole
inline constexpr int kExitSomeRefused = 1;   // some rows refused, good rows kept
inline constexpr int kExitFileRefused = 2;   // the file as a whole was refused (or unreadable)
inline constexpr int kExitUnavailable = 3;   // the suite could not be reached or failed
inline constexpr int kExitUsage = 64;

// The gateway's gRPC address: --gateway, else GATEWAY_GRPC from var/local/endpoints.env
// (searched from the working directory upwards, then beside the binary); "" when neither.
std::string GatewayAddress();
// A channel to GatewayAddress(); when there is none, says so and exits kExitUnavailable.
std::shared_ptr<grpc::Channel> GatewayChannel();
// A client context with the request id set and a generous deadline for long transfers.
std::unique_ptr<grpc::ClientContext> NewContext(int64_t timeout_seconds = 3600);
// Asks for clear personal data (common::kPiiMetadata): `--unmasked` of the export commands.
void AskForPersonalData(grpc::ClientContext& ctx);

// Progress on a terminal (stderr): bytes or rows done, rate, time left.
class Progress final {
 public:
  Progress(std::string what, int64_t total_bytes);
  void Update(int64_t bytes_done, int64_t rows_done);
  void Done();
 private:
  std::string what_;
  int64_t total_;
  bool tty_;
  int64_t start_ns_;
  int64_t last_ns_ = 0;
};

// Streams a file as FileChunks through `write`; returns false when the file cannot be read.
// Counts line breaks as an estimate of rows for the progress line.
bool UploadFile(const std::string& path, const std::string& what,
                const std::function<bool(const exchange::v1::FileChunk&)>& write, std::string* error);

// Sends a file through a started client-streaming call (`writer`, whose response is `report`)
// and finishes it: progress, --errors (opened first: when it cannot be written, nothing is sent
// and the exit code is kExitUnavailable), the exit code of formats.md.
// Reads a page of the errors a report could not carry (the importing service's ListImportErrors).
using MoreErrors = std::function<grpc::Status(const exchange::v1::ListImportErrorsRequest&,
                                              exchange::v1::ListImportErrorsResponse*)>;
int SendFile(const std::string& path, const std::string& what, grpc::ClientContext& ctx,
             grpc::ClientWriter<exchange::v1::FileChunk>& writer, const exchange::v1::ImportReport& report,
             const MoreErrors& more_errors);

// Writes a server-streamed file to --out (or stdout); returns the exit code. A regular file is
// written beside its name and renamed into place once the whole file arrived (a failed call
// leaves it as it was).
int ReceiveFile(grpc::ClientReader<exchange::v1::FileChunk>& reader);

// Prints the report, writes its refused rows to `errors` (--errors, open, its header row already
// written; nullptr: none, then the first rows go to stderr), returns the exit code for it.
// Past the errors the report carries (ImportReport.errors_total), the rest are read with
// `more_errors` into `errors`; when they cannot be read the exit code is kExitUnavailable.
int FinishImport(const grpc::Status& status, const exchange::v1::ImportReport& report, std::FILE* errors,
                 const MoreErrors& more_errors = nullptr);

// Prints a failed call and returns the exit code for it.
int ReportFailure(const grpc::Status& status);

// Opens --out (or stdout for "" / "-"); returns nullptr with a message when it cannot.
std::FILE* OpenOutput(const std::string& path);
// Closes what OpenOutput opened (flushes stdout); false, with a message for a file, when anything
// written to it was lost (a full disk): the command then exits kExitUnavailable, never 0.
bool CloseOutput(std::FILE* f, const std::string& path);

}  // namespace grassroots::cli
