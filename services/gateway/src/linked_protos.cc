#include "linked_protos.h"

#include <algorithm>
#include <string>

#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/generated_message_reflection.h>

#include "grassroots/assets/v1/assets.pb.h"
#include "grassroots/cadrepay/v1/cadrepay.pb.h"
#include "grassroots/membership/v1/membership.pb.h"
#include "grassroots/mobility/v1/mobility.pb.h"

namespace grassroots::gateway {
namespace {

// Naming each file's descriptor table makes the linker keep its object (whose static
// initialiser registers the file in the generated pool) out of the static proto libraries.
const google::protobuf::internal::DescriptorTable* const kLinkedTables[] = {
    &descriptor_table_grassroots_2fmembership_2fv1_2fmembership_2eproto,
    &descriptor_table_grassroots_2fcadrepay_2fv1_2fcadrepay_2eproto,
    &descriptor_table_grassroots_2fassets_2fv1_2fassets_2eproto,
    &descriptor_table_grassroots_2fmobility_2fv1_2fmobility_2eproto,
};

}  // namespace

bool IsServedPackage(const std::string& package) {
  constexpr std::string_view kPrefix = "grassroots.";
  constexpr std::string_view kSuffix = ".v1";
  if (package.size() <= kPrefix.size() + kSuffix.size()) return false;
  if (!package.starts_with(kPrefix) || !package.ends_with(kSuffix)) return false;
  std::string_view name(package.data() + kPrefix.size(),
                        package.size() - kPrefix.size() - kSuffix.size());
  return name.find('.') == std::string_view::npos;
}

std::vector<const google::protobuf::FileDescriptor*> LinkedServiceFiles() {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  std::vector<std::string> names;
  for (const auto* table : kLinkedTables) names.push_back(table->filename);
  // Any other grassroots file linked in (e.g. a new package) is found in the generated database.
  std::vector<std::string> all;
  if (google::protobuf::DescriptorPool::internal_generated_database()->FindAllFileNames(&all)) {
    for (auto& n : all) {
      if (n.starts_with("grassroots/")) names.push_back(std::move(n));
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<const google::protobuf::FileDescriptor*> files;
  for (const auto& n : names) {
    const auto* file = pool->FindFileByName(n);
    if (file != nullptr && IsServedPackage(file->package())) files.push_back(file);
  }
  return files;
}

}  // namespace grassroots::gateway
