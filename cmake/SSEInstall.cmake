# What `cmake --install` puts where (GNUInstallDirs), and how another project finds libsse:
#   sse_install_library()
#       Installs libsse.so / libsse.a as the exported targets libsse::sse and libsse::sse_static,
#       the CMake package config (lib/cmake/libsse: libsseConfig.cmake, its version file, the
#       targets files) and the pkg-config files libsse.pc (shared; `--static` for a static link)
#       and libsse-static.pc (links libsse.a and everything it needs, no `--static` needed).
#       Both are written from ONE table of the library's external dependencies, below.
#
# The dependency table: every external library a "lib" module links (sse_add_module LIBS) must be
# listed, or the configuration fails; so a new dependency cannot be forgotten in the installed
# files. Columns: the link item in the build, the pkg-config module (or "-l<name>" for a plain
# library found without pkg-config), and whether a program including the public headers needs it
# too ("public": include/sse/*.h include <uv.h>) or only the static library ("private").
set(SSE_INSTALL_DEP_TABLE
  PkgConfig::UV         libuv      public
  PkgConfig::CURL       libcurl    private
  PkgConfig::JANSSON    jansson    private
  PkgConfig::SSE_CRYPTO libcrypto  private
  PkgConfig::LMDB       lmdb       private
  sse_lmdb_dep          -llmdb     private
  PkgConfig::HIREDIS    hiredis    private
  PkgConfig::NGHTTP2    libnghttp2 private)

set(SSE_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/libsse)

function(sse_install_library)
  get_property(libs GLOBAL PROPERTY SSE_MODULE_LIBS)
  list(REMOVE_DUPLICATES libs)
  set(pc_public "")         # pkg-config modules: Requires
  set(pc_private "")        # Requires.private
  set(plain_private "")     # -l flags: Libs.private
  set(shared_iface "")      # INTERFACE_LINK_LIBRARIES of the installed targets
  set(static_iface "")
  foreach(lib ${libs})
    list(FIND SSE_INSTALL_DEP_TABLE ${lib} i)
    if(i LESS 0)
      message(FATAL_ERROR "libsse links ${lib}, which is not in the dependency table of "
        "cmake/SSEInstall.cmake: add it (pkg-config module, public or private)")
    endif()
    math(EXPR i1 "${i} + 1")
    math(EXPR i2 "${i} + 2")
    list(GET SSE_INSTALL_DEP_TABLE ${i1} dep)
    list(GET SSE_INSTALL_DEP_TABLE ${i2} scope)
    if(dep MATCHES "^-l(.*)$")
      list(APPEND plain_private ${CMAKE_MATCH_1})
      list(APPEND static_iface "$<LINK_ONLY:${CMAKE_MATCH_1}>")
    elseif(scope STREQUAL "public")
      list(APPEND pc_public ${dep})
      list(APPEND shared_iface libsse::dep_${dep})
      list(APPEND static_iface libsse::dep_${dep})
    else()
      list(APPEND pc_private ${dep})
      list(APPEND static_iface "$<LINK_ONLY:libsse::dep_${dep}>")
    endif()
  endforeach()
  list(APPEND static_iface "$<LINK_ONLY:Threads::Threads>" "$<LINK_ONLY:m>")

  # The installed targets: what they link is the table above (the build tree keeps the
  # PkgConfig:: targets of this configuration, see sse_build_library).
  set_target_properties(sse_shared PROPERTIES EXPORT_NAME sse)
  set_target_properties(sse_static PROPERTIES EXPORT_NAME sse_static)
  foreach(item ${shared_iface})
    target_link_libraries(sse_shared INTERFACE "$<INSTALL_INTERFACE:${item}>")
  endforeach()
  foreach(item ${static_iface})
    target_link_libraries(sse_static INTERFACE "$<INSTALL_INTERFACE:${item}>")
  endforeach()
  install(TARGETS sse_shared EXPORT libsse-shared
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(TARGETS sse_static EXPORT libsse-static
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT libsse-shared NAMESPACE libsse:: FILE libsse-shared-targets.cmake
    DESTINATION ${SSE_CMAKE_INSTALL_DIR})
  install(EXPORT libsse-static NAMESPACE libsse:: FILE libsse-static-targets.cmake
    DESTINATION ${SSE_CMAKE_INSTALL_DIR})

  include(CMakePackageConfigHelpers)
  set(SSE_CONFIG_PUBLIC_PC "${pc_public}")
  set(SSE_CONFIG_PRIVATE_PC "${pc_private}")
  set(SSE_CONFIG_PRIVATE_PLAIN "${plain_private}")
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/libsseConfig.cmake.in
    ${PROJECT_BINARY_DIR}/libsseConfig.cmake INSTALL_DESTINATION ${SSE_CMAKE_INSTALL_DIR})
  # 0.x: a minor release may change the API, so only the same minor version is compatible.
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/libsseConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/libsseConfig.cmake
    ${PROJECT_BINARY_DIR}/libsseConfigVersion.cmake DESTINATION ${SSE_CMAKE_INSTALL_DIR})

  # pkg-config: the same table in pkg-config's words.
  string(REPLACE ";" " " SSE_PC_REQUIRES "${pc_public}")
  string(REPLACE ";" " " SSE_PC_REQUIRES_PRIVATE "${pc_private}")
  set(SSE_PC_LIBS_PRIVATE "")
  foreach(l ${plain_private})
    string(APPEND SSE_PC_LIBS_PRIVATE " -l${l}")
  endforeach()
  string(APPEND SSE_PC_LIBS_PRIVATE " -pthread -lm")
  string(STRIP "${SSE_PC_LIBS_PRIVATE}" SSE_PC_LIBS_PRIVATE)
  string(REPLACE ";" " " SSE_PC_REQUIRES_ALL "${pc_public};${pc_private}")
  string(STRIP "${SSE_PC_REQUIRES_ALL}" SSE_PC_REQUIRES_ALL)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/libsse.pc.in ${PROJECT_BINARY_DIR}/libsse.pc @ONLY)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/libsse-static.pc.in
    ${PROJECT_BINARY_DIR}/libsse-static.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/libsse.pc ${PROJECT_BINARY_DIR}/libsse-static.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()
