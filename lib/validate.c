/* Validation of an envelope before anything is stored: the broker runs it
 * on every published event, clients run it before they sign. Three layers:
 * one pass over the serialized bytes (unknown fields, fields given twice,
 * strings over their full length: protobuf-c's char* ends at a NUL), a
 * walker over the protobuf-c descriptors that checks every field of
 * every message by its kind and name (UTF-8 and length of strings, known
 * enum values, 16-byte ids, dates, organisation ids), and a table of the
 * fields each event type needs. Untrusted input: everything is bounded,
 * and no reason repeats a value. */
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

#define STRING_MAX 128            /* codes and references, never free text */
#define DOCUMENT_MAX (SCHAKEL_MAX_DIRECTORY_BYTES - 1024) /* directory_update.document_json */
#define PATH_MAX_LEN 96

typedef Schakel__V1__EventType etype_t;
#define T(x) SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_##x

/* ---- field kinds known by name ---- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static int is_date_field(const char *name)
{
    return ends_with(name, "_on") || !strcmp(name, "on") || !strcmp(name, "since") ||
           !strcmp(name, "valid_from") || !strcmp(name, "valid_until") ||
           !strcmp(name, "period_from") || !strcmp(name, "period_to");
}

static int is_org_field(const char *name)
{
    return ends_with(name, "_org") || !strcmp(name, "org_id") || !strcmp(name, "redirected_to") ||
           !strcmp(name, "addressees") || !strcmp(name, "participant_orgs");
}

/* What the by-name rules make of a field, computed once per field
 * descriptor (the broker validates every event; names are compared only
 * at start-up). */
enum {
    K_DATE = 1, K_ORG = 2, K_SCHOOL = 4, K_DISTRICT = 8, K_DOCUMENT = 16, K_ID = 32, K_POLICY = 64
};

static unsigned kind_by_name(const ProtobufCFieldDescriptor *f)
{
    unsigned k = 0;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        if (is_date_field(f->name)) k |= K_DATE;
        if (is_org_field(f->name)) k |= K_ORG;
        if (!strcmp(f->name, "school")) k |= K_SCHOOL;
        if (!strcmp(f->name, "district") || !strcmp(f->name, "municipality")) k |= K_DISTRICT;
        if (!strcmp(f->name, "document_json")) k |= K_DOCUMENT;
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        if (ends_with(f->name, "_id")) k |= K_ID;
        if (!strcmp(f->name, "policy_version")) k |= K_POLICY;
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

static unsigned field_kind(const ProtobufCFieldDescriptor *f)
{
    pthread_once(&kinds_once, kinds_build);
    for (size_t h = kind_slot(f); kinds[h].f; h = (h + 1) % KIND_SLOTS)
        if (kinds[h].f == f) return kinds[h].kind;
    return kind_by_name(f); /* a message outside the envelope */
}

/* Checks strict UTF-8: no overlong forms, no surrogates, nothing past
 * U+10FFFF, and no control characters unless allow_newlines (then \n, \r
 * and \t only). Returns 0 if valid. */
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

static int utf8_check(const uint8_t *s, size_t n, int allow_newlines)
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

#define DEPTH_MAX 8

/* Where the walker is: the names of the message fields it went into. The
 * path is only written out when a field fails. */
typedef struct {
    char *why;
    const char *stack[DEPTH_MAX];
    int depth;
} walk_t;

__attribute__((format(printf, 3, 4))) static int fail_at(walk_t *w, const char *field,
                                                         const char *fmt, ...)
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

static int check_message(walk_t *w, const ProtobufCMessage *m);

static int check_string(walk_t *w, const ProtobufCFieldDescriptor *f, const char *s)
{
    if (!s) return 0;
    unsigned kind = field_kind(f);
    int document = (kind & K_DOCUMENT) != 0;
    size_t n = strnlen(s, DOCUMENT_MAX + 1);
    if (n > (document ? DOCUMENT_MAX : STRING_MAX))
        return fail_at(w, f->name, "longer than %d bytes: the bus carries codes and references, "
                                   "not text", document ? DOCUMENT_MAX : STRING_MAX);
    if (utf8_check((const uint8_t *)s, n, document) != 0)
        return fail_at(w, f->name, "not valid UTF-8, or holds control characters");
    if (!n) return 0;
    if ((kind & K_DATE) && !schakel_date_valid(s))
        return fail_at(w, f->name, "not a date: write YYYY-MM-DD");
    if ((kind & K_ORG) && !schakel_id_valid(s))
        return fail_at(w, f->name,
                       "not an organisation id: 1 to 63 of a-z 0-9 . _ / -");
    if ((kind & K_SCHOOL) && !schakel_brinvest_valid(s))
        return fail_at(w, f->name, "not a BRINVEST code such as 12AB00");
    if ((kind & K_DISTRICT) && !schakel_id_valid(s))
        return fail_at(w, f->name, "not a district code: a-z 0-9 . _ / -");
    return 0;
}

static int check_bytes(walk_t *w, const ProtobufCFieldDescriptor *f, const ProtobufCBinaryData *b)
{
    if (!b->len) return 0;
    unsigned kind = field_kind(f);
    if ((kind & K_ID) && b->len != SCHAKEL_EVENT_ID_LEN)
        return fail_at(w, f->name, "an id is 16 bytes (32 hex characters), not %zu", b->len);
    if ((kind & K_POLICY) && b->len != SCHAKEL_SHA256_LEN)
        return fail_at(w, f->name, "a policy version is a SHA-256 (32 bytes)");
    return 0;
}

static int check_enum(walk_t *w, const ProtobufCFieldDescriptor *f, int v)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (protobuf_c_enum_descriptor_get_value(ed, v)) return 0;
    return fail_at(w, f->name, "unknown value %d: see docs/events.md", v);
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
        if (w->depth == DEPTH_MAX) return fail_at(w, f->name, "nested too deep");
        w->stack[w->depth++] = f->name;
        int rc = check_message(w, sub);
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
        return fail_at(w, f->name, "a time from 1970 to the year 9999 is needed");
    return 0;
}

static int check_message(walk_t *w, const ProtobufCMessage *m)
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

/* ---- the wire walk ----
 *
 * protobuf-c hands strings over as NUL-terminated char*, so everything
 * after an embedded NUL is invisible to the walker above while the bytes
 * are stored and delivered as published. This pass reads the serialized
 * form itself, once, front to back: each field must be known to the
 * descriptor, arrive with its own wire type (or packed, for repeated
 * numbers), appear once unless repeated (a second copy of a field or of a
 * oneof member is hidden from every parser yet kept in the stored bytes),
 * and each string is checked over its full length. Reasons name field
 * numbers and names, never the content. */

/* A varint at *p (at most 10 bytes); -1 when it runs past end. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p == end) return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The wire type a field of this type has when not packed. */
static unsigned wire_type_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return 5;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 1;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: return 2;
    default: return 0; /* the varint types, bool and enum */
    }
}

/* Checks the packed values of a repeated number field: whole values only. */
static int packed_ok(unsigned wt, const uint8_t *p, const uint8_t *end)
{
    if (wt == 5) return (end - p) % 4 == 0;
    if (wt == 1) return (end - p) % 8 == 0;
    uint64_t v;
    while (p < end)
        if (read_varint(&p, end, &v) != 0) return 0;
    return 1;
}

#define SEEN_WORDS 4 /* singular fields tracked per message: 256 */
#define ONEOFS_MAX 4  /* oneofs tracked per message */

static int wire_message(walk_t *w, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        const uint8_t *end)
{
    uint64_t seen[SEEN_WORDS] = {0};
    const ProtobufCFieldDescriptor *oneofs[ONEOFS_MAX]; /* a member seen, per oneof */
    size_t n_oneofs = 0;
    while (p < end) {
        uint64_t key, len = 0;
        if (read_varint(&p, end, &key) != 0)
            return schakel_fail(w->why, SCHAKEL_EDECODE, "%s: a field key runs past the end",
                                d->name);
        uint64_t num = key >> 3;
        unsigned wt = (unsigned)(key & 7);
        const ProtobufCFieldDescriptor *f =
            num && num <= 536870911u ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
        if (num == 0 || num > 536870911u) /* no field can have this number */
            return schakel_fail(w->why, SCHAKEL_EDECODE, "%s: field number %llu is not valid",
                                d->name, (unsigned long long)num);
        if (!f)
            return schakel_fail(w->why, SCHAKEL_EINVAL, "unknown field %llu in %s: remove it",
                                (unsigned long long)num, d->name);
        const uint8_t *v = p;
        switch (wt) {
        case 0:
            if (read_varint(&p, end, &len) != 0) goto truncated;
            break;
        case 1:
        case 5:
            if ((size_t)(end - p) < (wt == 1 ? 8u : 4u)) goto truncated;
            p += wt == 1 ? 8 : 4;
            break;
        case 2:
            if (read_varint(&p, end, &len) != 0 || len > (uint64_t)(end - p)) goto truncated;
            v = p;
            p += len;
            break;
        default:
            return schakel_fail(w->why, SCHAKEL_EDECODE,
                                "field %u (%s) in %s: wire type %u is not used by schakel",
                                f->id, f->name, d->name, wt);
        }
        unsigned want = wire_type_of(f->type);
        int packed = f->label == PROTOBUF_C_LABEL_REPEATED && want != 2 && wt == 2;
        if (wt != want && !packed)
            return schakel_fail(w->why, SCHAKEL_EDECODE,
                                "field %u (%s) in %s: wire type %u where %u belongs", f->id,
                                f->name, d->name, wt, want);
        if (packed && !packed_ok(want, v, p))
            return schakel_fail(w->why, SCHAKEL_EDECODE,
                                "field %u (%s) in %s: packed values do not fit", f->id, f->name,
                                d->name);
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            size_t i = (size_t)(f - d->fields);
            if (i < 64 * SEEN_WORDS) {
                if (seen[i / 64] >> (i % 64) & 1)
                    return fail_at(w, f->name, "field %u in %s is given twice: give it once",
                                   f->id, d->name);
                seen[i / 64] |= 1ull << (i % 64);
            }
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                /* members of one oneof share the offset of its case */
                size_t k = 0;
                while (k < n_oneofs && oneofs[k]->quantifier_offset != f->quantifier_offset) k++;
                if (k < n_oneofs)
                    return fail_at(w, f->name, "%s and %s of %s are one choice: give one",
                                   oneofs[k]->name, f->name, d->name);
                if (n_oneofs < ONEOFS_MAX) oneofs[n_oneofs++] = f;
            }
        }
        /* the by-name kind is looked up only for a string that needs it */
        if (f->type == PROTOBUF_C_TYPE_STRING && utf8_check(v, (size_t)len, 0) != 0 &&
            (!(field_kind(f) & K_DOCUMENT) || utf8_check(v, (size_t)len, 1) != 0))
            return fail_at(w, f->name, "not valid UTF-8 over its %llu bytes, or holds a control "
                                       "character (a NUL too): codes and references only",
                           (unsigned long long)len);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (w->depth == DEPTH_MAX) return fail_at(w, f->name, "nested too deep");
            w->stack[w->depth++] = f->name;
            int rc = wire_message(w, f->descriptor, v, v + len);
            w->depth--;
            if (rc) return rc;
        }
        continue;
    truncated:
        return schakel_fail(w->why, SCHAKEL_EDECODE, "field %u (%s) in %s runs past the end",
                            f->id, f->name, d->name);
    }
    return 0;
}

int schakel_codec_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                        char *why)
{
    walk_t w = {.why = why};
    return wire_message(&w, d, buf, buf + len);
}

/* ---- what each event type needs ---- */

typedef struct {
    etype_t type;
    const char *fields; /* space-separated body fields that must be set */
    int subject;        /* 1: required, 0: optional, -1: forbidden */
} rule_t;

static const rule_t rules[] = {
    {T(SIGNAL), "concerns observed_on", 1},
    {T(CONSULTATION), "consulted_kind topics", -1},
    {T(CONSENT_GIVEN), "consent_id given_by age_band purposes valid_from", 1},
    {T(CONSENT_WITHDRAWN), "consent_id withdrawn_by effective_on", 1},
    {T(REFERRAL), "referral_id to_kind reasons", 1},
    {T(REFERRAL_RECEIVED), "referral_id received_on", 1},
    {T(INTAKE), "referral_id intake_on outcome", 1},
    {T(FIRST_CONTACT), "referral_id contact_on", 1},
    {T(CASE_LEAD), "lead_org since", 1},
    {T(MEETING), "meeting_id kind held_on", 0},
    {T(ACTION_ITEM), "meeting_id action_id owner_org action_code status", 0},
    {T(WAITING_LIST), "referral_id provider_ref status on", 1},
    {T(BRIDGING_CARE), "referral_id by_org started_on", 1},
    {T(MELDCODE_STEP), "step done_on", 1},
    {T(VEILIGTHUIS_REPORT), "report_id reported_on assessment", 1},
    {T(VEILIGTHUIS_FEEDBACK), "report_id outcome on", 1},
    {T(BESCHIKKING), "beschikking_id decision decided_on", 1},
    {T(TLV), "tlv_id tlv_type decision decided_on", 1},
    {T(EDUCATION_CARE_ARRANGEMENT), "arrangement_id arrangement_code funded_by start_on", 1},
    {T(ABSENCE), "kind period_from period_to", 1},
    {T(THUISZITTER_STATUS), "state since", 1},
    {T(FEEDBACK_STATUS), "referral_id state on", 1},
    {T(CLOSURE), "referral_id closed_on reason_code", 1},
    {T(FAMILY_INFORMED), "referral_id step informed_on how", 1},
    {T(HANDOVER), "handover_id to_org reason_code planned_on", 1},
    {T(HANDOVER_CONFIRMED), "handover_id side confirmed_on", 1},
    {T(MAZL_REQUEST), "request_id ground sick_reports period_from period_to", 1},
    {T(MAZL_ADVICE), "request_id advice given_on", 1},
    {T(ROUTING_DECISION), "about_event_id about_seq policy_version", 0},
    {T(CONSENT_DECISION), "about_event_id about_seq recipient_org outcome legal_basis rule_id "
                          "policy_version", 0},
    {T(LOOP_REMINDER), "referral_id level waiting_for due_on to_org", 0},
    {T(DIRECTORY_UPDATE), "version document_json", -1},
    {T(CLOCK_TICK), "at_ms", -1},
    {T(AUDIT_ACCESS), "auditor_ref request_code", 0},
};

#define N_RULES (sizeof rules / sizeof rules[0])
#define REQ_MAX 8

/* The descriptors of each rule's required fields, looked up once. */
static const ProtobufCFieldDescriptor *required[N_RULES][REQ_MAX];
static pthread_once_t required_once = PTHREAD_ONCE_INIT;

static void required_build(void)
{
    for (size_t i = 0; i < N_RULES; i++) {
        const ProtobufCFieldDescriptor *b = protobuf_c_message_descriptor_get_field(
            &schakel__v1__envelope__descriptor, (unsigned)rules[i].type);
        char list[160];
        snprintf(list, sizeof list, "%s", rules[i].fields);
        char *save = NULL;
        size_t n = 0;
        for (char *f = strtok_r(list, " ", &save); f && n < REQ_MAX; f = strtok_r(NULL, " ", &save)) {
            const ProtobufCFieldDescriptor *fd =
                protobuf_c_message_descriptor_get_field_by_name(b->descriptor, f);
            assert(fd); /* a name in the table that the .proto does not have */
            required[i][n++] = fd;
        }
    }
}

static const rule_t *rule_for(int type)
{
    for (size_t i = 0; i < N_RULES; i++)
        if ((int)rules[i].type == type) return &rules[i];
    return NULL;
}

/* Is field f of message m set to something other than its default? */
static int field_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    const void *p = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(const size_t *)(base + f->quantifier_offset) > 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: return *(char *const *)p && **(char *const *)p;
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)p != NULL;
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64: return *(const uint64_t *)p != 0;
    default: return *(const uint32_t *)p != 0;
    }
}

/* The grounds the meldcode gives for reporting to Veilig Thuis without
 * having told the parents first (step 3 may be left out): telling them
 * would put at risk the child's safety, someone else's, or the
 * reporter's own, or there is good reason to think the family would then
 * break off contact. Codes, as veiligthuis_report.not_informed_reason. */
static const char *const not_informed_reasons[] = {"safety_risk", "risk_to_others", "risk_to_reporter",
                                                   "contact_lost"};
#define NOT_INFORMED_LIST "safety_risk, risk_to_others, risk_to_reporter, contact_lost"

/* A report says whether the parents were told, and if not, on which
 * ground: the consent service records the duty to inform from it. */
static int check_report(const Schakel__V1__VeiligThuisReport *r, char *why)
{
    const char *reason = r->not_informed_reason;
    if (!reason[0] && r->parents_informed) return 0;
    if (!reason[0])
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "veiligthuis_report.not_informed_reason: parents_informed is false: give "
                            "not_informed_reason (one of " NOT_INFORMED_LIST ") or inform the parents "
                            "first");
    for (size_t i = 0; i < sizeof not_informed_reasons / sizeof not_informed_reasons[0]; i++)
        if (!strcmp(reason, not_informed_reasons[i])) return 0;
    return schakel_fail(why, SCHAKEL_EINVAL,
                        "veiligthuis_report.not_informed_reason: not a known code: give one of "
                        NOT_INFORMED_LIST " (docs/events.md), or inform the parents first");
}

/* Rules that tie one field to another. */
static int check_links(const schakel_envelope_t *env, char *why)
{
    switch ((int)env->type) {
    case T(VEILIGTHUIS_REPORT): return check_report(env->veiligthuis_report, why);
    case T(CONSENT_GIVEN): {
        const Schakel__V1__ConsentGiven *c = env->consent_given;
        if (!c->recipient_org[0] && !c->recipient_kind)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given: name the recipient_org or the recipient_kind");
        if (c->valid_until[0] && strcmp(c->valid_until, c->valid_from) < 0)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.valid_until: before valid_from");
        /* gezag (docs/routing.md, "Whose consent counts") */
        if (c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ONE_PARENT && !c->authority)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.authority: required with given_by one_parent: say "
                                "whether this parent holds parental authority (gezag) alone "
                                "(sole), with another holder (joint) or not at all (none)");
        if (c->youth_cannot_judge && (c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_PARENTS ||
                                      c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_GUARDIAN ||
                                      c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_ALONE ||
                                      c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ADULT_STUDENT))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.youth_cannot_judge: a youth who cannot judge does not "
                                "consent: given_by must be parents, one_parent or guardian");
        if (c->youth_cannot_judge && c->age_band != SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15 &&
            c->age_band != SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.youth_cannot_judge: only for a youth of 12 to 17 "
                                "(age_band 12_15 or 16_17)");
        if (c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_GUARDIAN &&
            c->age_band != SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.given_by: youth_with_guardian is for a youth of 12 to 15 "
                                "(age_band 12_15)");
        break;
    }
    case T(INTAKE):
        if (env->intake->outcome == SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_REDIRECTED &&
            !env->intake->redirected_to[0])
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "intake.redirected_to: required with outcome redirected");
        break;
    case T(MELDCODE_STEP):
        if (env->meldcode_step->step == SCHAKEL__V1__MELDCODE_STEP_KIND__MELDCODE_STEP_DECIDE &&
            !env->meldcode_step->decision)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "meldcode_step.decision: required with step decide");
        break;
    case T(ABSENCE): {
        const Schakel__V1__Absence *a = env->absence;
        if (strcmp(a->period_to, a->period_from) < 0)
            return schakel_fail(why, SCHAKEL_EINVAL, "absence.period_to: before period_from");
        /* DUO's kinds (docs/events.md); "unauthorised" stays readable in
         * old records only */
        if (a->kind == SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_UNAUTHORISED)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "absence.kind: \"unauthorised\" is no longer accepted: use DUO's kind "
                                "(statutory, long_term_relative, luxury, rmc, other) or absolute");
        if (a->leerplicht_report && (a->kind == SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_AUTHORISED ||
                                     a->kind == SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_SICKNESS))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "absence.leerplicht_report: authorised absence and sickness are not "
                                "reported to leerplicht; report a DUO kind or absolute");
        break;
    }
    case T(THUISZITTER_STATUS): {
        const Schakel__V1__ThuiszitterStatus *t = env->thuiszitter_status;
        if (t->reason >= SCHAKEL__V1__THUISZITTER_REASON__THUISZITTER_REASON_NO_SUITABLE_PLACE &&
            t->reason <= SCHAKEL__V1__THUISZITTER_REASON__THUISZITTER_REASON_EXEMPTED)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "thuiszitter_status.reason: an old code, no longer accepted: use one "
                                "of the nine monitor reasons (docs/events.md)%s",
                                t->reason == SCHAKEL__V1__THUISZITTER_REASON__THUISZITTER_REASON_EXEMPTED
                                    ? "; an exemption is \"exempted\": true" : "");
        if (t->exempted && t->reason)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "thuiszitter_status.reason: an exempted child (vrijstelling) has no "
                                "thuiszitter reason: leave it out");
        break;
    }
    case T(FAMILY_INFORMED): {
        const Schakel__V1__FamilyInformed *f = env->family_informed;
        if (f->step < SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED ||
            f->step > SCHAKEL__V1__LOOP_STATE__LOOP_STATE_CLOSED)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "family_informed.step: a step the receiver reached, received to closed "
                                "(docs/events.md)");
        /* how, never what: a short code, so that no content rides along */
        size_t n = strlen(f->how);
        if (n > 32 || strspn(f->how, "abcdefghijklmnopqrstuvwxyz_") != n)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "family_informed.how: a code of at most 32 characters a-z and _, e.g. "
                                "\"conversation\", \"letter\" (never what was said)");
        break;
    }
    case T(HANDOVER):
        if (!strcmp(env->handover->to_org, env->source_org))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "handover.to_org: a handover goes to another organisation, not the "
                                "publisher itself");
        break;
    case T(MAZL_REQUEST): {
        const Schakel__V1__MazlRequest *m = env->mazl_request;
        /* the school asks the jeugdarts only with the parents' knowledge */
        if (!m->parents_informed)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "mazl_request.parents_informed: must be true: tell the parents "
                                "before asking the jeugdarts");
        if (strcmp(m->period_to, m->period_from) < 0)
            return schakel_fail(why, SCHAKEL_EINVAL, "mazl_request.period_to: before period_from");
        break;
    }
    case T(CONSENT_DECISION): {
        const Schakel__V1__ConsentDecision *d = env->consent_decision;
        if (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY &&
            (!d->notice || !d->notice->concerned_org[0]))
            return schakel_fail(why, SCHAKEL_EINVAL, "consent_decision.notice: required with "
                                                     "outcome notice_only, naming concerned_org");
        if (d->legal_basis == SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT &&
            (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER ||
             d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY) &&
            !d->consent_id.len)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_decision.consent_id: a delivery on consent names it");
        break;
    }
    default: break;
    }
    return 0;
}

int schakel_envelope_validate(const schakel_envelope_t *env, char *why)
{
    if (env->event_id.len != SCHAKEL_EVENT_ID_LEN)
        return schakel_fail(why, SCHAKEL_EINVAL, "event_id: 16 bytes are needed, not %zu",
                            env->event_id.len);
    const char *name = schakel_event_type_name(env->type);
    const rule_t *rule = rule_for(env->type);
    if (!name || !rule)
        return schakel_fail(why, SCHAKEL_EINVAL, "type: unknown event type %d", env->type);
    const ProtobufCMessage *body = schakel_envelope_body(env);
    if ((int)env->body_case != (int)env->type || !body)
        return schakel_fail(why, SCHAKEL_EINVAL, "%s: the body for type %s is missing", name, name);
    if (!schakel_id_valid(env->source_org))
        return schakel_fail(why, SCHAKEL_EINVAL, "source_org: not a valid organisation id");
    if (env->occurred_at <= 0)
        return schakel_fail(why, SCHAKEL_EINVAL, "occurred_at: a time is needed");
    if (!env->purpose) return schakel_fail(why, SCHAKEL_EINVAL, "purpose: required");
    if (!env->legal_basis) return schakel_fail(why, SCHAKEL_EINVAL, "legal_basis: required");
    if (env->subject[0]) {
        int hex = strlen(env->subject) == 64;
        for (const char *p = env->subject; hex && *p; p++)
            hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
        if (!hex)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "subject: a pseudonym of 64 lower-case hex characters is needed "
                                "(never a BSN or a name)");
        if (rule->subject < 0)
            return schakel_fail(why, SCHAKEL_EINVAL, "subject: %s must not name a subject%s", name,
                                env->type == T(CONSULTATION) ? " (it is anonymous)" : "");
    } else if (rule->subject > 0) {
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "subject: %s is about a child: give the pseudonym", name);
    }
    /* Without a subject, a case reference or home district would let the
     * receiver identify the child after all. */
    if (rule->subject < 0 && (env->case_ref[0] || env->district[0]))
        return schakel_fail(why, SCHAKEL_EINVAL, "%s: %s must not carry case_ref or district",
                            env->case_ref[0] ? "case_ref" : "district", name);
    walk_t w = {.why = why};
    int rc = check_message(&w, &env->base);
    if (rc) return rc;

    pthread_once(&required_once, required_build);
    const ProtobufCFieldDescriptor *const *req = required[rule - rules];
    for (size_t i = 0; i < REQ_MAX && req[i]; i++)
        if (!field_set(body, req[i]))
            return schakel_fail(why, SCHAKEL_EINVAL, "%s.%s: required (docs/events.md)", name,
                                req[i]->name);
    return check_links(env, why);
}

int schakel_envelope_validate_bytes(const schakel_envelope_t *env, const uint8_t *buf, size_t len,
                                   char *why)
{
    int rc = schakel_codec_check(&schakel__v1__envelope__descriptor, buf, len, why);
    return rc ? rc : schakel_envelope_validate(env, why);
}

int schakel_envelope_subject_rule(int type)
{
    const rule_t *r = rule_for(type);
    return r ? r->subject : 0;
}

const char *schakel_envelope_required(int type)
{
    const rule_t *r = rule_for(type);
    return r ? r->fields : NULL;
}
