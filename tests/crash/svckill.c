/* A SIGKILL placed in the middle of a service's pipelined group, for crash
 * tests. LD_PRELOADed into a service process, it counts the PUBLISHes the
 * process sends (the frame "PUBLISH" through zmq_send) and the LMDB
 * commits after which one was sent: the groups whose decisions are in
 * flight. At the $SCHAKEL_SVCKILL_AT-th such commit the process kills
 * itself, $SCHAKEL_SVCKILL_WHEN "before" the commit (the group's decisions
 * are at the broker or on their way, its state, cursor and outbox entries
 * not kept) or "after" it (kept, their ACKs not yet applied). Not a
 * library of the project; built only for the tests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <lmdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long publishes; /* PUBLISHes since the last commit */
static atomic_long groups;    /* commits after which a PUBLISH was sent */

int zmq_send(void *s, const void *buf, size_t len, int flags)
{
    static int (*real)(void *, const void *, size_t, int);
    if (!real) real = (int (*)(void *, const void *, size_t, int))dlsym(RTLD_NEXT, "zmq_send");
    if (len == 7 && memcmp(buf, "PUBLISH", 7) == 0) atomic_fetch_add(&publishes, 1);
    return real(s, buf, len, flags);
}

static void die(void)
{
    (void)kill(getpid(), SIGKILL);
    pause();
}

int mdb_txn_commit(MDB_txn *txn)
{
    static int (*real)(MDB_txn *);
    if (!real) real = (int (*)(MDB_txn *))dlsym(RTLD_NEXT, "mdb_txn_commit");
    const char *at = getenv("SCHAKEL_SVCKILL_AT"), *when = getenv("SCHAKEL_SVCKILL_WHEN");
    long n = 0;
    if (atomic_exchange(&publishes, 0) > 0) n = atomic_fetch_add(&groups, 1) + 1;
    int hit = at && n && n == atol(at);
    if (hit && !(when && strcmp(when, "after") == 0)) die();
    int rc = real(txn);
    if (hit) die();
    return rc;
}
