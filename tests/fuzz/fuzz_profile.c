/* Fuzzes adapter profiles (adapters/mapping.h, docs/adapters.md): the JSON
 * that says how an export maps to events. Property: no crash or sanitizer
 * report; a refusal has a reason. */
#include <stdint.h>
#include <stdlib.h>

#include "error.h"
#include "mapping.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_profile_t *p = schakel_profile_parse((const char *)data, size, why);
    if (!p) {
        if (!why[0]) abort();
        return 0;
    }
    if (!schakel_profile_kind(p)) abort();
    schakel_profile_destroy(&p);
    return 0;
}
