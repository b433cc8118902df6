/* Wrong arguments to the real `schakel` command, each a usage error
 * (exit 2) that names what to fix, never a silent change of meaning: a
 * directory whose paths would be longer than the limit (once cut short
 * silently, naming another file), and an unknown flag or a flag without
 * its value to each adapter subcommand (once skipped, or taken for an
 * export file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "harness.h"

static char dir[64]; /* a temp directory for outputs */

/* Runs `schakel args...` (NULL-ended), standard output and error into
 * files; returns the exit status, and the two texts (caller frees). A
 * sanitizer report fails the test whatever the exit status. */
static int run(const char *const *args, char **out, char **err)
{
    int rc = harness_run_captured(dir, args, out, err);
    assert_true(rc >= 0);
    if (strstr(*err, "Sanitizer") || strstr(*err, "runtime error")) fail_msg("sanitizer report: %s", *err);
    return rc;
}

/* `schakel args...` exits 2, says want on standard error (and want2 when
 * not NULL), and prints nothing on standard output. */
static void usage_error(const char *const *args, const char *want, const char *want2)
{
    char *out, *err;
    int rc = run(args, &out, &err);
    if (rc != 2 || !strstr(err, want) || (want2 && !strstr(err, want2)) || out[0]) {
        char words[512] = "";
        size_t used = 0;
        for (size_t i = 0; args[i] && used < sizeof words; i++) /* a long directory shows as its start */
            used += (size_t)snprintf(words + used, sizeof words - used, " %.200s", args[i]);
        fail_msg("schakel%s: exit %d, stderr \"%.400s\", stdout \"%.80s\": want 2 and \"%s\"%s%s", words, rc,
                 err, out, want, want2 ? " and " : "", want2 ? want2 : "");
    }
    free(out);
    free(err);
}

/* A directory name longer than any path may be: "<dir>/aaaa.../aaaa...". */
static char *long_dir(void)
{
    size_t n = SCHAKEL_PATH_MAX + 200;
    char *p = malloc(n + 1);
    assert_non_null(p);
    int k = snprintf(p, n + 1, "%s/", dir);
    for (size_t i = (size_t)k; i < n; i++) p[i] = (i % 200 == 0) ? '/' : 'a';
    p[n] = 0;
    return p;
}

static void a_directory_too_long_is_refused_by_name(void **state)
{
    (void)state;
    char *d = long_dir();
    const char *verify[] = {"audit", "verify", "--data", d, NULL};
    usage_error(verify, "schakel audit verify: path too long: ", "at most 4095");
    const char *checkpoints[] = {"audit", "checkpoints", "--data", d, NULL};
    usage_error(checkpoints, "schakel audit checkpoints: path too long: ", "/log (");
    const char *loops[] = {"loops", "--node", d, NULL};
    usage_error(loops, "schakel loops: path too long: ", "/services/feedback (");
    const char *node[] = {"node", "--data", d, NULL};
    usage_error(node, "schakel node: path too long: ", "/keys/broker.key (");
    /* an adapter whose state directory is too long stops before it starts */
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%s/adapter.json", dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f, "{\"org\": \"school-34cd01\", \"state\": \"%s\"}\n", d + strlen(dir) + 1); /* relative */
    assert_int_equal(fclose(f), 0);
    const char *adapter[] = {"adapter", "--config", cfg, NULL};
    usage_error(adapter, "schakel adapter: state: path too long: ", "use a shorter directory");
    const char *status[] = {"adapter", "status", "--config", cfg, NULL};
    usage_error(status, "schakel adapter status: state: path too long: ", NULL);
    free(d);
}

/* An endpoint in node.json longer than the connection's buffer: once cut
 * short silently (another host or port), now refused, naming the key. */
static void an_endpoint_too_long_is_refused(void **state)
{
    (void)state;
    char node[128], file[160], json[600], ep[300];
    snprintf(node, sizeof node, "%s/node", dir);
    snprintf(file, sizeof file, "%s/node.json", node);
    assert_int_equal(mkdir(node, 0700), 0);
    memset(ep, 'x', sizeof ep - 1);
    ep[sizeof ep - 1] = 0;
    memcpy(ep, "tcp://", 6);
    snprintf(json, sizeof json, "{\"endpoint\":\"%s\",\"pub\":\"tcp://127.0.0.1:7401\",\"keys\":\"keys\"}",
             ep);
    assert_int_equal(schakel_file_write_atomic(file, json, strlen(json)), 0);
    const char *tail[] = {"tail", "--node", node, "--as", "school-a", NULL};
    usage_error(tail, "\"endpoint\" is 299 characters long; at most 255", NULL);
    const char *publish[] = {"publish", "--node", node, "--as", "school-a", NULL};
    usage_error(publish, "\"endpoint\" is 299 characters long; at most 255", NULL);
}

static void adapter_subcommands_name_a_wrong_flag(void **state)
{
    (void)state;
    const char *run_bogus[] = {"adapter", "run", "--config", "x.json", "--bogus", NULL};
    const char *bogus[] = {"adapter", "--bogus", NULL};
    const char *check_bogus[] = {"adapter", "check", "--bogus", "export.csv", NULL};
    const char *dead_bogus[] = {"adapter", "dead-letters", "--bogus", NULL};
    const char *dead_id[] = {"adapter", "dead-letters", "--id", "00", NULL}; /* requeue's, not its */
    const char *requeue_bogus[] = {"adapter", "requeue", "--al", NULL};
    const char *status_bogus[] = {"adapter", "status", "--bogus", NULL};
    usage_error(run_bogus, "schakel adapter: unexpected --bogus", NULL);
    usage_error(bogus, "schakel adapter: unexpected --bogus", NULL);
    usage_error(check_bogus, "schakel adapter check: unexpected --bogus", NULL);
    usage_error(dead_bogus, "schakel adapter dead-letters: unexpected --bogus", NULL);
    usage_error(dead_id, "schakel adapter dead-letters: unexpected --id", NULL);
    usage_error(requeue_bogus, "schakel adapter requeue: unexpected --al", NULL);
    usage_error(status_bogus, "schakel adapter status: unexpected --bogus", NULL);

    const char *run_missing[] = {"adapter", "run", "--config", NULL};
    const char *missing[] = {"adapter", "--once", "--config", NULL};
    const char *check_missing[] = {"adapter", "check", "export.csv", "--profile", NULL};
    const char *check_org[] = {"adapter", "check", "--profile", "p.json", "--org", NULL};
    const char *dead_missing[] = {"adapter", "dead-letters", "--config", NULL};
    const char *requeue_missing[] = {"adapter", "requeue", "--all", "--config", NULL};
    const char *requeue_id[] = {"adapter", "requeue", "--config", "x.json", "--id", NULL};
    usage_error(run_missing, "schakel adapter: --config needs a value: FILE", NULL);
    usage_error(missing, "schakel adapter: --config needs a value: FILE", NULL);
    usage_error(check_missing, "schakel adapter check: --profile needs a value: FILE", NULL);
    usage_error(check_org, "schakel adapter check: --org needs a value: ORG", NULL);
    usage_error(dead_missing, "schakel adapter dead-letters: --config needs a value: FILE", NULL);
    usage_error(requeue_missing, "schakel adapter requeue: --config needs a value: FILE", NULL);
    usage_error(requeue_id, "schakel adapter requeue: --id needs a value: EVENT_ID", NULL);

    /* and --help is still help, on standard output */
    const char *help[] = {"adapter", "run", "--help", NULL};
    char *out, *err;
    assert_int_equal(run(help, &out, &err), 0);
    assert_non_null(
        strstr(out, "schakel adapter check --profile FILE [--org ORG] [--region-key FILE] EXPORT..."));
    free(out);
    free(err);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/schakel-cli-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_directory_too_long_is_refused_by_name),
        cmocka_unit_test(adapter_subcommands_name_a_wrong_flag),
        cmocka_unit_test(an_endpoint_too_long_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
