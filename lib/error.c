/* One place for the messages people read when something goes wrong. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *schakel_strerror(int err)
{
    switch (err) {
    case SCHAKEL_OK: return "ok";
    case SCHAKEL_ENOMEM: return "out of memory: free memory or lower batch sizes";
    case SCHAKEL_EINVAL: return "invalid input: check the field named in the reason";
    case SCHAKEL_EIO: return "file could not be read or written: check the path, permissions and free disk";
    case SCHAKEL_ENOTFOUND: return "not found";
    case SCHAKEL_EEXIST: return "already exists: remove it first or choose another name";
    case SCHAKEL_ECRYPTO: return "cryptographic operation failed: check the key files";
    case SCHAKEL_EDECODE:
        return "message does not decode: the sender speaks another protocol version or sent garbage";
    case SCHAKEL_ETOOBIG: return "over the size limit: send smaller batches or events";
    case SCHAKEL_ESTORE: return "storage engine failed: check the data directory and the log";
    case SCHAKEL_EFULL:
        return "storage is full: retry later; the operator must free disk or raise the map limit";
    case SCHAKEL_ETIMEOUT:
        return "no answer in time: check that the broker runs and the endpoint and keys are right";
    case SCHAKEL_EAUTH: return "authentication failed: check the key file and the directory entry";
    case SCHAKEL_EJSON: return "JSON does not parse or does not fit the event schema: see docs/events.md";
    case SCHAKEL_ECORRUPT:
        return "stored data does not verify: the log was changed; keep the data directory for the auditor";
    case SCHAKEL_EPERM: return "not allowed for this organisation: check its directory entry";
    case SCHAKEL_EZMQ: return "ZeroMQ call failed: check the endpoint";
    case SCHAKEL_ECONFIG: return "configuration is missing or wrong: check the file named in the log";
    case SCHAKEL_EREJECTED: return "rejected by the broker: see the reason";
    default: return "unknown error";
    }
}

int schakel_fail(char *buf, int err, const char *fmt, ...)
{
    if (buf) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, SCHAKEL_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return err;
}

int schakel_textf(char *buf, size_t cap, const char *fmt, ...)
{
    if (!cap) return 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0) buf[0] = 0;
    return n < 0 || (size_t)n >= cap;
}
