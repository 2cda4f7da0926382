# Shared build helpers.

# grassroots_embed_migrations(TARGET <lib> SCHEMA <name> DIR <dir>)
# Turns the numbered SQL files of a service (V001__name.sql, ...) into a library that
# exposes them as grassroots::common::Migration objects, so every binary carries its own schema.
function(grassroots_embed_migrations)
  cmake_parse_arguments(ARG "" "TARGET;SCHEMA;DIR" "" ${ARGN})
  file(GLOB sql_files CONFIGURE_DEPENDS "${ARG_DIR}/V*__*.sql")
  list(SORT sql_files)
  # Their contents are read here: an edited file must configure again.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${sql_files})
  set(body "")
  foreach(f IN LISTS sql_files)
    get_filename_component(name "${f}" NAME)
    string(REGEX MATCH "^V([0-9]+)__" _ "${name}")
    # Decimal, whatever its zeros: "010" written as-is would be C++'s octal 8 (and "008" no number).
    string(REGEX REPLACE "^0+([0-9])" "\\1" version "${CMAKE_MATCH_1}")
    file(READ "${f}" sql)
    string(APPEND body "    {${version}, \"${name}\", R\"grassroots_sql(${sql})grassroots_sql\"},\n")
  endforeach()
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${ARG_TARGET}.cc")
  file(WRITE "${out}.tmp"
"// Generated from ${ARG_DIR}; do not edit.\n#include \"grassroots/common/migrations.h\"\n\nnamespace grassroots::generated {\nconst std::vector<common::Migration>& ${ARG_TARGET}() {\n  static const auto* m = new std::vector<common::Migration>{\n${body}  };\n  return *m;\n}\n}  // namespace grassroots::generated\n")
  file(COPY_FILE "${out}.tmp" "${out}" ONLY_IF_DIFFERENT)
  add_library(${ARG_TARGET} STATIC "${out}")
  target_link_libraries(${ARG_TARGET} PUBLIC grassroots_common)
  target_compile_definitions(${ARG_TARGET} PUBLIC GRASSROOTS_SCHEMA_${ARG_SCHEMA}=1)
endfunction()

# grassroots_test(NAME <name> SOURCES ... LIBS ... [LABELS ...])
function(grassroots_test)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_compile_options(${ARG_NAME} PRIVATE ${GRASSROOTS_WARNINGS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  if(ARG_LABELS)
    set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
