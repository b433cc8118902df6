/* schakel audit subject: one child's history across every organisation,
 * read from the log as svc-audit (stream all): which organisation sent
 * which kind of information, to whom, when and on which ground (the
 * routing and consent decisions about each event), what was held or
 * denied, and every recorded look at the child's records (audit_access).
 * The look itself is recorded before anything is shown: no look without a
 * record. --bsn turns a BSN into the pseudonym here, with the region key;
 * the BSN is not sent, printed or logged. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "audit_access.h"
#include "error.h"
#include "fileio.h"
#include "json.h"
#include "mapping.h"
#include "subject.h"
#include "tool.h"

static const char usage[] = "usage: schakel audit subject [--node DIR] [--as ORG] (--subject PSEUDONYM | "
                            "--bsn BSN|- --region-key FILE)\n"
                            "                             --purpose TEXT [--html FILE]\n"
                            "\n"
                            "One child's history across every organisation, from the log: every event\n"
                            "about the child (which organisation sent which kind of information, when),\n"
                            "whom it was routed to and each consent decision (delivered, notice only,\n"
                            "held, denied, expired) with its consent or legal basis, and every recorded\n"
                            "look at the child's records (audit_access). Prints JSON on standard output;\n"
                            "--html FILE also writes a printable report in Dutch for the family.\n"
                            "\n"
                            "  --subject PSEUDONYM  the child's pseudonym (64 lower-case hex characters)\n"
                            "  --bsn BSN|-          the child's BSN (- reads it from standard input, which\n"
                            "                       keeps it out of the process list); made into the\n"
                            "                       pseudonym here with --region-key FILE, never sent,\n"
                            "                       printed or logged\n"
                            "  --purpose TEXT       why you look (a request or case number; no personal\n"
                            "                       data): required, recorded on the log with the look\n"
                            "  --html FILE          also write the report for the family to FILE\n"
                            "\n"
                            "Reads the log as ORG (default svc-audit: read_all, and may publish\n"
                            "audit_access). The look is recorded on the log before anything is shown.\n"
                            "Exit status: 0 when events about the child were found; 1 when none were\n"
                            "(the JSON still lists earlier looks); 2 when an argument is wrong; 3 when\n"
                            "the broker does not answer, the log cannot be read whole, or the look\n"
                            "could not be recorded (then nothing is shown).\n";

/* The child's pseudonym from --subject, or from --bsn with the region key.
 * Returns 0 or 2 (said on stderr; the BSN is never in a message). */
static int pseudonym(const char *subject, const char *bsn_arg, const char *key_file, char out[65])
{
    if (subject && bsn_arg) {
        fprintf(stderr, "schakel audit subject: give --subject or --bsn, not both\n");
        return 2;
    }
    if (subject) {
        int ok = strlen(subject) == 64;
        for (size_t i = 0; ok && i < 64; i++)
            ok = (subject[i] >= '0' && subject[i] <= '9') || (subject[i] >= 'a' && subject[i] <= 'f');
        if (!ok) {
            fprintf(stderr,
                    "schakel audit subject: --subject: a pseudonym is 64 lower-case hex characters\n");
            return 2;
        }
        memcpy(out, subject, 65);
        return 0;
    }
    if (!bsn_arg) {
        fprintf(stderr, "schakel audit subject: say which child: --subject PSEUDONYM, or --bsn BSN with "
                        "--region-key FILE\n");
        return 2;
    }
    if (!key_file) {
        fprintf(stderr, "schakel audit subject: --bsn needs --region-key FILE (the region's pseudonym key, "
                        "as the adapters have it) to make the pseudonym\n");
        return 2;
    }
    char bsn[32] = "";
    if (!strcmp(bsn_arg, "-")) {
        if (!fgets(bsn, sizeof bsn, stdin)) bsn[0] = 0;
        bsn[strcspn(bsn, "\r\n")] = 0;
    } else {
        snprintf(bsn, sizeof bsn, "%.31s", bsn_arg);
        memset((char *)bsn_arg, 'x', strlen(bsn_arg)); /* out of the process list from now on */
    }
    uint8_t key[SCHAKEL_REGION_KEY_LEN];
    char why[SCHAKEL_ERRLEN] = "";
    int rc = 2;
    if (!schakel_bsn_valid(bsn))
        fprintf(stderr, "schakel audit subject: --bsn: not a valid BSN (8 or 9 digits that pass the "
                        "elfproef)\n");
    else if (schakel_secret_file(key_file, key, sizeof key, 0, NULL, why) != 0)
        fprintf(stderr, "schakel audit subject: --region-key %s: %s\n", key_file, why);
    else if (schakel_bsn_pseudonym(key, bsn, out) != 0)
        fprintf(stderr, "schakel audit subject: the pseudonym could not be made\n");
    else rc = 0;
    memset(bsn, 0, sizeof bsn);
    memset(key, 0, sizeof key);
    return rc;
}

static void on_record(void *arg, const Schakel__V1__Delivered *d)
{
    subject_history_add(arg, d);
}

int cmd_subject(int argc, char **argv)
{
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    const char *subject = NULL, *bsn = NULL, *key_file = NULL, *purpose = NULL, *html = NULL;
    schakel_flag_t flags[] = {
        SCHAKEL_CONN_FLAGS(&c),
        SCHAKEL_FLAG_S("--subject", "PSEUDONYM", &subject),
        SCHAKEL_FLAG_S("--bsn", "BSN", &bsn),
        SCHAKEL_FLAG_S("--region-key", "FILE", &key_file),
        SCHAKEL_FLAG_S("--purpose", "TEXT", &purpose),
        SCHAKEL_FLAG_S("--html", "FILE", &html),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("audit subject", flags, argc, argv, 2, usage, schakel_conn_help, usage);
    if (status >= 0) return status;
    char p[65];
    if ((status = pseudonym(subject, bsn, key_file, p))) return status;
    if ((status = audit_purpose_check("audit subject", purpose, 1))) return status;
    if (!c.as_org[0]) snprintf(c.as_org, sizeof c.as_org, "svc-audit");
    if (tool_conn_finish(&c, "audit subject") != 0) return 2;
    char why[SCHAKEL_ERRLEN] = "";
    uint64_t head = 0;
    void *ctx = zmq_ctx_new();
    subject_history_t *h = NULL;
    status = 3;
    if (audit_broker_answers(ctx, &c, &head, why) != 0) {
        fprintf(stderr,
                "schakel audit subject: the broker at %s does not answer (%s): start the node, or give "
                "--node DIR or --endpoint of the running one\n",
                c.endpoint, why[0] ? why : "no reply");
        goto out;
    }
    h = subject_history_new(p);
    if (!h) {
        fprintf(stderr, "schakel audit subject: out of memory\n");
        goto out;
    }
    int rc = audit_read_stream(ctx, &c, "all", 1, (size_t)-1, on_record, h, why);
    if (rc || subject_history_last_seq(h) < head) {
        fprintf(stderr,
                "schakel audit subject: the log could not be read whole (%s; read up to seq %llu of "
                "%llu): nothing is shown; run it again\n",
                rc ? (why[0] ? why : schakel_strerror(rc)) : "it stopped early",
                (unsigned long long)subject_history_last_seq(h), (unsigned long long)head);
        goto out;
    }
    audit_access_t a = {.command = "audit_subject",
                        .subject = p,
                        .purpose = purpose,
                        .from_seq = 1,
                        .to_seq = subject_history_last_seq(h)};
    if (audit_access_record(ctx, &c, &a, why) != 0) {
        fprintf(stderr,
                "schakel audit subject: this look could not be recorded on the log (%s): nothing is "
                "shown, as every look at a child's records must be on the log\n",
                why);
        goto out;
    }
    schakel_directory_t *dir = NULL;
    char path[SCHAKEL_PATH_MAX];
    if (c.node_dir[0] && schakel_path_join(path, sizeof path, c.node_dir, "directory.json", NULL) == 0)
        dir = schakel_directory_load(path, NULL); /* names for the report; ids without it */
    json_t *out = subject_history_json(h);
    char *text = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
    if (!text) {
        fprintf(stderr, "schakel audit subject: out of memory\n");
    } else {
        printf("%s\n", text);
        status = subject_history_found(h) || subject_history_erased(h) ? 0 : 1;
        if (html && subject_html_write(out, dir, html, why) != 0) {
            fprintf(stderr, "schakel audit subject: --html %s: %s\n", html, why);
            status = 2;
        }
        if (status == 1)
            fprintf(stderr,
                    "schakel audit subject: no events about this child on the log (check the pseudonym, "
                    "or the BSN and the region key: another region's key makes another pseudonym)\n");
    }
    free(text);
    json_decref(out);
    schakel_directory_destroy(&dir);
out:
    subject_history_destroy(&h);
    schakel_keys_wipe(&c.keys);
    schakel_wire_ctx_term(ctx);
    return status;
}
