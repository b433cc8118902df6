/* The services' rules on the log: the routing rules, the consent policy
 * and the feedback deadlines are files of the node (<rules_dir>/routing.json,
 * consent.json, feedback.json), and the services and `schakel audit
 * replay` take them from the log, so that a region's log replays the same
 * years after its files changed. Kept in step the way the directory is
 * (system.c): at start a file that differs from the last rules_update of
 * its set goes on the log, a file that is missing is written back from
 * the log (or, on a log with none, gets the default); while running, a
 * changed file goes on the log. A file that does not parse is refused
 * (at start the broker does not start; later the rules in force stay).
 * Organisations never publish a rules_update (check.c): only the broker,
 * under its own key, as an event of its own (broker_append_own). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker_impl.h"
#include "bytes.h"
#include "fileio.h"
#include "runner.h"

#define RULES_MAX (SCHAKEL_MAX_DIRECTORY_BYTES - 1024) /* what a document_json may hold */

/* The services' sets, then the broker's own retention rules
 * (DATA/retention.json, read and checked by retention.c). */
#define RETENTION_SET BROKER_RULE_SETS
static const struct {
    const char *name; /* the service's, and <name>.json */
    Schakel__V1__RuleSet set;
} sets[BROKER_RULE_SETS + 1] = {
    {"routing", SCHAKEL__V1__RULE_SET__RULE_SET_ROUTING},
    {"consent", SCHAKEL__V1__RULE_SET__RULE_SET_CONSENT},
    {"feedback", SCHAKEL__V1__RULE_SET__RULE_SET_FEEDBACK},
    {"retention", SCHAKEL__V1__RULE_SET__RULE_SET_RETENTION},
};

/* The broker's cursor naming the last rules_update of set i. */
static void cursor_name(size_t i, char *out, size_t cap)
{
    snprintf(out, cap, "broker/rules/%s", sets[i].name);
}

/* The last rules_update of set i on the log: its seq (0: none), and its
 * envelope in *env (caller frees) when there is one. */
static uint64_t rules_on_log(schakel_broker_t *b, size_t i, schakel_envelope_t **env)
{
    char name[64];
    uint64_t seq = 0;
    *env = NULL;
    cursor_name(i, name, sizeof name);
    int rc = schakel_store_cursor_get(b->store, name, &seq);
    if (rc) /* as if none: the file's rules go on the log again */
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=rules_cursor_unreadable set=%s reason=\"%s\"",
                    sets[i].name, schakel_strerror(rc));
    if (rc || !seq) return 0;
    *env = broker_own_at(b, seq, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE);
    if (*env && (int)(*env)->rules_update->set != (int)sets[i].set) {
        schakel_envelope_free(*env);
        *env = NULL;
    }
    return *env ? seq : 0;
}

/* Puts text, the rules of set i, on the log after the one at prev. The id
 * is derived from both: going back to earlier rules is a new event, and
 * a repeat after a crash before the cursor moved is a duplicate. */
static int rules_to_log(schakel_broker_t *b, size_t i, const char *text, size_t len, uint64_t prev)
{
    char label[64], name[64];
    snprintf(label, sizeof label, "schakel/v1/rules/%s/%llu", sets[i].name, (unsigned long long)prev);
    schakel_envelope_t env;
    Schakel__V1__RulesUpdate u = SCHAKEL__V1__RULES_UPDATE__INIT;
    uint8_t id[16], version[SCHAKEL_SHA256_LEN];
    broker_own_envelope(&env, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE, label, text, len, id);
    schakel_sha256(text, len, version);
    u.set = sets[i].set;
    u.version.data = version;
    u.version.len = sizeof version;
    u.document_json = (char *)text;
    env.rules_update = &u;
    uint64_t seq = 0;
    int rc = broker_append_own(b, &env, &seq);
    if (rc) return rc;
    cursor_name(i, name, sizeof name);
    rc = schakel_store_cursor_set(b->store, name, seq);
    if (rc) /* the next start puts the same rules on the log again: a duplicate */
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=rules_cursor_not_set set=%s seq=%llu reason=\"%s\"",
                    sets[i].name, (unsigned long long)seq, schakel_strerror(rc));
    char hex[17];
    schakel_hex_encode(version, 8, hex);
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=rules_logged set=%s seq=%llu version=%s", sets[i].name,
                (unsigned long long)seq, hex);
    return 0;
}

/* The rule file of set i, its path in path: its text (caller frees), or
 * NULL with errno (EFBIG: too large or holds a NUL; why set when the path
 * does not fit). */
static char *rules_read(schakel_broker_t *b, size_t i, char *path, size_t *len, char *why)
{
    if (schakel_path_fmt(path, SCHAKEL_PATH_MAX, why, "%s/%s.json", b->rules_dir, sets[i].name) != 0) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    char *text = schakel_file_read(path, RULES_MAX + 1, len);
    if (text && (*len > RULES_MAX || strlen(text) != *len)) {
        free(text);
        errno = EFBIG;
        return NULL;
    }
    return text;
}

/* Does the file's text differ from the rules on the log (env: none)? */
static int differs(const schakel_envelope_t *env, const char *text, size_t len)
{
    if (!env) return 1;
    uint8_t h[SCHAKEL_SHA256_LEN];
    schakel_sha256(text, len, h);
    return env->rules_update->version.len != sizeof h || memcmp(env->rules_update->version.data, h, sizeof h);
}

static void note_mtime(schakel_broker_t *b, size_t i, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) b->rules_mtime[i] = st.st_mtim;
}

/* Set i at start. */
static int sync_one(schakel_broker_t *b, size_t i, char *why)
{
    char path[SCHAKEL_PATH_MAX], inner[SCHAKEL_ERRLEN] = "";
    size_t len = 0;
    schakel_envelope_t *env = NULL;
    uint64_t prev = rules_on_log(b, i, &env);
    char *text = rules_read(b, i, path, &len, inner);
    int rc = 0;
    if (!text && errno == ENOENT) {
        /* the log's rules, else the default: written to the file, so that
         * the operator edits what is in force */
        const char *doc = env ? env->rules_update->document_json : schakel_svc_default_rules(sets[i].name);
        if (schakel_file_write_atomic(path, doc, strlen(doc)) != 0)
            rc = schakel_fail(why, SCHAKEL_EIO, "cannot write %s: %s", path, strerror(errno));
        else if (!env) rc = rules_to_log(b, i, doc, strlen(doc), prev);
        if (rc == 0)
            schakel_log(SCHAKEL_LOG_INFO, "broker", "event=rules_file_written set=%s from=%s", sets[i].name,
                        env ? "log" : "default");
    } else if (!text) {
        rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s", path,
                          inner[0]         ? inner
                          : errno == EFBIG ? "larger than 1047552 bytes, or holds a NUL"
                                           : strerror(errno));
    } else if (schakel_svc_rules_check(sets[i].name, text, len, inner) != 0) {
        rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s (fix the file; nothing was put on the log)", path,
                          inner);
    } else if (differs(env, text, len)) {
        rc = rules_to_log(b, i, text, len, prev);
        if (rc) schakel_fail(why, rc, "%s: cannot be put on the log: %s", path, schakel_strerror(rc));
    }
    if (rc == 0) note_mtime(b, i, path);
    free(text);
    schakel_envelope_free(env);
    return rc;
}

int broker_rules_sync(schakel_broker_t *b, char *why)
{
    if (!b->rules_dir) return 0;
    for (size_t i = 0; i < BROKER_RULE_SETS; i++) {
        int rc = sync_one(b, i, why);
        if (rc) return rc;
    }
    return 0;
}

/* A changed file of set i: on the log when it parses and differs. */
static void reload_one(schakel_broker_t *b, size_t i)
{
    char path[SCHAKEL_PATH_MAX], inner[SCHAKEL_ERRLEN] = "";
    if (schakel_path_fmt(path, sizeof path, inner, "%s/%s.json", b->rules_dir, sets[i].name) != 0) return;
    struct stat st;
    if (stat(path, &st) != 0) return; /* gone: the rules in force stay; the next start writes it back */
    if (st.st_mtim.tv_sec == b->rules_mtime[i].tv_sec && st.st_mtim.tv_nsec == b->rules_mtime[i].tv_nsec)
        return;
    b->rules_mtime[i] = st.st_mtim;
    size_t len = 0;
    char *text = rules_read(b, i, path, &len, inner);
    if (!text || schakel_svc_rules_check(sets[i].name, text, len, inner) != 0) {
        if (!inner[0]) snprintf(inner, sizeof inner, "%s", strerror(errno));
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=rules_rejected file=%s reason=\"%s\" action=kept_previous", path, inner);
        free(text);
        return;
    }
    schakel_envelope_t *env = NULL;
    uint64_t prev = rules_on_log(b, i, &env);
    if (differs(env, text, len) && rules_to_log(b, i, text, len, prev) != 0) {
        /* an alarm, raised by broker_append_own; the rules in force stay */
    }
    schakel_envelope_free(env);
    free(text);
}

void broker_rules_maybe_reload(schakel_broker_t *b)
{
    if (!b->rules_dir) return;
    for (size_t i = 0; i < BROKER_RULE_SETS; i++) reload_one(b, i);
}

char *broker_rules_retention(schakel_broker_t *b, uint64_t *seq)
{
    schakel_envelope_t *env = NULL;
    *seq = rules_on_log(b, RETENTION_SET, &env);
    char *doc = env ? strdup(env->rules_update->document_json) : NULL;
    if (env && !doc) *seq = 0; /* out of memory: as if none, the next pass asks again */
    schakel_envelope_free(env);
    return doc;
}

int broker_rules_put_retention(schakel_broker_t *b, const char *text, size_t len)
{
    schakel_envelope_t *env = NULL;
    uint64_t prev = rules_on_log(b, RETENTION_SET, &env);
    int rc = differs(env, text, len) ? rules_to_log(b, RETENTION_SET, text, len, prev) : 0;
    schakel_envelope_free(env);
    return rc;
}
