/* The live runner's transactional outbox: see service_outbox.h for the
 * table and why it makes the runner safe to pipeline. */
#include "service_outbox.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "fileio.h"
#include "logging.h"

#define PUBLISH_MAX 256 /* events per PUBLISH */
#define SEAL_OVERHEAD (SCHAKEL_AEAD_NONCE_LEN + SCHAKEL_AEAD_TAG_LEN)

/* One submitted batch: the outbox keys of its events, in order. Listed
 * in o->inflight until its ACK, so that a stop frees what never got one. */
typedef struct outbox_batch {
    struct outbox_batch *prev, *next;
    size_t n;
    uint64_t keys[];
} batch_t;

static void batch_unlink(outbox_t *o, batch_t *b)
{
    if (b->prev) b->prev->next = b->next;
    else o->inflight = b->next;
    if (b->next) b->next->prev = b->prev;
    b->prev = b->next = NULL;
}

/* A batch's final ACK (a copy: the client's is valid only in the call). */
struct outbox_acked {
    batch_t *batch;
    Schakel__V1__Ack *ack;
    outbox_acked_t *next;
};

int service_outbox_open(outbox_t *o, MDB_env *env, const char *dir, const char *name, char *why)
{
    memset(o, 0, sizeof *o);
    o->name = name;
    char path[SCHAKEL_PATH_MAX];
    int rc = schakel_path_join(path, sizeof path, dir, "outbox.key", why);
    if (rc == 0) rc = schakel_secret_file(path, o->key, sizeof o->key, 1, NULL, why);
    if (rc) return rc;
    MDB_txn *txn;
    if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot begin a transaction", dir);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    MDB_stat st;
    rc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &o->dbi);
    if (rc == 0) rc = mdb_stat(txn, o->dbi, &st);
    if (rc == 0) rc = mdb_cursor_open(txn, o->dbi, &cur);
    if (rc == 0) {
        o->pending = st.ms_entries;
        o->next = mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8
                      ? schakel_get_be64(k.mv_data) + 1
                      : 1;
        mdb_cursor_close(cur);
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    return rc ? schakel_fail(why, SCHAKEL_ESTORE, "%s: outbox: %s", dir, mdb_strerror(rc)) : 0;
}

static void acked_free(outbox_acked_t *a)
{
    while (a) {
        outbox_acked_t *next = a->next;
        free(a->batch);
        if (a->ack) schakel__v1__ack__free_unpacked(a->ack, NULL);
        free(a);
        a = next;
    }
}

void service_outbox_close(outbox_t *o)
{
    acked_free(o->acked);
    o->acked = NULL;
    while (o->inflight) { /* never ACKed: the next start sends them again */
        batch_t *b = o->inflight;
        o->inflight = b->next;
        free(b);
    }
    service_outbox_said(o, 0);
    free(o->said);
    o->said = NULL;
    free(o->marks);
    o->marks = NULL;
    o->n_marks = o->cap_marks = 0;
    o->cap_said = 0;
    memset(o->key, 0, sizeof o->key);
}

/* The client's callback: keeps a copy of the ACK until the next
 * transaction applies it. */
static void on_ack(void *arg, void *user, const Schakel__V1__Ack *ack)
{
    outbox_t *o = arg;
    batch_unlink(o, user);
    outbox_acked_t *a = calloc(1, sizeof *a);
    size_t len = schakel__v1__ack__get_packed_size(ack);
    uint8_t *buf = malloc(len ? len : 1);
    if (a && buf) {
        schakel__v1__ack__pack(ack, buf);
        a->ack = schakel__v1__ack__unpack(NULL, len, buf);
    }
    free(buf);
    if (!a || !a->ack) { /* the entries stay: the next start sends them again */
        o->broken = 1;
        free(a);
        free(user);
        return;
    }
    a->batch = user;
    outbox_acked_t **tail = &o->acked;
    while (*tail) tail = &(*tail)->next;
    *tail = a;
}

size_t service_outbox_poll(outbox_t *o, schakel_client_t *c, int timeout_ms)
{
    return schakel_client_poll(c, timeout_ms, on_ack, o);
}

int service_outbox_has_acks(const outbox_t *o)
{
    return o->acked != NULL;
}

/* Submits events under keys as batches of at most PUBLISH_MAX. */
static int submit(outbox_t *o, schakel_client_t *c, uint8_t *const *bufs, const size_t *lens,
                  const uint64_t *keys, size_t n, char *why)
{
    for (size_t at = 0; at < n;) {
        size_t k = n - at < PUBLISH_MAX ? n - at : PUBLISH_MAX;
        batch_t *b = malloc(sizeof *b + k * sizeof b->keys[0]);
        if (!b) return schakel_fail(why, SCHAKEL_ENOMEM, "%s: out of memory", o->name);
        b->n = k;
        memcpy(b->keys, keys + at, k * sizeof keys[0]);
        b->prev = NULL;
        b->next = o->inflight; /* listed first: submit may call on_ack */
        if (b->next) b->next->prev = b;
        o->inflight = b;
        int rc = schakel_client_submit(c, (const uint8_t *const *)bufs + at, lens + at, k, b, on_ack, o);
        if (rc) {
            batch_unlink(o, b);
            free(b);
            return schakel_fail(why, rc, "%s: cannot publish derived events: %s", o->name,
                                schakel_strerror(rc));
        }
        at += k;
    }
    return 0;
}

/* The alarm lines the engine raised about event i, '\n' between them. */
static size_t alarm_text(const schakel_emit_t *out, size_t i, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t j = 0; j < out->n_alarms; j++) {
        if (out->alarms[j].event != i) continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? "\n" : "", out->alarms[j].line);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
    return len;
}

/* The nonce of the group's i-th entry: the group's random base with i
 * added into its last eight bytes. One draw from the CSPRNG per group, not
 * per entry (RAND_bytes was two thirds of putting an entry, 15% of the
 * routing thread under load). An entry key is used again after a crash
 * before its commit, so a nonce must never follow from the key alone:
 * each group draws a fresh 96-bit base, and nonces of one group differ in
 * i. */
static void group_nonce(const uint8_t base[SCHAKEL_AEAD_NONCE_LEN], uint64_t i,
                        uint8_t out[SCHAKEL_AEAD_NONCE_LEN])
{
    memcpy(out, base, SCHAKEL_AEAD_NONCE_LEN);
    uint64_t low = schakel_get_be64(out + SCHAKEL_AEAD_NONCE_LEN - 8) + i;
    schakel_put_be64(out + SCHAKEL_AEAD_NONCE_LEN - 8, low);
}

static int put_one(outbox_t *o, MDB_txn *txn, uint64_t n, const uint8_t nonce[SCHAKEL_AEAD_NONCE_LEN],
                   const uint8_t *event, size_t len, const char *alarms, size_t alen)
{
    uint8_t key[8];
    schakel_put_be64(key, n);
    MDB_val k = {8, key}, v = {4 + alen + len + SEAL_OVERHEAD, NULL};
    int rc = mdb_put(txn, o->dbi, &k, &v, MDB_RESERVE);
    if (rc) return rc == MDB_MAP_FULL ? SCHAKEL_EFULL : SCHAKEL_ESTORE;
    uint8_t *p = v.mv_data;
    schakel_put_be32(p, (uint32_t)alen);
    memcpy(p + 4, alarms, alen);
    p += 4 + alen;
    memcpy(p, nonce, SCHAKEL_AEAD_NONCE_LEN);
    return schakel_aead_seal(o->key, p, key, 8, event, len, p + SCHAKEL_AEAD_NONCE_LEN) ? SCHAKEL_ECRYPTO : 0;
}

int service_outbox_put(outbox_t *o, MDB_txn *txn, schakel_client_t *c, const schakel_emit_t *out, char *why)
{
    if (!out->n) return 0;
    uint64_t *keys = malloc(out->n * sizeof *keys);
    if (!keys) return schakel_fail(why, SCHAKEL_ENOMEM, "%s: out of memory", o->name);
    char text[SERVICE_ALARM_LINE * 4];
    uint8_t base[SCHAKEL_AEAD_NONCE_LEN], nonce[SCHAKEL_AEAD_NONCE_LEN];
    int rc = schakel_random(base, sizeof base)
                 ? schakel_fail(why, SCHAKEL_ECRYPTO, "%s: no random bytes", o->name)
                 : 0;
    for (size_t i = 0; i < out->n && rc == 0; i++) {
        keys[i] = o->next + i;
        group_nonce(base, i, nonce);
        rc = put_one(o, txn, keys[i], nonce, out->bufs[i], out->lens[i], text,
                     alarm_text(out, i, text, sizeof text));
        if (rc) schakel_fail(why, rc, "%s: cannot keep derived events in the outbox", o->name);
    }
    if (rc == 0) rc = submit(o, c, out->bufs, out->lens, keys, out->n, why);
    if (rc == 0) {
        o->next += out->n;
        o->pending += out->n;
    }
    free(keys);
    return rc;
}

/* Opens entry n's value into its event (malloc'd) and its alarm lines. */
static uint8_t *entry_open(const outbox_t *o, const MDB_val *k, const MDB_val *v, size_t *len,
                           const char **alarms, size_t *alen)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size != 8 || v->mv_size < 4) return NULL;
    *alen = schakel_get_be32(p);
    if (v->mv_size < 4 + *alen + SEAL_OVERHEAD) return NULL;
    *alarms = (const char *)p + 4;
    p += 4 + *alen;
    size_t clen = v->mv_size - 4 - *alen;
    uint8_t *ev = malloc(clen - SEAL_OVERHEAD + 1);
    if (ev && schakel_aead_open(o->key, p, k->mv_data, 8, p + SCHAKEL_AEAD_NONCE_LEN,
                                clen - SCHAKEL_AEAD_NONCE_LEN, ev) != 0) {
        free(ev);
        return NULL;
    }
    *len = clen - SEAL_OVERHEAD;
    return ev;
}

int service_outbox_resend(outbox_t *o, MDB_env *env, schakel_client_t *c, char *why)
{
    if (!o->pending) return 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot read the outbox", o->name);
    if (mdb_cursor_open(txn, o->dbi, &cur) != 0) {
        mdb_txn_abort(txn);
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot read the outbox", o->name);
    }
    uint8_t *bufs[PUBLISH_MAX];
    size_t lens[PUBLISH_MAX], n = 0, sent = 0;
    uint64_t keys[PUBLISH_MAX];
    MDB_val k, v;
    int rc = 0;
    for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op) == 0; op = MDB_NEXT) {
        const char *alarms;
        size_t alen;
        bufs[n] = entry_open(o, &k, &v, &lens[n], &alarms, &alen);
        if (!bufs[n]) { /* not this key's: it stays, and says so each start */
            schakel_log(SCHAKEL_LOG_ERROR, o->name, "event=outbox_unreadable entry=%llu",
                        (unsigned long long)(k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0));
            continue;
        }
        keys[n++] = schakel_get_be64(k.mv_data);
        if (n == PUBLISH_MAX) {
            rc = submit(o, c, bufs, lens, keys, n, why);
            for (size_t i = 0; i < n; i++) free(bufs[i]);
            sent += n;
            n = 0;
        }
    }
    if (rc == 0 && n) rc = submit(o, c, bufs, lens, keys, n, why);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    sent += n;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc == 0) schakel_log(SCHAKEL_LOG_INFO, o->name, "event=outbox_resent events=%zu", sent);
    return rc;
}

static void say(outbox_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(outbox_t *o, const char *fmt, ...)
{
    if (o->n_said == o->cap_said) {
        size_t cap = o->cap_said ? o->cap_said * 2 : 16;
        char **s = realloc(o->said, cap * sizeof *s);
        if (!s) return; /* the count is kept; only the line is lost */
        o->said = s;
        o->cap_said = cap;
    }
    char line[SERVICE_ALARM_LINE + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->said[o->n_said] = strdup(line);
    if (o->said[o->n_said]) o->n_said++;
}

void service_outbox_said(outbox_t *o, int commit)
{
    for (size_t i = 0; i < o->n_said; i++) {
        if (commit) schakel_log(SCHAKEL_LOG_ERROR, o->name, "%s", o->said[i]);
        free(o->said[i]);
    }
    o->n_said = 0;
}

/* The engine's alarms about an event the broker stored for the first
 * time count now; about a duplicate (a state rebuilt from the log, or a
 * resend after a crash) they were counted, or not raised, before. */
static void engine_alarms(outbox_t *o, const char *lines, size_t len, uint64_t *alarms)
{
    while (len) {
        const char *nl = memchr(lines, '\n', len);
        size_t l = nl ? (size_t)(nl - lines) : len;
        say(o, "%.*s alarms=%llu", (int)l, lines, (unsigned long long)++*alarms);
        lines += l;
        len -= l;
        if (nl) lines++, len--;
    }
}

/* A final reject of a derived event is a bug in an engine or the
 * directory, or an attack: an alarm, logged with its reason, counted in
 * the durable alarm count, never retried for ever, never skipped
 * silently. */
static int apply_one(outbox_t *o, MDB_txn *txn, const outbox_acked_t *a, uint64_t *alarms, uint64_t *rejected)
{
    const Schakel__V1__Ack *ack = a->ack;
    if (ack->batch_code) {
        if (service_refused_add(txn, o->runner, (int)ack->batch_code, a->batch->n) != 0)
            return SCHAKEL_ESTORE;
        *rejected += a->batch->n;
        *alarms += a->batch->n;
        say(o,
            "event=derived_rejected alarm=derived_refused "
            "events=%zu code=%d reason=\"%s\" alarms=%llu",
            a->batch->n, (int)ack->batch_code, ack->batch_reason, (unsigned long long)*alarms);
    }
    for (size_t i = 0; i < a->batch->n; i++) {
        uint8_t key[8];
        schakel_put_be64(key, a->batch->keys[i]);
        MDB_val k = {8, key}, v;
        int rc = mdb_get(txn, o->dbi, &k, &v);
        if (rc == MDB_NOTFOUND) continue; /* ACKed twice (resent on start): removed before */
        if (rc) return SCHAKEL_ESTORE;
        const Schakel__V1__AckEntry *e = i < ack->n_entries ? ack->entries[i] : NULL;
        if (e && e->code) {
            char id[33] = "";
            if (e->event_id.len == 16) schakel_hex_encode(e->event_id.data, 16, id);
            if (service_refused_add(txn, o->runner, (int)e->code, 1) != 0) return SCHAKEL_ESTORE;
            (*rejected)++;
            (*alarms)++;
            say(o,
                "event=derived_rejected alarm=derived_refused id=%s "
                "code=%d reason=\"%s\" alarms=%llu",
                id, (int)e->code, e->reason, (unsigned long long)*alarms);
        }
        /* as before the outbox: only a duplicate keeps the engine's alarm
         * quiet (a refused event raised it, and its own alarm, once) */
        if (!(e && e->duplicate) && v.mv_size >= 4) {
            size_t alen = schakel_get_be32(v.mv_data);
            if (alen <= v.mv_size - 4) engine_alarms(o, (const char *)v.mv_data + 4, alen, alarms);
        }
        if (mdb_del(txn, o->dbi, &k, NULL) != 0) return SCHAKEL_ESTORE;
        o->pending--;
    }
    return 0;
}

int service_outbox_apply(outbox_t *o, MDB_txn *txn, uint64_t *alarms, uint64_t *rejected, char *why)
{
    int rc = 0;
    while (o->acked && rc == 0) {
        outbox_acked_t *a = o->acked;
        rc = apply_one(o, txn, a, alarms, rejected);
        o->acked = a->next;
        a->next = NULL;
        acked_free(a);
    }
    if (rc) return schakel_fail(why, rc, "%s: cannot remove ACKed events from the outbox", o->name);
    if (o->broken) return schakel_fail(why, SCHAKEL_ENOMEM, "%s: out of memory keeping an ACK", o->name);
    return 0;
}

int service_outbox_published(outbox_t *o, MDB_txn *txn, uint64_t cursor, uint64_t *published)
{
    uint64_t last = o->next - 1;
    if (o->n_marks && o->marks[o->n_marks - 1].last_key == last) {
        o->marks[o->n_marks - 1].cursor = cursor; /* nothing emitted since: one mark */
    } else {
        if (o->n_marks == o->cap_marks) {
            size_t cap = o->cap_marks ? o->cap_marks * 2 : 64;
            void *m = realloc(o->marks, cap * sizeof *o->marks);
            if (!m) return SCHAKEL_ENOMEM;
            o->marks = m;
            o->cap_marks = cap;
        }
        o->marks[o->n_marks].last_key = last;
        o->marks[o->n_marks++].cursor = cursor;
    }
    uint64_t lowest = o->next; /* the oldest entry not yet ACKed */
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(txn, o->dbi, &cur) == 0) {
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size == 8)
            lowest = schakel_get_be64(k.mv_data);
        mdb_cursor_close(cur);
    }
    size_t done = 0;
    while (done < o->n_marks && o->marks[done].last_key < lowest) *published = o->marks[done++].cursor;
    memmove(o->marks, o->marks + done, (o->n_marks - done) * sizeof *o->marks);
    o->n_marks -= done;
    return 0;
}
