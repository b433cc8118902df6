# Fails when a tests/<kind>/test_*.c file is not listed in tests/CMakeLists.txt:
# such a file would be built by nobody and run by nobody. Looking at the
# tree is this check's job; the build itself lists its sources by name.
# Run as: cmake -DSRC=<tests dir> -DLISTED=<kind/test_x.c,...> -P tests_listed.cmake
string(REPLACE "," ";" listed "${LISTED}")
file(GLOB on_disk RELATIVE ${SRC} ${SRC}/unit/test_*.c ${SRC}/integration/test_*.c ${SRC}/crash/test_*.c)
set(bad "")
foreach(f ${on_disk})
  list(FIND listed ${f} i)
  if(i EQUAL -1)
    string(APPEND bad "  tests/${f}: add it to UNIT_TESTS, INTEGRATION_TESTS or CRASH_TESTS in tests/CMakeLists.txt\n")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "test files that no test runs:\n${bad}")
endif()
