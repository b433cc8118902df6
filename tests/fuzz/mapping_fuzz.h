/* Shared by fuzz_rows_csv and fuzz_http_body: the shipped profiles
 * (adapters/profiles/ * /profile.json, in name order: ggd ppo school smw
 * veiligthuis wijkteam; the input's first byte picks one, modulo their
 * count) and the row callback, which maps each row as the adapter does and
 * checks what comes out. Properties: an event that maps decodes and
 * validates; a rejection has a reason and never holds a value of the row
 * that passes the elfproef (a BSN must not reach a reason). */
#ifndef SCHAKEL_MAPPING_FUZZ_H
#define SCHAKEL_MAPPING_FUZZ_H

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "mapping.h"
#include "validate.h"

#define FUZZ_MAX_PROFILES 16

static schakel_profile_t *fuzz_profiles[FUZZ_MAX_PROFILES];
static size_t fuzz_n_profiles;

static void fuzz_load_profiles(void)
{
    glob_t g;
    if (glob(SCHAKEL_SOURCE_DIR "/adapters/profiles/*/profile.json", 0, NULL, &g) != 0) abort();
    for (size_t i = 0; i < g.gl_pathc && fuzz_n_profiles < FUZZ_MAX_PROFILES; i++) {
        char why[SCHAKEL_ERRLEN] = "";
        schakel_profile_t *p = schakel_profile_load(g.gl_pathv[i], why);
        if (!p) {
            fprintf(stderr, "%s: %s\n", g.gl_pathv[i], why);
            abort();
        }
        fuzz_profiles[fuzz_n_profiles++] = p;
    }
    globfree(&g);
    if (!fuzz_n_profiles) abort();
}

/* Aborts if why holds a run of 8 or 9 digits that passes the elfproef: no
 * reason may carry a BSN, whatever the input (parse errors included). */
static void fuzz_no_bsn(const char *why)
{
    for (const char *s = why; *s;) {
        size_t n = strspn(s, "0123456789");
        if (n == 8 || n == 9) {
            char bsn[10];
            memcpy(bsn, s, n);
            bsn[n] = 0;
            if (schakel_bsn_valid(bsn)) {
                fprintf(stderr, "a BSN reached a reason: %s\n", why);
                abort();
            }
        }
        s += n ? n : 1;
    }
}

static const uint8_t fuzz_region_key[SCHAKEL_REGION_KEY_LEN] = {0x5c, 0x4a, 0x1e, 0x77};

static int fuzz_map_row(void *arg, const schakel_row_t *row, size_t number)
{
    const schakel_profile_t *p = arg;
    uint8_t *out = NULL, id[16];
    size_t len = 0;
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_profile_map(p, "school-12ab00", fuzz_region_key, row, &out, &len, id, why) == 0) {
        schakel_envelope_t *e = schakel_envelope_decode(out, len, why);
        if (!e) {
            fprintf(stderr, "mapped event does not decode: %s\n", why);
            abort();
        }
        if (schakel_envelope_validate(e, why) != 0) {
            fprintf(stderr, "mapped event does not validate: %s\n", why);
            abort();
        }
        schakel_envelope_free(e);
        free(out);
        return 0;
    }
    if (!why[0]) {
        fprintf(stderr, "row %zu rejected without a reason\n", number);
        abort();
    }
    fuzz_no_bsn(why);
    for (size_t i = 0; i < row->n; i++) {
        const char *v = row->values[i];
        if (!v) continue;
        /* the value as it stands, or trimmed of blanks as the mapping does */
        while (*v == ' ' || *v == '\t') v++;
        char bsn[16];
        size_t n = strcspn(v, " \t");
        if (n < 8 || n > 9) continue;
        memcpy(bsn, v, n);
        bsn[n] = 0;
        if (schakel_bsn_valid(bsn) && strstr(why, bsn)) {
            fprintf(stderr, "a BSN reached the reason of a rejected row (column %zu): %s\n", i, why);
            abort();
        }
    }
    return 0;
}

#endif
