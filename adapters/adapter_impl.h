/* What the files of the adapter share, and nobody else sees: the
 * adapter's state (adapter_t), a batch of mapped rows (batch_t), and the
 * functions one part calls in another. One event's way through them:
 *   config.c   the configuration file, read before anything starts
 *   spool.c    a file in the spool (or a line on standard input), or
 *   http.c     a POST /events, gives rows;
 *   rows.c     each row mapped by the profile (mapping*.c) into the outbox
 *              (outbox.c), durable before it is acknowledged;
 *   forward.c  the forwarder PUBLISHes the outbox to the broker until ACKed;
 *   inbox.c    what the bus delivers to the organisation is handed over;
 *   inbox_erase.c  an erasure removes the child's deliveries first.
 *   run.c      the process: starts and stops the threads;
 *   commands.c status, check, dead-letters, requeue; adapter.c the
 *              command-line dispatch.
 * Threads: main (spool, supervision), forwarder, inbox, standard input
 * and libmicrohttpd's own. They share the outbox (LMDB serialises
 * writers), the profile under map_lock, and nothing else. Log lines,
 * reasons and HTTP answers carry counts, codes, file names, lines and
 * columns, never a row's values (the mapping's reasons do not quote them). */
#ifndef SCHAKEL_ADAPTER_IMPL_H
#define SCHAKEL_ADAPTER_IMPL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "conn.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "flags.h"
#include "json.h"
#include "logging.h"
#include "mapping.h"
#include "outbox.h"
#include "schakel_version.h"

#define FORWARD_BATCH 256
#define ADAPTER_VERSION SCHAKEL_VERSION_FULL /* carried by adapter_status: the build's (CMakeLists.txt) */
#define FILE_MAX ((size_t)256 << 20)
#define HTTP_BODY_MAX ((size_t)8 << 20)
#define SETTLE_MS 1000 /* a spool file untouched this long is complete */
/* What the adapter adds to the spool directory's path at most: a file
 * name (NAME_MAX) under rejected/, a .9999 to keep it apart from an
 * earlier one, and .reasons.jsonl. The configuration refuses a spool
 * path without this room, so that no file is ever left unmoved. */
#define SPOOL_ROOM (sizeof "/rejected/" - 1 + 255 + sizeof ".9999.reasons.jsonl")
/* ... and to the inbox directory's: /<20-digit seq>-<32 hex>.json.tmp */
#define INBOX_ROOM (sizeof "/01234567890123456789-0123456789abcdef0123456789abcdef.json.tmp")

typedef enum { INBOX_NONE, INBOX_DIR, INBOX_COMMAND, INBOX_URL } inbox_kind_t;

typedef struct {
    char base[SCHAKEL_PATH_MAX]; /* the configuration file's directory */
    schakel_conn_t conn;
    uint8_t region_key[SCHAKEL_REGION_KEY_LEN];
    schakel_profile_t *profile;
    char state[SCHAKEL_PATH_MAX], spool[SCHAKEL_PATH_MAX];
    char http_host[64];
    int http_port;
    char http_token_path[SCHAKEL_PATH_MAX];
    uint8_t http_token_hash[SCHAKEL_SHA256_LEN]; /* SHA-256 of the token */
    unsigned http_max_connections, http_max_per_ip, http_timeout;
    int http_max_per_ip_set;
    uint32_t http_addr; /* the bound IPv4 address, host order */
    int use_stdin, once;
    inbox_kind_t inbox;
    char inbox_target[SCHAKEL_PATH_MAX];
    schakel_outbox_t *outbox;
    void *ctx;
    atomic_int stop;
    atomic_int stdin_done;
    pthread_mutex_t wake_lock;
    pthread_cond_t wake; /* new events in the outbox */
    /* The profile's JSON values are shared by every row it maps, and
     * jansson's reference counts are not safe to touch from two threads:
     * the spool (and stdin) and the HTTP thread map one row at a time. */
    pthread_mutex_t map_lock;
    atomic_int status_error; /* the forwarder's last outcome, an AdapterError; 0: none yet */
    char why[SCHAKEL_ERRLEN];
} adapter_t;

/* What the last adapter_status said (status.c), kept by the forwarder. */
typedef struct {
    int64_t sent_ms; /* 0: none sent yet */
    int last_error;
    uint64_t dead_letters, inbox_set_aside;
    int outbox_empty;
    int refused; /* the broker refused the last one */
} adapter_status_state_t;

typedef struct {
    adapter_t *a;
    schakel_outbox_item_t *items;
    uint8_t (*ids)[16];
    size_t *numbers; /* row number of each item */
    size_t n, cap;
    json_t *rejects;  /* [{"row": n, "reason": ...}] */
    size_t *bad_rows; /* row numbers rejected, for copying the rows out */
    size_t n_bad, cap_bad;
} batch_t;

struct MHD_Daemon;

/* adapter.c: the usage text of `schakel adapter`, and its flags parsed
 * with the table t (lib/flags.h) for the subcommand sub ("" for the
 * adapter itself) from argv[first]: --help prints the usage, an error
 * "schakel adapter sub: <reason>". Returns -1 to go on, else the exit
 * status (0 after --help, 2 after an error). */
extern const char adapter_usage[];
int adapter_flags(const char *sub, schakel_flag_t *t, int argc, char **argv, int first);

/* config.c: reads the configuration file at path into a (reason in
 * a->why); with need_profile, "profile" and "region_key" are required. */
int adapter_configure(adapter_t *a, const char *path, int need_profile);
int adapter_read_region_key(const char *path, uint8_t key[SCHAKEL_REGION_KEY_LEN], char *why);
/* config.c: creates the spool's directories and a directory inbox. */
int adapter_make_dirs(adapter_t *a);

/* rows.c: a batch of rows mapped into the outbox. map_row is the row
 * callback of mapping.h; commit puts the mapped events and wakes the
 * forwarder. */
void adapter_batch_reject(batch_t *b, size_t number, const char *reason);
int adapter_map_row(void *arg, const schakel_row_t *row, size_t number);
void adapter_batch_free(batch_t *b);
int adapter_batch_commit(batch_t *b, char *why);

/* spool.c: takes the settled files of the spool; returns how many it saw.
 * adapter_stdin_main: the standard input thread. */
size_t adapter_scan_spool(adapter_t *a);
void *adapter_stdin_main(void *arg);

/* http.c: the token (created 0600 when missing), and the endpoint. */
int adapter_load_http_token(adapter_t *a);
struct MHD_Daemon *adapter_http_start(adapter_t *a);

/* forward.c: the forwarder thread, and waking it. */
void *adapter_forward_main(void *arg);
void adapter_wake_forwarder(adapter_t *a);

/* status.c: the forwarder notes the outcome of each attempt (an
 * AdapterError code), and publishes an adapter_status on c every minute
 * and when the state changed (adapter_status_tick, called each turn). */
struct schakel_client;
void adapter_status_note_error(adapter_t *a, int code);
void adapter_status_tick(adapter_t *a, struct schakel_client *c, adapter_status_state_t *st);

/* inbox.c: the inbox thread. adapter_inbox_deliver hands one record
 * over (an erasure after adapter_inbox_forget), its event id and type
 * into idhex and type; 0, or the reason in why and in *refused whose the
 * failure is (INBOX_AWAY, INBOX_REFUSED, INBOX_REFUSED_FOR_GOOD). */
#define INBOX_TRIES 3           /* a record the command fails on this often is set aside */
#define INBOX_REDELIVER_MS 2000 /* how often the inbox looks for notes to re-deliver */
enum { INBOX_AWAY = 0, INBOX_REFUSED = 1, INBOX_REFUSED_FOR_GOOD = 2 };
void *adapter_inbox_main(void *arg);
int adapter_inbox_deliver(adapter_t *a, const Schakel__V1__Delivered *d, char idhex[33], char type[40],
                          int *refused, char *why);
/* inbox_aside.c: notes of the records set aside (state/inbox-set-aside/),
 * their count, and re-delivering those an operator moved to
 * state/inbox-redeliver/ (called by the inbox thread every
 * INBOX_REDELIVER_MS). */
int adapter_inbox_set_aside(adapter_t *a, const Schakel__V1__Delivered *d, const char *idhex,
                            const char *type, unsigned tries, const char *reason, char *why);
size_t adapter_inbox_set_aside_count(const adapter_t *a);
void adapter_inbox_redeliver(adapter_t *a);
/* inbox_erase.c: on an `erasure` record, a directory inbox overwrites and
 * removes the deliveries it holds about the erased child (up to its
 * erased_upto); nothing for other records or inboxes. 0, or an error in
 * why (the hand-over is tried again). */
int adapter_inbox_forget(adapter_t *a, const Schakel__V1__Delivered *d, char *why);

/* commands.c and run.c: the subcommands. */
json_t *adapter_status_json(adapter_t *a);
int adapter_cmd_status(int argc, char **argv);
int adapter_cmd_check(int argc, char **argv);
int adapter_cmd_outbox(int argc, char **argv);
int adapter_cmd_run(int argc, char **argv);

#endif
