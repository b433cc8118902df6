
/* The broker's command loop and its lifecycle. Workload: many publishers
 * sending pipelined signed batches. The loop hands each PUBLISH to the
 * checker threads, one of which decodes, validates and verifies it while the loop
 * appends and fsyncs the batches checked before; the loop then appends
 * every checked batch in one durable LMDB transaction and sends the ACKs.
 * Nothing is ACKed before it is fsynced; nothing invalid is stored; a bad
 * peer gets a reject with a reason and the loop goes on serving the
 * others. Only the loop writes the log and owns the ROUTER and PUB
 * sockets; the directory is shared under dir_lock.
 *
 * One event's way through the files of brokers/ (broker_impl.h holds
 * what they share; docs/architecture.md walks it end to end):
 *   zap.c     the CURVE key of a new connection names its organisation
 *   broker.c  the loop reads a command (handle_one) and dispatches it
 *   check.c   PUBLISH: queued, then checked by a checker thread
 *   system.c  ... system events: decisions, directory, clock
 *   commit.c  a group of checked batches appended, fsynced, ACKed
 *   serve.c   FETCH / COMMIT / PING: readers take it from the log
 *   erase.c   ERASE: the operator erases a child's data key
 *   peer.c    what is held per connection; replies */
#include "broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker_impl.h"
#include "fileio.h"
#include "store_jetstream.h"

/* Reads one command; returns 1 if one was handled, 0 if none waited. */
static int handle_one(schakel_broker_t *b)
{
    schakel_wire_msg_t m;
    int rc = schakel_wire_recv(b->router, 1, &m, ZMQ_DONTWAIT);
    if (rc == SCHAKEL_EZMQ) {
        schakel_wire_close(&m);
        return 0;
    }
    if (rc == SCHAKEL_EDECODE) {
        broker_send_error(b, &m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                          "a command is 3 frames: name, 8-byte request id, protobuf body");
    } else if (broker_stats_seen(b, m.user), !broker_key_current(b, &m) || !broker_body_checked(b, &m)) {
        /* answered */
    } else if (strcmp(m.name, "PUBLISH") == 0) {
        broker_publish_receive(b, &m);
    } else if (strcmp(m.name, "FETCH") == 0) {
        broker_sync(b); /* a reader sees only what survives a power cut */
        broker_serve_fetch(b, &m);
    } else if (strcmp(m.name, "COMMIT") == 0) {
        broker_serve_commit(b, &m);
    } else if (strcmp(m.name, "ERASE") == 0) {
        broker_serve_erase(b, &m);
    } else if (strcmp(m.name, "PING") == 0) {
        broker_sync(b); /* the head it names is durable */
        broker_serve_ping(b, &m);
    } else {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "unknown command \"%.16s\": PUBLISH, FETCH, COMMIT, PING or ERASE", m.name);
        broker_send_error(b, &m, SCHAKEL__V1__REJECT_CODE__REJECT_UNKNOWN_COMMAND, r);
    }
    schakel_wire_close(&m);
    return 1;
}

/* Are checked batches waiting for their group to fill? */
static int out_waiting(schakel_broker_t *b)
{
    pthread_mutex_lock(&b->q_lock);
    int n = b->out_head != NULL;
    pthread_mutex_unlock(&b->q_lock);
    return n;
}

static size_t in_flight(schakel_broker_t *b)
{
    pthread_mutex_lock(&b->q_lock);
    size_t n = b->in_flight;
    pthread_mutex_unlock(&b->q_lock);
    return n;
}

/* A signed checkpoint when one is due. A failure is an alarm: auditors
 * compare the log against the checkpoints kept outside the broker, and a
 * gap in them is what a rewrite would hide behind. Logged once when it
 * starts failing and once when it works again, not on every turn. */
static void broker_checkpoint(schakel_broker_t *b, int64_t now)
{
    int rc = schakel_store_checkpoint(b->store, now);
    if (rc && !b->checkpoint_failing) {
        b->alarms++;
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=checkpoint_failed alarm=checkpoint_failed reason=\"%s\" alarms=%llu",
                    schakel_strerror(rc), (unsigned long long)b->alarms);
    } else if (!rc && b->checkpoint_failing)
        schakel_log(SCHAKEL_LOG_INFO, "broker", "event=checkpoint_recovered");
    b->checkpoint_failing = rc != 0;
}

/* A process killed inside a read of the log (`audit verify`, a tail)
 * keeps its LMDB reader slot, and with it every page freed since: the map
 * only grows. Cleared at start and every READER_CHECK_MS. */
static void reader_check(schakel_broker_t *b, int64_t now, int at_start)
{
    int cleared = 0;
    b->last_reader_check = now;
    if (schakel_lmdb_reader_check(b->store, &cleared) != 0)
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=reader_check_failed");
    else if (cleared || at_start)
        schakel_log(cleared ? SCHAKEL_LOG_WARN : SCHAKEL_LOG_INFO, "broker",
                    "event=stale_readers_cleared count=%d", cleared);
}

int schakel_broker_run(schakel_broker_t *b)
{
    zmq_pollitem_t it[2] = {{b->router, 0, ZMQ_POLLIN, 0}, {b->wake_rx, 0, ZMQ_POLLIN, 0}};
    int64_t last_reload = 0;
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=running");
    while (!atomic_load(&b->stop)) {
        /* with batches in flight, the router waits for the checker */
        it[0].events = in_flight(b) < MAX_IN_FLIGHT ? ZMQ_POLLIN : 0;
        int rc = zmq_poll(it, 2, out_waiting(b) || b->held_head ? 1 : 100);
        if (rc < 0 && errno == ETERM) break;
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN))
            while (in_flight(b) < MAX_IN_FLIGHT && handle_one(b)) {
            }
        if (rc > 0 && (it[1].revents & ZMQ_POLLIN))
            while (zmq_recv(b->wake_rx, NULL, 0, ZMQ_DONTWAIT) >= 0) {
            }
        pending_t *ready;
        while ((ready = broker_take_checked(b, 0))) broker_commit_group(b, ready);
        int64_t now = schakel_wall_ms();
        /* Held ACKs go with the next group's flush when one is on its
         * way; when nothing is (an idle log, a lone event), or they have
         * waited GROUP_WAIT_MS, a flush of their own. */
        if (b->held_head && (in_flight(b) == 0 || now - b->held_since >= 2 * GROUP_WAIT_MS)) broker_sync(b);
        if (b->tick_ms > 0 && now - b->last_tick >= b->tick_ms) {
            broker_clock_tick(b, now);
            b->last_tick = now;
        }
        broker_checkpoint(b, now);
        broker_retention_pass(b, now); /* between groups; at most once a second */
        broker_release_durable(b);     /* a checkpoint, a tick, a cursor: durable writes flush too */
        if (now - b->last_reader_check >= READER_CHECK_MS) reader_check(b, now, 0);
        if (now - last_reload >= 1000) {
            broker_directory_maybe_reload(b);
            broker_rules_maybe_reload(b);
            last_reload = now;
        }
    }
    broker_checker_finish(b); /* every batch received is checked, appended and ACKed */
    pending_t *ready;
    while ((ready = broker_take_checked(b, 1))) broker_commit_group(b, ready);
    broker_sync(b);
    broker_checkpoint(b, schakel_wall_ms() + 3600 * 1000);
    schakel_log(SCHAKEL_LOG_INFO, "broker",
                "event=stopped acked=%llu rejected=%llu "
                "fetch_refused=%llu publish_refused=%llu org_refused=%llu replies_dropped=%llu",
                (unsigned long long)b->stat_acked, (unsigned long long)b->stat_rejected,
                (unsigned long long)b->stat_fetch_refused, (unsigned long long)b->stat_publish_refused,
                (unsigned long long)b->stat_org_refused, (unsigned long long)b->stat_replies_dropped);
    return 0;
}

void schakel_broker_stop(schakel_broker_t *b)
{
    atomic_store(&b->stop, 1);
}

schakel_store_t *schakel_broker_store(schakel_broker_t *b)
{
    return b->store;
}

int schakel_broker_master_key(const char *data_dir, uint8_t key[32], char *why)
{
    char path[SCHAKEL_PATH_MAX];
    int rc = schakel_path_join(path, sizeof path, data_dir, "master.key", why);
    return rc ? rc : schakel_secret_file(path, key, 32, 1, NULL, why);
}

schakel_broker_t *schakel_broker_new(void *ctx, const schakel_broker_config_t *cfg, char *why)
{
    schakel_broker_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->ctx = ctx;
    b->lock_fd = cfg->lock_held ? cfg->lock_fd : -1;
    (void)pthread_rwlock_init(&b->dir_lock, NULL); /* default attributes: cannot fail (glibc) */
    b->group_max = cfg->group_max ? cfg->group_max : 8192;
    b->tick_ms = cfg->tick_ms ? cfg->tick_ms : 60000;
    b->last_tick = schakel_wall_ms();
    (void)pthread_mutex_init(&b->q_lock, NULL);
    (void)pthread_cond_init(&b->q_cond, NULL);
    const char *ep = cfg->endpoint ? cfg->endpoint : "tcp://127.0.0.1:7400";
    const char *pep = cfg->pub_endpoint ? cfg->pub_endpoint : "tcp://127.0.0.1:7401";
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", cfg->data_dir, strerror(errno));
        goto fail;
    }
    /* Two brokers appending to one log would each extend the chain from
     * the head they last saw: the second one is refused here. */
    if (!cfg->lock_held && schakel_dir_lock(cfg->data_dir, "broker.lock", &b->lock_fd, why) != 0) goto fail;
    if (schakel_keys_load(&b->keys, cfg->key_path, why) != 0) goto fail;
    if (!b->keys.has_secret) {
        schakel_fail(why, SCHAKEL_ECONFIG, "%s holds no secret keys: give the broker's .key file",
                     cfg->key_path);
        goto fail;
    }
    b->dir_path = strdup(cfg->directory_path);
    struct stat st;
    if (!b->dir_path || stat(cfg->directory_path, &st) != 0) {
        schakel_fail(why, SCHAKEL_ECONFIG, "directory %s: %s", cfg->directory_path, strerror(errno));
        goto fail;
    }
    b->dir_mtime = st.st_mtim;
    b->dir = schakel_directory_load(cfg->directory_path, why);
    if (!b->dir) goto fail;

    schakel_lmdb_options_t o = {0};
    char logdir[SCHAKEL_PATH_MAX];
    if (schakel_path_join(logdir, sizeof logdir, cfg->data_dir, "log", why) != 0) goto fail;
    o.dir = logdir;
    /* a stream's index written to without it would never match the stream again */
    char stream[SCHAKEL_JS_REGION_MAX + 9];
    int marked = cfg->log_url ? SCHAKEL_ENOTFOUND : schakel_js_index_of(logdir, stream, why);
    if (marked == 0)
        schakel_fail(
            why, SCHAKEL_ECONFIG,
            "%s is the local index of JetStream stream %s: start with --log nats://HOST:PORT,.../<region> "
            "(docs/scale-out.md)",
            logdir, stream);
    if (marked != SCHAKEL_ENOTFOUND) goto fail;
    if (schakel_broker_master_key(cfg->data_dir, o.master_key, why) != 0) goto fail;
    o.sign_secret = b->keys.sign_secret;
    o.checkpoint_every = cfg->checkpoint_every;
    o.checkpoint_ms = cfg->checkpoint_ms;
    o.map_initial = cfg->map_initial;
    o.map_max = cfg->map_max;
    if (cfg->log_url) {
        /* the log on a replicated stream; LMDB under log/ is its local index */
        /* the lease names this data directory's broker, the same at every
         * start: a restarted broker resumes its own lease at once */
        uint8_t id[16];
        char writer[33];
        char idpath[SCHAKEL_PATH_MAX];
        if (schakel_path_join(idpath, sizeof idpath, cfg->data_dir, "writer.id", why) != 0 ||
            schakel_secret_file(idpath, id, sizeof id, 1, NULL, why) != 0)
            goto fail;
        schakel_hex_encode(id, sizeof id, writer);
        schakel_jetstream_options_t jo = {
            .local = o, .url = cfg->log_url, .writer = writer, .lease_ms = cfg->lease_ms};
        b->store = schakel_store_open_jetstream(&jo, why);
        b->replicated_log = 1;
        memset(jo.local.master_key, 0, sizeof jo.local.master_key);
    } else {
        b->store = schakel_store_open_lmdb(&o, why);
    }
    memset(o.master_key, 0, sizeof o.master_key);
    if (!b->store) goto fail;
    reader_check(b, schakel_wall_ms(), 1);

    /* ZAP before any bind: no connection is accepted unauthenticated. */
    b->zap = zmq_socket(ctx, ZMQ_REP);
    if (!b->zap || zmq_bind(b->zap, "inproc://zeromq.zap.01") != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "ZAP handler: %s (one broker per process)", zmq_strerror(errno));
        goto fail;
    }
    if (pthread_create(&b->zap_thread, NULL, broker_zap_main, b) != 0) {
        schakel_fail(why, SCHAKEL_ENOMEM, "cannot start the ZAP thread");
        goto fail;
    }
    b->zap_running = 1;

    int64_t maxmsg = ZMQ_HARD_MAX_MSG;
    int linger = 1000, sndhwm = SEND_HWM, rcvhwm = RECV_HWM, mandatory = 1;
    b->router = zmq_socket(ctx, ZMQ_ROUTER);
    b->pub = zmq_socket(ctx, ZMQ_PUB);
    if (!b->router || !b->pub || schakel_wire_curve_server(b->router, &b->keys) ||
        schakel_wire_curve_server(b->pub, &b->keys) ||
        zmq_setsockopt(b->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(b->router, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(b->router, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) ||
        zmq_setsockopt(b->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
        /* a full or gone peer is an error we count, not a silent drop */
        zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory) ||
        zmq_setsockopt(b->pub, ZMQ_LINGER, &linger, sizeof linger)) {
        schakel_fail(why, SCHAKEL_EZMQ, "socket set-up: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(b->router, ep) != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "cannot bind %s: %s", ep, zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(b->pub, pep) != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "cannot bind %s: %s", pep, zmq_strerror(errno));
        goto fail;
    }
    char wake[64];
    snprintf(wake, sizeof wake, "inproc://schakel-broker-checker-%p", (void *)b);
    b->wake_rx = zmq_socket(ctx, ZMQ_PAIR);
    b->wake_tx = zmq_socket(ctx, ZMQ_PAIR);
    if (!b->wake_rx || !b->wake_tx || zmq_bind(b->wake_rx, wake) != 0 || zmq_connect(b->wake_tx, wake) != 0 ||
        zmq_setsockopt(b->wake_tx, ZMQ_LINGER, &linger, sizeof linger) != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "checker wake-up: %s", zmq_strerror(errno));
        goto fail;
    }
    if (broker_retention_open(b, cfg->data_dir, why) != 0) goto fail;
    char retention[SCHAKEL_PATH_MAX];
    if (cfg->log_url &&
        schakel_path_join(retention, sizeof retention, cfg->data_dir, "retention.json", why) != 0)
        goto fail;
    if (cfg->log_url && access(retention, F_OK) == 0) { /* a child due would stay, every pass failing */
        schakel_fail(
            why, SCHAKEL_ECONFIG,
            "%s: retention erases children, which the jetstream log cannot do yet (docs/scale-out.md): "
            "run this node on the LMDB log, or without retention rules",
            retention);
        goto fail;
    }
    if (broker_checkers_start(b, cfg->checkers, why) != 0) goto fail;
    broker_directory_sync(b);
    if (cfg->rules_dir && !(b->rules_dir = strdup(cfg->rules_dir))) {
        schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
        goto fail;
    }
    if (broker_rules_sync(b, why) != 0) goto fail;
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    schakel_log(SCHAKEL_LOG_INFO, "broker",
                "event=started endpoint=%s pub=%s head=%llu orgs=%zu checkers=%zu", ep, pep,
                (unsigned long long)h.seq, schakel_directory_count(b->dir), b->n_checkers);
    return b;
fail:
    schakel_broker_destroy(&b);
    return NULL;
}

void schakel_broker_destroy(schakel_broker_t **self_p)
{
    schakel_broker_t *b = *self_p;
    if (!b) return;
    atomic_store(&b->stop, 1);
    /* our own thread and sockets: these fail only on a bad id or socket */
    if (b->zap_running) (void)pthread_join(b->zap_thread, NULL);
    if (b->router) (void)zmq_close(b->router);
    if (b->pub) (void)zmq_close(b->pub);
    if (b->zap) (void)zmq_close(b->zap);
    broker_peers_free(b);
    broker_checker_finish(b);
    for (pending_t *lists[3] = {b->in_head, b->out_head, b->held_head}, **l = lists; l < lists + 3; l++)
        for (pending_t *p = *l, *next; p; p = next) {
            next = p->next;
            broker_pending_free(b, p);
        }
    for (size_t i = 0; i < b->n_spare; i++) schakel_arena_destroy(&b->spare[i]);
    if (b->wake_tx) (void)zmq_close(b->wake_tx);
    if (b->wake_rx) (void)zmq_close(b->wake_rx);
    broker_retention_close(b);
    schakel_store_close(&b->store);
    schakel_directory_destroy(&b->dir);
    free(b->dir_path);
    if (b->lock_fd >= 0) (void)close(b->lock_fd); /* lets the next broker start */
    free(b->rules_dir);
    schakel_keys_wipe(&b->keys);
    (void)pthread_rwlock_destroy(&b->dir_lock); /* no thread left to hold them */
    (void)pthread_mutex_destroy(&b->q_lock);
    (void)pthread_cond_destroy(&b->q_cond);
    free(b);
    *self_p = NULL;
}
