#include "disbursement_grpc.h"

#include "grassroots/common/log.h"
#include "grassroots/common/server.h"
#include "grassroots/common/status.h"

namespace grassroots::cadrepay {
using common::Reply;

grpc::Status DisbursementGrpc::Ingest(FileKind kind, grpc::ServerContext* ctx, ChunkReader* reader,
                                      exchange::v1::ImportReport* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  auto ingest = logic_.StartIngest(kind);
  exchange::v1::FileChunk chunk;
  while (reader->Read(&chunk)) ingest->Feed(chunk.data());
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "ingest cancelled by the caller");
  auto report = ingest->Finish();
  if (report.ok()) {
    common::LogInfo("file ingested", {{"file", FileKindName(kind)}, {"rows", report->rows()},
                                      {"inserted", report->inserted()}, {"updated", report->updated()},
                                      {"unchanged", report->unchanged()}, {"refused", report->refused()}});
  }
  return Reply(std::move(report), resp);
}

grpc::Status DisbursementGrpc::IngestProgrammes(grpc::ServerContext* ctx, ChunkReader* r, exchange::v1::ImportReport* o) {
  return Ingest(FileKind::kProgrammes, ctx, r, o);
}
grpc::Status DisbursementGrpc::IngestEnrolments(grpc::ServerContext* ctx, ChunkReader* r, exchange::v1::ImportReport* o) {
  return Ingest(FileKind::kEnrolments, ctx, r, o);
}
grpc::Status DisbursementGrpc::IngestRecipients(grpc::ServerContext* ctx, ChunkReader* r, exchange::v1::ImportReport* o) {
  return Ingest(FileKind::kRecipients, ctx, r, o);
}
grpc::Status DisbursementGrpc::IngestPayments(grpc::ServerContext* ctx, ChunkReader* r, exchange::v1::ImportReport* o) {
  return Ingest(FileKind::kPayments, ctx, r, o);
}
grpc::Status DisbursementGrpc::IngestBatches(grpc::ServerContext* ctx, ChunkReader* r, exchange::v1::ImportReport* o) {
  return Ingest(FileKind::kBatches, ctx, r, o);
}
grpc::Status DisbursementGrpc::IngestCivilEvents(grpc::ServerContext* ctx, ChunkReader* r,
                                                 exchange::v1::ImportReport* o) {
  return Ingest(FileKind::kCivilEvents, ctx, r, o);
}

grpc::Status DisbursementGrpc::ListProgrammes(grpc::ServerContext* ctx, const v1::ListProgrammesRequest*,
                                              v1::ListProgrammesResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListProgrammes(common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::ListRecipients(grpc::ServerContext* ctx, const v1::ListRecipientsRequest* req,
                                              v1::ListRecipientsResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListRecipients(*req, common::MaySeePersonalData(*ctx), common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::ListEnrolments(grpc::ServerContext* ctx, const v1::ListEnrolmentsRequest* req,
                                              v1::ListEnrolmentsResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListEnrolments(*req, common::MaySeePersonalData(*ctx), common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::ListCivilEvents(grpc::ServerContext* ctx, const v1::ListCivilEventsRequest* req,
                                               v1::ListCivilEventsResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListCivilEvents(*req, common::MaySeePersonalData(*ctx), common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::ListEntitlements(grpc::ServerContext* ctx, const v1::ListEntitlementsRequest* req,
                                                v1::ListEntitlementsResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListEntitlements(*req, common::MaySeePersonalData(*ctx), common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::RunCheck(grpc::ServerContext* ctx, const v1::RunCheckRequest* req, v1::CheckRun* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  const std::string caller = common::CallerOf(*ctx);
  return Reply(logic_.RunCheck(*req, caller, common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::WatchCheckRun(grpc::ServerContext* ctx, const v1::GetCheckRunRequest* req,
                                             grpc::ServerWriter<v1::CheckRun>* writer) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  std::string sent;
  for (;;) {
    // The run as it stands at most a second later (WaitCheckRun returns early only when it ends):
    // sent when it changed; a caller gone or a deadline passed is noticed within the second.
    auto run = logic_.WaitCheckRun(req->run_id(), std::min(common::DeadlineOf(*ctx), absl::Now() + absl::Seconds(1)));
    if (!run.ok()) return common::ToGrpcStatus(run.status());
    std::string now = run->SerializeAsString();
    if (now != sent) {
      if (!writer->Write(*run)) return grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away");
      sent = std::move(now);
    }
    if (run->state() != checks::v1::RUNNING) return grpc::Status::OK;
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away");
    if (absl::Now() >= common::DeadlineOf(*ctx)) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the run is still going; watch it again");
    }
  }
}

grpc::Status DisbursementGrpc::ListImportErrors(grpc::ServerContext* ctx,
                                                const exchange::v1::ListImportErrorsRequest* req,
                                                exchange::v1::ListImportErrorsResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListImportErrors(*req, common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::GetFinding(grpc::ServerContext* ctx, const v1::GetFindingRequest* req,
                                          v1::Finding* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.GetFinding(req->finding_id(), common::MaySeePersonalData(*ctx), common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::GetCheckRun(grpc::ServerContext* ctx, const v1::GetCheckRunRequest* req,
                                           v1::CheckRun* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.GetCheckRun(req->run_id(), common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::ListFindings(grpc::ServerContext* ctx, const v1::ListFindingsRequest* req,
                                            v1::ListFindingsResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListFindings(*req, common::MaySeePersonalData(*ctx), common::DeadlineOf(*ctx)), resp);
}

grpc::Status DisbursementGrpc::ExportFindings(grpc::ServerContext* ctx, const v1::ExportFindingsRequest* req,
                                              grpc::ServerWriter<exchange::v1::FileChunk>* writer) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  // Clear ID numbers only for a caller with the personal-data right (formats.md: masked unless
  // --unmasked and the caller may see them).
  v1::ExportFindingsRequest request = *req;
  request.set_unmasked(req->unmasked() && common::MaySeePersonalData(*ctx));
  exchange::v1::FileChunk chunk;
  return common::ToGrpcStatus(logic_.ExportFindings(request, [&](std::string_view data) {
    if (ctx->IsCancelled()) return false;
    chunk.set_data(std::string(data));
    return writer->Write(chunk);
  }));
}

grpc::Status DisbursementGrpc::ReviewFinding(grpc::ServerContext* ctx, const v1::ReviewFindingRequest* req,
                                             v1::Finding* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ReviewFinding(*req, common::CallerOf(*ctx), common::MaySeePersonalData(*ctx),
                                    common::DeadlineOf(*ctx)),
               resp);
}

grpc::Status DisbursementGrpc::ListDisclosure(grpc::ServerContext* ctx, const v1::ListDisclosureRequest* req,
                                              v1::ListDisclosureResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListDisclosure(*req, common::DeadlineOf(*ctx)), resp);
}

}  // namespace grassroots::cadrepay
