#pragma once
// The one main() of every domain service: `<service> migrate` applies its schema migrations
// and exits; `<service> serve` (the default) runs the gRPC server, metrics and readiness
// until SIGTERM. Each service's main.cc only says what it is made of.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "grassroots/common/db.h"
#include "grassroots/common/migrations.h"

namespace prometheus {
class Registry;
}

namespace grassroots::common {

// What a service builds over its pool: the gRPC services and whatever they need kept alive.
struct ServiceParts {
  ServiceParts() = default;
  ServiceParts(ServiceParts&&) = default;
  ServiceParts& operator=(ServiceParts&&) = default;
  // `owned` is released last to first: list what is used before what uses it.
  ~ServiceParts() {
    while (!owned.empty()) owned.pop_back();
  }
  std::vector<std::shared_ptr<void>> owned;
  std::vector<grpc::Service*> services;
  // Optional background work (schedulers); started after the server, stopped before it.
  std::function<void()> start;
  std::function<void()> stop;
};

struct ServiceSpec {
  std::string name;  // "membership": schema grassroots_membership
  const std::vector<Migration>* migrations = nullptr;
  std::function<ServiceParts(ConnectionPool& pool, prometheus::Registry& registry)> build;
};

int RunServiceMain(int argc, char** argv, const ServiceSpec& spec);

}  // namespace grassroots::common
