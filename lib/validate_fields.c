/* Validation, the decoded envelope field by field: a walker over the
 * protobuf-c descriptors checks every field of every message by its kind
 * and name (UTF-8 and length of strings, known enum values, 16-byte ids,
 * dates, organisation ids, times). The by-name kinds are worked out once
 * per field descriptor. schakel_envelope_validate (validate.c) runs the
 * walker after the wire walk (validate_wire.c) has seen the bytes. */
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "keys.h"
#include "validate.h"
#include "validate_impl.h"

#define STRING_MAX 128                                    /* codes and references, never free text */
#define DOCUMENT_MAX (SCHAKEL_MAX_DIRECTORY_BYTES - 1024) /* directory_ and rules_update.document_json */
#define PATH_MAX_LEN 96
#define CODE_MAX 64 /* a *_code field: a code from a list, never words */

int schakel_ref_text_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= SCHAKEL_REF_TEXT_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._:/#@-") == n;
}

/* ---- field kinds known by name ---- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static int is_date_field(const char *name)
{
    return ends_with(name, "_on") || !strcmp(name, "on") || !strcmp(name, "since") ||
           !strcmp(name, "valid_from") || !strcmp(name, "valid_until") || !strcmp(name, "period_from") ||
           !strcmp(name, "period_to");
}

static int is_org_field(const char *name)
{
    return ends_with(name, "_org") || !strcmp(name, "org_id") || !strcmp(name, "redirected_to") ||
           !strcmp(name, "addressees") || !strcmp(name, "participant_orgs");
}

static unsigned kind_by_name(const ProtobufCFieldDescriptor *f)
{
    unsigned k = 0;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        if (is_date_field(f->name)) k |= K_DATE;
        if (is_org_field(f->name)) k |= K_ORG;
        if (!strcmp(f->name, "school")) k |= K_SCHOOL;
        if (!strcmp(f->name, "district") || !strcmp(f->name, "municipality")) k |= K_DISTRICT;
        if (!strcmp(f->name, "document_json")) k |= K_DOCUMENT;
        if (ends_with(f->name, "_code")) k |= K_CODE;
        if (ends_with(f->name, "_ref") || !strcmp(f->name, "ref")) k |= K_REF;
        if (!strcmp(f->name, "stated_purpose") || !strcmp(f->name, "purpose") ||
            !strcmp(f->name, "requested_by"))
            k |= K_REF_TEXT;
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        if (ends_with(f->name, "_id")) k |= K_ID;
        if (!strcmp(f->name, "policy_version") || !strcmp(f->name, "version")) k |= K_POLICY;
    }
    return k;
}

#define KIND_SLOTS 2048
static struct {
    const ProtobufCFieldDescriptor *f;
    unsigned kind;
} kinds[KIND_SLOTS];
static pthread_once_t kinds_once = PTHREAD_ONCE_INIT;

static size_t kind_slot(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 40) % KIND_SLOTS;
}

static void kinds_add(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        size_t h = kind_slot(f);
        while (kinds[h].f && kinds[h].f != f) h = (h + 1) % KIND_SLOTS;
        if (kinds[h].f) return; /* this message was added before */
        kinds[h].f = f;
        kinds[h].kind = kind_by_name(f);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) kinds_add(f->descriptor);
    }
}

static void kinds_build(void)
{
    kinds_add(&schakel__v1__envelope__descriptor);
}

unsigned validate_field_kind(const ProtobufCFieldDescriptor *f)
{
    pthread_once(&kinds_once, kinds_build);
    for (size_t h = kind_slot(f); kinds[h].f; h = (h + 1) % KIND_SLOTS)
        if (kinds[h].f == f) return kinds[h].kind;
    return kind_by_name(f); /* a message outside the envelope */
}

/* ---- strings, dates, school codes ---- */

/* 1 if the 8 bytes at s are all printable ASCII (0x20 to 0x7e): the
 * common case, checked a word at a time. A 0 may be wrong; never a 1. */
static int printable8(const uint8_t *s)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t x, y;
    memcpy(&x, s, 8);
    y = x ^ (0x7f * ones);
    return !(x & high) && !((x - 0x20 * ones) & high) && !((y - ones) & ~y & high);
}

/* Strict UTF-8 (validate_impl.h); the printable ASCII runs that make up
 * most of a code or reference are skipped a word at a time. */
int validate_utf8(const uint8_t *s, size_t n, int allow_newlines)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8 && printable8(s + i)) {
            i += 8;
            continue;
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                if (!allow_newlines || (c != '\n' && c != '\r' && c != '\t')) return -1;
            }
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + len > n) return -1;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return -1;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += len;
    }
    return 0;
}

int schakel_date_valid(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    int v[3] = {0, 0, 0};
    const int at[3] = {0, 5, 8}, len[3] = {4, 2, 2};
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < len[f]; k++) {
            char c = s[at[f] + k];
            if (c < '0' || c > '9') return 0;
            v[f] = v[f] * 10 + (c - '0');
        }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = v[0], m = v[1], d = v[2];
    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return 0;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 0;
    return 1;
}

int schakel_brinvest_valid(const char *s)
{
    if (strlen(s) != 6) return 0;
    for (int i = 0; i < 6; i++) {
        char c = s[i];
        int digit = c >= '0' && c <= '9', upper = c >= 'A' && c <= 'Z';
        if ((i == 2 || i == 3) ? !(upper || digit) : !digit) return 0;
    }
    return 1;
}

/* ---- the walker ---- */

/* The path is only written out when a field fails. */
int validate_fail_at(walk_t *w, const char *field, const char *fmt, ...)
{
    char msg[160], path[PATH_MAX_LEN] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = 0;
    for (int i = 0; i < w->depth && n < sizeof path; i++) {
        int k = snprintf(path + n, sizeof path - n, "%s.", w->stack[i]);
        if (k < 0) break;
        n += (size_t)k;
    }
    return schakel_fail(w->why, SCHAKEL_EINVAL, "%s%s: %s", path, field, msg);
}

static int check_string(walk_t *w, const ProtobufCFieldDescriptor *f, const char *s)
{
    if (!s) return 0;
    unsigned kind = validate_field_kind(f);
    int document = (kind & K_DOCUMENT) != 0;
    size_t n = strnlen(s, DOCUMENT_MAX + 1);
    if (n > (document ? DOCUMENT_MAX : STRING_MAX))
        return validate_fail_at(w, f->name,
                                "longer than %d bytes: the bus carries codes and references, not text",
                                document ? DOCUMENT_MAX : STRING_MAX);
    if (validate_utf8((const uint8_t *)s, n, document) != 0)
        return validate_fail_at(w, f->name, "not valid UTF-8, or holds control characters");
    if (!n) return 0;
    if ((kind & K_DATE) && !schakel_date_valid(s))
        return validate_fail_at(w, f->name, "not a date: write YYYY-MM-DD");
    if ((kind & K_ORG) && !schakel_id_valid(s))
        return validate_fail_at(w, f->name, "not an organisation id: 1 to 63 of a-z 0-9 . _ / -");
    if ((kind & K_SCHOOL) && !schakel_brinvest_valid(s))
        return validate_fail_at(w, f->name, "not a BRINVEST code such as 12AB00");
    if ((kind & K_DISTRICT) && !schakel_id_valid(s))
        return validate_fail_at(w, f->name, "not a district code: a-z 0-9 . _ / -");
    if ((kind & K_CODE) && (n > CODE_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n))
        return validate_fail_at(w, f->name, "not a code: 1 to %d of a-z 0-9 _ - (a code, never text)",
                                CODE_MAX);
    if ((kind & K_REF) &&
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./:#") != n)
        return validate_fail_at(w, f->name,
                                "not a reference: letters, digits and - _ . / : # only (an id in your "
                                "system, never a name or words)");
    if ((kind & K_REF_TEXT) && !schakel_ref_text_valid(s))
        return validate_fail_at(w, f->name,
                                "not a reference: " SCHAKEL_REF_TEXT_SHAPE
                                " (a request or ticket number, never a name)");
    return 0;
}

static int check_bytes(walk_t *w, const ProtobufCFieldDescriptor *f, const ProtobufCBinaryData *b)
{
    if (!b->len) return 0;
    unsigned kind = validate_field_kind(f);
    if ((kind & K_ID) && b->len != SCHAKEL_EVENT_ID_LEN)
        return validate_fail_at(w, f->name, "an id is 16 bytes (32 hex characters), not %zu", b->len);
    if ((kind & K_POLICY) && b->len != SCHAKEL_SHA256_LEN)
        return validate_fail_at(w, f->name, "a policy version is a SHA-256 (32 bytes)");
    return 0;
}

static int check_enum(walk_t *w, const ProtobufCFieldDescriptor *f, int v)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (protobuf_c_enum_descriptor_get_value(ed, v)) return 0;
    return validate_fail_at(w, f->name, "unknown value %d: see docs/events.md", v);
}

/* Checks one value of field f at p (an element, for repeated fields). */
static int check_value(walk_t *w, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: return check_string(w, f, *(char *const *)p);
    case PROTOBUF_C_TYPE_BYTES: return check_bytes(w, f, p);
    case PROTOBUF_C_TYPE_ENUM: return check_enum(w, f, *(const int *)p);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (!sub) return 0;
        if (w->depth == DEPTH_MAX) return validate_fail_at(w, f->name, "nested too deep");
        w->stack[w->depth++] = f->name;
        int rc = validate_walk(w, sub);
        w->depth--;
        return rc;
    }
    default: return 0;
    }
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    default: return 0; /* numbers and bools: nothing to check by kind */
    }
}

/* A time (int64 named at or ending in _at, written in JSON as RFC 3339
 * with a 4-digit year) is 0 (not set) or from 1970 up to the year 9999:
 * outside that it has no JSON form that reads back. */
#define TIME_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
static int check_time(walk_t *w, const ProtobufCFieldDescriptor *f, const char *base)
{
    size_t n = strlen(f->name);
    if (f->type != PROTOBUF_C_TYPE_INT64 || f->label == PROTOBUF_C_LABEL_REPEATED ||
        (strcmp(f->name, "at") != 0 && (n <= 3 || strcmp(f->name + n - 3, "_at") != 0)))
        return 0;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
        return 0;
    int64_t ms = *(const int64_t *)(base + f->offset);
    if (ms < 0 || ms > TIME_MAX_MS)
        return validate_fail_at(w, f->name, "a time from 1970 to the year 9999 is needed");
    return 0;
}

int validate_walk(walk_t *w, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (m->n_unknown_fields)
        return schakel_fail(w->why, SCHAKEL_EINVAL, "unknown field %u in %s: remove it",
                            m->unknown_fields[0].tag, d->name);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (check_time(w, f, (const char *)m) != 0) return SCHAKEL_EINVAL;
        size_t sz = value_size(f);
        if (!sz) continue;
        const char *base = (const char *)m;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
        }
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if ((rc = check_value(w, f, arr + k * sz)) != 0) return rc;
        } else if ((rc = check_value(w, f, base + f->offset)) != 0) {
            return rc;
        }
    }
    return 0;
}
