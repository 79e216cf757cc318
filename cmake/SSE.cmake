# Helpers shared by every CMakeLists.txt of the project.
#   sse_add_module(NAME <n> SOURCES <files...> [LIBS <targets...>])
#       An OBJECT library sse_<n>, the module <n> of cmake/layers.txt (the layer table): it links
#       the modules the table says it uses (and only those) plus LIBS, its external libraries.
#       A "lib" module's objects go into libsse; an "app" module is linked by ssehub itself.
#       Unless sanitizers or fuzzing are on, sse_layer_<n>, a shared library of the module's
#       objects and those of what it uses (transitively), is linked with -Wl,--no-undefined: a
#       call into a module the table does not give it fails the build.
#   sse_add_test(NAME <n> SOURCES <files...> [LIBS ...] [LABELS ...] [TIMEOUT s] [ARGS ...])
#       A test program linked to libsse (static, so sse__ internals are reachable), run by CTest.
#   sse_build_library()  creates sse_static / sse_shared from all "lib" modules, and sets
#       SSE_PROGRAM_LIB, what programs on the public API (ssehub, examples) link: sse_shared,
#       whose sse__ internals are hidden; sse_static in sanitizer and fuzz builds, so that the
#       whole program is instrumented alike.

# The layer table: SSE_LAYER_MODULES (in order), SSE_LAYER_<n>_FOLDER / _KIND / _USES.
set(SSE_LAYER_MODULES "")
file(STRINGS ${PROJECT_SOURCE_DIR}/cmake/layers.txt _sse_layer_lines REGEX "^module ")
foreach(_line ${_sse_layer_lines})
  string(REGEX REPLACE "[ \t]+" ";" _f "${_line}")
  list(POP_FRONT _f _kw _name _folder _kind)
  foreach(_u ${_f})
    if(NOT _u IN_LIST SSE_LAYER_MODULES)
      message(FATAL_ERROR "cmake/layers.txt: module ${_name} uses ${_u}, which is not listed above it")
    endif()
  endforeach()
  list(APPEND SSE_LAYER_MODULES ${_name})
  set(SSE_LAYER_${_name}_FOLDER ${_folder})
  set(SSE_LAYER_${_name}_KIND ${_kind})
  set(SSE_LAYER_${_name}_USES ${_f})
endforeach()
# Programs the table lets reach into internals ("program <file> <module>..."): SSE_INTERNAL_PROGRAMS.
set(SSE_INTERNAL_PROGRAMS "")
file(STRINGS ${PROJECT_SOURCE_DIR}/cmake/layers.txt _sse_program_lines REGEX "^program ")
foreach(_line ${_sse_program_lines})
  string(REGEX REPLACE "[ \t]+" ";" _f "${_line}")
  list(POP_FRONT _f _kw _path)
  if(NOT _f STREQUAL "-")
    list(APPEND SSE_INTERNAL_PROGRAMS ${_path})
  endif()
endforeach()
# Editing the table re-runs the configuration.
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/cmake/layers.txt)

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
  if(NOT M_NAME IN_LIST SSE_LAYER_MODULES)
    message(FATAL_ERROR "module ${M_NAME} (${CMAKE_CURRENT_SOURCE_DIR}) is not in cmake/layers.txt")
  endif()
  if(NOT "${CMAKE_CURRENT_SOURCE_DIR}" STREQUAL "${PROJECT_SOURCE_DIR}/${SSE_LAYER_${M_NAME}_FOLDER}")
    message(FATAL_ERROR "module ${M_NAME}: cmake/layers.txt says it lives in ${SSE_LAYER_${M_NAME}_FOLDER}")
  endif()
  add_library(sse_${M_NAME} OBJECT ${M_SOURCES})
  sse_target_flags(sse_${M_NAME})
  # What it uses: the modules already built (a module of the table not written yet is skipped),
  # and the objects of what those use in turn, for the link check below.
  set(uses "")
  set(closure "")
  foreach(u ${SSE_LAYER_${M_NAME}_USES})
    if(TARGET sse_${u})
      list(APPEND uses sse_${u})
      get_property(c GLOBAL PROPERTY SSE_CLOSURE_${u})
      list(APPEND closure ${c})
    elseif(EXISTS ${PROJECT_SOURCE_DIR}/${SSE_LAYER_${u}_FOLDER}/CMakeLists.txt)
      message(FATAL_ERROR "module ${M_NAME} uses ${u}, which exists but is not built yet: "
        "add ${SSE_LAYER_${u}_FOLDER} (sse_add_module(NAME ${u} ...)) before ${M_NAME}")
    endif()
  endforeach()
  list(APPEND closure sse_${M_NAME})
  list(REMOVE_DUPLICATES closure)
  set_property(GLOBAL PROPERTY SSE_CLOSURE_${M_NAME} ${closure})
  target_link_libraries(sse_${M_NAME} PUBLIC ${uses} ${M_LIBS})
  if(SSE_LAYER_${M_NAME}_KIND STREQUAL "lib")
    set_property(GLOBAL APPEND PROPERTY SSE_MODULES sse_${M_NAME})
    set_property(GLOBAL APPEND PROPERTY SSE_MODULE_LIBS ${M_LIBS})
  endif()
  if(NOT SSE_SANITIZE AND NOT SSE_FUZZ)
    set(objs "")
    foreach(m ${closure})
      list(APPEND objs $<TARGET_OBJECTS:${m}>)
    endforeach()
    add_library(sse_layer_${M_NAME} SHARED ${objs})
    target_link_libraries(sse_layer_${M_NAME} PRIVATE sse_${M_NAME} Threads::Threads m)
    target_link_options(sse_layer_${M_NAME} PRIVATE -Wl,--no-undefined)
    set_target_properties(sse_layer_${M_NAME} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/layers)
  endif()
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
    # In the build tree: this configuration's targets. The installed targets name the same
    # libraries through cmake/SSEInstall.cmake's dependency table instead.
    target_link_libraries(${t} PUBLIC "$<BUILD_INTERFACE:${libs};Threads::Threads;m>")
  endforeach()
  if(SSE_SANITIZE OR SSE_FUZZ)
    set(SSE_PROGRAM_LIB sse_static PARENT_SCOPE)
  else()
    set(SSE_PROGRAM_LIB sse_shared PARENT_SCOPE)
  endif()
  # The library's calls to its own public functions (sse_buf_*, sse_frame_unref,
  # sse_stream_send_frame...) bind inside it, as in the static library: direct calls, not ~360
  # PLT jumps on the hot paths of programs that link the shared one (ssehub).
  target_link_options(sse_shared PRIVATE -Wl,-Bsymbolic-functions)
  set_target_properties(sse_shared PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
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
