/* Retention rules: parsing and the arithmetic the broker's retention pass
 * applies (brokers/retention.c). See retention.h. */
#include "retention.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "fileio.h"

#define YEAR_MS 31557600000LL /* 365.25 days */
#define RETENTION_FILE_MAX (64 << 10)

static int days_of(json_t *v, const char *what, uint32_t *out, char *why)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > SCHAKEL_RETENTION_DAYS_MAX)
        return schakel_fail(why, SCHAKEL_ECONFIG, "retention: %s: a whole number of days from 1 to %d", what,
                            SCHAKEL_RETENTION_DAYS_MAX);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

int schakel_retention_parse(const char *text, size_t len, schakel_retention_t *out, char *why)
{
    memset(out, 0, sizeof *out);
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return schakel_fail(why, SCHAKEL_ECONFIG, "retention: not a JSON object (line %d: %s)", err.line,
                            err.text);
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        if (rc) break;
        if (!strcmp(key, "version")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                rc = schakel_fail(why, SCHAKEL_ECONFIG, "retention: version: a whole number of 1 or more");
            else out->version = (uint64_t)json_integer_value(v);
        } else if (!strcmp(key, "default_days")) {
            rc = days_of(v, "default_days", &out->default_days, why);
        } else if (!strcmp(key, "age_23")) {
            if (!json_is_boolean(v))
                rc = schakel_fail(why, SCHAKEL_ECONFIG, "retention: age_23: true or false");
            else out->age_23 = json_is_true(v);
        } else if (!strcmp(key, "kinds")) {
            if (!json_is_object(v)) {
                rc = schakel_fail(why, SCHAKEL_ECONFIG, "retention: kinds: an object of event type -> days");
                break;
            }
            const char *kind;
            json_t *d;
            json_object_foreach(v, kind, d) {
                int t = schakel_event_type_parse(kind);
                if (t <= 0 || t >= SCHAKEL_RETENTION_TYPES) {
                    rc = schakel_fail(why, SCHAKEL_ECONFIG,
                                      "retention: kinds: \"%.64s\" is no event type (events.md)", kind);
                    break;
                }
                char what[96];
                snprintf(what, sizeof what, "kinds.%.64s", kind);
                if ((rc = days_of(d, what, &out->days[t], why)) != 0) break;
            }
        } else {
            rc =
                schakel_fail(why, SCHAKEL_ECONFIG,
                             "retention: unknown field \"%.64s\": version, default_days, kinds, age_23", key);
        }
    }
    if (!rc && !out->version) rc = schakel_fail(why, SCHAKEL_ECONFIG, "retention: version is required");
    if (!rc && !out->default_days)
        rc = schakel_fail(why, SCHAKEL_ECONFIG, "retention: default_days is required");
    json_decref(doc);
    return rc;
}

int schakel_retention_load(const char *path, schakel_retention_t *out, char *why)
{
    size_t len = 0;
    errno = 0;
    char *text = schakel_file_read(path, RETENTION_FILE_MAX, &len);
    if (!text && errno == ENOENT) return SCHAKEL_ENOTFOUND;
    if (!text) return schakel_fail(why, SCHAKEL_EIO, "%s: cannot be read (or over 64 KiB)", path);
    int rc = schakel_retention_parse(text, len, out, why);
    free(text);
    return rc;
}

uint32_t schakel_retention_days(const schakel_retention_t *r, int type)
{
    return type > 0 && type < SCHAKEL_RETENTION_TYPES && r->days[type] ? r->days[type] : r->default_days;
}

int64_t schakel_retention_age23_at(int age_band, int64_t at_ms)
{
    int lowest;
    switch (age_band) {
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12: lowest = 0; break;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15: lowest = 12; break;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17: lowest = 16; break;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT: lowest = 18; break;
    default: return INT64_MAX;
    }
    return at_ms + (int64_t)(23 - lowest) * YEAR_MS;
}

int64_t schakel_retention_age23_floor(int age_band, int64_t at_ms)
{
    int below; /* the band's ages are below this */
    switch (age_band) {
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12: below = 12; break;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15: below = 16; break;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17: below = 18; break;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT: return at_ms; /* may be 23 already */
    default: return INT64_MIN;
    }
    return at_ms + (int64_t)(23 - below) * YEAR_MS;
}
