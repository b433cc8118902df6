/* Helpers for scenario tests on a whole `schakel node` (see scenario.c). */
#ifndef SCHAKEL_TEST_SCENARIO_H
#define SCHAKEL_TEST_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "harness.h"

extern harness_t *H; /* the node of the running test program */

/* What the log says about one event. */
typedef struct {
    char recipient[64], rule[64], consent_id[33], inform[64];
    int outcome, basis, duty;
    uint64_t seq;
} decision_t;

typedef struct {
    decision_t d[32];
    size_t n;
    char routed[8][64];
    size_t n_routed;
} decisions_t;

void hex(const uint8_t *b, size_t n, char *out);
/* A synthetic child's pseudonym, from a label. */
void child(const char *label, char out[65]);
/* A random 16-byte id as hex. */
void new_id(char out[33]);
int64_t now_ms(void);

/* How far a service's decisions are on the log (the seq its runner keeps
 * as SCHAKEL_SERVICE_PUBLISHED_KEY), and waiting until the routing,
 * consent and feedback services all reached seq (0 while a service has
 * an erasure's scrub to do: SCHAKEL_SERVICE_SCRUB_KEY). */
uint64_t service_cursor(const char *name);
void wait_services(uint64_t seq);

/* The routing and consent decisions about an event (stream about/<id>);
 * waiting (15 s at most) until at least `want` consent decisions are there. */
void read_decisions(const uint8_t id[16], decisions_t *out);
void wait_decisions(const uint8_t id[16], size_t want, decisions_t *out);
/* The same for the one event at seq: ids are scoped to their publisher,
 * so several organisations' events may share an id (seq 0: any of them). */
void read_decisions_at(const uint8_t id[16], uint64_t seq, decisions_t *out);
void wait_decisions_at(const uint8_t id[16], uint64_t seq, size_t want, decisions_t *out);
/* The decision for recipient with that outcome (0: any outcome). */
const decision_t *find(const decisions_t *ds, const char *recipient, int outcome);
int routed_to(const decisions_t *ds, const char *org);

/* Does org's stream hold the event (outcome_about 0), or a consent
 * decision with that outcome about it? Read as org itself. */
int received(const char *org, const uint8_t id[16], int outcome_about);

/* Publishes JSON as org; fails the test on a reject. Returns the seq. */
uint64_t publish(const char *org, const char *json, uint8_t id[16]);
/* Publishes json as org and returns the ACK's code (-1: no ACK), its
 * reason in reason (SCHAKEL_ERRLEN bytes). */
int publish_code(const char *org, const char *json, char *reason);
/* A referral of subject to an organisation kind; extra is spliced into the
 * envelope (e.g. "\"district\":\"zuid\","). rid_out: its referral id (hex). */
void referral(const char *org, const char *subject, const char *extra, const char *to_kind, uint8_t id[16]);
void referral_with_id(const char *org, const char *subject, const char *extra, const char *to_kind,
                      char rid_out[33], uint8_t id[16]);
/* Parents' (or another giver's) consent for a kind of recipient. */
void consent(const char *org, const char *subject, const char *given_by, const char *age,
             const char *recipient_kind, char cid[33], uint8_t id[16]);

/* A whole node of the sample region (harness_new_node) as H, with the test
 * clock in its directory (change_directory(override)) and the log's time
 * at at_ms: a cmocka setup returns it. node_teardown destroys H. */
int node_start(int override, int64_t at_ms);
int node_teardown(void **state);

/* Unix ms of a UTC time "YYYY-MM-DDTHH:MM:SSZ" (fails the test if not). */
int64_t at(const char *utc);
/* Moves the log's time there and waits until every service has seen it. */
void clock_to(const char *utc);

/* Adds the test clock to the directory (and the 12AB00 override). */
void change_directory(int override);
/* A clock tick at at_ms from the test clock; returns its seq. */
uint64_t tick(int64_t at_ms);

/* Adds (allow) or removes event type `type` from org's publish list: a
 * new directory version; returns once the broker has put it on the log. */
void directory_publish(const char *org, const char *type, int allow);
/* Writes d (a directory, jansson's) as the node's next directory version
 * (its version plus one), in one rename, and releases d. */
void directory_save_next(json_t *d);

/* Lines of the node's log that contain needle. */
int count_in_log(const char *needle);

/* The loop_reminders on the log about a loop id (hex): level, waiting for
 * what, due when, to whom, about whom, and whether they name the child. */
typedef struct {
    int level, waiting_for, has_subject;
    char due_on[11], to[64], overdue[64];
} reminder_t;
size_t reminders(const char *id_hex, reminder_t *out, size_t max);
/* How many events of type about the loop id (hex; their body's
 * referral_id) arrived in org's own stream, read as org; _soon waits (10 s
 * at most) for want: a reminder reaches a stream two records after the
 * log has it (routing, then consent decide). */
size_t in_stream(const char *org, const char *id_hex, int type);
size_t in_stream_soon(const char *org, const char *id_hex, int type, size_t want);

#endif
