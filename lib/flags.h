/* Command-line flags from a table: every command of `schakel`, the broker
 * and the service programs parse their arguments here, so that a flag
 * without its value, an unknown flag or a number that is not a whole
 * number in range is refused the same way everywhere, naming the flag and
 * what it wants. The parser never prints: the reason is in `why` and the
 * command says it (exit status 2 in every command). */
#ifndef SCHAKEL_FLAGS_H
#define SCHAKEL_FLAGS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SCHAKEL_FLAG_END = 0,  /* ends a table */
    SCHAKEL_FLAG_BOOL,     /* no value: sets *(int *)out to 1 */
    SCHAKEL_FLAG_STRING,   /* *(const char **)out = the value (argv is kept) */
    SCHAKEL_FLAG_BUF,      /* the value copied into char out[cap]; too long is an error */
    SCHAKEL_FLAG_UNSIGNED, /* *(uint64_t *)out, a decimal whole number in [min, max] */
    SCHAKEL_FLAG_SIGNED,   /* *(int64_t *)out, a decimal whole number in [min, max] */
    SCHAKEL_FLAG_ARG,      /* an argument that is not a flag: the first free one takes it */
    SCHAKEL_FLAG_ARGS      /* the arguments no ARG took, in order, into (const char **)out[cap];
                            * seen: how many (more than cap is an error) */
} schakel_flag_kind_t;

typedef struct {
    const char *name;  /* "--from"; for an ARG its name in messages, e.g. "EVENT_ID" */
    const char *alias; /* "-f", or NULL */
    schakel_flag_kind_t kind;
    void *out;
    size_t cap;        /* BUF: the size of out */
    int64_t min;       /* numbers: the smallest allowed (UNSIGNED: 0 or more) */
    uint64_t max;      /* numbers: the largest allowed (SIGNED: at most INT64_MAX) */
    const char *value; /* what a missing value should be, e.g. "DIR" (may be NULL) */
    int seen;          /* set by the parser when given (ARGS: how many) */
} schakel_flag_t;

#define SCHAKEL_FLAG_B(name, alias, out)                      \
    {                                                         \
        name, alias, SCHAKEL_FLAG_BOOL, out, 0, 0, 0, NULL, 0 \
    }
#define SCHAKEL_FLAG_S(name, value, out)                        \
    {                                                           \
        name, NULL, SCHAKEL_FLAG_STRING, out, 0, 0, 0, value, 0 \
    }
/* out must be an array (its sizeof is the capacity), not a pointer. */
#define SCHAKEL_FLAG_BUFFER(name, value, out)                          \
    {                                                                  \
        name, NULL, SCHAKEL_FLAG_BUF, out, sizeof(out), 0, 0, value, 0 \
    }
#define SCHAKEL_FLAG_U(name, out, min, max)                          \
    {                                                                \
        name, NULL, SCHAKEL_FLAG_UNSIGNED, out, 0, min, max, NULL, 0 \
    }
#define SCHAKEL_FLAG_I(name, out, min, max)                        \
    {                                                              \
        name, NULL, SCHAKEL_FLAG_SIGNED, out, 0, min, max, NULL, 0 \
    }
#define SCHAKEL_FLAG_A(name, out)                           \
    {                                                       \
        name, NULL, SCHAKEL_FLAG_ARG, out, 0, 0, 0, NULL, 0 \
    }
/* out: an array of const char *, cap its number of entries. */
#define SCHAKEL_FLAG_LIST(name, out, cap)                      \
    {                                                          \
        name, NULL, SCHAKEL_FLAG_ARGS, out, cap, 0, 0, NULL, 0 \
    }
#define SCHAKEL_FLAGS_END                                    \
    {                                                        \
        NULL, NULL, SCHAKEL_FLAG_END, NULL, 0, 0, 0, NULL, 0 \
    }

/* What schakel_flags_parse returns when --help or -h was given (before
 * any error): the command prints its usage and exits 0. */
#define SCHAKEL_FLAGS_HELP 1

/* Parses argv[first..argc-1] with the table t (ended by SCHAKEL_FLAGS_END),
 * left to right; a flag given twice keeps the last value. Returns 0,
 * SCHAKEL_FLAGS_HELP, or SCHAKEL_EINVAL with why (SCHAKEL_ERRLEN bytes)
 * naming the flag and what it wants. Outs of flags not given are left as
 * they were: set defaults before. */
int schakel_flags_parse(schakel_flag_t *t, int argc, char **argv, int first, char *why);

/* Whether the flag called name was given in the last parse of t. */
int schakel_flags_given(const schakel_flag_t *t, const char *name);

/* Reads s as a decimal whole number in [min, max] (no sign, no spaces, no
 * trailing characters). Returns 0 or SCHAKEL_EINVAL. */
int schakel_flags_unsigned(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int schakel_flags_signed(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
