/* `schakel adapter status` (the outbox's depth, oldest unacknowledged
 * event, last ACK and last error; also GET /status), `schakel adapter
 * check` (maps an export with a profile and prints the events and the
 * rejects, sending nothing: for writing a profile), and `dead-letters` and
 * `requeue` (outbox_cli.c), which need only the configuration. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapter_impl.h"
#include "fileio.h"
#include "outbox_cli.h"

json_t *adapter_status_json(adapter_t *a)
{
    schakel_outbox_status_t s;
    if (schakel_outbox_status(a->outbox, &s) != 0) /* zeros, said in the log */
        schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=status_unreadable reason=\"outbox not readable\"");
    char last_ack[32] = "", last_err[32] = "", oldest[32] = "";
    if (s.last_ack_ms) schakel_time_format(s.last_ack_ms, last_ack);
    if (s.last_error_ms) schakel_time_format(s.last_error_ms, last_err);
    if (s.oldest_pending_ms) schakel_time_format(s.oldest_pending_ms, oldest);
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "org", a->conn.as_org, "outbox_depth",
                          (json_int_t)s.pending, "acked", (json_int_t)s.acked, "dead_letters",
                          (json_int_t)s.dead, "inbox_cursor", (json_int_t)s.inbox_cursor);
    json_object_set_new(o, "inbox_set_aside", json_integer((json_int_t)adapter_inbox_set_aside_count(a)));
    json_object_set_new(o, "oldest_unacknowledged", oldest[0] ? json_string(oldest) : json_null());
    if (s.oldest_pending_ms)
        json_object_set_new(o, "oldest_unacknowledged_seconds",
                            json_integer((schakel_wall_ms() - s.oldest_pending_ms) / 1000));
    json_object_set_new(o, "last_ack", last_ack[0] ? json_string(last_ack) : json_null());
    json_object_set_new(o, "last_error", s.last_error[0] ? json_string(s.last_error) : json_null());
    json_object_set_new(o, "last_error_at", last_err[0] ? json_string(last_err) : json_null());
    return o;
}

/* dead-letters and requeue (outbox_cli.c): they need only the state */
int adapter_cmd_outbox(int argc, char **argv)
{
    adapter_t a;
    memset(&a, 0, sizeof a);
    const char *config = NULL, *only = NULL;
    int all = 0, list = !strcmp(argv[1], "dead-letters");
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--config", "FILE", &config),
        SCHAKEL_FLAG_S("--id", "EVENT_ID (32 hex characters, from schakel adapter dead-letters)", &only),
        SCHAKEL_FLAG_B("--all", NULL, &all),
        SCHAKEL_FLAGS_END,
    };
    if (list) flags[1] = (schakel_flag_t)SCHAKEL_FLAGS_END; /* dead-letters: --config only */
    int rc = adapter_flags(argv[1], flags, argc, argv, 2);
    if (rc >= 0) return rc;
    rc = config ? adapter_configure(&a, config, 0)
                : schakel_fail(a.why, SCHAKEL_ECONFIG, "--config FILE is required (see --help)");
    schakel_profile_destroy(&a.profile);
    memset(a.region_key, 0, sizeof a.region_key);
    if (rc) fprintf(stderr, "schakel adapter %s: %s\n", argv[1], a.why);
    return rc ? 2 : schakel_outbox_cli(argv[1], a.state, only, all);
}

int adapter_cmd_status(int argc, char **argv)
{
    adapter_t a;
    memset(&a, 0, sizeof a);
    const char *config = NULL;
    schakel_flag_t flags[] = {SCHAKEL_FLAG_S("--config", "FILE", &config), SCHAKEL_FLAGS_END};
    int status = adapter_flags("status", flags, argc, argv, 2);
    if (status >= 0) return status;
    if (!config) {
        fprintf(stderr, "schakel adapter status: --config FILE is required\n");
        return 2;
    }
    if (adapter_configure(&a, config, 0) != 0) {
        fprintf(stderr, "schakel adapter status: %s\n", a.why);
        return 2;
    }
    a.outbox = schakel_outbox_open(a.state, 1, a.why);
    schakel_profile_destroy(&a.profile);
    if (!a.outbox) {
        fprintf(stderr, "schakel adapter status: %s\n", a.why);
        return 1;
    }
    json_t *st = adapter_status_json(&a);
    char *t = json_dumps(st, JSON_INDENT(2));
    printf("%s\n", t);
    free(t);
    json_decref(st);
    schakel_outbox_close(&a.outbox);
    return 0;
}

typedef struct {
    const schakel_profile_t *p;
    const char *org;
    const uint8_t *key;
    const char *file;
    size_t ok, bad;
} check_t;

static int check_row(void *arg, const schakel_row_t *row, size_t number)
{
    check_t *c = arg;
    uint8_t *buf, id[16];
    size_t len;
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_profile_map(c->p, c->org, c->key, row, &buf, &len, id, why) != 0) {
        json_t *r = json_pack("{s:s, s:I, s:s}", "file", c->file, "row", (json_int_t)number, "rejected", why);
        char *t = json_dumps(r, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
        json_decref(r);
        c->bad++;
        return 0;
    }
    schakel_envelope_t *e = schakel_envelope_decode(buf, len, NULL);
    json_t *j = schakel_json_from_envelope(e);
    char *t = json_dumps(j, JSON_COMPACT);
    printf("%s\n", t);
    free(t);
    json_decref(j);
    schakel_envelope_free(e);
    free(buf);
    c->ok++;
    return 0;
}

int adapter_cmd_check(int argc, char **argv)
{
    const char *profile = NULL, *org = "check-org", *keyfile = NULL;
    int files = 0, status = 0;
    uint8_t key[SCHAKEL_REGION_KEY_LEN];
    /* without a region key the pseudonyms are only for show: zeros will
     * do when there is no random source */
    memset(key, 0, sizeof key);
    SCHAKEL_DROP(schakel_random(key, sizeof key));
    schakel_profile_t *p = NULL;
    char why[SCHAKEL_ERRLEN] = "";
    const char **exports = calloc((size_t)argc, sizeof *exports); /* at most every argument */
    if (!exports) return 1;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--profile", "FILE", &profile),
        SCHAKEL_FLAG_S("--org", "ORG", &org),
        SCHAKEL_FLAG_S("--region-key", "FILE", &keyfile),
        SCHAKEL_FLAG_LIST("EXPORT", exports, (size_t)argc),
        SCHAKEL_FLAGS_END,
    };
    int rc = adapter_flags("check", flags, argc, argv, 2);
    if (rc >= 0) {
        free(exports);
        return rc;
    }
    if (!profile || !(p = schakel_profile_load(profile, why))) {
        fprintf(stderr, "schakel adapter check: %s\n",
                profile ? why : "--profile FILE is required (see --help)");
        free(exports);
        return 2;
    }
    if (keyfile && adapter_read_region_key(keyfile, key, why) != 0) {
        fprintf(stderr, "schakel adapter check: %s\n", why);
        schakel_profile_destroy(&p);
        free(exports);
        return 2;
    }
    for (int i = 0; i < flags[3].seen; i++) { /* flags[3]: the EXPORT list, seen its length */
        const char *file = exports[i];
        size_t len;
        char *text = schakel_file_read(file, FILE_MAX, &len);
        check_t c = {p, org, key, file, 0, 0};
        size_t l = strlen(file);
        rc = !text ? schakel_fail(why, SCHAKEL_EIO, "%s: %s", file, strerror(errno))
             : l > 4 && !strcasecmp(file + l - 4, ".csv") ? schakel_rows_csv(p, text, len, check_row, &c, why)
                                                          : schakel_rows_jsonl(text, len, check_row, &c, why);
        free(text);
        fprintf(stderr, "schakel adapter check: %s: %zu events, %zu rows rejected%s%s\n", file, c.ok, c.bad,
                rc ? ": " : "", rc ? why : "");
        if (rc || c.bad) status = 1;
        files++;
    }
    free(exports);
    schakel_profile_destroy(&p);
    memset(key, 0, sizeof key);
    if (!files) fprintf(stderr, "schakel adapter check: give one or more export files\n");
    return files ? status : 2;
}
