#include "organisation_repository.h"

#include <algorithm>
#include <memory>

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grassroots/common/db.h"

namespace grassroots::membership {
namespace {

constexpr char kColumns[] =
    "o.org_code, o.name, o.org_type, o.org_kind, o.parent_code, o.division_code, "
    "DATE_FORMAT(o.established_on, '%Y-%m-%d'), o.population, o.depth, o.path, "
    "(SELECT COUNT(*) FROM organisations c WHERE c.parent_code = o.org_code)";

StoredOrganisation Read(sql::ResultSet& rs) {
  StoredOrganisation s;
  v1::Organisation& o = s.org;
  o.set_org_code(rs.getString(1));
  o.set_name(rs.getString(2));
  o.set_org_type(rs.getString(3));
  o.set_org_kind(rs.getString(4));
  if (!rs.isNull(5)) o.set_parent_code(rs.getString(5));
  o.set_division_code(rs.getString(6));
  if (!rs.isNull(7)) o.set_established_on(rs.getString(7));
  if (!rs.isNull(8)) o.set_population(rs.getInt64(8));
  o.set_depth(rs.getInt(9));
  s.path = rs.getString(10);
  o.set_child_count(static_cast<int32_t>(rs.getInt64(11)));
  return s;
}

// Runs a prepared query of kColumns and reads its organisations.
std::vector<v1::Organisation> ReadAll(sql::PreparedStatement& st) {
  std::unique_ptr<sql::ResultSet> rs(st.executeQuery());
  std::vector<v1::Organisation> out;
  while (rs->next()) out.push_back(Read(*rs).org);
  return out;
}

void BindDescriptive(sql::PreparedStatement& st, const v1::Organisation& o, int first) {
  st.setString(first, o.name());
  st.setString(first + 1, o.org_type());
  st.setString(first + 2, o.org_kind());
  st.setString(first + 3, o.division_code());
  if (o.established_on().empty()) st.setNull(first + 4, 0); else st.setString(first + 4, o.established_on());
  if (o.has_population()) st.setInt64(first + 5, o.population()); else st.setNull(first + 5, 0);
}

}  // namespace

absl::StatusOr<std::optional<StoredOrganisation>> OrganisationRepository::Find(sql::Connection& conn,
                                                                               const std::string& code,
                                                                               bool for_update) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        absl::StrCat("SELECT ", kColumns, " FROM organisations o WHERE o.org_code = ?",
                     for_update ? " FOR UPDATE" : "")));
    st->setString(1, code);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return std::optional<StoredOrganisation>();
    return std::optional<StoredOrganisation>(Read(*rs));
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read organisation");
  }
}

absl::StatusOr<std::vector<StoredOrganisation>> OrganisationRepository::FindMany(
    sql::Connection& conn, const std::vector<std::string>& codes) const {
  std::vector<StoredOrganisation> out;
  constexpr size_t kBatch = 500;
  try {
    for (size_t start = 0; start < codes.size(); start += kBatch) {
      const size_t n = std::min(kBatch, codes.size() - start);
      std::string marks;
      for (size_t i = 0; i < n; ++i) marks += i == 0 ? "?" : ",?";
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          absl::StrCat("SELECT ", kColumns, " FROM organisations o WHERE o.org_code IN (", marks, ")")));
      for (size_t i = 0; i < n; ++i) st->setString(static_cast<int>(i + 1), codes[start + i]);
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      while (rs->next()) out.push_back(Read(*rs));
    }
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read organisations");
  }
}

absl::Status OrganisationRepository::Insert(sql::Connection& conn, const v1::Organisation& o,
                                            const std::string& path, int depth) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "INSERT INTO organisations (org_code, parent_code, path, depth, name, org_type, org_kind, "
        "division_code, established_on, population) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    st->setString(1, o.org_code());
    if (o.parent_code().empty()) st->setNull(2, 0); else st->setString(2, o.parent_code());
    st->setString(3, path);
    st->setInt(4, depth);
    BindDescriptive(*st, o, 5);
    st->execute();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    if (e.getErrorCode() == 1062) {
      return absl::AlreadyExistsError(absl::StrCat("organisation ", o.org_code(), " already exists"));
    }
    return common::SqlError(e, "insert organisation");
  }
}

absl::Status OrganisationRepository::UpdateFields(sql::Connection& conn, const v1::Organisation& o) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "UPDATE organisations SET name = ?, org_type = ?, org_kind = ?, division_code = ?, "
        "established_on = ?, population = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE org_code = ?"));
    BindDescriptive(*st, o, 1);
    st->setString(7, o.org_code());
    st->execute();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "update organisation");
  }
}

absl::Status OrganisationRepository::Delete(sql::Connection& conn, const std::string& code) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement("DELETE FROM organisations WHERE org_code = ?"));
    st->setString(1, code);
    st->execute();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "delete organisation");
  }
}

absl::StatusOr<int64_t> OrganisationRepository::CountChildren(sql::Connection& conn, const std::string& code) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(
        conn.prepareStatement("SELECT COUNT(*) FROM organisations WHERE parent_code = ?"));
    st->setString(1, code);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    rs->next();
    return rs->getInt64(1);
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "count sub-organisations");
  }
}

absl::StatusOr<int64_t> OrganisationRepository::LongestPathUnder(sql::Connection& conn,
                                                                 const std::string& path) const {
  try {
    // Codes hold letters, digits and '-': no LIKE wildcard can stand in a path.
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "SELECT COALESCE(MAX(CHAR_LENGTH(path)), 0) FROM organisations WHERE path LIKE CONCAT(?, '%')"));
    st->setString(1, path);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    rs->next();
    return std::max<int64_t>(rs->getInt64(1), static_cast<int64_t>(path.size()));
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read a subtree's depth");
  }
}

absl::StatusOr<std::vector<v1::Organisation>> OrganisationRepository::ListChildren(sql::Connection& conn,
                                                                                   const std::string& parent,
                                                                                   const std::string& after,
                                                                                   int limit) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        absl::StrCat("SELECT ", kColumns,
                     " FROM organisations o WHERE o.parent_code = ? AND o.org_code > ? ORDER BY o.org_code LIMIT ?")));
    st->setString(1, parent);
    st->setString(2, after);
    st->setInt(3, limit);
    return ReadAll(*st);
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "list sub-organisations");
  }
}

absl::Status OrganisationRepository::MoveSubtree(sql::Connection& conn, const std::string& code,
                                                 const std::string& new_parent, const std::string& old_path,
                                                 const std::string& new_path, int depth_delta) const {
  try {
    {
      std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
          "UPDATE organisations SET parent_code = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE org_code = ?"));
      if (new_parent.empty()) st->setNull(1, 0); else st->setString(1, new_parent);
      st->setString(2, code);
      st->execute();
    }
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(
        "UPDATE organisations SET path = CONCAT(?, SUBSTRING(path, ?)), depth = depth + ? "
        "WHERE path LIKE CONCAT(?, '%')"));
    st->setString(1, new_path);
    st->setInt(2, static_cast<int>(old_path.size()) + 1);
    st->setInt(3, depth_delta);
    st->setString(4, old_path);
    st->execute();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "move organisation");
  }
}

absl::StatusOr<std::vector<v1::Organisation>> OrganisationRepository::ListSubtree(sql::Connection& conn,
                                                                                  const std::string& path_prefix,
                                                                                  const std::string& after,
                                                                                  int limit) const {
  try {
    // Codes hold letters, digits and '-': no LIKE wildcard can stand in a path, so the prefix is
    // one range of idx_organisations_path (the optimiser may walk the primary key in code order
    // instead when the subtree is a large part of the table; both were measured fast at 50,000
    // organisations).
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(absl::StrCat(
        "SELECT ", kColumns,
        " FROM organisations o WHERE o.path LIKE CONCAT(?, '%') AND o.org_code > ? ORDER BY o.org_code LIMIT ?")));
    st->setString(1, path_prefix);
    st->setString(2, after);
    st->setInt(3, limit);
    return ReadAll(*st);
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "list subtree");
  }
}

absl::StatusOr<std::vector<StoredOrganisation>> OrganisationRepository::ScanSubtree(
    sql::Connection& conn, const std::string& path_prefix, int after_depth, const std::string& after_code,
    int limit) const {
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement(absl::StrCat(
        "SELECT ", kColumns,
        " FROM organisations o WHERE o.path LIKE CONCAT(?, '%') AND (o.depth > ? OR (o.depth = ? AND o.org_code > ?))"
        " ORDER BY o.depth, o.org_code LIMIT ?")));
    st->setString(1, path_prefix);
    st->setInt(2, after_depth);
    st->setInt(3, after_depth);
    st->setString(4, after_code);
    st->setInt(5, limit);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    std::vector<StoredOrganisation> out;
    while (rs->next()) out.push_back(Read(*rs));
    return out;
  } catch (const sql::SQLException& e) {
    return common::SqlError(e, "read subtree");
  }
}

}  // namespace grassroots::membership
