/* The feedback policy: the region's deadlines in working days, per kind
 * of loop and kind of receiver, and the days after which a late receiver
 * is escalated, a waiting list without bridging care is raised, the family
 * must have been told, and a handover or MAZL request is chased
 * (feedback.h shows the file). Read once, when the engine is made; the
 * default is what a fresh node starts with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "feedback_impl.h"

static int parse_deadline(json_t *o, deadline_t *d, const char *where, char *why)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int n = json_is_integer(v) ? (int)json_integer_value(v) : -1;
        if (n < 0 || n > 100)
            return schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: %s.%s: 0 to 100 working days", where,
                                k);
        if (!strcmp(k, "received")) d->received = n;
        else if (!strcmp(k, "first_contact")) d->first_contact = n;
        else return schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: %s: unknown step \"%s\"", where, k);
    }
    return 0;
}

schakel_feedback_t *schakel_feedback_new(const char *org_id, const char *text, size_t len, char *why)
{
    schakel_feedback_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    snprintf(f->org, sizeof f->org, "%s", org_id);
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    if (!doc) {
        schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: line %d: %s", err.line, err.text);
        goto fail;
    }
    f->escalate_after = 2;
    f->bridging_within = 5;
    f->family_within = 5;
    f->handover_within = 10;
    f->mazl_within = 10;
    const char *names[ORIGINS] = {"referral", "signal"};
    json_t *dl = json_object_get(doc, "deadlines");
    for (int o = 0; o < ORIGINS; o++) {
        for (int k = 0; k < SCHAKEL_ORG_KINDS; k++) f->deadlines[o][k] = (deadline_t){2, 5};
        json_t *per = json_object_get(dl, names[o]);
        if (!per) continue;
        json_t *all = json_object_get(per, "*");
        char where[64];
        snprintf(where, sizeof where, "deadlines.%s.*", names[o]);
        for (int k = 0; all && k < SCHAKEL_ORG_KINDS; k++)
            if (parse_deadline(all, &f->deadlines[o][k], where, why)) goto fail;
        const char *key;
        json_t *v;
        json_object_foreach(per, key, v) {
            if (!strcmp(key, "*")) continue;
            int kind = schakel_org_kind_parse(key);
            snprintf(where, sizeof where, "deadlines.%s.%s", names[o], key);
            if (kind <= 0) {
                schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: %s: not an organisation kind", where);
                goto fail;
            }
            if (parse_deadline(v, &f->deadlines[o][kind], where, why)) goto fail;
        }
    }
    json_t *e = json_object_get(doc, "escalate_after"), *b = json_object_get(doc, "bridging_within");
    if (e) f->escalate_after = json_is_integer(e) ? (int)json_integer_value(e) : -1;
    if (b) f->bridging_within = json_is_integer(b) ? (int)json_integer_value(b) : -1;
    if (f->escalate_after < 0 || f->escalate_after > 100 || f->bridging_within < 0 ||
        f->bridging_within > 100) {
        schakel_fail(why, SCHAKEL_ECONFIG,
                     "feedback policy: escalate_after and bridging_within: 0 to 100 working days");
        goto fail;
    }
    json_t *fw = json_object_get(doc, "family_informed_within");
    if (fw) f->family_within = json_is_integer(fw) ? (int)json_integer_value(fw) : -1;
    if (f->family_within < 0 || f->family_within > 100) {
        schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: family_informed_within: 0 to 100 working days");
        goto fail;
    }
    json_t *h = json_object_get(doc, "handover_within"), *m = json_object_get(doc, "mazl_advice_within");
    if (h) f->handover_within = json_is_integer(h) ? (int)json_integer_value(h) : -1;
    if (m) f->mazl_within = json_is_integer(m) ? (int)json_integer_value(m) : -1;
    if (f->handover_within < 0 || f->handover_within > 100 || f->mazl_within < 0 || f->mazl_within > 100) {
        schakel_fail(why, SCHAKEL_ECONFIG,
                     "feedback policy: handover_within and mazl_advice_within: 0 to 100 working days");
        goto fail;
    }
    json_decref(doc);
    return f;
fail:
    json_decref(doc);
    schakel_feedback_destroy(&f);
    return NULL;
}

void schakel_feedback_destroy(schakel_feedback_t **self_p)
{
    schakel_feedback_t *f = *self_p;
    if (!f) return;
    schakel_directory_destroy(&f->dir);
    free(f);
    *self_p = NULL;
}

int schakel_feedback_install(void *engine, const char *text, size_t len, char *why)
{
    schakel_feedback_t *f = engine, *n = schakel_feedback_new(f->org, text, len, why);
    if (!n) return SCHAKEL_ECONFIG;
    memcpy(f->deadlines, n->deadlines, sizeof f->deadlines);
    f->escalate_after = n->escalate_after;
    f->bridging_within = n->bridging_within;
    f->family_within = n->family_within;
    f->handover_within = n->handover_within;
    f->mazl_within = n->mazl_within;
    schakel_feedback_destroy(&n);
    return 0;
}

const char *schakel_feedback_default_policy(void)
{
    return "{\n"
           "  \"version\": 1,\n"
           "  \"deadlines\": {\n"
           "    \"referral\": {\"*\": {\"received\": 2, \"first_contact\": 5}},\n"
           "    \"signal\": {\"*\": {\"received\": 2, \"first_contact\": 5}}\n"
           "  },\n"
           "  \"escalate_after\": 2,\n"
           "  \"bridging_within\": 5,\n"
           "  \"family_informed_within\": 5,\n"
           "  \"handover_within\": 10,\n"
           "  \"mazl_advice_within\": 10\n"
           "}\n";
}
