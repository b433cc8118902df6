/* Service processes and threads: configuration from a node directory, the
 * engine for a name, signals. See runner.h. */
#include "runner.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "conn.h"
#include "consent.h"
#include "error.h"
#include "fileio.h"
#include "feedback.h"
#include "routing.h"
#include "service.h"
#include "wire.h"

const char *const schakel_service_names[] = {"routing", "consent", "feedback", NULL};

struct schakel_svc {
    char name[32];
    char state_dir[SCHAKEL_PATH_MAX];
    schakel_conn_t conn;
    const schakel_engine_ops_t *ops;
    void *engine;
    void *ctx;
    struct schakel_store *log; /* the broker's, in a node; NULL: FETCH */
    atomic_int stop;
    pthread_t thread;
    int started, result;
    char why[SCHAKEL_ERRLEN];
};

const char *schakel_svc_default_rules(const char *name)
{
    if (!strcmp(name, "routing")) return schakel_routing_default_rules();
    if (!strcmp(name, "consent")) return schakel_consent_default_policy();
    if (!strcmp(name, "feedback")) return schakel_feedback_default_policy();
    return NULL;
}

static int write_default(const char *node_dir, const char *name, const char *text)
{
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN];
    if (schakel_path_fmt(path, sizeof path, why, "%s/%s.json", node_dir, name) != 0) {
        fprintf(stderr, "schakel: %s\n", why);
        return -1;
    }
    if (access(path, F_OK) == 0) return 0;
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "schakel: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int schakel_svc_write_defaults(const char *node_dir)
{
    for (size_t i = 0; schakel_service_names[i]; i++)
        if (write_default(node_dir, schakel_service_names[i],
                          schakel_svc_default_rules(schakel_service_names[i])) != 0)
            return -1;
    return 0;
}

/* The days equated by royal decree used to be read from holidays.json
 * beside the policy file; they are in the directory now, on the log. A
 * file left there would be ignored, and deadlines would move without a
 * word: refuse to start until it is moved. */
static int feedback_no_holidays_file(const char *policy_path, char *why)
{
    char path[SCHAKEL_PATH_MAX];
    const char *slash = strrchr(policy_path, '/');
    int dir_len = slash ? (int)(slash - policy_path) : 1;
    int rc =
        schakel_path_fmt(path, sizeof path, why, "%.*s/holidays.json", dir_len, slash ? policy_path : ".");
    if (rc) return rc;
    if (access(path, F_OK) != 0) return 0;
    return schakel_fail(why, SCHAKEL_ECONFIG,
                        "%s is no longer read: the days a royal decree equates with holidays are the "
                        "directory's \"holidays\" section now (docs/feedback.md, \"Deadlines\"): move "
                        "its decree_days there, publish the directory, and delete the file",
                        path);
}

int schakel_svc_engine_text(const char *name, const char *org, const char *text, size_t len,
                            const schakel_engine_ops_t **ops, void **engine, char *why)
{
    *engine = NULL;
    if (!strcmp(name, "routing")) {
        *engine = schakel_routing_new(org, text, len, why);
        *ops = &schakel_routing_ops;
    } else if (!strcmp(name, "consent")) {
        *engine = schakel_consent_new(org, text, len, why);
        *ops = &schakel_consent_ops;
    } else if (!strcmp(name, "feedback")) {
        *engine = schakel_feedback_new(org, text, len, why);
        *ops = &schakel_feedback_ops;
    } else {
        schakel_fail(why, SCHAKEL_ECONFIG, "no service called %s", name);
    }
    return *engine ? 0 : SCHAKEL_ECONFIG;
}

int schakel_svc_engine(const char *name, const char *org, const char *path, const schakel_engine_ops_t **ops,
                       void **engine, char *why)
{
    size_t len;
    char *text = schakel_file_read(path, 4u << 20, &len);
    *engine = NULL;
    if (!text) return schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s", path, strerror(errno));
    int rc = schakel_svc_engine_text(name, org, text, len, ops, engine, why);
    free(text);
    if (rc == 0 && !strcmp(name, "feedback") && (rc = feedback_no_holidays_file(path, why)) != 0)
        schakel_svc_engine_free(*ops, engine);
    return rc;
}

int schakel_svc_rules_check(const char *name, const char *text, size_t len, char *why)
{
    const schakel_engine_ops_t *ops = NULL;
    void *engine = NULL;
    int rc = schakel_svc_engine_text(name, "broker", text, len, &ops, &engine, why);
    schakel_svc_engine_free(ops, &engine);
    return rc;
}

void schakel_svc_engine_free(const schakel_engine_ops_t *ops, void **engine)
{
    if (!*engine) return;
    if (ops == &schakel_routing_ops) schakel_routing_destroy((schakel_routing_t **)engine);
    else if (ops == &schakel_consent_ops) schakel_consent_destroy((schakel_consent_t **)engine);
    else if (ops == &schakel_feedback_ops) schakel_feedback_destroy((schakel_feedback_t **)engine);
    *engine = NULL;
}

static schakel_svc_t *svc_new(const char *name)
{
    schakel_svc_t *s = calloc(1, sizeof *s);
    if (s) snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static void svc_free(schakel_svc_t *s)
{
    schakel_svc_engine_free(s->ops, &s->engine);
    schakel_keys_wipe(&s->conn.keys);
    free(s);
}

static int svc_run(schakel_svc_t *s)
{
    schakel_service_options_t o = {s->state_dir,          s->conn.endpoint, s->conn.pub_endpoint,
                                   s->conn.server_public, &s->conn.keys,    s->log};
    return schakel_service_run(s->ctx, s->ops, s->engine, &o, &s->stop, s->why);
}

static void *svc_thread(void *arg)
{
    schakel_svc_t *s = arg;
    (void)pthread_setname_np(pthread_self(), s->name); /* top -H, perf: which service */
    s->result = svc_run(s);
    return NULL;
}

/* Fills the paths and keys of a service of the node in dir. */
static int svc_configure(schakel_svc_t *s, const char *policy, const char *state)
{
    char path[SCHAKEL_PATH_MAX], def[SCHAKEL_PATH_MAX];
    if (!s->conn.as_org[0]) snprintf(s->conn.as_org, sizeof s->conn.as_org, "svc-%s", s->name);
    int rc = schakel_conn_finish(&s->conn, s->why);
    if (rc) return rc;
    const char *node = s->conn.node_dir[0] ? s->conn.node_dir : ".";
    if ((rc = schakel_path_join(def, sizeof def, node, "services", s->why))) return rc;
    if (!state) {
        if (mkdir(def, 0700) != 0 && errno != EEXIST)
            return schakel_fail(s->why, SCHAKEL_EIO, "cannot create %s: %s", def, strerror(errno));
        rc = schakel_path_join(s->state_dir, sizeof s->state_dir, def, s->name, s->why);
    } else {
        rc = schakel_path_fmt(s->state_dir, sizeof s->state_dir, s->why, "%s", state);
    }
    if (rc || (rc = schakel_path_fmt(path, sizeof path, s->why, "%s/%s.json", node, s->name))) return rc;
    return schakel_svc_engine(s->name, s->conn.keys.id, policy ? policy : path, &s->ops, &s->engine, s->why);
}

schakel_svc_t *schakel_svc_start(void *ctx, const char *name, const char *node_dir, struct schakel_store *log,
                                 char *why)
{
    schakel_svc_t *s = svc_new(name);
    if (!s) return NULL;
    s->ctx = ctx;
    s->log = log;
    if (schakel_path_fmt(s->conn.node_dir, sizeof s->conn.node_dir, s->why, "%s", node_dir) != 0 ||
        svc_configure(s, NULL, NULL) != 0 || pthread_create(&s->thread, NULL, svc_thread, s) != 0) {
        schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s", name, s->why[0] ? s->why : "cannot start a thread");
        svc_free(s);
        return NULL;
    }
    s->started = 1;
    return s;
}

int schakel_svc_stop(schakel_svc_t **self_p)
{
    schakel_svc_t *s = *self_p;
    if (!s) return 0;
    atomic_store(&s->stop, 1);
    if (s->started) (void)pthread_join(s->thread, NULL); /* our own thread, joined once */
    int rc = s->result;
    svc_free(s);
    *self_p = NULL;
    return rc;
}

/* ---- the process ---- */

static atomic_int *stop_flag; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag) atomic_store(stop_flag, 1);
}

int schakel_svc_cli(const char *name, int argc, char **argv)
{
    const char *policy = NULL, *state = NULL;
    schakel_svc_t *s = svc_new(name);
    if (!s) return 1;
    schakel_flag_t flags[] = {
        SCHAKEL_CONN_FLAGS(&s->conn),
        SCHAKEL_FLAG_S("--policy", "FILE", &policy),
        SCHAKEL_FLAG_S("--state", "DIR", &state),
        SCHAKEL_FLAGS_END,
    };
    char why[SCHAKEL_ERRLEN] = "";
    int parsed = schakel_flags_parse(flags, argc, argv, 1, why);
    if (parsed == SCHAKEL_FLAGS_HELP) {
        printf("usage: schakel %s --node DIR [--as ORG] [--policy FILE] [--state DIR]\n"
               "\n"
               "Runs the %s service: reads the log of the broker in DIR from where it\n"
               "left off and publishes what it derives (%s). Its rules or\n"
               "policy are DIR/%s.json, its state DIR/services/%s/ (LMDB). It acts as\n"
               "svc-%s unless --as says otherwise. Stops cleanly on SIGTERM.\n\n%s",
               name, name, !strcmp(name, "feedback") ? "docs/feedback.md" : "docs/routing.md", name, name,
               name, schakel_conn_help);
        svc_free(s);
        return 0;
    }
    if (parsed) {
        fprintf(stderr, "schakel %s: %s\n", name, why);
        svc_free(s);
        return 2;
    }
    if (svc_configure(s, policy, state) != 0) {
        fprintf(stderr, "schakel %s: %s\n", name, s->why);
        svc_free(s);
        return 2;
    }
    s->ctx = zmq_ctx_new();
    stop_flag = &s->stop;
    schakel_signals_on_stop(on_signal);
    int rc = svc_run(s);
    if (rc) fprintf(stderr, "schakel %s: %s\n", name, s->why);
    stop_flag = NULL;
    void *ctx = s->ctx;
    svc_free(s);
    schakel_wire_ctx_term(ctx);
    return rc ? 1 : 0;
}
