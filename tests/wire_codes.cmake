# An internal error and a wire reject are never the same int (lib/error.h,
# brokers/broker_impl.h): a function returns SCHAKEL_OK or a SCHAKEL_E*
# code and, when it rejects, fills a reject_t whose code is a
# Schakel__V1__RejectCode. This fails on the two ways a wire code slips
# into an int result: schakel_fail() given a wire code as its error, and
# `return SCHAKEL__V1__REJECT_CODE__...`. Run as:
#   cmake -DSRC=<source dir> -P wire_codes.cmake
file(GLOB_RECURSE files RELATIVE ${SRC}
  ${SRC}/lib/*.c ${SRC}/brokers/*.c ${SRC}/adapters/*.c ${SRC}/services/*.c ${SRC}/tools/*.c)
set(bad "")
foreach(f ${files})
  file(STRINGS ${SRC}/${f} hits
    REGEX "schakel_fail\\([^,]*, *SCHAKEL__V1__REJECT_CODE|return +SCHAKEL__V1__REJECT_CODE")
  foreach(h ${hits})
    string(STRIP "${h}" h)
    string(APPEND bad "  ${f}: ${h}\n")
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "a wire reject code returned as an int error; return SCHAKEL_EREJECTED "
    "and fill a reject_t (broker_reject) instead:\n${bad}")
endif()
message(STATUS "no wire reject code returned as an int error")
