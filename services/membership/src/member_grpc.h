#pragma once
// gRPC adapter of MemberLogic and ChangeFeed: unpacks the request, reads the personal-data right
// from the metadata, calls the logic, maps the status.
//
// Personal data right: common::MaySeePersonalData (the metadata `x-grassroots-pii: allow`).

#include <memory>

#include "change_feed.h"
#include "grassroots/common/coalescer.h"
#include "grassroots/common/server.h"
#include "grassroots/membership/v1/members.grpc.pb.h"
#include "member_logic.h"

namespace grassroots::membership {

using common::MaySeePersonalData;

class MemberGrpc final : public v1::MemberService::WithCallbackMethod_GetMember<v1::MemberService::Service> {
 public:
  // GetMember reads are coalesced (common::Coalescer) by `read_threads` threads, at most
  // kMaxReadBatch members a query.
  static constexpr size_t kMaxReadBatch = 32;
  MemberGrpc(MemberLogic& logic, ChangeFeed& feed, int read_threads = 2);
  ~MemberGrpc() override;

  grpc::Status CreateMember(grpc::ServerContext* ctx, const v1::CreateMemberRequest* req, v1::Member* resp) override;
  grpc::ServerUnaryReactor* GetMember(grpc::CallbackServerContext* ctx, const v1::GetMemberRequest* req,
                                      v1::Member* resp) override;
  grpc::Status FindMemberByIdNumber(grpc::ServerContext* ctx, const v1::FindMemberByIdNumberRequest* req,
                                    v1::Member* resp) override;
  grpc::Status ListMembers(grpc::ServerContext* ctx, const v1::ListMembersRequest* req,
                           v1::ListMembersResponse* resp) override;
  grpc::Status StepMember(grpc::ServerContext* ctx, const v1::StepMemberRequest* req, v1::Member* resp) override;
  grpc::Status CorrectMember(grpc::ServerContext* ctx, const v1::CorrectMemberRequest* req, v1::Member* resp) override;
  grpc::Status ListMemberEvents(grpc::ServerContext* ctx, const v1::ListMemberEventsRequest* req,
                                v1::ListMemberEventsResponse* resp) override;
  grpc::Status ListOverdueProbation(grpc::ServerContext* ctx, const v1::ListOverdueProbationRequest* req,
                                    v1::ListOverdueProbationResponse* resp) override;
  grpc::Status AddKin(grpc::ServerContext* ctx, const v1::AddKinRequest* req, v1::KinRelation* resp) override;
  grpc::Status ListKin(grpc::ServerContext* ctx, const v1::ListKinRequest* req, v1::ListKinResponse* resp) override;
  grpc::Status GetTypeFitReport(grpc::ServerContext* ctx, const v1::GetTypeFitReportRequest* req,
                                v1::TypeFitReport* resp) override;
  grpc::Status ImportMembers(grpc::ServerContext* ctx, grpc::ServerReader<exchange::v1::FileChunk>* reader,
                             exchange::v1::ImportReport* resp) override;
  grpc::Status ListImportErrors(grpc::ServerContext* ctx, const exchange::v1::ListImportErrorsRequest* req,
                                exchange::v1::ListImportErrorsResponse* resp) override;
  grpc::Status ExportMembers(grpc::ServerContext* ctx, const v1::ExportMembersRequest* req,
                             grpc::ServerWriter<exchange::v1::FileChunk>* writer) override;
  grpc::Status WatchChanges(grpc::ServerContext* ctx, const v1::WatchChangesRequest* req,
                            grpc::ServerWriter<v1::Change>* writer) override;
  grpc::Status ListKinOfPersons(grpc::ServerContext* ctx, const v1::ListKinOfPersonsRequest* req,
                                v1::ListKinOfPersonsResponse* resp) override;

 private:
  MemberLogic& logic_;
  ChangeFeed& feed_;
  common::Coalescer<MemberLogic::Read, absl::StatusOr<v1::Member>> reads_;
};

}  // namespace grassroots::membership
