/* Fuzzes the body of the adapter's POST /events (docs/adapters.md) as far
 * as it is callable without libmicrohttpd: a body that starts with '[' is
 * a JSON list of rows and becomes JSON lines, any other body is JSON lines;
 * the lines are read with schakel_rows_jsonl and each row mapped with a
 * shipped profile (the first byte picks it; the rest is the body). The
 * list-to-lines step is a copy of adapter.c's static json_lines() (the
 * HTTP handler is being rewritten; when the body handling becomes a
 * function of its own, call that here instead). Not covered: the MHD
 * callback itself (upload buffering, the 8 MiB cap, status codes) and the
 * outbox. Property: see mapping_fuzz.h. */
#include <jansson.h>
#include <stdint.h>

#include "mapping_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Copy of adapters/adapter.c json_lines(). */
static char *json_lines(json_t *list, size_t *len)
{
    char *out = NULL;
    size_t i;
    json_t *x;
    *len = 0;
    json_array_foreach(list, i, x) {
        char *t = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        size_t tl = t ? strlen(t) : 0;
        char *nl = t ? realloc(out, *len + tl + 2) : NULL;
        if (nl) {
            out = nl;
            memcpy(out + *len, t, tl);
            out[*len + tl] = '\n';
            *len += tl + 1;
            out[*len] = 0;
        }
        free(t);
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_n_profiles) fuzz_load_profiles();
    if (size < 1) return 0;
    const schakel_profile_t *p = fuzz_profiles[data[0] % fuzz_n_profiles];
    const char *body = (const char *)data + 1;
    size_t blen = size - 1;
    json_error_t err;
    json_t *list = blen && body[0] == '[' ? json_loadb(body, blen, 0, &err) : NULL;
    size_t llen = 0;
    char *lines = list ? json_lines(list, &llen) : NULL;
    json_decref(list);
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_rows_jsonl(lines ? lines : body, lines ? llen : blen, fuzz_map_row, (void *)p, why);
    if (rc == SCHAKEL_EINVAL && !why[0]) abort();
    fuzz_no_bsn(why);
    free(lines);
    return 0;
}
