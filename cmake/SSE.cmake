# Helpers shared by every CMakeLists.txt of the project.
#   sse_add_module(NAME <n> SOURCES <files...> [LIBS <targets...>])
#       An OBJECT library sse_<n>; its objects go into libsse, its LIBS become libsse's deps.
#   sse_add_test(NAME <n> SOURCES <files...> [LIBS ...] [LABELS ...] [TIMEOUT s] [ARGS ...])
#       A test program linked to libsse (static, so sse__ internals are reachable), run by CTest.
#   sse_build_library()  creates sse_static / sse_shared from all modules.

set(SSE_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
    -Wno-unused-parameter)

if(SSE_FUZZ)
  # Instrument the whole library for coverage, not only the fuzzers' own files: otherwise
  # libFuzzer is blind to the code it is meant to explore. Only fuzzers link the fuzzer runtime.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(SSE_SANITIZE)
  add_compile_options(-fsanitize=${SSE_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${SSE_SANITIZE})
endif()

function(sse_target_flags tgt)
  target_compile_options(${tgt} PRIVATE ${SSE_WARNINGS})
  if(SSE_WERROR)
    target_compile_options(${tgt} PRIVATE -Werror)
  endif()
  target_compile_definitions(${tgt} PRIVATE _GNU_SOURCE SSE_BUILDING)
  target_include_directories(${tgt} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_BINARY_DIR}/include
    ${PROJECT_SOURCE_DIR}/src)
endfunction()

function(sse_add_module)
  cmake_parse_arguments(M "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_library(sse_${M_NAME} OBJECT ${M_SOURCES})
  sse_target_flags(sse_${M_NAME})
  foreach(lib ${M_LIBS})
    # Only the include paths / defines: the link happens once, on libsse.
    target_include_directories(sse_${M_NAME} PRIVATE $<TARGET_PROPERTY:${lib},INTERFACE_INCLUDE_DIRECTORIES>)
  endforeach()
  set_property(GLOBAL APPEND PROPERTY SSE_MODULES sse_${M_NAME})
  set_property(GLOBAL APPEND PROPERTY SSE_MODULE_LIBS ${M_LIBS})
endfunction()

function(sse_build_library)
  get_property(mods GLOBAL PROPERTY SSE_MODULES)
  get_property(libs GLOBAL PROPERTY SSE_MODULE_LIBS)
  if(libs)
    list(REMOVE_DUPLICATES libs)
  endif()
  set(objs "")
  foreach(m ${mods})
    list(APPEND objs $<TARGET_OBJECTS:${m}>)
  endforeach()
  add_library(sse_static STATIC ${objs})
  add_library(sse_shared SHARED ${objs})
  foreach(t sse_static sse_shared)
    set_target_properties(${t} PROPERTIES OUTPUT_NAME sse)
    target_include_directories(${t} PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
      $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    target_link_libraries(${t} PUBLIC ${libs} Threads::Threads m)
  endforeach()
  set_target_properties(sse_shared PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
  string(REPLACE ";" " " _pc_libs "${libs}")
  install(TARGETS sse_static sse_shared
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endfunction()

function(sse_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  sse_target_flags(${T_NAME})
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${T_NAME} PRIVATE sse_static ${T_LIBS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS})
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
    SKIP_RETURN_CODE 77
    ENVIRONMENT "SSE_SOURCE_DIR=${PROJECT_SOURCE_DIR};SSE_BINARY_DIR=${PROJECT_BINARY_DIR};SSEHUB=$<TARGET_FILE:ssehub>")
endfunction()
