#pragma once
// The proto files this binary serves: every file of a grassroots.<name>.v1 package linked in.
// Adding a method to a linked file needs no change here; a new package needs its proto
// library linked and one line in linked_protos.cc (and a backend address, see backends.h).

#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>

namespace grassroots::gateway {

// Files of the generated pool whose package is grassroots.<name>.v1, sorted by name.
std::vector<const google::protobuf::FileDescriptor*> LinkedServiceFiles();

// True for package names of the form grassroots.<name>.v1.
bool IsServedPackage(const std::string& package);

}  // namespace grassroots::gateway
