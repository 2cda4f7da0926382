#pragma once
// gRPC adapter of OrganisationLogic: unpacks the request, calls the logic, maps the status.

#include "grassroots/membership/v1/membership.grpc.pb.h"
#include "organisation_logic.h"

namespace grassroots::membership {

class OrganisationGrpc final : public v1::OrganisationService::Service {
 public:
  explicit OrganisationGrpc(OrganisationLogic& logic) : logic_(logic) {}

  grpc::Status CreateOrganisation(grpc::ServerContext* ctx, const v1::CreateOrganisationRequest* req,
                                  v1::Organisation* resp) override;
  grpc::Status GetOrganisation(grpc::ServerContext* ctx, const v1::GetOrganisationRequest* req,
                               v1::Organisation* resp) override;
  grpc::Status UpdateOrganisation(grpc::ServerContext* ctx, const v1::UpdateOrganisationRequest* req,
                                  v1::Organisation* resp) override;
  grpc::Status DeleteOrganisation(grpc::ServerContext* ctx, const v1::DeleteOrganisationRequest* req,
                                  google::protobuf::Empty* resp) override;
  grpc::Status ListChildren(grpc::ServerContext* ctx, const v1::ListChildrenRequest* req,
                            v1::ListChildrenResponse* resp) override;
  grpc::Status ListSubtree(grpc::ServerContext* ctx, const v1::ListSubtreeRequest* req,
                           v1::ListSubtreeResponse* resp) override;
  grpc::Status GetAncestry(grpc::ServerContext* ctx, const v1::GetAncestryRequest* req,
                           v1::GetAncestryResponse* resp) override;
  grpc::Status MoveOrganisation(grpc::ServerContext* ctx, const v1::MoveOrganisationRequest* req,
                                v1::Organisation* resp) override;
  grpc::Status ImportOrganisations(grpc::ServerContext* ctx, grpc::ServerReader<exchange::v1::FileChunk>* reader,
                                   exchange::v1::ImportReport* resp) override;
  grpc::Status ExportOrganisations(grpc::ServerContext* ctx, const v1::ExportOrganisationsRequest* req,
                                   grpc::ServerWriter<exchange::v1::FileChunk>* writer) override;

 private:
  OrganisationLogic& logic_;
};

}  // namespace grassroots::membership
