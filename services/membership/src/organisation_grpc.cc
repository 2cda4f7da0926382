#include "organisation_grpc.h"

#include "grassroots/common/log.h"
#include "grassroots/common/server.h"
#include "grassroots/common/status.h"

namespace grassroots::membership {
using common::Reply;

grpc::Status OrganisationGrpc::CreateOrganisation(grpc::ServerContext* ctx, const v1::CreateOrganisationRequest* req,
                                                  v1::Organisation* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.Create(req->organisation(), common::DeadlineOf(*ctx)), resp);
}

grpc::Status OrganisationGrpc::GetOrganisation(grpc::ServerContext* ctx, const v1::GetOrganisationRequest* req,
                                               v1::Organisation* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.Get(req->org_code(), common::DeadlineOf(*ctx)), resp);
}

grpc::Status OrganisationGrpc::UpdateOrganisation(grpc::ServerContext* ctx, const v1::UpdateOrganisationRequest* req,
                                                  v1::Organisation* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.Update(*req, common::DeadlineOf(*ctx)), resp);
}

grpc::Status OrganisationGrpc::DeleteOrganisation(grpc::ServerContext* ctx, const v1::DeleteOrganisationRequest* req,
                                                  google::protobuf::Empty*) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return common::ToGrpcStatus(logic_.Delete(req->org_code(), common::DeadlineOf(*ctx)));
}

grpc::Status OrganisationGrpc::ListChildren(grpc::ServerContext* ctx, const v1::ListChildrenRequest* req,
                                            v1::ListChildrenResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListChildren(*req, common::DeadlineOf(*ctx)), resp);
}

grpc::Status OrganisationGrpc::ListSubtree(grpc::ServerContext* ctx, const v1::ListSubtreeRequest* req,
                                           v1::ListSubtreeResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.ListSubtree(*req, common::DeadlineOf(*ctx)), resp);
}

grpc::Status OrganisationGrpc::GetAncestry(grpc::ServerContext* ctx, const v1::GetAncestryRequest* req,
                                           v1::GetAncestryResponse* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.Ancestry(req->org_code(), common::DeadlineOf(*ctx)), resp);
}

grpc::Status OrganisationGrpc::MoveOrganisation(grpc::ServerContext* ctx, const v1::MoveOrganisationRequest* req,
                                                v1::Organisation* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  return Reply(logic_.Move(req->org_code(), req->new_parent_code(), common::DeadlineOf(*ctx)), resp);
}

grpc::Status OrganisationGrpc::ImportOrganisations(grpc::ServerContext* ctx,
                                                   grpc::ServerReader<exchange::v1::FileChunk>* reader,
                                                   exchange::v1::ImportReport* resp) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  auto import = logic_.StartImport();
  exchange::v1::FileChunk chunk;
  while (reader->Read(&chunk)) import->Feed(chunk.data());
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "import cancelled by the caller");
  auto report = import->Finish();
  if (report.ok()) {
    common::LogInfo("organisations imported", {{"rows", report->rows()}, {"inserted", report->inserted()},
                                              {"updated", report->updated()}, {"refused", report->refused()}});
  }
  return Reply(std::move(report), resp);
}

grpc::Status OrganisationGrpc::ExportOrganisations(grpc::ServerContext* ctx, const v1::ExportOrganisationsRequest* req,
                                                   grpc::ServerWriter<exchange::v1::FileChunk>* writer) {
  common::RequestScope scope(common::RequestIdOf(*ctx));
  exchange::v1::FileChunk chunk;
  return common::ToGrpcStatus(logic_.Export(req->org_code(), [&](std::string_view data) {
    if (ctx->IsCancelled()) return false;
    chunk.set_data(std::string(data));
    return writer->Write(chunk);
  }));
}

}  // namespace grassroots::membership
