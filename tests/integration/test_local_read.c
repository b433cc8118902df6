/* The services of a node read the log straight from the broker's store
 * (lib/consumer.c: schakel_consumer_local_new), so:
 *  - a local reader never gets a record above the store's durable head
 *    (a deferred append not flushed yet), and gets it once it is flushed;
 *  - reads from other threads are safe while the writer appends, grows
 *    the map and erases a subject (run under ThreadSanitizer in CI), and
 *    no read that starts after an erasure decrypts the erased records;
 *  - a node's services, reading locally, publish exactly the decisions a
 *    standalone service reading over FETCH derives: the standalone one's
 *    are all duplicates of them (same ids, same bytes: a different byte
 *    would be refused and counted as an alarm), and audit replay agrees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit/store_fixture.h"
#include "consumer.h"
#include "scenario.h"
#include "service.h"
#include "store.h"

/* ---- the durable head ---- */

static void local_reader_stops_at_the_durable_head(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 1000000, 0, 0);
    assert_int_equal(store_fx_append_as(s, 0, 1, 10, 64, "aa", NULL), 0); /* durable */
    assert_int_equal(store_fx_append_as(s, 1, 11, 5, 64, "aa", NULL), 0); /* committed, not flushed */
    assert_int_equal(schakel_store_durable_seq(s), 10);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_consumer_t *c = schakel_consumer_local_new(s, "all", 1, 0, why);
    assert_non_null(c);
    const Schakel__V1__Delivered *d;
    uint64_t seen = 0;
    int rc;
    while ((rc = schakel_consumer_next(c, &d, 0, why)) == 0) {
        assert_int_equal(d->seq, seen + 1);
        assert_true(d->seq <= 10); /* never a record a power cut could take back */
        assert_int_equal(d->event.len, 64);
        assert_int_equal(d->event.data[0], (uint8_t)d->seq);
        seen = d->seq;
    }
    assert_int_equal(rc, SCHAKEL_ETIMEOUT);
    assert_int_equal(seen, 10);
    assert_int_equal(schakel_consumer_head(c), 10);
    /* the flush makes them durable, and they come */
    assert_int_equal(schakel_store_sync(s, why), 0);
    assert_int_equal(schakel_store_wait_durable(s, 10, 0), 15);
    while ((rc = schakel_consumer_next(c, &d, 100, why)) == 0) seen = d->seq;
    assert_int_equal(rc, SCHAKEL_ETIMEOUT);
    assert_int_equal(seen, 15);
    schakel_consumer_destroy(&c);
    schakel_store_close(&s);
}

/* ---- reads from other threads while the writer writes ---- */

enum { GROUPS = 120, PER_GROUP = 40, TOTAL = GROUPS * PER_GROUP, READERS = 3 };

typedef struct {
    schakel_store_t *s;
    atomic_int *stop;
    int bad;
    char what[SCHAKEL_ERRLEN + 16];
    uint64_t seen;
} reader_t;

static void *follow(void *arg)
{
    reader_t *r = arg;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_consumer_t *c = schakel_consumer_local_new(r->s, "all", 1, 0, why);
    if (!c) {
        r->bad = 1;
        return NULL;
    }
    while (r->seen < TOTAL && !atomic_load(r->stop)) {
        const Schakel__V1__Delivered *d;
        int rc = schakel_consumer_next(c, &d, 100, why);
        if (rc == SCHAKEL_ETIMEOUT) continue;
        if (rc) {
            snprintf(r->what, sizeof r->what, "next: %s", why);
            r->bad = 1;
            break;
        }
        /* in order, durable, and the bytes published (or none: erased) */
        if (d->seq != r->seen + 1 || d->seq > schakel_store_durable_seq(r->s) ||
            (d->event.len && (d->event.len != 64 || d->event.data[0] != (uint8_t)d->seq))) {
            snprintf(r->what, sizeof r->what, "record %llu after %llu", (unsigned long long)d->seq,
                     (unsigned long long)r->seen);
            r->bad = 1;
            break;
        }
        r->seen = d->seq;
    }
    schakel_consumer_destroy(&c);
    return NULL;
}

typedef struct {
    uint64_t seq;
    int found, plain;
} one_t;

static int one_cb(void *arg, const schakel_record_t *rec)
{
    one_t *o = arg;
    o->found = rec->seq == o->seq;
    o->plain = rec->event != NULL;
    return 1;
}

/* Reads one record back, as a service does for an old one. */
static int read_one(schakel_store_t *s, uint64_t seq, one_t *o)
{
    o->seq = seq;
    o->found = o->plain = 0;
    uint64_t next;
    return schakel_store_read(s, "all", seq, 1, 1, one_cb, o, &next);
}

static void *read_back(void *arg)
{
    reader_t *r = arg;
    unsigned x = 12345;
    while (!atomic_load(r->stop)) {
        uint64_t durable = schakel_store_durable_seq(r->s);
        if (!durable) continue;
        x = x * 1103515245u + 12345u;
        one_t o;
        if (read_one(r->s, 1 + x % durable, &o) < 0 || !o.found) {
            r->bad = 1;
            snprintf(r->what, sizeof r->what, "read back failed");
            break;
        }
        r->seen++;
    }
    return NULL;
}

static void reads_from_threads_while_the_writer_writes(void **state)
{
    fx_t *fx = *state;
    /* a small map: it grows several times under the readers */
    schakel_store_t *s = store_fx_open(fx, 500, (size_t)1 << 20, 0);
    atomic_int stop = 0;
    reader_t r[READERS + 1];
    pthread_t t[READERS + 1];
    for (int i = 0; i <= READERS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].s = s;
        r[i].stop = &stop;
        assert_int_equal(pthread_create(&t[i], NULL, i < READERS ? follow : read_back, &r[i]), 0);
    }
    char why[SCHAKEL_ERRLEN] = "";
    uint64_t erased_first = 0;
    for (unsigned g = 0; g < GROUPS; g++) {
        /* group 10 is about subject "ee", erased halfway while it is read */
        const char *subject = g == 10 ? "ee" : g % 2 ? "aa" : "bb";
        uint64_t first = 0;
        assert_int_equal(store_fx_append_as(s, 1, 1 + g * PER_GROUP, PER_GROUP, 64, subject, &first), 0);
        if (g == 10) erased_first = first;
        if (g % 3 == 2) assert_int_equal(schakel_store_sync(s, why), 0);
        if (g == GROUPS / 2) {
            assert_int_equal(schakel_store_erase_subject(s, "ee"), 0);
            /* no read after the erasure decrypts them, cache or not */
            for (uint64_t q = erased_first; q < erased_first + PER_GROUP; q++) {
                one_t o;
                assert_true(read_one(s, q, &o) >= 0);
                assert_true(o.found);
                assert_false(o.plain);
            }
        }
    }
    assert_int_equal(schakel_store_sync(s, why), 0);
    for (int i = 0; i < READERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (r[i].bad) fail_msg("reader %d: %s", i, r[i].what);
        assert_int_equal(r[i].seen, TOTAL);
    }
    atomic_store(&stop, 1);
    assert_int_equal(pthread_join(t[READERS], NULL), 0);
    if (r[READERS].bad) fail_msg("read back: %s", r[READERS].what);
    size_t map;
    uint64_t retries;
    schakel_lmdb_map_info(s, &map, &retries);
    assert_true(map > ((size_t)1 << 20)); /* it did grow under the readers */
    schakel_store_close(&s);
}

/* ---- a node: local reads give what FETCH gives ---- */

static uint64_t state_published(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t seq = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_maxdbs(env, 32);
    if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        MDB_val k = {strlen(SCHAKEL_SERVICE_PUBLISHED_KEY), (void *)SCHAKEL_SERVICE_PUBLISHED_KEY}, v;
        if (mdb_dbi_open(txn, "runner", 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
            memcpy(&seq, v.mv_data, 8);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return seq;
}

static void node_services_read_locally_as_fetch_would(void **state)
{
    (void)state;
    assert_int_equal(node_start(0, at("2026-11-02T09:00:00Z")), 0);
    /* a referral without consent, consent, a referral with it, a signal,
     * the clock past a deadline: decisions of every service */
    char child_a[65], child_b[65], cid[33];
    uint8_t id[16];
    child("local-read-a", child_a);
    child("local-read-b", child_b);
    referral("school-12ab00", child_a, "", "wijkteam", id);
    consent("school-12ab00", child_a, "parents", "under_12", "wijkteam", cid, id);
    referral("school-12ab00", child_a, "", "wijkteam", id);
    referral("school-12ab00", child_b, "", "smw", id);
    clock_to("2026-11-20T09:00:00Z");
    uint64_t head = harness_head(H);
    wait_services(head);
    assert_true(count_in_log("reads=local") >= 3);

    /* the same services in processes of their own, reading over FETCH
     * from the start into empty state: every decision they publish must be
     * a duplicate of one the node's services published */
    const char *names[] = {"routing", "consent", "feedback"};
    char dirs[3][600], log[600];
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/standalone-%s", H->dir, names[i]);
        snprintf(log, sizeof log, "%s/standalone.log", H->dir);
        const char *args[] = {names[i], "--node", H->data, "--state", dirs[i], NULL};
        pids[i] = harness_spawn(log, args);
        assert_true(pids[i] > 0);
    }
    for (int i = 0; i < 3; i++) {
        for (int w = 0; w < 600 && state_published(dirs[i]) < head; w++) usleep(50000);
        assert_true(state_published(dirs[i]) >= head);
    }
    for (int i = 0; i < 3; i++) {
        kill(pids[i], SIGTERM);
        int st;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        uint64_t alarms = 1;
        assert_int_equal(schakel_service_alarms(dirs[i], &alarms), 0);
        assert_int_equal(alarms, 0); /* a decision with other bytes is refused: an alarm */
    }
    assert_int_equal(harness_head(H), head); /* nothing new: all duplicates */
    assert_int_equal(harness_shutdown(H), 0);
    char text[8192];
    assert_int_equal(harness_replay(H, text, sizeof text), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(local_reader_stops_at_the_durable_head, store_fx_setup,
                                        store_fx_teardown),
        cmocka_unit_test_setup_teardown(reads_from_threads_while_the_writer_writes, store_fx_setup,
                                        store_fx_teardown),
        cmocka_unit_test_teardown(node_services_read_locally_as_fetch_would, node_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
