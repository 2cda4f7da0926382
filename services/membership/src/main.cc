// membership: party organisations (and, with their issue, members).
#include "grassroots/common/service_main.h"
#include "organisation_grpc.h"
#include "organisation_logic.h"

namespace grassroots::generated {
const std::vector<common::Migration>& membership_migrations();
}

int main(int argc, char** argv) {
  using namespace grassroots;
  common::ServiceSpec spec;
  spec.name = "membership";
  spec.migrations = &generated::membership_migrations();
  spec.build = [](common::ConnectionPool& pool, prometheus::Registry&) {
    common::ServiceParts parts;
    auto logic = std::make_shared<membership::OrganisationLogic>(pool);
    auto grpc = std::make_shared<membership::OrganisationGrpc>(*logic);
    parts.services.push_back(grpc.get());
    parts.owned = {logic, grpc};
    return parts;
  };
  return common::RunServiceMain(argc, argv, spec);
}
