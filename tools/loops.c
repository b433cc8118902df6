/* schakel loops: where referrals stand, from the feedback service's state
 * in a node directory. By referral id and the referrer's own case
 * reference, never by name; figures are aggregates with small cells
 * suppressed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "error.h"
#include "feedback.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel loops --node DIR [--org ORG]          open loops (of ORG), overdue marked\n"
    "       schakel loops --node DIR --referral ID [--org ORG]  one loop (of ORG) and its history\n"
    "       schakel loops --node DIR --figures            aggregates per receiving organisation\n"
    "\n"
    "Reads the feedback service's state in DIR/services/feedback (or --state DIR).\n"
    "Prints JSON. Loops are named by referral id, never by case reference (the\n"
    "service keeps none: keep your own pairs). Figures show counts from 1 to 4\n"
    "as \"<5\" and no median under five loops: small numbers identify children.\n";

int cmd_loops(int argc, char **argv)
{
    const char *node = NULL, *org = NULL, *referral = NULL, *state = NULL;
    int figures = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--node", "DIR", &node),      SCHAKEL_FLAG_S("--state", "DIR", &state),
        SCHAKEL_FLAG_S("--org", "ORG", &org),        SCHAKEL_FLAG_S("--referral", "ID", &referral),
        SCHAKEL_FLAG_B("--figures", NULL, &figures), SCHAKEL_FLAGS_END,
    };
    int rc = tool_flags("loops", flags, argc, argv, 1, usage, NULL, usage);
    if (rc >= 0) return rc;
    char dir[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    if (state || node) {
        if ((rc =
                 tool_path("loops", dir, sizeof dir, state ? state : node, state ? "" : "services/feedback")))
            return rc;
    } else {
        fprintf(stderr, "schakel loops: give --node DIR (or --state DIR)\n");
        return 2;
    }
    json_t *out;
    if (referral) {
        uint8_t id[16];
        if (schakel_hex_decode(referral, id, 16) != 0) {
            fprintf(stderr, "schakel loops: --referral wants 32 hex characters\n");
            return 2;
        }
        out = schakel_feedback_loop(dir, id, org, why);
    } else if (figures) {
        out = schakel_feedback_figures(dir, why);
    } else {
        out = schakel_feedback_loops(dir, org, why);
    }
    if (!out) {
        fprintf(stderr, "schakel loops: %s\n", why);
        return 1;
    }
    char *text = json_dumps(out, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(out);
    return 0;
}
