/* Error codes shared by every part of schakel. Functions return 0 on success
 * or one of these negative codes; schakel_strerror() gives the message for
 * people, which says what to do next. Functions that can say more about
 * what was wrong with an input also fill a char buffer of SCHAKEL_ERRLEN. */
#ifndef SCHAKEL_ERROR_H
#define SCHAKEL_ERROR_H

#include <stddef.h>

#define SCHAKEL_ERRLEN 256

/* On a function whose failure its caller must see: the compiler warns,
 * and so fails the build, when a call drops the result. Where dropping it
 * is right, write SCHAKEL_DROP(call); with a comment saying why (GCC warns
 * about a plain (void) cast of such a result). Results of other
 * libraries (zmq_*, mdb_*, close ...) are dropped with a (void) cast and
 * a comment. */
#define SCHAKEL_MUST_USE __attribute__((warn_unused_result))
#define SCHAKEL_DROP(call) ((void)!(call))

enum {
    SCHAKEL_OK = 0,
    SCHAKEL_ENOMEM = -1,    /* out of memory */
    SCHAKEL_EINVAL = -2,    /* an input or argument is not valid */
    SCHAKEL_EIO = -3,       /* a file could not be read or written */
    SCHAKEL_ENOTFOUND = -4, /* no such item */
    SCHAKEL_EEXIST = -5,    /* already exists */
    SCHAKEL_ECRYPTO = -6,   /* a cryptographic operation failed */
    SCHAKEL_EDECODE = -7,   /* bytes do not decode as the expected message */
    SCHAKEL_ETOOBIG = -8,   /* over a size limit */
    SCHAKEL_ESTORE = -9,    /* the storage engine failed */
    SCHAKEL_EFULL = -10,    /* storage full: retry later */
    SCHAKEL_ETIMEOUT = -11, /* no answer in time */
    SCHAKEL_EAUTH = -12,    /* authentication or signature failed */
    SCHAKEL_EJSON = -13,    /* JSON does not parse or does not fit */
    SCHAKEL_ECORRUPT = -14, /* stored data does not verify */
    SCHAKEL_EPERM = -15,    /* not allowed */
    SCHAKEL_EZMQ = -16,     /* a ZeroMQ call failed */
    SCHAKEL_ECONFIG = -17,  /* configuration is missing or wrong */
    SCHAKEL_EREJECTED = -18 /* the broker rejected the request */
};

/* Returns a static, human-readable message for an error code. Never NULL. */
const char *schakel_strerror(int err);

/* Writes a formatted reason into buf (SCHAKEL_ERRLEN bytes) if buf is not
 * NULL, and returns err, so that callers can write
 * `return schakel_fail(why, SCHAKEL_EINVAL, "field %s", name);`. */
int schakel_fail(char *buf, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes a text for people (a log line, a reason) into buf of cap bytes,
 * cut to fit when it is longer: there a shortened text is better than
 * none, unlike a path (fileio.h) or an id, which must never be cut.
 * Returns 1 when it was cut, else 0. */
int schakel_textf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
