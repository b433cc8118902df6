/* What the files of validation share, and nobody else sees (validate.h is
 * the interface). The parts, in the order a published event meets them:
 *   validate_wire.c    one pass over the serialized bytes
 *                      (schakel_codec_check): unknown fields, fields given
 *                      twice, strings over their full length
 *   validate_fields.c  every field of the decoded envelope by its kind and
 *                      name (the walker), dates, BRINVEST codes
 *   validate.c         the envelope's own fields and the table of what each
 *                      event type requires (schakel_envelope_validate)
 *   validate_links.c   the rules that tie one field to another
 * Untrusted input: everything is bounded, and no reason repeats a value. */
#ifndef SCHAKEL_VALIDATE_IMPL_H
#define SCHAKEL_VALIDATE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "enums.h"
#include "codec.h"

/* What the by-name rules make of a field, computed once per field
 * descriptor (the broker validates every event; names are compared only
 * at start-up). */
enum {
    K_DATE = 1,
    K_ORG = 2,
    K_SCHOOL = 4,
    K_DISTRICT = 8,
    K_DOCUMENT = 16,
    K_ID = 32,
    K_POLICY = 64,
    K_CODE = 128,
    K_REF = 256,
    K_REF_TEXT = 512 /* schakel_ref_text_valid */
};

#define DEPTH_MAX 8

/* Where the walker is: the names of the message fields it went into. The
 * path is only written out when a field fails. */
typedef struct {
    char *why;
    const char *stack[DEPTH_MAX];
    int depth;
} walk_t;

/* The by-name kind of field f (K_*), from a table built once for every
 * field under the envelope (validate_fields.c). */
unsigned validate_field_kind(const ProtobufCFieldDescriptor *f);

/* Checks strict UTF-8: no overlong forms, no surrogates, nothing past
 * U+10FFFF, and no control characters unless allow_newlines (then \n, \r
 * and \t only). Returns 0 if valid. */
int validate_utf8(const uint8_t *s, size_t n, int allow_newlines);

/* Fails with the walker's path before field: "referral.to_org: ...".
 * Returns SCHAKEL_EINVAL. */
__attribute__((format(printf, 3, 4))) int validate_fail_at(walk_t *w, const char *field, const char *fmt,
                                                           ...);

/* Checks every field of m and of the messages in it by kind and name
 * (validate_fields.c). 0 or SCHAKEL_EINVAL. */
int validate_walk(walk_t *w, const ProtobufCMessage *m);

/* The rules that tie one field of env to another (validate_links.c). */
int validate_links(const schakel_envelope_t *env, char *why);

#endif
