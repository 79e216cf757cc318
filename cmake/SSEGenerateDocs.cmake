# Run at build time (cmake -P) by src/cli/CMakeLists.txt: the ssehub just built writes its man
# pages and its bash completion from its help tables -- the tables `--help` prints.
#   -DSSEHUB=<the program> -DOUT=<folder> -DCOMMANDS=<cmd;cmd...>
file(MAKE_DIRECTORY ${OUT}/man1)
function(run_to file)
  execute_process(COMMAND ${SSEHUB} ${ARGN} OUTPUT_FILE ${file}.tmp RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ssehub ${ARGN} failed (${rc})")
  endif()
  file(RENAME ${file}.tmp ${file})
endfunction()
run_to(${OUT}/man1/ssehub.1 --help-man)
foreach(c ${COMMANDS})
  run_to(${OUT}/man1/ssehub-${c}.1 --help-man ${c})
endforeach()
run_to(${OUT}/ssehub.bash --help-bash)
