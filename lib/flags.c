/* Table-driven flags; see flags.h. */
#include "flags.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* strtoull alone takes " 12", "-1" (as a huge number), "12abc" and "" as
 * numbers: a flag's number is digits and nothing else. */
int schakel_flags_unsigned(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return SCHAKEL_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end || v < min || v > max) return SCHAKEL_EINVAL;
    *out = (uint64_t)v;
    return 0;
}

int schakel_flags_signed(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s) return SCHAKEL_EINVAL;
    const char *digits = *s == '-' ? s + 1 : s;
    if (*digits < '0' || *digits > '9') return SCHAKEL_EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end || v < min || v > max) return SCHAKEL_EINVAL;
    *out = (int64_t)v;
    return 0;
}

/* "a whole number from 0 to 100", said the same in every message. */
static void describe_number(const schakel_flag_t *f, char *buf, size_t cap)
{
    if (f->kind == SCHAKEL_FLAG_UNSIGNED && f->max == UINT64_MAX)
        snprintf(buf, cap, "a whole number, %" PRId64 " or more", f->min);
    else if (f->kind == SCHAKEL_FLAG_SIGNED && f->max >= (uint64_t)INT64_MAX && f->min == INT64_MIN)
        snprintf(buf, cap, "a whole number");
    else snprintf(buf, cap, "a whole number from %" PRId64 " to %" PRIu64, f->min, f->max);
}

static int is_number(const schakel_flag_t *f)
{
    return f->kind == SCHAKEL_FLAG_UNSIGNED || f->kind == SCHAKEL_FLAG_SIGNED;
}

static schakel_flag_t *find(schakel_flag_t *t, const char *a)
{
    for (; t->kind != SCHAKEL_FLAG_END; t++) {
        if (t->kind == SCHAKEL_FLAG_ARG || t->kind == SCHAKEL_FLAG_ARGS) continue;
        if (!strcmp(a, t->name) || (t->alias && !strcmp(a, t->alias))) return t;
    }
    return NULL;
}

/* Gives a plain argument to the first ARG entry not yet filled, else to
 * an ARGS list with room left. */
static int take_arg(schakel_flag_t *t, const char *a)
{
    if (a[0] == '-' && a[1]) return 0; /* looks like a flag: an unknown one */
    schakel_flag_t *list = NULL;
    for (; t->kind != SCHAKEL_FLAG_END; t++) {
        if (t->kind == SCHAKEL_FLAG_ARGS && !list && (size_t)t->seen < t->cap) list = t;
        if (t->kind != SCHAKEL_FLAG_ARG || t->seen) continue;
        *(const char **)t->out = a;
        t->seen = 1;
        return 1;
    }
    if (!list) return 0;
    ((const char **)list->out)[list->seen++] = a;
    return 1;
}

static int set_value(schakel_flag_t *f, const char *v, char *why)
{
    char want[96];
    if (f->kind == SCHAKEL_FLAG_STRING) {
        *(const char **)f->out = v;
    } else if (f->kind == SCHAKEL_FLAG_BUF) {
        if (strlen(v) >= f->cap)
            return schakel_fail(why, SCHAKEL_EINVAL, "%s: the value is too long (at most %zu characters)",
                                f->name, f->cap - 1);
        memcpy(f->out, v, strlen(v) + 1);
    } else if (f->kind == SCHAKEL_FLAG_UNSIGNED) {
        uint64_t n;
        if (schakel_flags_unsigned(v, (uint64_t)(f->min < 0 ? 0 : f->min), f->max, &n) != 0) {
            describe_number(f, want, sizeof want);
            return schakel_fail(why, SCHAKEL_EINVAL, "%s wants %s, not \"%.40s\"", f->name, want, v);
        }
        *(uint64_t *)f->out = n;
    } else if (f->kind == SCHAKEL_FLAG_SIGNED) {
        int64_t n;
        int64_t max = f->max > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)f->max;
        if (schakel_flags_signed(v, f->min, max, &n) != 0) {
            describe_number(f, want, sizeof want);
            return schakel_fail(why, SCHAKEL_EINVAL, "%s wants %s, not \"%.40s\"", f->name, want, v);
        }
        *(int64_t *)f->out = n;
    }
    return 0;
}

static int missing_value(const schakel_flag_t *f, char *why)
{
    char want[96];
    if (is_number(f)) describe_number(f, want, sizeof want);
    else snprintf(want, sizeof want, "%s", f->value ? f->value : "a value");
    return schakel_fail(why, SCHAKEL_EINVAL, "%s needs a value: %s (see --help)", f->name, want);
}

int schakel_flags_given(const schakel_flag_t *t, const char *name)
{
    for (; t->kind != SCHAKEL_FLAG_END; t++)
        if (!strcmp(t->name, name)) return t->seen;
    return 0;
}

int schakel_flags_parse(schakel_flag_t *t, int argc, char **argv, int first, char *why)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        schakel_flag_t *f = find(t, a);
        if (!f) {
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) return SCHAKEL_FLAGS_HELP;
            if (take_arg(t, a)) continue;
            return schakel_fail(why, SCHAKEL_EINVAL, "unexpected %.200s (see --help)", a);
        }
        f->seen = 1;
        if (f->kind == SCHAKEL_FLAG_BOOL) {
            *(int *)f->out = 1;
            continue;
        }
        if (i + 1 >= argc) return missing_value(f, why);
        int rc = set_value(f, argv[++i], why);
        if (rc) return rc;
    }
    return 0;
}
