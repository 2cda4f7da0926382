#pragma once
// Each CLI command: takes its positional arguments after the verb and noun, returns the exit code.

#include <string>
#include <vector>

namespace grassroots::cli {

int ImportOrganisations(const std::vector<std::string>& args);
int ExportOrganisations(const std::vector<std::string>& args);

// Member registry (membership): member_commands.cc.
int ImportMembers(const std::vector<std::string>& args);
int ExportMembers(const std::vector<std::string>& args);
int ReportTypeFit(const std::vector<std::string>& args);

// Disbursements (cadrepay): disbursement_commands.cc.
int IngestProgrammes(const std::vector<std::string>& args);
int IngestEnrolments(const std::vector<std::string>& args);
int IngestRecipients(const std::vector<std::string>& args);
int IngestPayments(const std::vector<std::string>& args);
int IngestBatches(const std::vector<std::string>& args);
int IngestCivilEvents(const std::vector<std::string>& args);
int CheckDisbursements(const std::vector<std::string>& args);
int ExportFindings(const std::vector<std::string>& args);

}  // namespace grassroots::cli
