/* What every subcommand does with its flags and connection settings: the
 * parsing is lib/flags.c and lib/conn.c (which never print); the saying
 * is here, the same for every command. */
#include <stdio.h>

#include "error.h"
#include "fileio.h"
#include "tool.h"

int tool_flags(const char *cmd, schakel_flag_t *t, int argc, char **argv, int first, const char *help,
               const char *extra, const char *usage)
{
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_flags_parse(t, argc, argv, first, why);
    if (rc == SCHAKEL_FLAGS_HELP) {
        printf("%s%s", help, extra ? extra : "");
        return 0;
    }
    if (rc) {
        fprintf(stderr, "schakel %s: %s\n%s%s", cmd, why, usage ? "\n" : "", usage ? usage : "");
        return 2;
    }
    return -1;
}

int tool_path(const char *cmd, char *out, size_t cap, const char *dir, const char *name)
{
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_path_join(out, cap, dir, name, why) == 0) return 0;
    fprintf(stderr, "schakel %s: %s\n", cmd, why);
    return 2;
}

int tool_conn_finish(schakel_conn_t *c, const char *cmd)
{
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_conn_finish(c, why) == 0) return 0;
    fprintf(stderr, "schakel %s: %s\n", cmd, why);
    return 2;
}
