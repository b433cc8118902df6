# One concern per file (docs/architecture.md): no C file in lib/, brokers/,
# adapters/ or services/ is over about 600 lines (650 is where this test
# draws the line) unless its opening comment says why it must be "one
# piece". Run as: cmake -DSRC=<source dir> -P file_sizes.cmake
set(LIMIT 650)
file(GLOB_RECURSE files RELATIVE ${SRC}
  ${SRC}/lib/*.c ${SRC}/lib/*.h ${SRC}/brokers/*.c ${SRC}/brokers/*.h
  ${SRC}/adapters/*.c ${SRC}/adapters/*.h ${SRC}/services/*.c ${SRC}/services/*.h)
set(bad "")
foreach(f ${files})
  file(READ ${SRC}/${f} text)
  string(REGEX MATCHALL "\n" newlines "${text}")
  list(LENGTH newlines n)
  if(n GREATER LIMIT)
    file(READ ${SRC}/${f} head LIMIT 1200)
    string(FIND "${head}" "one piece" why)
    if(why EQUAL -1)
      string(APPEND bad "  ${f}: ${n} lines; split it by concern, or say in its opening comment why it must be one piece\n")
    endif()
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "files over ${LIMIT} lines:\n${bad}")
endif()
message(STATUS "no file over ${LIMIT} lines")
