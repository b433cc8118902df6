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
    const char *explain[] = {"explain", "--node", H->data, "--purpose", "test", hex, NULL};
    expect(explain, 1, "no event with id");
    const char *explain_json[] = {"explain", "--node", H->data, "--json", "--purpose", "test", hex, NULL};
    expect(explain_json, 1, "and no referral with that referral_id");
    const char *loops[] = {"loops", "--node", H->data, "--referral", hex, NULL};
    expect(loops, 1, "check the id");
}

/* The audit_access events on the log with request_code command: how many,
 * and the last one's stated purpose and subject (caller's buffers). */
static int looks(const char *command, char purpose[160], char subject[65])
{
    int n = 0;
    for (harness_reader_t rd = harness_read(H, H->reader, "all"); harness_next(&rd);) {
        if (rd.e->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS ||
            strcmp(rd.e->audit_access->request_code, command) != 0)
            continue;
        n++;
        snprintf(purpose, 160, "%s", rd.e->audit_access->stated_purpose);
        snprintf(subject, 65, "%s", rd.e->subject);
    }
    return n;
}

/* Every audit command puts its look on the log, with the purpose given;
 * those that name a child refuse to run without one. */
static void every_look_is_recorded(void **state)
{
    (void)state;
    char purpose[160], subject[65];
    uint8_t id[16];
    harness_event_id(id);
    char hex[33];
    schakel_hex_encode(id, 16, hex);
    const char *bare[] = {"explain", "--node", H->data, hex, NULL};
    expect(bare, 2, "give --purpose TEXT");
    const char *subj[] = {"audit",     "subject",
                          "--node",    H->data,
                          "--subject", "d46d6d4723da9cb9d99298aa26175ce1a80b76fa9c13b9a5d91a4d7f31748886",
                          NULL};
    expect(subj, 2, "give --purpose TEXT");
    char long_purpose[200];
    memset(long_purpose, 'x', sizeof long_purpose - 1);
    long_purpose[sizeof long_purpose - 1] = 0;
    const char *too_long[] = {"explain", "--node", H->data, "--purpose", long_purpose, hex, NULL};
    expect(too_long, 2, "--purpose: longer than 128 bytes");
    const char *named[] = {"explain", "--node", H->data, "--purpose", "mevrouw Jansen, dochter", hex, NULL};
    expect(named, 2, "--purpose: not a reference: 1 to 80 of letters, digits");
    assert_int_equal(looks("explain", purpose, subject), 0); /* refused: nothing was read */

    const char *explain[] = {"explain", "--node", H->data, "--purpose", "req 2027-7", hex, NULL};
    expect(explain, 1, "no event");
    assert_int_equal(looks("explain", purpose, subject), 1);
    assert_string_equal(purpose, "req 2027-7");

    const char *verify[] = {"audit", "verify", "--data", H->data, "--purpose", "yearly check", NULL};
    expect(verify, 0, "");
    assert_int_equal(looks("audit_verify", purpose, subject), 1);
    assert_string_equal(purpose, "yearly check");
    assert_string_equal(subject, "");
    const char *replay[] = {"audit", "replay", "--data", H->data, "--service", "routing", NULL};
    expect(replay, 0, "");
    assert_int_equal(looks("audit_replay", purpose, subject), 1);
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
    const char *explain[] = {
        "explain", "--node", H->data, "--purpose", "test", "0123456789abcdef0123456789abcdef", NULL};
    expect(explain, 3, "does not answer");
    const char *subject[] = {"audit",     "subject",
                             "--node",    H->data,
                             "--purpose", "test",
                             "--subject", "d46d6d4723da9cb9d99298aa26175ce1a80b76fa9c13b9a5d91a4d7f31748886",
                             NULL};
    expect(subject, 3, "does not answer");
    /* verify reads the files: it verifies, and says that the look is not on the log */
    const char *verify[] = {"audit", "verify", "--data", H->data, "--purpose", "test", NULL};
    expect(verify, 0, "this audit was NOT recorded on the log");
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
        cmocka_unit_test(every_look_is_recorded),
        cmocka_unit_test(unknown_ids_exit_1),
        cmocka_unit_test(names_that_name_nothing_exit_2),
        cmocka_unit_test(broker_down_exits_3),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
