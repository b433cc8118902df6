/* Fuzzes the body of the adapter's POST /events (docs/adapters.md) as far
 * as it is callable without libmicrohttpd: the handler reads the body with
 * schakel_rows_jsonl (JSON lines, or a JSON list of rows) and maps each row
 * with its profile, which is what this target does (the first byte picks a
 * shipped profile; the rest is the body). Not covered: the MHD callback
 * itself (the token, Origin and Host checks, upload buffering, the 8 MiB
 * cap, status codes) and the outbox; test_adapter_trust covers those on a
 * real server. Property: see mapping_fuzz.h. */
#include <stdint.h>

#include "mapping_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_n_profiles) fuzz_load_profiles();
    if (size < 1) return 0;
    const schakel_profile_t *p = fuzz_profiles[data[0] % fuzz_n_profiles];
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_rows_jsonl((const char *)data + 1, size - 1, fuzz_map_row, (void *)p, why);
    if (rc == SCHAKEL_EINVAL && !why[0]) abort();
    fuzz_no_bsn(why);
    return 0;
}
