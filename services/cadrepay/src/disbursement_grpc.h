#pragma once
// gRPC adapter of DisbursementLogic: unpacks the request, calls the logic, maps the status.

#include "disbursement_logic.h"
#include "grassroots/cadrepay/v1/cadrepay.grpc.pb.h"

namespace grassroots::cadrepay {

class DisbursementGrpc final : public v1::DisbursementService::Service {
 public:
  explicit DisbursementGrpc(DisbursementLogic& logic) : logic_(logic) {}

  using ChunkReader = grpc::ServerReader<exchange::v1::FileChunk>;
  grpc::Status IngestProgrammes(grpc::ServerContext* ctx, ChunkReader* reader, exchange::v1::ImportReport* resp) override;
  grpc::Status IngestEnrolments(grpc::ServerContext* ctx, ChunkReader* reader, exchange::v1::ImportReport* resp) override;
  grpc::Status IngestRecipients(grpc::ServerContext* ctx, ChunkReader* reader, exchange::v1::ImportReport* resp) override;
  grpc::Status IngestPayments(grpc::ServerContext* ctx, ChunkReader* reader, exchange::v1::ImportReport* resp) override;
  grpc::Status IngestBatches(grpc::ServerContext* ctx, ChunkReader* reader, exchange::v1::ImportReport* resp) override;
  grpc::Status IngestCivilEvents(grpc::ServerContext* ctx, ChunkReader* reader, exchange::v1::ImportReport* resp) override;
  grpc::Status ListProgrammes(grpc::ServerContext* ctx, const v1::ListProgrammesRequest* req,
                              v1::ListProgrammesResponse* resp) override;
  grpc::Status ListRecipients(grpc::ServerContext* ctx, const v1::ListRecipientsRequest* req,
                              v1::ListRecipientsResponse* resp) override;
  grpc::Status ListEnrolments(grpc::ServerContext* ctx, const v1::ListEnrolmentsRequest* req,
                              v1::ListEnrolmentsResponse* resp) override;
  grpc::Status ListCivilEvents(grpc::ServerContext* ctx, const v1::ListCivilEventsRequest* req,
                               v1::ListCivilEventsResponse* resp) override;
  grpc::Status ListEntitlements(grpc::ServerContext* ctx, const v1::ListEntitlementsRequest* req,
                                v1::ListEntitlementsResponse* resp) override;
  grpc::Status RunCheck(grpc::ServerContext* ctx, const v1::RunCheckRequest* req, v1::CheckRun* resp) override;
  grpc::Status GetCheckRun(grpc::ServerContext* ctx, const v1::GetCheckRunRequest* req, v1::CheckRun* resp) override;
  grpc::Status WatchCheckRun(grpc::ServerContext* ctx, const v1::GetCheckRunRequest* req,
                             grpc::ServerWriter<v1::CheckRun>* writer) override;
  grpc::Status ListImportErrors(grpc::ServerContext* ctx, const exchange::v1::ListImportErrorsRequest* req,
                                exchange::v1::ListImportErrorsResponse* resp) override;
  grpc::Status GetFinding(grpc::ServerContext* ctx, const v1::GetFindingRequest* req, v1::Finding* resp) override;
  grpc::Status ListFindings(grpc::ServerContext* ctx, const v1::ListFindingsRequest* req,
                            v1::ListFindingsResponse* resp) override;
  grpc::Status ExportFindings(grpc::ServerContext* ctx, const v1::ExportFindingsRequest* req,
                              grpc::ServerWriter<exchange::v1::FileChunk>* writer) override;
  grpc::Status ReviewFinding(grpc::ServerContext* ctx, const v1::ReviewFindingRequest* req, v1::Finding* resp) override;
  grpc::Status ListDisclosure(grpc::ServerContext* ctx, const v1::ListDisclosureRequest* req,
                              v1::ListDisclosureResponse* resp) override;

 private:
  grpc::Status Ingest(FileKind kind, grpc::ServerContext* ctx, ChunkReader* reader, exchange::v1::ImportReport* resp);
  DisbursementLogic& logic_;
};

}  // namespace grassroots::cadrepay
