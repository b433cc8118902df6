/* Storage full: a broker whose log may not grow past a small limit answers
 * "retry later" with a reason, stores nothing half, keeps serving reads and
 * pings, and the log still verifies. The limit is a real LMDB map limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "harness.h"
#include "wire.h"

/* A signed PUBLISH of n fresh signal events from school-a, sent raw so that
 * the test sees the broker's own answer (the client would retry it). */
static Schakel__V1__Ack *publish_raw(harness_t *h, void *s, size_t n)
{
    Schakel__V1__Publish p;
    harness_publish_new(h, "school-a", n, 1, &p);
    assert_int_equal(schakel_wire_send(s, NULL, "PUBLISH", 1, &p.base, 0), 0);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(s, 0, &m, 0), 0);
    assert_string_equal(m.name, "ACK");
    Schakel__V1__Ack *a = schakel__v1__ack__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    schakel_wire_close(&m);
    harness_publish_free(&p);
    return a;
}

static void full_log_says_retry_later(void **state)
{
    harness_t *h = *state = harness_new();
    snprintf(h->extra_args[h->n_extra++], 64, "--map-max");
    snprintf(h->extra_args[h->n_extra++], 64, "%d", 2 << 20);
    assert_int_equal(harness_start(h), 0);
    uint64_t base = harness_head(h); /* the broker's own records */

    schakel_keys_t k;
    harness_keys(h, "school-a", &k);
    void *s = zmq_socket(h->ctx, ZMQ_DEALER);
    int zero = 0, t = 10000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    assert_int_equal(schakel_wire_curve_client(s, &k, h->server_public), 0);
    zmq_connect(s, h->endpoint);

    uint64_t stored = 0;
    int full = 0;
    for (int round = 0; round < 200 && !full; round++) {
        Schakel__V1__Ack *a = publish_raw(h, s, 200);
        assert_non_null(a);
        assert_int_equal(a->n_entries, 200);
        size_t ok = 0, later = 0;
        for (size_t i = 0; i < a->n_entries; i++) {
            if (a->entries[i]->code == 0) ok++;
            if (a->entries[i]->code == SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER) {
                later++;
                assert_non_null(strstr(a->entries[i]->reason, "later"));
            }
        }
        assert_int_equal(ok + later, 200);
        assert_true(ok == 0 || later == 0); /* all of a group or none of it */
        stored += ok;
        full = later > 0;
        schakel__v1__ack__free_unpacked(a, NULL);
    }
    assert_true(full);
    assert_true(stored > 0);
    printf("full test: %llu events stored before the log was full\n", (unsigned long long)stored);

    /* still serving: ping and a read */
    schakel_consumer_t *c = harness_consumer(h, "svc-reader", "all", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    assert_int_equal(schakel_consumer_next(c, &r, 5000, why), 0);
    assert_int_equal(r->seq, 1);
    schakel_consumer_destroy(&c);
    zmq_close(s);

    assert_int_equal(harness_shutdown(h), 0);
    assert_int_equal(harness_head(h), base + stored);
}

static int teardown(void **state)
{
    harness_t *h = *state;
    harness_destroy(&h);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(full_log_says_retry_later, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
