/* schakel log copy: a node's log from its LMDB file onto a replicated
 * JetStream stream, or back (docs/scale-out.md, "Moving a log"). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "error.h"
#include "store_jetstream.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel log copy --from DIR --to nats://HOST:PORT[,HOST:PORT...][/REGION]\n"
    "       schakel log copy --from nats://HOST:PORT[,HOST:PORT...][/REGION] --to DIR\n"
    "\n"
    "Copies a node's log (DIR/log; stop its broker first) onto the region's\n"
    "replicated stream, or the stream into a new log in DIR/log: every record\n"
    "at its own seq with its stream entries, batch proof, wrapped data key and\n"
    "checkpoint, so that `schakel audit verify --data` gives the same head and\n"
    "head hash on both. The target must be empty: a stream that holds records,\n"
    "or a DIR/log that does, is refused. DIR/master.key is not copied: the\n"
    "payloads open only with the master key of the node that wrote them.\n"
    "Prints {\"copied\":N,\"head\":N,\"head_hash\":\"...\"}. Exit status: 0 copied,\n"
    "1 not copied (the reason on stderr), 2 wrong arguments.\n";

static int is_nats(const char *s)
{
    return strncmp(s, "nats://", 7) == 0;
}

static int copy(const char *from, const char *to)
{
    const char *dir = is_nats(from) ? to : from;
    char log[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    if (tool_path("log copy", log, sizeof log, dir, "log") != 0) return 2;
    schakel_head_t head;
    int rc;
    if (is_nats(to)) {
        struct stat sb;
        char data[SCHAKEL_PATH_MAX];
        if (tool_path("log copy", data, sizeof data, log, "data.mdb") != 0) return 2;
        if (stat(data, &sb) != 0) {
            fprintf(stderr, "schakel log copy: %s: no log there (%s)\n", log, strerror(errno));
            return 1;
        }
        rc = schakel_js_copy_to_stream(log, to, &head, why);
    } else {
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "schakel log copy: cannot make %s: %s\n", dir, strerror(errno));
            return 1;
        }
        rc = schakel_js_copy_from_stream(from, log, &head, why);
    }
    if (rc) {
        fprintf(stderr, "schakel log copy: %s\n", why[0] ? why : schakel_strerror(rc));
        return rc == SCHAKEL_EINVAL ? 2 : 1;
    }
    char hh[65];
    schakel_hex_encode(head.hash, 32, hh);
    printf("{\"copied\":%llu,\"head\":%llu,\"head_hash\":\"%s\"}\n", (unsigned long long)head.seq,
           (unsigned long long)head.seq, hh);
    char key[SCHAKEL_PATH_MAX];
    if (!is_nats(to) && tool_path("log copy", key, sizeof key, dir, "master.key") == 0 &&
        access(key, F_OK) != 0)
        fprintf(stderr,
                "schakel log copy: %s has no master.key: copy the one of the node that wrote the log there, "
                "or no payload opens\n",
                dir);
    return 0;
}

int cmd_log(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "copy") != 0) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fprintf(help ? stdout : stderr, "%s%s", help ? "" : "schakel log: give a command: copy\n\n", usage);
        return help ? 0 : 2;
    }
    const char *from = NULL, *to = NULL;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--from", "DIR|nats://...", &from),
        SCHAKEL_FLAG_S("--to", "DIR|nats://...", &to),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("log copy", flags, argc, argv, 2, usage, NULL, usage);
    if (status >= 0) return status;
    if (!from || !to || !from[0] || !to[0]) {
        fprintf(stderr, "schakel log copy: give --from and --to\n\n%s", usage);
        return 2;
    }
    if (is_nats(from) == is_nats(to)) {
        fprintf(stderr, "schakel log copy: one of --from and --to is a directory, the other nats://...\n\n%s",
                usage);
        return 2;
    }
    schakel_js_url_t u;
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_js_url_parse(is_nats(from) ? from : to, &u, why) != 0) {
        fprintf(stderr, "schakel log copy: %s %s\n", is_nats(from) ? "--from:" : "--to:", why);
        return 2;
    }
    return copy(from, to);
}
