/* The consent policy: the file (data, not law) that says what happens to
 * an event for which no legal basis and no consent holds, hold or deny,
 * and how long a hold lasts. Read once when the engine is made; its hash,
 * with RULES_VERSION, goes into every decision (policy_version), so that
 * a decision names the rules and the policy it was made under. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_impl.h"
#include "error.h"

static int fallback_parse(const char *s)
{
    if (!s) return 0;
    if (!strcmp(s, "hold")) return SCHAKEL_OUTCOME(HOLD);
    if (!strcmp(s, "deny")) return SCHAKEL_OUTCOME(DENY);
    return 0;
}

/* "notice" told a routed recipient without consent that the sender had a
 * concern; that is not what the verwijsindex allows (it tells only
 * signallers, of each other), so a policy that still says so is refused
 * with what to write instead. key is "*" or a known event type. */
static int notice_refused(const char *key, const json_t *v, char *why)
{
    const char *s = json_string_value(v);
    if (!s || strcmp(s, "notice") != 0) return 0;
    return schakel_fail(why, SCHAKEL_ECONFIG,
                        "consent policy: without_consent.%s: \"notice\" is no longer a policy value: "
                        "signals now go to the match index (the verwijsindex tells two or more "
                        "organisations that signal about the same child of each other, on no "
                        "policy); write \"hold\" or \"deny\"",
                        key);
}

schakel_consent_t *schakel_consent_new(const char *org_id, const char *text, size_t len, char *why)
{
    schakel_consent_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->org, sizeof c->org, "%s", org_id);
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    json_t *days = json_object_get(doc, "hold_days"), *wc = json_object_get(doc, "without_consent");
    if (!doc) {
        schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: line %d: %s", err.line, err.text);
        goto fail;
    }
    if (!json_is_integer(days) || json_integer_value(days) < 1 || json_integer_value(days) > 366) {
        schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: hold_days must be 1 to 366");
        goto fail;
    }
    c->hold_ms = json_integer_value(days) * 86400000LL;
    int def = fallback_parse(json_string_value(json_object_get(wc, "*")));
    if (json_is_object(wc) && notice_refused("*", json_object_get(wc, "*"), why)) goto fail;
    if (!json_is_object(wc) || !def) {
        schakel_fail(why, SCHAKEL_ECONFIG,
                     "consent policy: without_consent must be an object with "
                     "\"*\": \"hold\" or \"deny\"");
        goto fail;
    }
    memset(c->fallback, def, sizeof c->fallback);
    const char *key;
    json_t *v;
    json_object_foreach(wc, key, v) {
        if (!strcmp(key, "*")) continue;
        int t = schakel_event_type_parse(key), f = fallback_parse(json_string_value(v));
        if (t > 0 && t < SCHAKEL_EVENT_TYPE_LIMIT && notice_refused(key, v, why)) goto fail;
        if (t <= 0 || t >= SCHAKEL_EVENT_TYPE_LIMIT || !f) {
            schakel_fail(why, SCHAKEL_ECONFIG,
                         "consent policy: without_consent.%s: an event type "
                         "with \"hold\" or \"deny\"",
                         key);
            goto fail;
        }
        c->fallback[t] = (uint8_t)f;
    }
    json_object_foreach(doc, key, v) {
        if (strcmp(key, "version") && strcmp(key, "hold_days") && strcmp(key, "without_consent")) {
            schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: unknown field \"%s\"", key);
            goto fail;
        }
    }
    schakel_sha256_t h;
    schakel_sha256_init(&h);
    schakel_sha256_update(&h, RULES_VERSION, sizeof RULES_VERSION);
    schakel_sha256_update(&h, text, len);
    schakel_sha256_final(&h, c->policy);
    json_decref(doc);
    return c;
fail:
    json_decref(doc);
    schakel_consent_destroy(&c);
    return NULL;
}

void schakel_consent_destroy(schakel_consent_t **self_p)
{
    schakel_consent_t *c = *self_p;
    if (!c) return;
    schakel_directory_destroy(&c->dir);
    consent_cache_free(c);
    schakel_envelope_free(c->read_owned);
    free(c);
    *self_p = NULL;
}

int schakel_consent_install(void *engine, const char *text, size_t len, char *why)
{
    schakel_consent_t *c = engine, *n = schakel_consent_new(c->org, text, len, why);
    if (!n) return SCHAKEL_ECONFIG;
    memcpy(c->policy, n->policy, sizeof c->policy);
    memcpy(c->fallback, n->fallback, sizeof c->fallback);
    c->hold_ms = n->hold_ms;
    schakel_consent_destroy(&n);
    return 0;
}

const uint8_t *schakel_consent_policy(const schakel_consent_t *c)
{
    return c->policy;
}

const char *schakel_consent_default_policy(void)
{
    return "{\n"
           "  \"version\": 1,\n"
           "  \"hold_days\": 20,\n"
           "  \"without_consent\": {\n"
           "    \"signal\": \"hold\",\n"
           "    \"referral\": \"hold\",\n"
           "    \"*\": \"hold\"\n"
           "  }\n"
           "}\n";
}
