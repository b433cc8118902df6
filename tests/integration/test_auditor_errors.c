/* The auditor's commands never answer "nothing" with exit status 0: an
 * event id that names nothing, a referral id given as an event id, the
 * broker down, a service or organisation name that names none. Each
 * exits non-zero with a message that says what to do. A whole real node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "harness.h"

static harness_t *H;

/* Runs `schakel args...` (NULL-ended); returns its exit status and its
 * standard error (caller frees). */
static int run(const char *const *args, char **err)
{
    char *out;
    int rc = harness_run_captured(H->dir, args, &out, err);
    assert_true(rc >= 0);
    free(out);
    return rc;
}

static void expect(const char *const *args, int status, const char *want)
{
    char *err;
    int rc = run(args, &err);
    if (rc != status || !strstr(err, want))
        fail_msg("%s %s: exit %d (want %d), stderr: %s", args[0], args[1], rc, status, err);
    free(err);
}

/* An id that names no event (as a referral id or a mistyped one would):
 * explain and loops say so and exit 1. */
static void unknown_ids_exit_1(void **state)
{
    (void)state;
    uint8_t id[16];
    harness_event_id(id);
    char hex[33];
    schakel_hex_encode(id, 16, hex);
    const char *explain[] = {"explain", "--node", H->data, hex, NULL};
    expect(explain, 1, "no event with id");
    const char *explain_json[] = {"explain", "--node", H->data, "--json", hex, NULL};
    expect(explain_json, 1, "a referral_id or case reference is no event id");
    const char *loops[] = {"loops", "--node", H->data, "--referral", hex, NULL};
    expect(loops, 1, "check the id");
}

static void names_that_name_nothing_exit_2(void **state)
{
    (void)state;
    const char *replay[] = {"audit", "replay", "--data", H->data, "--service", "routeing", NULL};
    expect(replay, 2, "--service routeing is no service; give one of: routing");
    const char *loops[] = {"loops", "--node", H->data, "--org", "no-such-org", NULL};
    expect(loops, 2, "--org no-such-org is not in the directory");
}

static void broker_down_exits_3(void **state)
{
    (void)state;
    assert_int_equal(harness_shutdown(H), 0);
    const char *explain[] = {"explain", "--node", H->data, "0123456789abcdef0123456789abcdef", NULL};
    expect(explain, 3, "does not answer");
}

static int setup(void **state)
{
    (void)state;
    H = harness_new_node();
    return harness_start(H);
}

static int teardown(void **state)
{
    (void)state;
    harness_destroy(&H);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_ids_exit_1),
        cmocka_unit_test(names_that_name_nothing_exit_2),
        cmocka_unit_test(broker_down_exits_3),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
