# A dropped result of a function whose failure matters fails the build
# (SCHAKEL_MUST_USE, lib/error.h), and SCHAKEL_DROP is the one way to drop
# it on purpose. Compiles two snippets with the project's compiler: one
# that drops schakel_file_write_atomic's result must be refused for it,
# one that drops it with SCHAKEL_DROP must compile. Run as:
#   cmake -DCC=<compiler> -DSRC=<source dir> -DOUT=<scratch dir> -P must_use.cmake
file(MAKE_DIRECTORY ${OUT})
file(WRITE ${OUT}/must_use_drop.c
  "#include \"fileio.h\"\nvoid f(void);\nvoid f(void) { schakel_file_write_atomic(\"x\", \"\", 0); }\n")
file(WRITE ${OUT}/must_use_marked.c
  "#include \"fileio.h\"\nvoid f(void);\n"
  "void f(void) { SCHAKEL_DROP(schakel_file_write_atomic(\"x\", \"\", 0)); }\n")
foreach(kind drop marked)
  execute_process(COMMAND ${CC} -std=c11 -Wall -Werror -c -o ${OUT}/must_use_${kind}.o -I${SRC}/lib ${OUT}/must_use_${kind}.c
    RESULT_VARIABLE rc_${kind} OUTPUT_VARIABLE out_${kind} ERROR_VARIABLE out_${kind})
endforeach()
if(rc_drop EQUAL 0 OR NOT out_drop MATCHES "unused-result|warn_unused_result")
  message(FATAL_ERROR "a dropped schakel_file_write_atomic result compiles: SCHAKEL_MUST_USE "
    "is not on it or does nothing (rc ${rc_drop}):\n${out_drop}")
endif()
if(NOT rc_marked EQUAL 0)
  message(FATAL_ERROR "SCHAKEL_DROP(call) does not compile:\n${out_marked}")
endif()
message(STATUS "a dropped result fails the build; SCHAKEL_DROP compiles")
