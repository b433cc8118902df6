/* schakel indicators: the monitoring figures per school, district and
 * month from a node's log (lib/indicators.c), as JSON or CSV on standard
 * output. Aggregates only, small cells suppressed. */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "indicators.h"
#include "tool.h"

static const char usage[] = "usage: schakel indicators --node DIR [--csv]\n"
                            "\n"
                            "The monitoring figures per school (BRINVEST), district and month, from the\n"
                            "log of the node in DIR (read-only; the node may run): signals, intakes by\n"
                            "the kind of organisation, consultations, referrals by receiver kind,\n"
                            "referrals answered within the deadline, the median of working days to first\n"
                            "contact, TLVs by type, thuiszitters by reason and duration band\n"
                            "(docs/operations.md, \"Indicators\"). JSON, or CSV with --csv. Counts from\n"
                            "1 to 4 are shown as \"<5\" and there is no median under five cases: small\n"
                            "numbers identify children. No pseudonym, case reference or event id.\n"
                            "\n"
                            "Exit status: 0 with the figures; 1 when the log cannot be read; 2 when an\n"
                            "argument is wrong.\n";

int cmd_indicators(int argc, char **argv)
{
    const char *node = NULL;
    int csv = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--node", "DIR", &node),
        SCHAKEL_FLAG_B("--csv", NULL, &csv),
        SCHAKEL_FLAGS_END,
    };
    int rc = tool_flags("indicators", flags, argc, argv, 1, usage, NULL, usage);
    if (rc >= 0) return rc;
    if (!node) {
        fprintf(stderr, "schakel indicators: --node DIR is required\n");
        return 2;
    }
    char *out = NULL, why[SCHAKEL_ERRLEN] = "";
    size_t len = 0;
    if (schakel_indicators_render(node, csv ? "csv" : "json", &out, &len, why) != 0) {
        fprintf(stderr, "schakel indicators: %s\n", why);
        return 1;
    }
    fwrite(out, 1, len, stdout);
    if (len && out[len - 1] != '\n') fputc('\n', stdout);
    free(out);
    return 0;
}
