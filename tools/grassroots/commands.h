#pragma once
// Each CLI command: takes its positional arguments after the verb and noun, returns the exit code.

#include <string>
#include <vector>

namespace grassroots::cli {

int ImportOrganisations(const std::vector<std::string>& args);
int ExportOrganisations(const std::vector<std::string>& args);

}  // namespace grassroots::cli
