/* The JSON form of every event, generic over protobuf-c descriptors: one
 * walker in each direction, so a new event type in the .proto files has a
 * JSON form without new code here. Conventions are documented in json.h. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "error.h"

/* ---- enums: lower-case names without the enum's common prefix ---- */

static size_t enum_prefix(const ProtobufCEnumDescriptor *ed)
{
    if (ed->n_values < 2) return 0;
    const char *first = ed->values[0].name;
    size_t p = strlen(first);
    for (unsigned i = 1; i < ed->n_values; i++) {
        const char *n = ed->values[i].name;
        size_t j = 0;
        while (j < p && n[j] == first[j]) j++;
        p = j;
    }
    while (p > 0 && first[p - 1] != '_') p--; /* whole words only */
    return p;
}

static void enum_short(const ProtobufCEnumDescriptor *ed, const char *name, char *out, size_t cap)
{
    const char *s = name + enum_prefix(ed);
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++) out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    out[i] = 0;
}

static const ProtobufCEnumValue *enum_by_short(const ProtobufCEnumDescriptor *ed, const char *s)
{
    char buf[128];
    for (unsigned i = 0; i < ed->n_values; i++) {
        enum_short(ed, ed->values[i].name, buf, sizeof buf);
        if (!strcmp(buf, s) || !strcmp(ed->values[i].name, s)) return &ed->values[i];
    }
    return NULL;
}

static int is_time_field(const ProtobufCFieldDescriptor *f)
{
    size_t n = strlen(f->name);
    return f->type == PROTOBUF_C_TYPE_INT64 &&
           (!strcmp(f->name, "at") || (n > 3 && !strcmp(f->name + n - 3, "_at")));
}

/* ---- time ---- */

void schakel_time_format(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(out, 32, "invalid");
        return;
    }
    /* fits: even the year of INT64_MAX ms has 9 digits */
    if (snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, frac) >= 32)
        snprintf(out, 32, "invalid");
}

/* Reads exactly n digits at *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c) return -1;
    (*p)++;
    return 0;
}

int schakel_time_parse(const char *text, int64_t *ms)
{
    const char *p = text;
    int Y, M, D, h, m, s, frac = 0;
    if (digits(&p, 4, &Y) || expect(&p, '-') || digits(&p, 2, &M) || expect(&p, '-') || digits(&p, 2, &D) ||
        (*p != 'T' && *p != 't' && *p != ' '))
        return SCHAKEL_EINVAL;
    p++;
    if (digits(&p, 2, &h) || expect(&p, ':') || digits(&p, 2, &m) || expect(&p, ':') || digits(&p, 2, &s))
        return SCHAKEL_EINVAL;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3) frac = frac * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0 || nd > 9) return SCHAKEL_EINVAL;
        for (; nd < 3; nd++) frac *= 10;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(&p, 2, &oh) || expect(&p, ':') || digits(&p, 2, &om) || oh > 23 || om > 59)
            return SCHAKEL_EINVAL;
        off = sign * (oh * 60 + om);
    } else {
        return SCHAKEL_EINVAL;
    }
    if (*p) return SCHAKEL_EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || (M == 2 && D == 29 && !leap) || h > 23 || m > 59 ||
        s > 60)
        return SCHAKEL_EINVAL;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac;
    return 0;
}

/* ---- message -> JSON ---- */

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)v);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)v);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (is_time_field(f)) {
            char t[32];
            schakel_time_format(*(const int64_t *)v, t);
            return json_string(t);
        }
        return json_integer((json_int_t) * (const int64_t *)v);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return json_integer((json_int_t) * (const uint64_t *)v);
    case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)v);
    case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)v);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)v);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, *(const int *)v);
        if (!ev) return json_integer(*(const int *)v);
        char buf[128];
        enum_short(ed, ev->name, buf, sizeof buf);
        return json_string(buf);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)v;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = v;
        char *hex = malloc(2 * b->len + 1);
        if (!hex) return NULL;
        schakel_hex_encode(b->data, b->len, hex);
        json_t *j = json_string(hex);
        free(hex);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)v;
        return m ? schakel_json_from_message(m) : json_object();
    }
    }
    return NULL;
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    default: return 4;
    }
}

static int is_default(const ProtobufCFieldDescriptor *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)v;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)v)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)v == NULL;
    default: {
        static const uint8_t zero[8];
        return memcmp(v, zero, elem_size(f->type)) == 0;
    }
    }
}

json_t *schakel_json_from_message(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *o = json_object();
    if (!o) return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const uint8_t *base = (const uint8_t *)msg;
        const void *v = base + f->offset;
        json_t *j = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            if (n == 0) continue;
            const uint8_t *arr = *(const uint8_t *const *)v;
            j = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(j, value_to_json(f, arr + k * elem_size(f->type)));
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
            j = value_to_json(f, v);
        } else {
            if (is_default(f, v)) continue;
            j = value_to_json(f, v);
        }
        if (!j) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, f->name, j);
    }
    return o;
}

/* ---- JSON -> message ---- */

static ProtobufCMessage *json_to_message_at(const ProtobufCMessageDescriptor *d, const json_t *obj,
                                            const char *prefix, char *why);

static int value_from_json(const ProtobufCFieldDescriptor *f, const json_t *j, void *out, const char *path,
                           char *why)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        int is_unsigned = f->type == PROTOBUF_C_TYPE_UINT32 || f->type == PROTOBUF_C_TYPE_FIXED32;
        if (!json_is_integer(j))
            return schakel_fail(why, SCHAKEL_EJSON, "%s: a whole number is needed", path);
        json_int_t v = json_integer_value(j);
        if (is_unsigned ? (v < 0 || v > 4294967295LL) : (v < -2147483648LL || v > 2147483647LL))
            return schakel_fail(why, SCHAKEL_EJSON, "%s: %lld is out of range", path, (long long)v);
        if (is_unsigned) *(uint32_t *)out = (uint32_t)v;
        else *(int32_t *)out = (int32_t)v;
        return 0;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (is_time_field(f) && json_is_string(j)) {
            if (schakel_time_parse(json_string_value(j), (int64_t *)out) != 0)
                return schakel_fail(why, SCHAKEL_EJSON,
                                    "%s: \"%.40s\" is not a time like 2026-11-20T09:30:00Z", path,
                                    json_string_value(j));
            return 0;
        }
        if (!json_is_integer(j))
            return schakel_fail(why, SCHAKEL_EJSON, "%s: %s is needed", path,
                                is_time_field(f) ? "an RFC 3339 time" : "a whole number");
        *(int64_t *)out = json_integer_value(j);
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (!json_is_integer(j) || json_integer_value(j) < 0)
            return schakel_fail(why, SCHAKEL_EJSON, "%s: a whole number >= 0 is needed", path);
        *(uint64_t *)out = (uint64_t)json_integer_value(j);
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (!json_is_number(j)) return schakel_fail(why, SCHAKEL_EJSON, "%s: a number is needed", path);
        *(float *)out = (float)json_number_value(j);
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!json_is_number(j)) return schakel_fail(why, SCHAKEL_EJSON, "%s: a number is needed", path);
        *(double *)out = json_number_value(j);
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(j)) return schakel_fail(why, SCHAKEL_EJSON, "%s: true or false is needed", path);
        *(protobuf_c_boolean *)out = json_is_true(j);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = json_is_string(j) ? enum_by_short(ed, json_string_value(j)) : NULL;
        if (!ev) {
            char list[200] = "", buf[64];
            size_t len = 0;
            for (unsigned i = 1; i < ed->n_values && len + 2 < sizeof list; i++) {
                enum_short(ed, ed->values[i].name, buf, sizeof buf);
                int w = snprintf(list + len, sizeof list - len, "%s%s", i > 1 ? ", " : "", buf);
                if (w > 0) len += (size_t)w;
            }
            return schakel_fail(why, SCHAKEL_EJSON, "%s: unknown value%s%.40s%s; one of %s", path,
                                json_is_string(j) ? " \"" : "", json_is_string(j) ? json_string_value(j) : "",
                                json_is_string(j) ? "\"" : "", list);
        }
        *(int *)out = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(j)) return schakel_fail(why, SCHAKEL_EJSON, "%s: a string is needed", path);
        char *s = strdup(json_string_value(j));
        if (!s) return SCHAKEL_ENOMEM;
        *(char **)out = s;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const char *s = json_string_value(j);
        size_t n = s ? strlen(s) : 1;
        if (!s || n % 2)
            return schakel_fail(why, SCHAKEL_EJSON, "%s: an even number of hex characters is needed", path);
        ProtobufCBinaryData *b = out;
        b->data = n ? malloc(n / 2) : NULL;
        if (n && !b->data) return SCHAKEL_ENOMEM;
        if (n && schakel_hex_decode(s, b->data, n / 2) != 0) {
            free(b->data);
            b->data = NULL;
            return schakel_fail(why, SCHAKEL_EJSON, "%s: not hex", path);
        }
        b->len = n / 2;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *m = NULL;
        char sub[SCHAKEL_ERRLEN];
        snprintf(sub, sizeof sub, "%s", path);
        m = json_to_message_at(f->descriptor, j, sub, why);
        if (!m) return SCHAKEL_EJSON;
        *(ProtobufCMessage **)out = m;
        return 0;
    }
    }
    return schakel_fail(why, SCHAKEL_EJSON, "%s: unsupported field type", path);
}

static ProtobufCMessage *json_to_message_at(const ProtobufCMessageDescriptor *d, const json_t *obj,
                                            const char *prefix, char *why)
{
    if (!json_is_object(obj)) {
        schakel_fail(why, SCHAKEL_EJSON, "%s: an object is needed", prefix[0] ? prefix : "event");
        return NULL;
    }
    ProtobufCMessage *msg = malloc(d->sizeof_message);
    if (!msg) return NULL;
    d->message_init(msg);
    uint8_t *base = (uint8_t *)msg;
    const char *key;
    json_t *v;
    char path[SCHAKEL_ERRLEN];
    json_object_foreach((json_t *)obj, key, v) {
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (!f) {
            schakel_fail(why, SCHAKEL_EJSON, "%s: unknown field (see docs/events.md)", path);
            goto fail;
        }
        void *out = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v)) {
                schakel_fail(why, SCHAKEL_EJSON, "%s: a list is needed", path);
                goto fail;
            }
            size_t n = json_array_size(v), es = elem_size(f->type);
            uint8_t *arr = calloc(n ? n : 1, es);
            if (!arr) goto fail;
            *(uint8_t **)out = arr;
            size_t *count = (size_t *)(base + f->quantifier_offset);
            for (size_t k = 0; k < n; k++) {
                char ip[SCHAKEL_ERRLEN];
                schakel_textf(ip, sizeof ip, "%s[%zu]", path, k); /* where, in messages: cut is fine */
                if (value_from_json(f, json_array_get(v, k), arr + k * es, ip, why) != 0) goto fail;
                *count = k + 1;
            }
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
            if (*which) {
                schakel_fail(why, SCHAKEL_EJSON, "%s: only one body per event", path);
                goto fail;
            }
            if (value_from_json(f, v, out, path, why) != 0) goto fail;
            *which = f->id;
            continue;
        }
        if (value_from_json(f, v, out, path, why) != 0) goto fail;
    }
    return msg;
fail:
    protobuf_c_message_free_unpacked(msg, NULL);
    return NULL;
}

ProtobufCMessage *schakel_json_to_message(const ProtobufCMessageDescriptor *desc, const json_t *obj,
                                          char *why)
{
    return json_to_message_at(desc, obj, "", why);
}

json_t *schakel_json_from_envelope(const schakel_envelope_t *env)
{
    return schakel_json_from_message(&env->base);
}

schakel_envelope_t *schakel_json_to_envelope(const json_t *obj, char *why)
{
    schakel_envelope_t *env =
        (schakel_envelope_t *)json_to_message_at(&schakel__v1__envelope__descriptor, obj, "", why);
    if (env && env->type == 0 && env->body_case != 0) env->type = (Schakel__V1__EventType)env->body_case;
    return env;
}

schakel_envelope_t *schakel_json_parse_envelope(const char *text, size_t len, char *why)
{
    json_error_t err;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        schakel_fail(why, SCHAKEL_EJSON, "not JSON: column %d: %s", err.column, err.text);
        return NULL;
    }
    schakel_envelope_t *env = schakel_json_to_envelope(o, why);
    json_decref(o);
    return env;
}
