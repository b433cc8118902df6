/* What the crash tests of the services share (test_service_outbox,
 * test_service_kill_mid_group): a node whose broker runs without its
 * services, the routing and consent services as processes of their own,
 * a publisher that streams referrals about new children as
 * school-12ab00, and the check, once the publisher stops, that every
 * referral it sent has exactly one routing decision and one consent
 * decision per recipient routing named. The tests differ in how they kill
 * the services. */
#ifndef SCHAKEL_TEST_SVCLOAD_H
#define SCHAKEL_TEST_SVCLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../integration/harness.h"
#include "../integration/scenario.h"

typedef struct {
    const char *name;
    char log[600];
    pid_t pid;
    int kills; /* by a kill model so far */
    int after; /* kills after the commit: the outbox must be sent again */
} svc_t;

extern svc_t svcs[2]; /* routing, consent */

/* The referrals sent: their seqs, in order (calloc'd by svcload_publish). */
extern uint64_t *sent;
extern atomic_size_t n_sent;
extern atomic_int stop_publishing;

/* Starts the service as a process, logging to s->log. */
void svc_start_plain(svc_t *s);
void svc_stop(svc_t *s, int sig);

/* Starts a thread that sends `batch` referrals about new children
 * (labelled label-K) every 10 ms, at most max_sent in all, until
 * stop_publishing; svcload_join stops it and answers how many were sent. */
void svcload_publish(const char *label, int batch, size_t max_sent, pthread_t *t);
size_t svcload_join(pthread_t t);

/* Waits (seconds at most) until what service derived up to seq is on the log. */
void wait_published(const char *service, uint64_t seq, int seconds);
/* Events a service sent again from its outbox on its starts (its log). */
unsigned long resent(const svc_t *s);

/* Reads the whole log and fails the test unless each of the n referrals
 * sent has one routing decision naming someone and one consent decision
 * per recipient it named, and no other. Returns the decisions counted;
 * *records (when not NULL) the records read. */
size_t every_decision_once(size_t n, uint64_t *records);

/* The services stopped, the broker shut down: `audit replay` is equal. */
void svcload_replay_equal(void);

/* setup: the node without services, the test clock, the log's time.
 * teardown: no process outlives the test, also after a failed assertion. */
int svcload_setup(void **state);
int svcload_teardown(void **state);

#endif
