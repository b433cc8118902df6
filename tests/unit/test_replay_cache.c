/* The replay's cache of records read back from behind the batches a
 * service holds (lib/service_replay_cache.c): what it gives for a seq is
 * what the log gives for it (bytes, id, organisation, type, time, erased
 * or not), on a real LMDB log in a temp directory; the services' decisions
 * and the clock's ticks are not kept, and a seq not kept is a miss (the
 * replay then reads the log). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "error.h"
#include "service_replay_impl.h"
#include "store_lmdb.h"
#include "store_fixture.h"

static int put_cb(void *arg, const schakel_record_t *r)
{
    replay_cache_put(arg, r);
    return 0;
}

typedef struct {
    const replay_cache_t *c;
    size_t n, erased;
} check_t;

/* Each record of the log against what the cache has for its seq. */
static int check_cb(void *arg, const schakel_record_t *r)
{
    check_t *k = arg;
    schakel_record_t got;
    assert_int_equal(replay_cache_get(k->c, r->seq, &got), 1);
    assert_int_equal(got.seq, r->seq);
    assert_int_equal(got.position, r->seq);
    assert_int_equal(got.recorded_at, r->recorded_at);
    assert_int_equal(got.type, r->type);
    assert_string_equal(got.source_org, r->source_org);
    assert_memory_equal(got.event_id, r->event_id, 16);
    if (!r->event) {
        assert_null(got.event);
        k->erased++;
    } else {
        assert_non_null(got.event);
        assert_int_equal(got.event_len, r->event_len);
        assert_memory_equal(got.event, r->event, r->event_len);
    }
    k->n++;
    return 0;
}

static void cache_gives_what_the_log_gives(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    assert_int_equal(store_fx_append_n(s, 1, 3, 100, "child-one", NULL), 0);
    assert_int_equal(store_fx_append_n(s, 100, 4, 300, "child-two", NULL), 0);
    assert_int_equal(schakel_store_erase_subject(s, "child-one"), 0);
    replay_cache_t *c = replay_cache_new();
    assert_non_null(c);
    uint64_t next;
    assert_int_equal(schakel_store_read(s, "all", 1, 100, 1 << 20, put_cb, c, &next), 0);
    check_t k = {c, 0, 0};
    assert_int_equal(schakel_store_read(s, "all", 1, 100, 1 << 20, check_cb, &k, &next), 0);
    assert_int_equal(k.n, 7);
    assert_int_equal(k.erased, 3);
    schakel_record_t got;
    assert_int_equal(replay_cache_get(c, 8, &got), 0); /* past the log */
    assert_int_equal(replay_cache_get(c, UINT64_MAX, &got), 0);
    replay_cache_free(c);
    schakel_store_close(&s);
}

static void decisions_and_ticks_are_not_kept(void **state)
{
    (void)state;
    replay_cache_t *c = replay_cache_new();
    assert_non_null(c);
    const int types[] = {SCHAKEL_EVENT(ROUTING_DECISION), SCHAKEL_EVENT(CONSENT_DECISION),
                         SCHAKEL_EVENT(CLOCK_TICK), SCHAKEL_EVENT(SIGNAL), SCHAKEL_EVENT(CONSENT_GIVEN)};
    const int kept[] = {0, 0, 0, 1, 1};
    uint8_t id[16] = {7}, bytes[3] = {1, 2, 3};
    for (size_t i = 0; i < 5; i++) {
        schakel_record_t r = {0};
        r.seq = r.position = 70000 + i; /* the second page of the index */
        r.recorded_at = 1795000000000LL;
        r.event = bytes;
        r.event_len = sizeof bytes;
        r.event_id = id;
        r.type = types[i];
        r.source_org = "svc-consent";
        replay_cache_put(c, &r);
    }
    for (size_t i = 0; i < 5; i++) {
        schakel_record_t got;
        assert_int_equal(replay_cache_get(c, 70000 + i, &got), kept[i]);
        if (kept[i]) assert_memory_equal(got.event, bytes, sizeof bytes);
    }
    schakel_record_t got;
    assert_int_equal(replay_cache_get(c, 1, &got), 0); /* a page never filled */
    replay_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cache_gives_what_the_log_gives, store_fx_setup, store_fx_teardown),
        cmocka_unit_test(decisions_and_ticks_are_not_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
