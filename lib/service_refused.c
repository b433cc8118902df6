/* A service's refused decisions by reject code: the derived events the
 * broker refused for good (the service's dead letters: not on the log,
 * not retried), counted durably in the service's state (table "runner",
 * keys "refused/<code>") in the transaction that takes each out of the
 * outbox, and read back by the monitor (tools/monitor_collect.c). */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "service.h"
#include "service_impl.h"
#include "wire.h"

const char *schakel_reject_label(int code, char out[SCHAKEL_REJECT_LABEL])
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&schakel__v1__reject_code__descriptor, code);
    const char *n = v ? v->name : "REJECT_UNKNOWN";
    if (!strncmp(n, "REJECT_", 7)) n += 7;
    size_t i = 0;
    for (; n[i] && i + 1 < SCHAKEL_REJECT_LABEL; i++)
        out[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] - 'A' + 'a' : n[i]);
    out[i] = 0;
    return out;
}

/* "refused/<label>"; its length. */
static size_t refused_key(int code, char key[SCHAKEL_REJECT_LABEL + 16])
{
    char label[SCHAKEL_REJECT_LABEL];
    int n = snprintf(key, SCHAKEL_REJECT_LABEL + 16, "%s%s", SCHAKEL_SERVICE_REFUSED_PREFIX,
                     schakel_reject_label(code, label));
    return n > 0 ? (size_t)n : 0;
}

int service_refused_add(MDB_txn *txn, MDB_dbi runner, int code, uint64_t n)
{
    char key[SCHAKEL_REJECT_LABEL + 16];
    size_t klen = refused_key(code, key);
    MDB_val v;
    uint64_t count = 0;
    int rc = schakel_kv_get(txn, runner, key, klen, &v);
    if (rc == 0 && v.mv_size == sizeof count) memcpy(&count, v.mv_data, sizeof count);
    else if (rc != 0 && rc != SCHAKEL_ENOTFOUND) return rc;
    count += n;
    return schakel_kv_put(txn, runner, key, klen, &count, sizeof count);
}

int schakel_service_refused_each(MDB_txn *txn, MDB_dbi runner, schakel_refused_fn fn, void *arg)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, runner, &cur) != 0) return SCHAKEL_ESTORE;
    size_t plen = strlen(SCHAKEL_SERVICE_REFUSED_PREFIX);
    MDB_val k = {plen, (void *)SCHAKEL_SERVICE_REFUSED_PREFIX}, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= plen || memcmp(k.mv_data, SCHAKEL_SERVICE_REFUSED_PREFIX, plen) != 0) break;
        char code[SCHAKEL_REJECT_LABEL];
        size_t cl = k.mv_size - plen;
        uint64_t count;
        if (cl >= sizeof code || v.mv_size != sizeof count) continue; /* not one of ours */
        memcpy(code, (const char *)k.mv_data + plen, cl);
        code[cl] = 0;
        memcpy(&count, v.mv_data, sizeof count);
        fn(arg, code, count);
    }
    mdb_cursor_close(cur);
    return 0;
}
