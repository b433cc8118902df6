/* The routing rules file (DIR/routing.json) with hostile input: each
 * document must be refused with a reason that names the rule and the
 * field, never half-loaded. The rules decide who learns about a child, so
 * a rule that cannot mean what it says is an error, not a no-op. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "routing.h"

static void refused(const char *text, const char *want)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_routing_t *r = schakel_routing_new("svc-routing", text, strlen(text), why);
    if (r) {
        schakel_routing_destroy(&r);
        fail_msg("accepted %s", text);
    }
    if (!strstr(why, want)) fail_msg("reason \"%s\" does not say \"%s\" (%s)", why, want, text);
}

static void the_default_rules_load(void **state)
{
    (void)state;
    const char *text = schakel_routing_default_rules();
    char why[SCHAKEL_ERRLEN] = "";
    schakel_routing_t *r = schakel_routing_new("svc-routing", text, strlen(text), why);
    if (!r) fail_msg("default rules refused: %s", why);
    schakel_routing_destroy(&r);
    /* the publisher-named targets of the new flows take kinds */
    const char *named = "{\"rules\": [{\"id\": \"m\", \"on\": [\"meeting\"], \"to\": \"participants\", "
                        "\"kinds\": [\"smw\"]}, {\"id\": \"h\", \"on\": [\"handover\"], "
                        "\"to\": \"handover_sides\", \"kinds\": [\"wijkteam\"]}]}";
    r = schakel_routing_new("svc-routing", named, strlen(named), why);
    if (!r) fail_msg("participants/handover_sides with kinds refused: %s", why);
    schakel_routing_destroy(&r);
}

static void hostile_rules_are_refused(void **state)
{
    (void)state;
    const struct {
        const char *text, *want;
    } cases[] = {
        {"", "routing rules: line"},
        {"[]", "not a JSON object"},
        {"{\"rules\": {}}", "\"rules\" must be a list"},
        {"{\"version\": 1, \"rules\": [], \"rules\": []}", "duplicate object key"},
        {"{\"version\": \"1\", \"rules\": []}", "version: a positive whole number"},
        {"{\"version\": 1, \"rules\": [], \"default\": \"all\"}", "unknown field \"default\""},
        {"{\"rules\": [{\"on\": [\"*\"], \"to\": \"addressees\"}]}", "rules[0].id"},
        {"{\"rules\": [{\"id\": \"a\\u0001b\", \"on\": [\"*\"], \"to\": \"addressees\"}]}", "rules[0].id"},
        {"{\"rules\": [{\"id\": \"a\\u0000b\", \"on\": [\"*\"], \"to\": \"addressees\"}]}",
         "routing rules: line"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"]}]}", "rules[0] (x).to: missing"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [], \"to\": \"school\"}]}", "rules[0] (x).on: a list"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"gossip\"], \"to\": \"school\"}]}",
         "unknown event type \"gossip\""},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"everyone\"}]}",
         "unknown target \"everyone\""},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"school\", \"kinds\": [\"smw\"]}]}",
         "rules[0] (x).kinds: only for the targets"},
        /* the loop's organisations and a MAZL's school come from routing's
         * state, never from the publisher: nothing for kinds to limit */
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"case_lead\"], \"to\": \"referral_loop\", \"kinds\": "
         "[\"smw\"]}]}",
         "rules[0] (x).kinds: only for the targets"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"mazl_advice\"], \"to\": \"requester\", \"kinds\": "
         "[\"school\"]}]}",
         "rules[0] (x).kinds: only for the targets"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"meeting\"], \"to\": \"participant\"}]}",
         "unknown target \"participant\""},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"addressees\", \"kinds\": "
         "[\"admin\"]}]}",
         "rules[0] (x).kinds[0]: not an organisation kind"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"field\"}]}", "needs \"field\""},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"field\", \"field\": \"a.b\"}]}",
         "rules[0] (x).field: a body field name"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"school\", \"when\": {\"a\": {}}}]}",
         "rules[0] (x).when: each field equals"},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"school\", \"who\": 1}]}",
         "rules[0] (x): unknown field \"who\""},
        {"{\"rules\": [{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"school\"}, "
         "{\"id\": \"x\", \"on\": [\"signal\"], \"to\": \"school\"}]}",
         "rules[1]: id x is used twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) refused(cases[i].text, cases[i].want);
    /* a rule id of 64 characters does not fit a decision's rule_id */
    char big[200];
    snprintf(big, sizeof big, "{\"rules\": [{\"id\": \"%064d\", \"on\": [\"*\"], \"to\": \"school\"}]}", 0);
    refused(big, "rules[0].id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_default_rules_load),
        cmocka_unit_test(hostile_rules_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
