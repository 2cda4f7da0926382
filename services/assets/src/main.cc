// assets: serves health, reflection and metrics over its own schema; its API arrives with its issue.
#include "grassroots/common/service_main.h"

namespace grassroots::generated {
const std::vector<common::Migration>& assets_migrations();
}

int main(int argc, char** argv) {
  using namespace grassroots;
  common::ServiceSpec spec;
  spec.name = "assets";
  spec.migrations = &generated::assets_migrations();
  spec.build = [](common::ConnectionPool&, prometheus::Registry&) { return common::ServiceParts{}; };
  return common::RunServiceMain(argc, argv, spec);
}
