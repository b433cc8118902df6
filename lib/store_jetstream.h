/* The jetstream backend of store.h: the log on a replicated NATS JetStream
 * stream (R3), with the LMDB log beside it as the local index
 * (docs/scale-out.md). Built when libnats is found (SCHAKEL_HAVE_NATS). */
#ifndef SCHAKEL_STORE_JETSTREAM_H
#define SCHAKEL_STORE_JETSTREAM_H

#include "store_lmdb.h"

#define SCHAKEL_JS_MAX_SERVERS 8
#define SCHAKEL_JS_REGION_MAX 32

/* A --log address: nats://host:port[,host:port...][/region]. */
typedef struct {
    char servers[SCHAKEL_JS_MAX_SERVERS][128]; /* each "nats://host:port" */
    int n;
    char region[SCHAKEL_JS_REGION_MAX + 1]; /* "region" when the address names none */
} schakel_js_url_t;

/* 0, or SCHAKEL_EINVAL with what is wrong in why. Needs no libnats. */
SCHAKEL_MUST_USE int schakel_js_url_parse(const char *url, schakel_js_url_t *out, char *why);

/* The stream whose local index the LMDB log in dir is: dir/stream names
 * it from the first open of a jetstream log on dir. 0 with its name;
 * SCHAKEL_ENOTFOUND when dir is no stream's index. Needs no libnats: a
 * broker started without --log on such a log refuses it (its appends
 * would never reach the stream, and the stream would refuse the index). */
SCHAKEL_MUST_USE int schakel_js_index_of(const char *dir, char name[SCHAKEL_JS_REGION_MAX + 9], char *why);

typedef struct {
    schakel_lmdb_options_t local; /* the local index (read_only must be 0) */
    const char *url;              /* see schakel_js_url_t */
    int64_t wait_ms;              /* connect and publish wait; 0: 5000 */
    int replicas;                 /* of a stream created here; 0: 3 */
    /* The writer lease (docs/scale-out.md): this writer's name (letters
     * and digits, the same at every start on this data directory), and
     * the lease's TTL in ms (0: 10000). NULL: no lease is asked for (a
     * store that only reads or rebuilds its index). */
    const char *writer;
    int64_t lease_ms;
} schakel_jetstream_options_t;

/* Connects to the cluster, creates the region's stream (SCHAKEL_<region>,
 * subject schakel.<region>.log) when missing, applies to the local index
 * every record the stream holds and it does not, and returns the store.
 * NULL with the reason in why: the cluster not reachable, the stream not
 * there and not creatable, or a stream that is not this index's log. */
schakel_store_t *schakel_store_open_jetstream(const schakel_jetstream_options_t *opts, char *why);

/* `schakel log copy`. to_stream: the LMDB log in log_dir (read only: a
 * stopped broker's, or any copy) onto the stream of url, which must be
 * empty or missing (then created, R3): every record as the jetstream
 * backend would have published it, with its stream index entries, batch
 * proof, wrapped data key and checkpoint, at stream sequence = its seq.
 * from_stream: the stream's records into a new LMDB log in log_dir, which
 * must hold none; each must link to the one before and hash to what it
 * says. Both: 0 with the copy's head (seq and hash, equal on both sides),
 * or the reason in why; SCHAKEL_EEXIST when the target is not empty. */
SCHAKEL_MUST_USE int schakel_js_copy_to_stream(const char *log_dir, const char *url, schakel_head_t *head,
                                               char *why);
SCHAKEL_MUST_USE int schakel_js_copy_from_stream(const char *url, const char *log_dir, schakel_head_t *head,
                                                 char *why);

/* Is this libschakel built with the jetstream backend? */
int schakel_jetstream_available(void);

#endif
