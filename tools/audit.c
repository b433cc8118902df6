/* schakel audit: what an auditor runs against a data directory. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "error.h"
#include "store.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel audit verify --data DIR [--broker-key FILE] [--no-payloads]\n"
    "\n"
    "Walks the log in DIR/log: contiguous sequence numbers, each record's\n"
    "previous-hash and hash, every signed checkpoint (with the broker's public\n"
    "key: --broker-key, default DIR/keys/broker.pub if present), and, with\n"
    "DIR/master.key present, that every payload decrypts to what its publisher\n"
    "signed. Prints a JSON summary. Exit status 0 when everything verifies;\n"
    "1 when a record does not, naming the first bad sequence number; 2 when\n"
    "DIR holds no log.\n";

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    const char *dir = NULL, *bkey = NULL;
    int payloads = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--broker-key") && i + 1 < argc) {
            bkey = argv[++i];
        } else if (!strcmp(argv[i], "--no-payloads")) {
            payloads = 0;
        } else {
            fprintf(stderr, "schakel audit verify: unexpected %s\n\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "schakel audit verify: --data DIR is required\n");
        return 2;
    }
    char path[4200], why[SCHAKEL_ERRLEN] = "";
    schakel_keys_t bk;
    int have_bk = 0;
    snprintf(path, sizeof path, "%s/keys/broker.pub", dir);
    if (!bkey && access(path, R_OK) == 0) bkey = path;
    if (bkey) {
        if (schakel_keys_load(&bk, bkey, why) != 0) {
            fprintf(stderr, "schakel audit verify: %s: %s\n", bkey, why);
            return 2;
        }
        have_bk = 1;
    }
    uint8_t master[32];
    int have_master = 0;
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (payloads && access(path, R_OK) == 0) {
        if (schakel_broker_master_key(dir, master, why) != 0) {
            fprintf(stderr, "schakel audit verify: %s\n", why);
            return 2;
        }
        have_master = 1;
    }
    snprintf(path, sizeof path, "%s/log", dir);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "schakel audit verify: %s: no log here\n", path);
        return 2;
    }
    schakel_verify_report_t r;
    double t0 = secs();
    int rc = schakel_lmdb_verify(path, have_bk ? bk.sign_public : NULL,
                                 have_master ? master : NULL, &r);
    double dt = secs() - t0;
    memset(master, 0, sizeof master);
    char hh[65];
    schakel_hex_encode(r.head_hash, 32, hh);
    printf("{\"ok\":%s,\"records\":%llu,\"checkpoints\":%llu,\"head\":%llu,\"head_hash\":\"%s\","
           "\"erased\":%llu,\"checkpoint_signatures\":%s,\"payloads\":%s,\"seconds\":%.3f",
           rc == 0 ? "true" : "false", (unsigned long long)r.records,
           (unsigned long long)r.checkpoints, (unsigned long long)r.head, hh,
           (unsigned long long)r.erased, have_bk ? "true" : "false",
           have_master ? "true" : "false", dt);
    if (rc == SCHAKEL_ECORRUPT) printf(",\"bad_seq\":%llu", (unsigned long long)r.bad_seq);
    printf("}\n");
    if (rc == SCHAKEL_ECORRUPT) {
        fprintf(stderr, "schakel audit verify: first bad sequence number %llu: %s\n",
                (unsigned long long)r.bad_seq, r.why);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "schakel audit verify: %s\n", r.why[0] ? r.why : schakel_strerror(rc));
        return 2;
    }
    return 0;
}
