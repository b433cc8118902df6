/* schakel audit: what an auditor runs against a data directory. */
#include <errno.h>
#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit_access.h"
#include "archive.h"
#include "broker.h"
#include "clock.h"
#include "error.h"
#include "json.h"
#include "logging.h"
#include "runner.h"
#include "service.h"
#include "store_audit.h"
#include "store_lmdb.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel audit verify --data DIR [--broker-key FILE] [--no-payloads]\n"
    "                            [--checkpoints FILE] [--threads N] [--purpose TEXT]\n"
    "       schakel audit verify --archive DIR [--broker-key FILE]\n"
    "       schakel audit export --data DIR --out DIR [--from SEQ] [--to SEQ]\n"
    "                            [--segment N] [--broker-key FILE] [--purpose TEXT]\n"
    "       schakel audit checkpoints --data DIR [--from SEQ]\n"
    "       schakel audit replay --data DIR [--service NAME] [--upto-live] [--purpose TEXT]\n"
    "       schakel audit subject --node DIR (--subject P | --bsn BSN --region-key F)\n"
    "                             --purpose TEXT [--html FILE]\n"
    "       schakel audit erase --node DIR --subject PSEUDONYM --basis CODE --purpose TEXT\n"
    "\n"
    "verify:\n"
    "Walks the log in DIR/log: contiguous sequence numbers, each record's\n"
    "previous-hash and hash, every signed checkpoint (with the broker's public\n"
    "key: --broker-key, default DIR/keys/broker.pub if present), and, with\n"
    "DIR/master.key present, that every payload decrypts to what its publisher\n"
    "signed. With --checkpoints FILE (JSON lines as `audit checkpoints` writes\n"
    "them, kept outside the broker), each of those must match the chain too:\n"
    "this proves the log unchanged even against the broker's own operator.\n"
    "It runs on every core (--threads N: on N threads; the result is the\n"
    "same). On a terminal it shows its progress on stderr.\n"
    "Prints a JSON summary. Exit status 0 when everything verifies; 1 when a\n"
    "record or checkpoint does not, naming the first bad sequence number; 2\n"
    "when DIR holds no log or an argument is wrong.\n"
    "\n"
    "verify --archive: checks archive segments written by `audit export`\n"
    "with nothing else: segment links and signatures, the chain, every batch\n"
    "signature against the directories in the archive, every checkpoint\n"
    "(payloads stay encrypted). The broker's key comes from the first segment\n"
    "unless --broker-key FILE names it. Same JSON, exit status as verify.\n"
    "\n"
    "export: writes the records SEQ to SEQ (default: all) of the log in DIR as\n"
    "archive segments of N records (default 100000) into --out DIR, which\n"
    "must hold no segment yet: records as stored, batch proofs, checkpoints,\n"
    "the directories in force in plaintext; each segment signed with\n"
    "the broker's key (--broker-key FILE, default DIR/keys/broker.key) and\n"
    "linked to the one before (docs/audit.md).\n"
    "Needs DIR/master.key. Exit status 0, or 2 with the reason.\n"
    "\n"
    "verify (not --archive: it needs no broker), export and replay record the look as an\n"
    "audit_access event on the log, with --purpose TEXT when given, through\n"
    "the broker of the node in DIR (DIR/node.json, as svc-audit; or the\n"
    "connection flags --node, --as, --endpoint, --server-key, --key). When it\n"
    "does not answer, they say on stderr that the look was NOT recorded; their\n"
    "exit status stays theirs.\n"
    "\n"
    "checkpoints: prints the broker's signed checkpoints as JSON lines\n"
    "{seq, hash, at, signature} from SEQ on, for organisations to keep.\n"
    "\n"
    "replay: re-runs each service - routing, consent and feedback (or only\n"
    "NAME) - with empty state over the whole log of the node in DIR, with the\n"
    "rules in force at each point of the log taken from its rules_update events\n"
    "and the directory, with its decree days, from its directory_updates; no\n"
    "file is needed (a DIR/<name>.json is used only for records before the\n"
    "first rules_update of that service, else the default rules), and compares\n"
    "everything it derives (routing and consent decisions, the feedback\n"
    "service's status notices and reminders) with what is on the log, byte for\n"
    "byte. Prints a JSON line per service; exit status 1 names the first\n"
    "sequence number where they differ, 2 when a service cannot be run or\n"
    "NAME is no service. --upto-live: each service is re-run only over the\n"
    "records its live state in DIR/services/NAME had processed (its cursor),\n"
    "so that what it had not reached yet is not counted missing; the line\n"
    "says how far that was (\"upto\", \"published\", \"head\", \"behind\").\n"
    "\n"
    "subject: one child's history across every organisation, from the log\n"
    "(schakel audit subject --help).\n"
    "\n"
    "erase: erases one child's data through the running broker of the node\n"
    "in DIR and logs an erasure event (schakel audit erase --help).\n";

/* The progress line on stderr, for a terminal only: a bar, the records
 * verified and how many a second. */
typedef struct {
    double t0, last;
    int shown;
} progress_t;

static void show_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_t *p = arg;
    double now = schakel_mono_secs();
    if (now - p->last < 0.2 && done < total) return;
    p->last = now;
    char bar[41];
    size_t fill = total ? (size_t)(40.0 * (double)done / (double)total) : 0;
    for (size_t i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = 0;
    double dt = now - p->t0;
    fprintf(stderr, "\rverify [%s] %llu/%llu records, %.0f/s ", bar, (unsigned long long)done,
            (unsigned long long)total, dt > 0 ? (double)done / dt : 0.0);
    p->shown = 1;
}

static int print_checkpoint(void *arg, const schakel_checkpoint_t *cp)
{
    (void)arg;
    char hash[65], sig[129], at[32];
    schakel_hex_encode(cp->hash, sizeof cp->hash, hash);
    schakel_hex_encode(cp->signature, sizeof cp->signature, sig);
    schakel_time_format(cp->at, at);
    printf("{\"seq\":%llu,\"hash\":\"%s\",\"at\":\"%s\",\"signature\":\"%s\"}\n", (unsigned long long)cp->seq,
           hash, at, sig);
    return 0;
}

static int cmd_checkpoints(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t from = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--data", "DIR", &dir),
        SCHAKEL_FLAG_U("--from", &from, 0, UINT64_MAX),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("audit checkpoints", flags, argc, argv, 2, usage, NULL, usage);
    if (status >= 0) return status;
    if (!dir) {
        fprintf(stderr, "schakel audit checkpoints: --data DIR is required\n");
        return 2;
    }
    char path[SCHAKEL_PATH_MAX];
    if ((status = tool_path("audit checkpoints", path, sizeof path, dir, "log"))) return status;
    int rc = schakel_lmdb_checkpoints(path, from, print_checkpoint, NULL);
    if (rc) fprintf(stderr, "schakel audit checkpoints: %s: %s\n", path, schakel_strerror(rc));
    return rc ? 2 : 0;
}

/* Checks checkpoints kept outside the broker against the chain. Returns 0,
 * 1 with the first bad one named, or 2 when the file cannot be read. */
static int verify_external(const char *logdir, const char *file, const schakel_keys_t *bk, uint64_t *checked,
                           uint64_t *bad_seq)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "schakel audit verify: %s: %s\n", file, strerror(errno));
        return 2;
    }
    char line[1024];
    int rc = 0;
    for (size_t no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        if (line[0] == '\n') continue;
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        const char *hash = NULL, *at = NULL, *sig = NULL;
        json_int_t seq = 0;
        schakel_checkpoint_t cp = {0};
        if (!o ||
            json_unpack(o, "{s:I, s:s, s:s, s:s}", "seq", &seq, "hash", &hash, "at", &at, "signature",
                        &sig) != 0 ||
            seq <= 0 || schakel_hex_decode(hash, cp.hash, 32) != 0 ||
            schakel_hex_decode(sig, cp.signature, 64) != 0 || schakel_time_parse(at, &cp.at) != 0) {
            fprintf(stderr,
                    "schakel audit verify: %s:%zu: not a checkpoint line {seq, hash, at, "
                    "signature}\n",
                    file, no);
            rc = 2;
        } else {
            cp.seq = (uint64_t)seq;
            uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN], h[32];
            schakel_checkpoint_message(&cp, msg);
            int found = schakel_lmdb_hash_at(logdir, cp.seq, h);
            if (bk && schakel_ed25519_verify(bk->sign_public, msg, sizeof msg, cp.signature) != 0) {
                fprintf(stderr,
                        "schakel audit verify: %s:%zu: checkpoint %llu is not signed by "
                        "this broker\n",
                        file, no, (unsigned long long)cp.seq);
                rc = 1;
                *bad_seq = cp.seq;
            } else if (found == SCHAKEL_ENOTFOUND) {
                fprintf(stderr,
                        "schakel audit verify: first bad sequence number %llu: the log "
                        "ends before this kept checkpoint: records were removed\n",
                        (unsigned long long)cp.seq);
                rc = 1;
                *bad_seq = cp.seq;
            } else if (found != 0 || memcmp(h, cp.hash, 32) != 0) {
                fprintf(stderr,
                        "schakel audit verify: first bad sequence number %llu: the chain "
                        "differs from the kept checkpoint: the log was rewritten up to "
                        "here\n",
                        (unsigned long long)cp.seq);
                rc = 1;
                *bad_seq = cp.seq;
            } else {
                (*checked)++;
            }
        }
        json_decref(o);
    }
    (void)fclose(f); /* read only */
    return rc;
}

/* How far the live service name had come in DIR: its runner's "cursor"
 * (every record up to it processed) and "published" (everything derived
 * up to it on the log). 0, or 2 said. */
static int live_place(const char *dir, const char *name, uint64_t *cursor, uint64_t *published)
{
    char sdir[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    if (schakel_path_fmt(sdir, sizeof sdir, why, "%s/services/%s", dir, name)) {
        fprintf(stderr, "schakel audit replay: %s\n", why);
        return 2;
    }
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int ok = 0;
    *cursor = *published = 0;
    if (mdb_env_create(&env) != 0) return 2;
    (void)mdb_env_set_maxdbs(env, 32); /* fails only on an open env */
    if (mdb_env_open(env, sdir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_dbi_open(txn, "runner", 0, &dbi) == 0) {
            const char *keys[] = {"cursor", SCHAKEL_SERVICE_PUBLISHED_KEY};
            uint64_t *vals[] = {cursor, published};
            for (int i = 0; i < 2; i++) {
                MDB_val k = {strlen(keys[i]), (void *)keys[i]}, v;
                if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8) memcpy(vals[i], v.mv_data, 8);
            }
            ok = 1;
        }
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    if (!ok || !*cursor) {
        fprintf(stderr,
                "schakel audit replay: --upto-live: %s: %s (run without --upto-live to replay the whole "
                "log)\n",
                sdir, ok ? "the service has processed no record" : "no service state here");
        return 2;
    }
    return 0;
}

/* --service NAME must name a service: else replay would compare nothing
 * and report success. 0, or 2 with the names to choose from. */
static int replay_service_known(const char *only)
{
    if (!only) return 0;
    for (size_t i = 0; schakel_service_names[i]; i++)
        if (!strcmp(only, schakel_service_names[i])) return 0;
    fprintf(stderr, "schakel audit replay: --service %s is no service; give one of:", only);
    for (size_t i = 0; schakel_service_names[i]; i++) fprintf(stderr, " %s", schakel_service_names[i]);
    fprintf(stderr, "\n");
    return 2;
}

static int cmd_replay(int argc, char **argv)
{
    const char *dir = NULL, *only = NULL, *purpose = NULL;
    int live = 0;
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--data", "DIR", &dir),
        SCHAKEL_FLAG_S("--service", "NAME", &only),
        SCHAKEL_FLAG_B("--upto-live", NULL, &live),
        SCHAKEL_FLAG_S("--purpose", "TEXT", &purpose),
        SCHAKEL_CONN_FLAGS(&c),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("audit replay", flags, argc, argv, 2, usage, NULL, usage);
    if (status >= 0) return status;
    if (!dir) {
        fprintf(stderr, "schakel audit replay: --data DIR is required\n");
        return 2;
    }
    if ((status = replay_service_known(only)) || (status = audit_purpose_check("audit replay", purpose, 0)))
        return status;
    char why[SCHAKEL_ERRLEN] = "", logdir[SCHAKEL_PATH_MAX], policy[SCHAKEL_PATH_MAX];
    uint8_t master[32];
    /* the longest name first: then the others fit */
    if ((status = tool_path("audit replay", policy, sizeof policy, dir, "feedback.json")) ||
        (status = tool_path("audit replay", logdir, sizeof logdir, dir, "log")))
        return status;
    if (schakel_broker_master_key(dir, master, why) != 0) {
        fprintf(stderr, "schakel audit replay: %s\n", why);
        return 2;
    }
    status = 0;
    /* every service at once, over one read of the log */
    enum { MAX_SVC = 8 };
    const schakel_engine_ops_t *ops[MAX_SVC];
    void *engines[MAX_SVC];
    const char *names[MAX_SVC], *orgs[MAX_SVC];
    uint64_t upto[MAX_SVC] = {0}, published[MAX_SVC] = {0};
    /* how far each live service had come: before any engine is made */
    for (size_t i = 0, k = 0; live && schakel_service_names[i] && k < MAX_SVC; i++) {
        if (only && strcmp(only, schakel_service_names[i]) != 0) continue;
        if (live_place(dir, schakel_service_names[i], &upto[k], &published[k])) {
            memset(master, 0, sizeof master);
            return 2;
        }
        k++;
    }
    char org_ids[MAX_SVC][SCHAKEL_ID_MAX];
    size_t n = 0;
    for (size_t i = 0; schakel_service_names[i] && n < MAX_SVC; i++) {
        const char *name = schakel_service_names[i];
        if (only && strcmp(only, name) != 0) continue;
        char file[32];
        snprintf(file, sizeof file, "%s.json", name); /* a name of schakel_service_names: short */
        snprintf(org_ids[n], sizeof org_ids[n], "svc-%s", name);
        if (tool_path("audit replay", policy, sizeof policy, dir, file)) { /* cannot be: feedback.json fit */
            status = 2;
            break;
        }
        /* the rules come from the log's rules_updates; a file left in DIR
         * is used only for what the log decided before its first one */
        const char *text = schakel_svc_default_rules(name);
        int rc =
            access(policy, F_OK) == 0
                ? schakel_svc_engine(name, org_ids[n], policy, &ops[n], &engines[n], why)
                : schakel_svc_engine_text(name, org_ids[n], text, strlen(text), &ops[n], &engines[n], why);
        if (rc != 0) {
            fprintf(stderr, "schakel audit replay: %s\n", why);
            status = 2;
            continue;
        }
        names[n] = name;
        orgs[n] = org_ids[n];
        n++;
    }
    schakel_replay_report_t reports[MAX_SVC];
    int rcs[MAX_SVC];
    double t0 = schakel_mono_secs();
    /* What the engines say about single records (an event ignored, a rule
     * set installed) the live services said when they met them: counted
     * here, shown with SCHAKEL_LOG=info or debug, not thousands of lines */
    int quiet = !getenv("SCHAKEL_LOG");
    unsigned long said = schakel_log_dropped(SCHAKEL_LOG_WARN) + schakel_log_dropped(SCHAKEL_LOG_INFO);
    if (quiet) schakel_log_set_level(SCHAKEL_LOG_ERROR);
    if (n) schakel_service_replay_upto(logdir, master, n, ops, engines, orgs, upto, reports, rcs);
    if (quiet) {
        said = schakel_log_dropped(SCHAKEL_LOG_WARN) + schakel_log_dropped(SCHAKEL_LOG_INFO) - said;
        schakel_log_set_level(SCHAKEL_LOG_INFO);
        if (said)
            fprintf(stderr,
                    "schakel audit replay: the services logged %lu info and warn lines while replaying "
                    "(events they ignored, rules installed: what they said live); SCHAKEL_LOG=info shows "
                    "them\n",
                    said);
    }
    double dt = schakel_mono_secs() - t0; /* they ran together: one time for all */
    memset(master, 0, sizeof master);
    uint64_t read = 0;
    for (size_t i = 0; i < n; i++) {
        const schakel_replay_report_t *r = &reports[i];
        int rc = rcs[i];
        if (r->records > read) read = r->records;
        schakel_svc_engine_free(ops[i], &engines[i]);
        printf("{\"service\":\"%s\",\"ok\":%s,\"records\":%llu,\"derived\":%llu,\"same\":%llu,"
               "\"differ\":%llu,\"missing\":%llu,\"extra\":%llu,\"seconds\":%.3f",
               names[i], rc == 0 ? "true" : "false", (unsigned long long)r->records,
               (unsigned long long)r->emitted, (unsigned long long)r->same, (unsigned long long)r->differ,
               (unsigned long long)r->missing, (unsigned long long)r->extra, dt);
        if (r->first_bad_seq) printf(",\"bad_seq\":%llu", (unsigned long long)r->first_bad_seq);
        if (live)
            printf(",\"upto\":%llu,\"published\":%llu,\"head\":%llu,\"behind\":%llu",
                   (unsigned long long)upto[i], (unsigned long long)published[i], (unsigned long long)r->head,
                   (unsigned long long)(r->head > upto[i] ? r->head - upto[i] : 0));
        printf("}\n");
        if (rc == SCHAKEL_ECORRUPT) {
            fprintf(stderr, "schakel audit replay: %s: first difference at sequence number %llu: %s\n",
                    names[i], (unsigned long long)r->first_bad_seq, r->why);
            if (status == 0) status = 1;
        } else if (rc) {
            fprintf(stderr, "schakel audit replay: %s: %s\n", names[i],
                    r->why[0] ? r->why : schakel_strerror(rc));
            status = 2;
        }
    }
    if (n) {
        (void)fflush(stdout); /* the result before what recording the look may say */
        audit_access_t a = {.command = "audit_replay",
                            .query_ref = only ? only : "all",
                            .purpose = purpose,
                            .from_seq = read ? 1 : 0,
                            .to_seq = read};
        SCHAKEL_DROP(audit_access_record_offline("audit replay", &c, dir, &a)); /* it says when not */
    }
    return status;
}

static int cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *keyfile = NULL, *purpose = NULL;
    uint64_t from = 0, to = 0, per = 100000;
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--data", "DIR", &dir),
        SCHAKEL_FLAG_S("--out", "DIR", &out),
        SCHAKEL_FLAG_S("--broker-key", "FILE", &keyfile),
        SCHAKEL_FLAG_U("--from", &from, 1, UINT64_MAX),
        SCHAKEL_FLAG_U("--to", &to, 1, UINT64_MAX),
        SCHAKEL_FLAG_U("--segment", &per, 1, 10000000),
        SCHAKEL_FLAG_S("--purpose", "TEXT", &purpose),
        SCHAKEL_CONN_FLAGS(&c),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("audit export", flags, argc, argv, 2, usage, NULL, usage);
    if (status >= 0) return status;
    if ((status = audit_purpose_check("audit export", purpose, 0))) return status;
    if (!dir || !out) {
        fprintf(stderr, "schakel audit export: --data DIR and --out DIR are required\n");
        return 2;
    }
    if (from && to && from > to) {
        fprintf(stderr, "schakel audit export: --from %llu is after --to %llu\n", (unsigned long long)from,
                (unsigned long long)to);
        return 2;
    }
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    schakel_keys_t bk;
    if ((status = tool_path("audit export", path, sizeof path, dir, "keys/broker.key"))) return status;
    if (!keyfile) keyfile = path;
    if (schakel_keys_load(&bk, keyfile, why) != 0 || !bk.has_secret) {
        fprintf(stderr, "schakel audit export: %s: %s\n", keyfile,
                why[0] ? why : "no secret key: the broker's .key file is needed to sign");
        return 2;
    }
    uint8_t master[32];
    if (schakel_broker_master_key(dir, master, why) != 0) {
        fprintf(stderr, "schakel audit export: %s\n", why);
        schakel_keys_wipe(&bk);
        return 2;
    }
    if ((status = tool_path("audit export", path, sizeof path, dir, "log"))) return status;
    schakel_archive_opts_t o = {from, to, per};
    schakel_archive_report_t rep;
    double t0 = schakel_mono_secs();
    int rc = schakel_archive_export(path, master, bk.sign_secret, bk.sign_public, out, &o, &rep, why);
    memset(master, 0, sizeof master);
    schakel_keys_wipe(&bk);
    if (rc) {
        fprintf(stderr, "schakel audit export: %s\n", why[0] ? why : schakel_strerror(rc));
        return 2;
    }
    printf("{\"ok\":true,\"segments\":%llu,\"records\":%llu,\"from\":%llu,\"to\":%llu,\"proofs\":%llu,"
           "\"checkpoints\":%llu,\"directories\":%llu,\"seconds\":%.3f}\n",
           (unsigned long long)rep.segments, (unsigned long long)rep.records, (unsigned long long)rep.first,
           (unsigned long long)rep.last, (unsigned long long)rep.proofs, (unsigned long long)rep.checkpoints,
           (unsigned long long)rep.directories, schakel_mono_secs() - t0);
    (void)fflush(stdout); /* the summary before what recording the look may say */
    audit_access_t a = {
        .command = "audit_export", .purpose = purpose, .from_seq = rep.first, .to_seq = rep.last};
    SCHAKEL_DROP(audit_access_record_offline("audit export", &c, dir, &a)); /* it says when not */
    return 0;
}

/* verify's exit status for rc, saying on stderr what failed: 1 names
 * the first bad sequence number, 2 anything else. */
static int verify_status(int rc, const schakel_verify_report_t *r)
{
    if (rc == SCHAKEL_ECORRUPT) {
        fprintf(stderr, "schakel audit verify: first bad sequence number %llu: %s\n",
                (unsigned long long)r->bad_seq, r->why);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "schakel audit verify: %s\n", r->why[0] ? r->why : schakel_strerror(rc));
        return 2;
    }
    return 0;
}

/* verify --archive DIR: the archive's JSON line, exit status as verify. */
static int verify_archive(const char *arc, const char *bkey)
{
    schakel_keys_t bk;
    char why[SCHAKEL_ERRLEN] = "";
    if (bkey && schakel_keys_load(&bk, bkey, why) != 0) {
        fprintf(stderr, "schakel audit verify: %s: %s\n", bkey, why);
        return 2;
    }
    schakel_verify_report_t r;
    uint64_t segments = 0;
    double t0 = schakel_mono_secs();
    int rc = schakel_archive_verify(arc, bkey ? bk.sign_public : NULL, &r, &segments);
    char hh[65];
    schakel_hex_encode(r.head_hash, 32, hh);
    printf("{\"ok\":%s,\"archive\":true,\"segments\":%llu,\"records\":%llu,\"checkpoints\":%llu,"
           "\"head\":%llu,\"head_hash\":\"%s\",\"batches\":%llu,\"signatures\":%llu,\"replaced_key\":%llu,"
           "\"directories\":%llu,\"seconds\":%.3f",
           rc == 0 ? "true" : "false", (unsigned long long)segments, (unsigned long long)r.records,
           (unsigned long long)r.checkpoints, (unsigned long long)r.head, hh, (unsigned long long)r.batches,
           (unsigned long long)r.signatures, (unsigned long long)r.sigs_replaced_key,
           (unsigned long long)r.directories, schakel_mono_secs() - t0);
    if (rc == SCHAKEL_ECORRUPT) printf(",\"bad_seq\":%llu", (unsigned long long)r.bad_seq);
    printf("}\n");
    return verify_status(rc, &r);
}

int cmd_audit(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "export")) return cmd_export(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "checkpoints")) return cmd_checkpoints(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "replay")) return cmd_replay(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "subject")) return cmd_subject(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "erase")) return cmd_audit_erase(argc, argv);
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    const char *dir = NULL, *bkey = NULL, *kept = NULL, *arc = NULL, *purpose = NULL;
    int no_payloads = 0;
    uint64_t threads = 0;
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_U("--threads", &threads, 1, 16),
        SCHAKEL_FLAG_S("--data", "DIR", &dir),
        SCHAKEL_FLAG_S("--archive", "DIR", &arc),
        SCHAKEL_FLAG_S("--broker-key", "FILE", &bkey),
        SCHAKEL_FLAG_S("--checkpoints", "FILE", &kept),
        SCHAKEL_FLAG_B("--no-payloads", NULL, &no_payloads),
        SCHAKEL_FLAG_S("--purpose", "TEXT", &purpose),
        SCHAKEL_CONN_FLAGS(&c),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("audit verify", flags, argc, argv, 2, usage, NULL, usage);
    if (status >= 0) return status;
    if ((status = audit_purpose_check("audit verify", purpose, 0))) return status;
    int payloads = !no_payloads;
    if (arc && (dir || kept)) {
        fprintf(stderr, "schakel audit verify: --archive DIR goes without --data and --checkpoints\n");
        return 2;
    }
    if (arc) return verify_archive(arc, bkey);
    if (!dir) {
        fprintf(stderr, "schakel audit verify: --data DIR (or --archive DIR) is required\n");
        return 2;
    }
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    schakel_keys_t bk;
    int have_bk = 0;
    if ((status = tool_path("audit verify", path, sizeof path, dir, "keys/broker.pub"))) return status;
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
    if ((status = tool_path("audit verify", path, sizeof path, dir, "master.key"))) return status;
    /* without payloads still for the directory on the log: signatures */
    if (access(path, R_OK) == 0) {
        if (schakel_broker_master_key(dir, master, why) != 0) {
            fprintf(stderr, "schakel audit verify: %s\n", why);
            return 2;
        }
        have_master = 1;
    }
    if ((status = tool_path("audit verify", path, sizeof path, dir, "log"))) return status;
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "schakel audit verify: %s: no log here\n", path);
        return 2;
    }
    schakel_verify_report_t r;
    double t0 = schakel_mono_secs();
    unsigned what =
        SCHAKEL_VERIFY_SIGNATURES | (payloads ? SCHAKEL_VERIFY_PAYLOADS | SCHAKEL_VERIFY_ERASURES : 0);
    progress_t prog = {.t0 = t0};
    schakel_verify_opts_t vo = {.threads = (unsigned)threads};
    if (isatty(STDERR_FILENO)) {
        vo.progress = show_progress;
        vo.progress_arg = &prog;
    }
    int rc = schakel_lmdb_verify_opts(path, have_bk ? bk.sign_public : NULL, have_master ? master : NULL,
                                      what, &vo, &r);
    double dt = schakel_mono_secs() - t0;
    if (prog.shown) fputc('\n', stderr);
    memset(master, 0, sizeof master);
    /* kept checkpoints first: "ok" is true exactly when the exit status is 0 */
    uint64_t kept_ok = 0, kept_bad = 0;
    int kept_rc =
        rc == 0 && kept ? verify_external(path, kept, have_bk ? &bk : NULL, &kept_ok, &kept_bad) : 0;
    char hh[65];
    schakel_hex_encode(r.head_hash, 32, hh);
    printf("{\"ok\":%s,\"records\":%llu,\"checkpoints\":%llu,\"head\":%llu,\"head_hash\":\"%s\","
           "\"erased\":%llu,\"keys_missing\":%llu,\"keys_corrupt\":%llu,"
           "\"checkpoint_signatures\":%s,\"payloads\":%s,\"seconds\":%.3f",
           rc == 0 && kept_rc == 0 ? "true" : "false", (unsigned long long)r.records,
           (unsigned long long)r.checkpoints, (unsigned long long)r.head, hh, (unsigned long long)r.erased,
           (unsigned long long)r.keys_missing, (unsigned long long)r.keys_corrupt, have_bk ? "true" : "false",
           have_master && payloads ? "true" : "false", dt);
    printf(",\"batch_signatures\":%s,\"batches\":%llu,\"signatures\":%llu,\"signatures_unchecked\":%llu,"
           "\"replaced_key\":%llu,\"directories\":%llu,\"erasure_events\":%llu",
           r.sigs_checked ? "true" : "false", (unsigned long long)r.batches, (unsigned long long)r.signatures,
           (unsigned long long)r.sigs_unchecked, (unsigned long long)r.sigs_replaced_key,
           (unsigned long long)r.directories, (unsigned long long)r.erasure_events);
    if (rc == SCHAKEL_ECORRUPT) printf(",\"bad_seq\":%llu", (unsigned long long)r.bad_seq);
    else if (kept_bad) printf(",\"bad_seq\":%llu", (unsigned long long)kept_bad);
    if (kept) printf(",\"kept_checkpoints\":%llu", (unsigned long long)kept_ok);
    printf("}\n");
    (void)fflush(stdout); /* the summary before what recording the look may say */
    audit_access_t a = {
        .command = "audit_verify", .purpose = purpose, .from_seq = r.head ? 1 : 0, .to_seq = r.head};
    SCHAKEL_DROP(audit_access_record_offline("audit verify", &c, dir, &a)); /* it says when not */
    if (kept_rc) return kept_rc;
    return verify_status(rc, &r);
}
