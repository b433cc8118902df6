/* The writer lease of a jetstream log (store_jetstream_lease.h): taken
 * with a create that succeeds only when the key is absent (never held, or
 * lapsed: the bucket drops an entry ttl after it was written), renewed
 * with an update that succeeds only at the revision this writer last
 * wrote. The writer's thread only. */
#include "store_jetstream_lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logging.h"

#define LEASE_KEY "writer"

struct js_lease {
    kvStore *kv;
    char bucket[80];
    char writer[65];
    int64_t ttl_ms;
    int held;          /* this writer wrote the bucket's current entry at rev */
    uint64_t rev;      /* of that entry */
    long long renewed; /* monotonic ms, taken before the write was sent */
    char holder[65];   /* the other writer last seen holding it (for the log, once) */
};

static long long lease_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char *nats_text(natsStatus s)
{
    const char *last = nats_GetLastError(NULL);
    const char *text = last && last[0] ? last : natsStatus_GetText(s);
    const char *where = text[0] == '(' ? strstr(text, "): ") : NULL; /* "(kv.c:512): " */
    return where ? where + 3 : text;
}

js_lease_t *js_lease_open(jsCtx *js, const char *stream, const char *writer, int64_t ttl_ms, int replicas,
                          char *why)
{
    js_lease_t *l = calloc(1, sizeof *l);
    if (!l) {
        schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(l->bucket, sizeof l->bucket, "%.60s_WRITER", stream);
    snprintf(l->writer, sizeof l->writer, "%.64s", writer);
    l->ttl_ms = ttl_ms;
    natsStatus s = js_KeyValue(&l->kv, js, l->bucket);
    kvStatus *st = NULL;
    if (s == NATS_OK && kvStore_Status(&st, l->kv) == NATS_OK) {
        /* the bucket's TTL is the lease's: set when the bucket was made */
        int64_t have = kvStatus_TTL(st) / 1000000;
        if (have != ttl_ms)
            schakel_log(SCHAKEL_LOG_WARN, "store", "event=lease_ttl bucket=%s ttl_ms=%lld asked_ms=%lld",
                        l->bucket, (long long)have, (long long)ttl_ms);
        if (have > 0) l->ttl_ms = have;
        kvStatus_Destroy(st);
    }
    if (s != NATS_OK) {
        kvConfig c;
        kvConfig_Init(&c);
        c.Bucket = l->bucket;
        c.History = 1;
        c.TTL = ttl_ms * 1000000; /* ns: an entry not renewed lapses, the lease is free */
        c.StorageType = js_FileStorage;
        c.Replicas = replicas;
        s = js_CreateKeyValue(&l->kv, js, &c);
    }
    if (s != NATS_OK) {
        schakel_fail(why, SCHAKEL_ECONFIG, "the writer lease (bucket %s): %s", l->bucket, nats_text(s));
        free(l);
        return NULL;
    }
    return l;
}

/* Takes the lease when it is free, or resumes it when the bucket names
 * this writer (this broker was restarted on its data directory). 0, or
 * SCHAKEL_ESTORE naming the holder. */
static int take(js_lease_t *l, long long now, char *why)
{
    uint64_t rev = 0;
    natsStatus s = kvStore_CreateString(&rev, l->kv, LEASE_KEY, l->writer);
    if (s != NATS_OK) {
        char err[160]; /* the create's own reason, when the key turns out absent */
        snprintf(err, sizeof err, "%.150s", nats_text(s));
        kvEntry *e = NULL;
        natsStatus g = kvStore_Get(&e, l->kv, LEASE_KEY);
        if (g == NATS_NOT_FOUND)
            return schakel_fail(why, SCHAKEL_ESTORE, "the writer lease (bucket %s) could not be taken: %s",
                                l->bucket, err);
        if (g != NATS_OK)
            return schakel_fail(why, SCHAKEL_ESTORE, "the writer lease (bucket %s) does not answer: %s",
                                l->bucket, nats_text(g));
        const char *v = kvEntry_ValueString(e);
        char holder[sizeof l->holder];
        snprintf(holder, sizeof holder, "%.64s", v ? v : "");
        uint64_t at = kvEntry_Revision(e);
        kvEntry_Destroy(e);
        if (strcmp(holder, l->writer) != 0) {
            if (strcmp(holder, l->holder) != 0)
                schakel_log(SCHAKEL_LOG_WARN, "store", "event=lease_standby bucket=%s holder=%s writer=%s",
                            l->bucket, holder, l->writer);
            memcpy(l->holder, holder, sizeof holder);
            return schakel_fail(why, SCHAKEL_ESTORE,
                                "this broker stands by: writer %s holds the lease (bucket %s); it takes "
                                "over when that lapses, %lld ms after its last renewal (docs/scale-out.md)",
                                holder, l->bucket, (long long)l->ttl_ms);
        }
        s = kvStore_UpdateString(&rev, l->kv, LEASE_KEY, l->writer, at);
        if (s != NATS_OK)
            return schakel_fail(why, SCHAKEL_ESTORE, "the writer lease (bucket %s) changed while resumed: %s",
                                l->bucket, nats_text(s));
    }
    l->held = 1;
    l->rev = rev;
    l->renewed = now;
    l->holder[0] = 0;
    schakel_log(SCHAKEL_LOG_INFO, "store",
                "event=lease_acquired bucket=%s writer=%s ttl_ms=%lld revision=%llu", l->bucket, l->writer,
                (long long)l->ttl_ms, (unsigned long long)rev);
    return 0;
}

int js_lease_hold(js_lease_t *l, char *why)
{
    long long now = lease_now();
    if (l->held && now - l->renewed < l->ttl_ms / 3) return 0;
    if (l->held) {
        uint64_t rev = 0;
        if (kvStore_UpdateString(&rev, l->kv, LEASE_KEY, l->writer, l->rev) == NATS_OK) {
            l->rev = rev;
            l->renewed = now;
            return 0;
        }
        l->held = 0; /* lapsed, or another writer took it */
        schakel_log(SCHAKEL_LOG_WARN, "store", "event=lease_lost bucket=%s writer=%s", l->bucket, l->writer);
    }
    return take(l, now, why);
}

void js_lease_doubt(js_lease_t *l)
{
    l->renewed = 0;
}

void js_lease_free(js_lease_t *l)
{
    if (!l) return;
    if (l->kv) kvStore_Destroy(l->kv);
    free(l);
}
