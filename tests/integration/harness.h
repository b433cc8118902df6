/* Test harness for integration and crash tests: a real schakel-broker
 * process on loopback with CURVE, a temp data directory, real key files
 * and a directory of test organisations. */
#ifndef SCHAKEL_TEST_HARNESS_H
#define SCHAKEL_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"
#include "codec.h"
#include "consumer.h"
#include "error.h"
#include "keys.h"

/* The organisations every harness has:
 *  "school-a"   school: may publish signal, referral, consultation
 *  "smw-b"      smw: may publish signal, referral_received
 *  "svc-reader" service: read_all, publishes nothing
 *  "svc-decide" service: read_all + decide, publishes consent_decision
 *  "stranger"   has keys but is NOT in the directory */
typedef struct {
    char dir[256];       /* temp root */
    char data[300];      /* broker data dir */
    char keys[300];      /* key files */
    char directory[300]; /* directory.json */
    char endpoint[64], pub_endpoint[64];
    char server_public[SCHAKEL_Z85_KEY_LEN + 1];
    pid_t broker;
    void *ctx;
    char extra_args[8][64]; /* more broker flags */
    int n_extra;
    int node;        /* a whole `schakel node` instead of a broker */
    char reader[64]; /* the read_all org used to ping (default svc-reader) */
} harness_t;

/* Makes the temp dir, keys and directory; does not start the broker. */
harness_t *harness_new(void);
/* A temp dir for a whole `schakel node` (broker and services, sample
 * region, no broker clock: tests move time with clock_tick events). The
 * node writes its keys and directory on first start, under data/keys and
 * data/directory.json; harness_keys then reads from there. */
harness_t *harness_new_node(void);
/* Stops the broker with SIGTERM; returns non-zero if it did not exit 0 or
 * its log holds sanitizer reports (printed to stderr). */
int harness_shutdown(harness_t *h);
/* Kills the broker if running, removes the temp dir, frees. */
void harness_destroy(harness_t **h);

/* Starts schakel-broker and waits until it answers PING (up to 10 s).
 * Returns 0 or -1. */
int harness_start(harness_t *h);
/* Sends sig (SIGTERM or SIGKILL) and reaps the process. Returns its wait
 * status. */
int harness_stop(harness_t *h, int sig);

/* Loads the keys of org (from the harness's key dir). */
void harness_keys(const harness_t *h, const char *org, schakel_keys_t *out);
/* A publishing client for org. */
schakel_client_t *harness_client(harness_t *h, const char *org);
/* A consumer for org on stream. */
schakel_consumer_t *harness_consumer(harness_t *h, const char *org, const char *stream,
                                     const char *consumer_name);

/* Reads a stream from its start up to its head as org, one decoded event
 * at a time:
 *     for (harness_reader_t rd = harness_read(h, org, stream); harness_next(&rd);)
 *         ... rd.e (the envelope), rd.r (the record) ...
 * stream NULL is org's own, "org/<org>". A record that does not decode is
 * passed over and counted in rd.undecoded. harness_next frees what it
 * gave before, and all at the end; harness_read_end when leaving early. */
typedef struct {
    schakel_consumer_t *c;
    const Schakel__V1__Delivered *r;
    schakel_envelope_t *e;
    size_t undecoded;
} harness_reader_t;
harness_reader_t harness_read(harness_t *h, const char *org, const char *stream);
int harness_next(harness_reader_t *rd);
void harness_read_end(harness_reader_t *rd);

/* A valid, encoded signal event from org with the given event id and a
 * synthetic subject derived from subject_no. Caller frees *buf. */
void harness_signal(const char *org, const uint8_t id[16], unsigned subject_no, uint8_t **buf, size_t *len);
/* A PUBLISH of n fresh signal events (harness_signal, subjects 0..n-1)
 * from org, signed with org's key, or with a broken signature when good_sig
 * is 0. Free with harness_publish_free. */
void harness_publish_new(const harness_t *h, const char *org, size_t n, int good_sig,
                         Schakel__V1__Publish *p);
void harness_publish_free(Schakel__V1__Publish *p);
/* A random event id. */
void harness_event_id(uint8_t id[16]);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound and released),
 * below the ephemeral range (harness_free_ports), or -1: for listeners of
 * tests that run in parallel. */
int harness_free_port(void);
/* The first of n consecutive TCP ports on 127.0.0.1, all free a moment ago,
 * below the kernel's ephemeral range (so no other test's outgoing
 * connection takes one of them in the meantime), or -1: for a command that
 * listens on port, port + 1, ... (schakel demo). */
int harness_free_ports(int n);

/* Sends one command on a raw DEALER socket s: [name][req as 8 bytes
 * big-endian][body] (docs/protocol.md). 0, or -1 if a frame was not sent. */
int harness_raw_send(void *s, const char *name, uint64_t req, const void *body, size_t len);
/* Sleeps ms milliseconds. */
void harness_sleep_ms(long ms);
/* Waits until both the process `busy` (a broker) and this one (its
 * ZeroMQ I/O thread sends and encrypts) used under 2 ticks of CPU in half
 * a second: everything sent has arrived and been handled; at most limit_s
 * seconds. On a loaded machine the sending alone can take seconds. */
void harness_wait_idle(pid_t busy, int limit_s);

/* Runs `schakel` with args (NULL-terminated) and returns its exit status;
 * stdout goes to out_path if not NULL. */
int harness_run_tool(const char *out_path, const char *const *args);

/* Runs `schakel` with args (NULL-terminated), stdin from /dev/null, its
 * stdout and stderr into the files out and err in dir; returns its exit
 * status (128 + signal when killed) and the two texts (caller frees), or
 * -1 with both NULL when it could not run or the texts could not be read. */
int harness_run_captured(const char *dir, const char *const *args, char **out, char **err);

/* Runs `schakel audit replay --data h->data`, its JSON lines into text
 * (cap bytes, NUL-terminated) and on stdout; returns its exit status, or
 * -1 when its output could not be read. */
int harness_replay(harness_t *h, char *text, size_t cap);

/* Starts `schakel` with args (NULL-terminated) in the background, its
 * stdout and stderr appended to log_path; it dies with the test. Returns
 * its pid. */
pid_t harness_spawn(const char *log_path, const char *const *args);

/* Publishes one event synchronously; returns the ACK (free with
 * schakel__v1__ack__free_unpacked) or NULL on timeout. */
Schakel__V1__Ack *harness_publish1(schakel_client_t *c, const uint8_t *buf, size_t len);

/* Publishes n signal events from org one at a time (harness_signal,
 * subjects salt..salt+n-1), each waiting for its ACK; returns how many
 * were accepted before the first that timed out or was rejected (n when
 * all were). */
int harness_publish_signals(harness_t *h, const char *org, int n, unsigned salt);

/* Parses json as an event, fills in a random event_id, source_org = org
 * and an occurred_at when missing, publishes it as org and returns its
 * seq (0 when rejected, with the reason on stderr). id_out: the event id. */
uint64_t harness_publish_json(harness_t *h, const char *org, const char *json, uint8_t id_out[16]);

/* Opens the broker's log read-only (broker must be stopped or alive: LMDB
 * allows concurrent readers) and counts records. */
uint64_t harness_head(harness_t *h);

#endif
