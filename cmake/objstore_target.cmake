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
  install(TARGETS objstore_${name} EXPORT objstoreTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  foreach(header IN LISTS arg_HEADERS)
    get_filename_component(dir "${header}" DIRECTORY)
    install(FILES ${header}
            DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/objstore/${name}/${dir})
  endforeach()
endfunction()

function(objstore_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()
