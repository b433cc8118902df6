/* Fuzzes the directory (lib/directory.h): the broker parses it from its
 * file and from directory_update events on the log. Every lookup is run
 * on what parses. Property: no crash or sanitizer report; a refusal has a
 * reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = schakel_directory_parse((const char *)data, size, why);
    if (!d) {
        if (!why[0]) abort();
        return 0;
    }
    size_t n = schakel_directory_count(d);
    for (size_t i = 0; i < n; i++) {
        const schakel_org_t *o = schakel_directory_at(d, i);
        if (!o || schakel_directory_by_id(d, o->id) != o) abort();
        if (schakel_directory_by_curve(d, o->curve_public) != o) abort();
        if (!schakel_org_kind_name(o->kind)) abort();
        schakel_directory_school_of(d, o->id);
        schakel_directory_district_wijkteam(d, o->id);
    }
    schakel_directory_school(d, "12AB00");
    schakel_directory_veiligthuis(d);
    schakel_directory_leerplicht(d);
    schakel_directory_version(d);
    schakel_directory_hash(d);
    if (strlen(schakel_directory_text(d)) > size) abort();
    schakel_directory_destroy(&d);
    return 0;
}
