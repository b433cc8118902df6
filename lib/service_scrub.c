/* After an erasure, no copy of the child's pseudonym is left in a
 * service's state file. The engines drop every entry about the child in
 * the transaction that reads the `erasure` event; LMDB, though, writes
 * changed pages elsewhere and keeps the old ones, with their bytes, in
 * its free list until reused, and a deleted entry's bytes stay in the
 * unused middle of the page it was on. Once that transaction is
 * committed, the live runner (service.c) calls service_state_scrub: when
 * no entry of any table still holds the pseudonym, every copy in the file
 * lies in a freed page or an unused gap, which LMDB never reads, and is
 * overwritten with zeros; the environment is opened again first, so that
 * no page buffer LMDB keeps in memory writes a copy back into a later
 * page. As the broker does for an erased data key (store_lmdb_keys.c).
 * The erasures' seqs wait under the runner's SCHAKEL_SERVICE_SCRUB_KEY,
 * written with the commit, until their copies are gone: the pseudonyms
 * are read back from the erasures on the log (service_scrub_pending),
 * right after the commit, and again on the next start if a stop came in
 * between or a try failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "logging.h"
#include "service_impl.h"

#define MAX_TABLES 32

typedef struct {
    char name[128];
    MDB_dbi dbi;
} table_t;

/* The named tables of the environment with their handles (all of them
 * open already: mdb_dbi_open answers the open handle), by handle. */
static int tables_of(MDB_txn *txn, table_t *t, size_t *n)
{
    MDB_dbi main;
    MDB_cursor *cur;
    *n = 0;
    if (mdb_dbi_open(txn, NULL, 0, &main) != 0 || mdb_cursor_open(txn, main, &cur) != 0)
        return SCHAKEL_ESTORE;
    MDB_val k, v;
    int rc = 0;
    for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        if (*n == MAX_TABLES || k.mv_size == 0 || k.mv_size >= sizeof t->name) {
            rc = SCHAKEL_ESTORE;
            break;
        }
        memcpy(t[*n].name, k.mv_data, k.mv_size);
        t[*n].name[k.mv_size] = 0;
        if (mdb_dbi_open(txn, t[*n].name, 0, &t[*n].dbi) != 0) rc = SCHAKEL_ESTORE;
        else (*n)++;
    }
    mdb_cursor_close(cur);
    for (size_t i = 1; i < *n; i++) /* by handle: opened again in that order */
        for (size_t j = i; j > 0 && t[j - 1].dbi > t[j].dbi; j--) {
            table_t x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return rc;
}

/* Marks in live[] the pseudonyms some entry of some table still holds. */
static void still_live(MDB_txn *txn, const table_t *t, size_t nt, const char (*subjects)[65], size_t n,
                       uint8_t *live)
{
    for (size_t i = 0; i < nt; i++) {
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, t[i].dbi, &cur) != 0) {
            memset(live, 1, n); /* cannot tell: touch nothing */
            return;
        }
        MDB_val k, v;
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT)
            for (size_t j = 0; j < n; j++)
                if (!live[j] && (memmem(k.mv_data, k.mv_size, subjects[j], 64) ||
                                 memmem(v.mv_data, v.mv_size, subjects[j], 64)))
                    live[j] = 1;
        mdb_cursor_close(cur);
    }
}

/* Closes the environment and opens it again, each table under the handle
 * it had (the engine and the runner keep theirs). */
static int reopen(state_t *s, const table_t *t, size_t nt, char *why)
{
    const char *p = NULL;
    char dir[SCHAKEL_PATH_MAX];
    unsigned flags = 0;
    MDB_envinfo info;
    if (mdb_env_get_path(s->env, &p) != 0 || !p || strlen(p) >= sizeof dir ||
        mdb_env_get_flags(s->env, &flags) != 0 || mdb_env_info(s->env, &info) != 0)
        return schakel_fail(why, SCHAKEL_ESTORE, "the state's directory is unknown");
    memcpy(dir, p, strlen(p) + 1);
    mdb_env_close(s->env);
    s->env = NULL;
    int rc = mdb_env_create(&s->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(s->env, 32);
    if (rc == 0) rc = mdb_env_set_mapsize(s->env, info.me_mapsize);
    if (rc == 0) rc = mdb_env_open(s->env, dir, flags | MDB_NOTLS, 0600);
    MDB_txn *txn = NULL;
    if (rc == 0) rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    for (size_t i = 0; rc == 0 && i < nt; i++) {
        MDB_dbi d;
        rc = mdb_dbi_open(txn, t[i].name, 0, &d);
        if (rc == 0 && d != t[i].dbi) rc = MDB_INCOMPATIBLE;
    }
    if (txn && rc == 0) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    return rc ? schakel_fail(why, SCHAKEL_ESTORE, "cannot open the state %s again: %s", dir, mdb_strerror(rc))
              : 0;
}

/* Overwrites every copy of the pseudonyms not marked live; their count. */
static int zero_copies(MDB_env *env, const char (*subjects)[65], size_t n, const uint8_t *live,
                       uint64_t *copies)
{
    enum { CHUNK = 1 << 20, LEN = 64 };
    static const uint8_t zeros[LEN];
    int fd = -1;
    struct stat sb;
    *copies = 0;
    if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &sb) != 0) return SCHAKEL_EIO;
    uint8_t *buf = malloc(CHUNK);
    if (!buf) return SCHAKEL_ENOMEM;
    int rc = 0;
    /* chunks overlap by LEN - 1 bytes: a copy across a boundary is found */
    for (off_t at = 0; rc == 0 && at < sb.st_size; at += CHUNK - (LEN - 1)) {
        ssize_t got = pread(fd, buf, CHUNK, at);
        if (got < 0) rc = SCHAKEL_EIO;
        if (got < LEN) break;
        for (size_t j = 0; j < n; j++) {
            if (live[j]) continue;
            for (const uint8_t *q = buf, *end = buf + got;
                 rc == 0 && (q = memmem(q, (size_t)(end - q), subjects[j], LEN)); q += LEN) {
                if (pwrite(fd, zeros, LEN, at + (q - buf)) != LEN) rc = SCHAKEL_EIO;
                else (*copies)++;
            }
        }
        if (got < CHUNK) break;
    }
    free(buf);
    if (rc == 0 && *copies && fdatasync(fd) != 0) rc = SCHAKEL_EIO;
    return rc;
}

int service_state_scrub(state_t *s, const char *name, const char (*subjects)[65], size_t n, char *why)
{
    if (!n) return 0;
    table_t t[MAX_TABLES];
    size_t nt = 0;
    uint8_t *live = calloc(n, 1);
    if (!live) return schakel_fail(why, SCHAKEL_ENOMEM, "%s: out of memory", name);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = tables_of(txn, t, &nt);
        if (rc == 0) still_live(txn, t, nt, subjects, n, live);
        mdb_txn_abort(txn);
    }
    if (rc) {
        free(live);
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot list the state's tables", name);
    }
    size_t kept = 0;
    for (size_t j = 0; j < n; j++) kept += live[j];
    uint64_t copies = 0;
    rc = kept == n ? 0 : reopen(s, t, nt, why);
    if (rc == 0 && kept < n) rc = zero_copies(s->env, subjects, n, live, &copies);
    free(live);
    if (rc && !why[0])
        rc = schakel_fail(why, rc, "%s: cannot overwrite the erased pseudonyms in its state", name);
    if (rc == 0)
        schakel_log(kept ? SCHAKEL_LOG_WARN : SCHAKEL_LOG_INFO, name,
                    "event=state_scrubbed subjects=%zu still_kept=%zu copies_overwritten=%llu", n, kept,
                    (unsigned long long)copies);
    return rc;
}

/* ---- scrubs still to do (SCHAKEL_SERVICE_SCRUB_KEY) ---- */

const char *service_erased_subject(const schakel_envelope_t *env)
{
    if (!env || env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE || !env->erasure ||
        strcmp(env->source_org, "broker") != 0 || !env->erasure->erased_subject ||
        strlen(env->erasure->erased_subject) != 64)
        return NULL;
    return env->erasure->erased_subject;
}

/* The seqs under the key in txn into a new array (*n = 0: none). */
static int pending_read(state_t *s, MDB_txn *txn, uint64_t **seqs, size_t *n)
{
    MDB_val v;
    *seqs = NULL;
    *n = 0;
    int rc = schakel_kv_get(txn, s->runner, SCHAKEL_SERVICE_SCRUB_KEY, strlen(SCHAKEL_SERVICE_SCRUB_KEY), &v);
    if (rc == SCHAKEL_ENOTFOUND || (rc == 0 && !v.mv_size)) return 0;
    if (rc || v.mv_size % 8) return SCHAKEL_ESTORE;
    *seqs = malloc(v.mv_size);
    if (!*seqs) return SCHAKEL_ENOMEM;
    memcpy(*seqs, v.mv_data, v.mv_size);
    *n = v.mv_size / 8;
    return 0;
}

static int pending_write(state_t *s, MDB_txn *txn, const uint64_t *seqs, size_t n)
{
    if (n)
        return schakel_kv_put(txn, s->runner, SCHAKEL_SERVICE_SCRUB_KEY, strlen(SCHAKEL_SERVICE_SCRUB_KEY),
                              seqs, n * 8);
    MDB_val k = {strlen(SCHAKEL_SERVICE_SCRUB_KEY), (void *)SCHAKEL_SERVICE_SCRUB_KEY};
    int rc = mdb_del(txn, s->runner, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc ? SCHAKEL_ESTORE : 0;
}

int service_scrub_note(state_t *s, MDB_txn *txn, const uint64_t *seqs, size_t n)
{
    uint64_t *had;
    size_t m;
    int rc = pending_read(s, txn, &had, &m);
    if (rc || !n) {
        free(had);
        return rc;
    }
    uint64_t *all = realloc(had, (m + n) * sizeof *all);
    if (!all) {
        free(had);
        return SCHAKEL_ENOMEM;
    }
    memcpy(all + m, seqs, n * sizeof *seqs);
    rc = pending_write(s, txn, all, m + n);
    free(all);
    return rc;
}

/* After service_state_scrub of every seq the key held succeeded: the key
 * goes. Only the runner's thread writes it, so it holds no other seq. */
static int scrub_forget(state_t *s)
{
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0) return SCHAKEL_ESTORE;
    int rc = pending_write(s, txn, NULL, 0);
    if (rc == 0) return mdb_txn_commit(txn) ? SCHAKEL_ESTORE : 0;
    mdb_txn_abort(txn);
    return rc;
}

int service_scrub_pending(state_t *s, schakel_logsrc_t *log, const char *name, int at_start, char *why)
{
    MDB_txn *txn;
    uint64_t *seqs = NULL;
    size_t n = 0, k = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot begin a transaction", name);
    int rc = pending_read(s, txn, &seqs, &n);
    mdb_txn_abort(txn);
    char(*subjects)[65] = n ? calloc(n, sizeof *subjects) : NULL;
    if (rc == 0 && n && !subjects) rc = SCHAKEL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        schakel_envelope_t *env = NULL;
        rc = schakel_log_event(log, seqs[i], &env, why);
        if (rc == SCHAKEL_ENOTFOUND) rc = 0; /* nothing there to name a child */
        const char *erased = rc == 0 ? service_erased_subject(env) : NULL;
        if (erased) memcpy(subjects[k++], erased, 65);
        schakel_envelope_free(env);
    }
    if (rc == 0 && n) {
        if (at_start) schakel_log(SCHAKEL_LOG_INFO, name, "event=scrub_resumed erasures=%zu", n);
        rc = service_state_scrub(s, name, (const char(*)[65])subjects, k, why);
    }
    if (rc == 0 && n) rc = scrub_forget(s);
    free(subjects);
    free(seqs);
    if (rc && !why[0]) rc = schakel_fail(why, rc, "%s: cannot finish the scrub of an erasure", name);
    return rc;
}
