/* `schakel adapter --config FILE`: the adapter process. Reads its
 * configuration, opens the outbox, starts the threads (forwarder, inbox,
 * standard input, HTTP) and runs the spool in the main thread until
 * SIGTERM (or, with --once, until everything is ACKed); then stops them
 * in order. Threads share the outbox (LMDB serialises writers) and
 * nothing else. */
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "adapter_impl.h"
#include "fileio.h"
#include "wire.h"

static atomic_int *stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag) atomic_store(stop_flag, 1);
}

int adapter_cmd_run(int argc, char **argv)
{
    adapter_t *a = calloc(1, sizeof *a);
    const char *config = NULL;
    if (!a) return 1;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--config", "FILE", &config),
        SCHAKEL_FLAG_B("--stdin", NULL, &a->use_stdin),
        SCHAKEL_FLAG_B("--once", NULL, &a->once),
        SCHAKEL_FLAGS_END,
    };
    int rc = adapter_flags("", flags, argc, argv, argc > 1 && !strcmp(argv[1], "run") ? 2 : 1);
    if (rc >= 0) {
        free(a);
        return rc;
    }
    rc = 2;
    int use_stdin = a->use_stdin;
    if (!config || adapter_configure(a, config, 1) != 0 || adapter_make_dirs(a) != 0 ||
        schakel_conn_finish(&a->conn, a->why) != 0) {
        fprintf(stderr, "schakel adapter: %s\n", config ? a->why : "--config FILE is required (see --help)");
        goto out;
    }
    a->use_stdin |= use_stdin;
    if (a->profile) { /* minted ids only this organisation can compute */
        uint8_t idk[SCHAKEL_SHA256_LEN];
        static const char label[] = "schakel/v1/adapter-id-key";
        if (schakel_hmac_sha256(a->conn.keys.sign_secret, sizeof a->conn.keys.sign_secret,
                                (const uint8_t *)label, sizeof label - 1, idk) != 0) {
            fprintf(stderr, "schakel adapter: cannot derive the id key\n");
            goto out;
        }
        schakel_profile_set_id_key(a->profile, idk);
        memset(idk, 0, sizeof idk);
    }
    if (!(a->outbox = schakel_outbox_open(a->state, 0, a->why))) {
        fprintf(stderr, "schakel adapter: %s\n", a->why);
        rc = 1;
        goto out;
    }
    if (a->http_port && !a->once && adapter_load_http_token(a) != 0) {
        fprintf(stderr, "schakel adapter: %s\n", a->why);
        goto out;
    }
    a->ctx = zmq_ctx_new();
    /* default attributes: nothing to allocate, they cannot fail (glibc) */
    (void)pthread_mutex_init(&a->wake_lock, NULL);
    (void)pthread_mutex_init(&a->map_lock, NULL);
    (void)pthread_cond_init(&a->wake, NULL);
    stop_flag = &a->stop;
    schakel_signals_on_stop(on_signal);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t fwd, inbox, in;
    int want_inbox = a->inbox != INBOX_NONE && !a->once;
    int have_fwd = pthread_create(&fwd, NULL, adapter_forward_main, a) == 0;
    int have_inbox = want_inbox && pthread_create(&inbox, NULL, adapter_inbox_main, a) == 0;
    int have_in = a->use_stdin && pthread_create(&in, NULL, adapter_stdin_main, a) == 0;
    struct MHD_Daemon *http = NULL;
    rc = 0;
    if (!have_fwd || have_inbox != want_inbox || have_in != a->use_stdin) {
        /* nothing is taken in that cannot be sent on: stop at once */
        fprintf(stderr, "schakel adapter: cannot start its threads (out of memory or a thread limit)\n");
        atomic_store(&a->stop, 1);
        rc = 1;
    } else if (a->http_port && !a->once && !(http = adapter_http_start(a))) {
        rc = 1;
    }
    schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=started org=%s profile=%s spool=%s http=%d inbox=%d",
                a->conn.as_org, schakel_profile_kind(a->profile), a->spool[0] ? "yes" : "no", a->http_port,
                (int)a->inbox);
    while (!atomic_load(&a->stop)) {
        size_t files = a->spool[0] ? adapter_scan_spool(a) : 0;
        if (a->once && !files && (!a->use_stdin || atomic_load(&a->stdin_done))) {
            schakel_outbox_status_t s;
            if (schakel_outbox_status(a->outbox, &s) != 0) /* never stop with letters unsent */
                schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=status_unreadable action=keep_running");
            else if (!s.pending) break;
        }
        /* the spool every 200 ms, in one sleep: a stop signal (to the
         * process: its main thread) cuts it short */
        if (!atomic_load(&a->stop)) usleep(200000);
    }
    atomic_store(&a->stop, 1);
    adapter_wake_forwarder(a);
    if (http) MHD_stop_daemon(http);
    /* our own threads, joined once: a join fails only on a bad id */
    if (have_fwd) (void)pthread_join(fwd, NULL);
    if (have_inbox) (void)pthread_join(inbox, NULL);
    if (have_in) {
        if (!atomic_load(&a->stdin_done)) (void)pthread_cancel(in); /* blocked in a read */
        (void)pthread_join(in, NULL);
    }
    schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=stopped org=%s", a->conn.as_org);
    curl_global_cleanup();
    schakel_wire_ctx_term(a->ctx);
    (void)pthread_cond_destroy(&a->wake); /* unused now: cannot fail */
    (void)pthread_mutex_destroy(&a->wake_lock);
    (void)pthread_mutex_destroy(&a->map_lock);
out:
    stop_flag = NULL;
    schakel_outbox_close(&a->outbox);
    schakel_profile_destroy(&a->profile);
    schakel_keys_wipe(&a->conn.keys);
    memset(a->region_key, 0, sizeof a->region_key);
    free(a);
    return rc;
}
