/* `schakel log copy` against a real three-node NATS JetStream cluster
 * (nats_cluster.h): an LMDB log copied onto a stream and back into a new
 * directory has the same head and head hash on all three (the source,
 * the stream, the copy back), as `schakel audit verify` says; a target
 * that is not empty is refused; and a broker on the source directory
 * with --log goes on appending on the copied stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "harness.h"
#include "nats_cluster.h"
#include "store_audit.h"

#define STREAM "SCHAKEL_COPY"

static nats_cluster_t *C;
static harness_t *H;

/* `schakel args...` in H's dir: its exit status, stdout into out (cap). */
static int run(const char *const *args, char *out, size_t cap, char *err, size_t ecap)
{
    char *o = NULL, *e = NULL;
    int rc = harness_run_captured(H->dir, args, &o, &e);
    snprintf(out, cap, "%s", o ? o : "");
    snprintf(err, ecap, "%s", e ? e : "");
    free(o);
    free(e);
    return rc;
}

/* The value of "key":"..." (or a number) in a JSON line, into v. */
static void field(const char *json, const char *key, char *v, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    assert_non_null(p);
    p += strlen(pat);
    if (*p == '"') p++;
    size_t n = strcspn(p, "\",}");
    assert_true(n < cap);
    memcpy(v, p, n);
    v[n] = 0;
}

static void verify(const char *data, char head[32], char hash[65])
{
    char out[4096], err[4096];
    const char *args[] = {"audit", "verify", "--data", data, NULL};
    int rc = run(args, out, sizeof out, err, sizeof err);
    if (rc) fprintf(stderr, "audit verify %s: %s%s", data, out, err);
    assert_int_equal(rc, 0);
    field(out, "head", head, 32);
    field(out, "head_hash", hash, 65);
}

static void a_log_copied_to_the_stream_and_back_keeps_its_head_hash(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_publish_signals(H, "school-a", 150, 0), 150);
    assert_int_equal(harness_publish_signals(H, "smw-b", 80, 1000), 80);
    assert_int_equal(harness_shutdown(H), 0);
    char head[32], hash[65];
    verify(H->data, head, hash);
    printf("log copy: the source log: head %s, hash %s\n", head, hash);
    assert_true(strtoull(head, NULL, 10) >= 230);

    char url[256], out[4096], err[4096], v[80];
    snprintf(url, sizeof url, "%s/copy", C->url);
    const char *there[] = {"log", "copy", "--from", H->data, "--to", url, NULL};
    int rc = run(there, out, sizeof out, err, sizeof err);
    if (rc) fprintf(stderr, "log copy there: %s%s", out, err);
    assert_int_equal(rc, 0);
    field(out, "head_hash", v, sizeof v);
    assert_string_equal(v, hash);
    field(out, "copied", v, sizeof v);
    assert_string_equal(v, head);
    /* the stream holds exactly the log's records, one message each */
    assert_int_equal(nats_cluster_stream_last(C, STREAM), strtoull(head, NULL, 10));

    /* a stream that holds records is not a target */
    rc = run(there, out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "already holds"));

    char back[512];
    snprintf(back, sizeof back, "%s/back", H->dir);
    const char *home[] = {"log", "copy", "--from", url, "--to", back, NULL};
    rc = run(home, out, sizeof out, err, sizeof err);
    if (rc) fprintf(stderr, "log copy back: %s%s", out, err);
    assert_int_equal(rc, 0);
    field(out, "head_hash", v, sizeof v);
    assert_string_equal(v, hash);
    /* the copy back verifies on its own: every record, the same head */
    char head2[32], hash2[65];
    verify(back, head2, hash2);
    printf("log copy: there and back: head %s, hash %s\n", head2, hash2);
    assert_string_equal(head2, head);
    assert_string_equal(hash2, hash);
    char log[600];
    snprintf(log, sizeof log, "%s/log", back);
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(log, NULL, NULL, &r), 0);
    assert_int_equal(r.records, strtoull(head, NULL, 10));

    /* a log that holds records is not a target either */
    rc = run(home, out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "already holds"));
    /* nor are two directories, or an address that does not parse */
    const char *two[] = {"log", "copy", "--from", H->data, "--to", back, NULL};
    assert_int_equal(run(two, out, sizeof out, err, sizeof err), 2);
    const char *bad[] = {"log", "copy", "--from", H->data, "--to", "nats://no port", NULL};
    assert_int_equal(run(bad, out, sizeof out, err, sizeof err), 2);

    /* the source directory becomes the stream's local index: a broker on
     * it with --log appends after the copied records */
    snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "--log");
    int n = snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "%s/copy", C->url);
    assert_true(n < (int)sizeof H->extra_args[0]);
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_publish_signals(H, "school-a", 5, 5000), 5);
    assert_int_equal(nats_cluster_stream_last(C, STREAM), strtoull(head, NULL, 10) + 5);
    assert_int_equal(harness_shutdown(H), 0);
}

static int setup(void **state)
{
    (void)state;
    C = nats_cluster_start();
    if (!C) return -1;
    H = harness_new();
    return H ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    harness_destroy(&H);
    nats_cluster_destroy(&C);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_log_copied_to_the_stream_and_back_keeps_its_head_hash, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
