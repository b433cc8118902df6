/* Fuzzes the adapter's CSV input (adapters/mapping.h): a spool file read
 * with a shipped profile's delimiter and quote, each row mapped to an
 * event. The first byte picks the profile (mapping_fuzz.h), the rest is
 * the file. Property: see mapping_fuzz.h. */
#include <stdint.h>

#include "mapping_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_n_profiles) fuzz_load_profiles();
    if (size < 1) return 0;
    const schakel_profile_t *p = fuzz_profiles[data[0] % fuzz_n_profiles];
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_rows_csv(p, (const char *)data + 1, size - 1, fuzz_map_row, (void *)p, why);
    if (rc == SCHAKEL_EINVAL && !why[0]) abort();
    fuzz_no_bsn(why);
    return 0;
}
