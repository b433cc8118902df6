/* schakel loops: where referrals stand, from the feedback service's state
 * in a node directory. By referral id and the referrer's own case
 * reference, never by name; figures are aggregates with small cells
 * suppressed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "directory.h"
#include "fileio.h"
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
    "as \"<5\" and no median under five loops: small numbers identify children.\n"
    "\n"
    "Exit status: 0 with the answer; 1 when there is no loop with that referral\n"
    "id (of ORG) or no feedback state in DIR; 2 when an argument is wrong or,\n"
    "with --node, ORG is not in the node's directory.\n";

/* --org ORG that is not in the node's directory is a typing error, not
 * an organisation without loops: an empty list would hide it. */
static int org_known(const char *node, const char *org)
{
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    if (schakel_path_join(path, sizeof path, node, "directory.json", NULL) != 0) return 0;
    schakel_directory_t *d = schakel_directory_load(path, why);
    if (!d) return 0; /* no directory to check against: the state answers */
    int known = schakel_directory_by_id(d, org) != NULL;
    schakel_directory_destroy(&d);
    if (known) return 0;
    fprintf(stderr,
            "schakel loops: --org %s is not in the directory of %s: give an organisation id from it\n", org,
            node);
    return 2;
}

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
    if (org && node && (rc = org_known(node, org))) return rc;
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
    if (!out && referral) {
        fprintf(stderr,
                "schakel loops: %s%s%s: check the id (the referral_id of the referral event, 32 hex "
                "characters; an event id or case reference is not one), or list the open loops "
                "with schakel loops --node DIR\n",
                why, org ? " of " : "", org ? org : "");
        return 1;
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
