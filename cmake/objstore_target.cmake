# objstore_add_library(<name> SOURCES ... HEADERS ... DEPS ...)
#
# One library per top-level folder. Adds warnings-as-errors, the include root
# (headers are included as "store/uri.hpp"), install and export rules.
function(objstore_add_library name)
  cmake_parse_arguments(arg "" "" "SOURCES;HEADERS;DEPS" ${ARGN})
  add_library(objstore_${name} ${arg_SOURCES})
  add_library(objstore::${name} ALIAS objstore_${name})
  set_target_properties(objstore_${name} PROPERTIES
                        EXPORT_NAME ${name} POSITION_INDEPENDENT_CODE ON)
  target_include_directories(
    objstore_${name}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/objstore>)
  target_link_libraries(objstore_${name} PUBLIC ${arg_DEPS})
  objstore_warnings(objstore_${name})
  objstore_precompile(objstore_${name} library)
  install(TARGETS objstore_${name} EXPORT objstoreTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  foreach(header IN LISTS arg_HEADERS)
    get_filename_component(dir "${header}" DIRECTORY)
    install(FILES ${header}
            DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/objstore/${name}/${dir})
  endforeach()
endfunction()

# Instrumentation of every project target (libraries, apps, tests):
#   -DOBJSTORE_SANITIZE=address,undefined   any -fsanitize= list (.ci/sanitize)
#   -DOBJSTORE_FUZZ=ON                      coverage for libFuzzer and the
#                                           targets in tests/fuzz (clang only;
#                                           .ci/fuzz)
set(OBJSTORE_SANITIZE "" CACHE STRING
    "Sanitizers for all objstore targets, e.g. address,undefined (empty: none)")
option(OBJSTORE_FUZZ "Build the libFuzzer targets of tests/fuzz (clang++)" OFF)

# Warnings as errors are the project's own gate (its .ci/ scripts turn them
# on), not its users': a consumer or packager with another compiler version
# must not fail on a new or false-positive warning.
option(OBJSTORE_WERROR "Treat compiler warnings as errors (on in .ci/)" OFF)

function(objstore_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(OBJSTORE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  objstore_instrument(${target})
endfunction()

# Adds the sanitizer (and fuzzer coverage) flags. The link flags are PUBLIC:
# the exported libraries carry them to embedders, who must link the same
# sanitizer runtimes.
function(objstore_instrument target)
  if(OBJSTORE_SANITIZE)
    target_compile_options(
      ${target} PRIVATE -fsanitize=${OBJSTORE_SANITIZE} -fno-omit-frame-pointer
                        -fno-sanitize-recover=all)
    target_link_options(${target} PUBLIC -fsanitize=${OBJSTORE_SANITIZE})
  endif()
  if(OBJSTORE_FUZZ)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
endfunction()

# Precompiled headers: CAF's headers take ~4 s to parse in every translation
# unit (g++ 12, -O2), about a third of the compile time of most of them.
# Each family of targets whose compile flags match (the PIC libraries; the
# test binaries) builds one precompiled header and the others reuse it.
# Only third-party and standard headers go in: a change to a project header
# never rebuilds it. OFF: every TU includes exactly what it names (the fuzz
# build keeps it off, so a header that misses an include still fails there).
option(OBJSTORE_PCH "Precompile CAF, Boost and standard headers" ON)

set(OBJSTORE_PCH_HEADERS
    <algorithm> <atomic> <chrono> <cstdint> <cstring> <functional> <map>
    <memory> <mutex> <optional> <set> <string> <string_view> <unordered_map>
    <vector> <caf/all.hpp> <caf/io/all.hpp>)

# objstore_precompile(<target> [HEADERS <extra>...]): the first target named
# <family> builds the precompiled header; later ones reuse it.
function(objstore_precompile target family)
  if(NOT OBJSTORE_PCH)
    return()
  endif()
  cmake_parse_arguments(arg "" "" "HEADERS" ${ARGN})
  get_property(owner GLOBAL PROPERTY objstore_pch_${family})
  if(owner)
    target_precompile_headers(${target} REUSE_FROM ${owner})
  else()
    target_precompile_headers(${target} PRIVATE ${OBJSTORE_PCH_HEADERS}
                                                ${arg_HEADERS})
    set_property(GLOBAL PROPERTY objstore_pch_${family} ${target})
  endif()
endfunction()
