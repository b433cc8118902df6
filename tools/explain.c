/* schakel explain: for one event, what each organisation received, in
 * which form, and why: the routing decision and every consent decision
 * about it, read from the log (stream about/<event id>). Event ids are
 * scoped to their publisher, so several organisations' events may share
 * one id: the decisions are grouped by the event they name (about_seq, one
 * event each), each event is shown on its own, and --org picks one
 * publisher's. The question is itself recorded on the log as an
 * audit_access event. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "client.h"
#include "clock.h"
#include "consumer.h"
#include "directory.h"
#include "error.h"
#include "json.h"
#include "audit_access.h"
#include "tool.h"
#include "wire.h"

static const char usage[] =
    "usage: schakel explain [--node DIR] [--as ORG] [--org PUBLISHER] [--json] --purpose TEXT ID\n"
    "\n"
    "ID is an event's event_id, or a referral's referral_id (32 hex characters):\n"
    "when no event has that id, the referral event that carries it is explained.\n"
    "For that event, lists every organisation\n"
    "in the directory: whether it received the event, as the event itself or\n"
    "as a notice only, and why: the routing rule, the consent decision with\n"
    "its consent id or legal basis, the policy version, and whether the family\n"
    "must be told. Reads the log as ORG (default svc-audit, which needs the\n"
    "read_all right) and records the question, with --purpose TEXT (required:\n"
    "why you look, e.g. a request or case number; no personal data), as an\n"
    "audit_access event on the log before it shows anything.\n"
    "Event ids are scoped to the organisation that published them: when several\n"
    "organisations used ID, each of their events is listed on its own\n"
    "(--json: {\"event_id\", \"events\": [...]}); --org PUBLISHER shows only the\n"
    "event PUBLISHER published.\n"
    "\n"
    "Exit status: 0 when the event was found with decisions about it; 1 when\n"
    "no event with ID and no referral with ID (of PUBLISHER) has decisions on\n"
    "the log (the id is unknown, is a case reference, or the routing service\n"
    "has not decided yet); 2 when an argument is wrong; 3\n"
    "when the broker does not answer, the log cannot be read, or the look could\n"
    "not be recorded (then nothing is shown).\n";

typedef struct {
    uint64_t seq;  /* the event's seq: what every decision here is about */
    json_t *orgs;  /* org id -> {"routed_by", "steps": [...]} */
    json_t *event; /* the event itself (JSON), when it could be read */
    char subject[65];
    char source[SCHAKEL_ID_MAX];
    char event_hex[33]; /* its event id, when it could be read */
    json_t *routing;    /* the routing decision */
} explain_t;

static json_t *org_entry(explain_t *x, const char *org)
{
    json_t *o = json_object_get(x->orgs, org);
    if (!o) {
        o = json_pack("{s:s, s:s, s:[]}", "org", org, "received", "nothing", "steps");
        json_object_set_new(x->orgs, org, o);
    }
    return o;
}

static const char *outcome_name(int o)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&schakel__v1__consent_outcome__descriptor, o);
    return v ? v->name + strlen("CONSENT_OUTCOME_") : "?";
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

static void on_decision(explain_t *x, const Schakel__V1__Delivered *d, const schakel_envelope_t *e)
{
    char at[32], hex[65];
    schakel_time_format(d->recorded_at, at);
    if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) {
        const Schakel__V1__RoutingDecision *r = e->routing_decision;
        schakel_hex_encode(r->policy_version.data, r->policy_version.len > 32 ? 32 : r->policy_version.len,
                           hex);
        json_decref(x->routing);
        x->routing =
            json_pack("{s:s, s:I, s:s, s:s, s:I}", "by", e->source_org, "seq", (json_int_t)d->seq, "at", at,
                      "policy_version", hex, "directory_version", (json_int_t)r->directory_version);
        for (size_t i = 0; i < r->n_recipients; i++)
            json_object_set_new(org_entry(x, r->recipients[i]->org_id), "routed_by_rule",
                                json_string(r->recipients[i]->rule_id));
        return;
    }
    if (e->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) return;
    const Schakel__V1__ConsentDecision *c = e->consent_decision;
    char outcome[32], basis[48];
    snprintf(outcome, sizeof outcome, "%s", outcome_name(c->outcome));
    lower(outcome);
    const ProtobufCEnumValue *b =
        protobuf_c_enum_descriptor_get_value(&schakel__v1__legal_basis__descriptor, c->legal_basis);
    snprintf(basis, sizeof basis, "%s", b ? b->name + strlen("LEGAL_BASIS_") : "?");
    lower(basis);
    json_t *step =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:b}", "seq", (json_int_t)d->seq, "at", at, "outcome", outcome,
                  "rule", c->rule_id, "legal_basis", basis, "duty_to_inform", c->duty_to_inform);
    if (c->consent_id.len == 16) {
        schakel_hex_encode(c->consent_id.data, 16, hex);
        json_object_set_new(step, "consent_id", json_string(hex));
    }
    json_t *o = org_entry(x, c->recipient_org);
    json_array_append_new(json_object_get(o, "steps"), step);
    const char *received =
        c->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER       ? "event"
        : c->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY ? "notice only"
        : c->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD        ? "nothing yet (held)"
                                                                                  : "nothing";
    const char *before = json_string_value(json_object_get(o, "received"));
    if (!before || strcmp(before, "event") != 0) /* a delivery is never undone */
        json_object_set_new(o, "received", json_string(received));
    if (c->inform_org[0]) {
        json_t *inf = org_entry(x, c->inform_org);
        char what[96];
        snprintf(what, sizeof what, "told that %s got %s", c->recipient_org, outcome);
        json_array_append_new(
            json_object_get(inf, "steps"),
            json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)d->seq, "at", at, "informed", what));
    }
}

#define MAX_EVENTS 64 /* events sharing one id that explain lists */

typedef struct {
    explain_t ev[MAX_EVENTS];
    size_t n;
    int more;                  /* decisions about further events were left out */
    uint64_t want[MAX_EVENTS]; /* with n_want: only decisions about these seqs */
    size_t n_want;
} explain_all_t;

static int wanted(const explain_all_t *all, uint64_t about)
{
    for (size_t i = 0; i < all->n_want; i++)
        if (all->want[i] == about) return 1;
    return !all->n_want;
}

/* The referral events that carry one referral_id (of one publisher with
 * --org): referral ids, like event ids, are scoped to who recorded them. */
typedef struct {
    uint8_t rid[16];
    const char *publisher;
    uint64_t seq[MAX_EVENTS];
    char event_hex[MAX_EVENTS][33];
    size_t n;
} referral_scan_t;

static void referral_record(void *arg, const Schakel__V1__Delivered *d)
{
    referral_scan_t *r = arg;
    schakel_envelope_t *e = d->event.len ? schakel_envelope_decode(d->event.data, d->event.len, NULL) : NULL;
    if (e && e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL && e->referral->referral_id.len == 16 &&
        !memcmp(e->referral->referral_id.data, r->rid, 16) && e->event_id.len == 16 &&
        (!r->publisher || !strcmp(e->source_org, r->publisher)) && r->n < MAX_EVENTS) {
        r->seq[r->n] = d->seq;
        schakel_hex_encode(e->event_id.data, 16, r->event_hex[r->n]);
        r->n++;
    }
    schakel_envelope_free(e);
}

/* A decision goes to the event it names by seq: one id may be several
 * organisations' events, a seq is one event. */
static void about_record(void *arg, const Schakel__V1__Delivered *d)
{
    explain_all_t *all = arg;
    schakel_envelope_t *e = d->event.len ? schakel_envelope_decode(d->event.data, d->event.len, NULL) : NULL;
    uint64_t about =
        !e                                                                ? 0
        : e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION ? e->routing_decision->about_seq
        : e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION ? e->consent_decision->about_seq
                                                                          : 0;
    if (about && !wanted(all, about)) about = 0;
    explain_t *x = NULL;
    for (size_t i = 0; about && i < all->n && !x; i++)
        if (all->ev[i].seq == about) x = &all->ev[i];
    if (about && !x && all->n < MAX_EVENTS) {
        x = &all->ev[all->n++];
        x->seq = about;
        x->orgs = json_object();
    } else if (about && !x) {
        all->more = 1;
    }
    if (x) on_decision(x, d, e);
    schakel_envelope_free(e);
}

static void event_record(void *arg, const Schakel__V1__Delivered *d)
{
    explain_t *x = arg;
    schakel_envelope_t *e = d->event.len ? schakel_envelope_decode(d->event.data, d->event.len, NULL) : NULL;
    if (!e) {
        x->event =
            json_pack("{s:I, s:s}", "seq", (json_int_t)d->seq, "erased", "the payload's data key was erased");
        return;
    }
    char at[32];
    schakel_time_format(d->recorded_at, at);
    x->event = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)d->seq, "recorded_at", at, "type",
                         schakel_event_type_name(e->type), "source_org", e->source_org);
    snprintf(x->subject, sizeof x->subject, "%s", e->subject);
    snprintf(x->source, sizeof x->source, "%s", e->source_org);
    if (e->event_id.len == 16) schakel_hex_encode(e->event_id.data, 16, x->event_hex);
    schakel_envelope_free(e);
}

/* Puts the look on the log before anything is shown: one audit_access per
 * event found, with its child's subject (so that the child's own history
 * lists it), or one without a subject when none was found. Returns 0 or
 * the first error, with why. */
static int record_looks(void *ctx, schakel_conn_t *c, const explain_all_t *all, const char *id_hex,
                        const char *purpose, char *why)
{
    audit_access_t a = {.command = "explain", .query_ref = id_hex, .purpose = purpose, .subject = ""};
    if (!all->n) return audit_access_record(ctx, c, &a, why);
    for (size_t i = 0; i < all->n; i++) {
        a.subject = all->ev[i].subject;
        a.from_seq = a.to_seq = 0;
        int rc = audit_access_record(ctx, c, &a, why);
        if (rc) return rc;
    }
    return 0;
}

/* rid_hex: the referral id asked about, or NULL when an event id was. */
static json_t *event_json(const explain_t *x, const char *id_hex, const char *rid_hex)
{
    json_t *j = json_pack("{s:s, s:O, s:O, s:O}", "event_id", x->event_hex[0] ? x->event_hex : id_hex,
                          "event", x->event ? x->event : json_null(), "routing",
                          x->routing ? x->routing : json_null(), "organisations", x->orgs);
    if (j && rid_hex) json_object_set_new(j, "referral_id", json_string(rid_hex));
    return j;
}

static void print_text(explain_t *x, const char *id_hex, const schakel_directory_t *dir)
{
    printf("event %s", x->event_hex[0] ? x->event_hex : id_hex);
    if (x->event) {
        json_t *ev = x->event;
        if (json_object_get(ev, "type"))
            printf(": %s from %s, seq %lld, recorded %s\n", json_string_value(json_object_get(ev, "type")),
                   json_string_value(json_object_get(ev, "source_org")),
                   (long long)json_integer_value(json_object_get(ev, "seq")),
                   json_string_value(json_object_get(ev, "recorded_at")));
        else printf(": seq %lld, erased\n", (long long)json_integer_value(json_object_get(ev, "seq")));
    } else {
        printf("\n");
    }
    if (x->routing)
        printf("routed by %s at seq %lld (policy %.16s..., directory version %lld)\n\n",
               json_string_value(json_object_get(x->routing, "by")),
               (long long)json_integer_value(json_object_get(x->routing, "seq")),
               json_string_value(json_object_get(x->routing, "policy_version")),
               (long long)json_integer_value(json_object_get(x->routing, "directory_version")));
    else printf("not routed (yet)\n\n");
    printf("%-22s %-20s %s\n", "organisation", "received", "why");
    for (size_t i = 0; dir && i < schakel_directory_count(dir); i++) {
        const schakel_org_t *o = schakel_directory_at(dir, i);
        json_t *e = json_object_get(x->orgs, o->id);
        if (!strcmp(o->id, x->source)) {
            printf("%-22s %-20s %s\n", o->id, "(published it)", "");
            continue;
        }
        if (!e) {
            if (o->kind != SCHAKEL__V1__ORG_KIND__ORG_KIND_SERVICE)
                printf("%-22s %-20s %s\n", o->id, "nothing", "not routed to it");
            continue;
        }
        printf("%-22s %-20s routing rule %s\n", o->id, json_string_value(json_object_get(e, "received")),
               json_string_value(json_object_get(e, "routed_by_rule"))
                   ? json_string_value(json_object_get(e, "routed_by_rule"))
                   : "(none)");
        size_t j;
        json_t *s;
        json_array_foreach(json_object_get(e, "steps"), j, s) {
            if (json_object_get(s, "informed")) {
                printf("%-22s %-20s   seq %lld: %s\n", "", "",
                       (long long)json_integer_value(json_object_get(s, "seq")),
                       json_string_value(json_object_get(s, "informed")));
                continue;
            }
            const char *cid = json_string_value(json_object_get(s, "consent_id"));
            printf("%-22s %-20s   seq %lld: %s by %s, legal basis %s%s%s%s\n", "", "",
                   (long long)json_integer_value(json_object_get(s, "seq")),
                   json_string_value(json_object_get(s, "outcome")),
                   json_string_value(json_object_get(s, "rule")),
                   json_string_value(json_object_get(s, "legal_basis")), cid ? ", consent " : "",
                   cid ? cid : "",
                   json_is_true(json_object_get(s, "duty_to_inform")) ? ", family to be told" : "");
        }
    }
}

int cmd_explain(int argc, char **argv)
{
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    const char *id_hex = NULL, *publisher = NULL, *purpose = NULL;
    int as_json = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_CONN_FLAGS(&c),
        SCHAKEL_FLAG_B("--json", NULL, &as_json),
        SCHAKEL_FLAG_S("--org", "PUBLISHER", &publisher),
        SCHAKEL_FLAG_S("--purpose", "TEXT", &purpose),
        SCHAKEL_FLAG_A("ID", &id_hex),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("explain", flags, argc, argv, 1, usage, schakel_conn_help, usage);
    if (status >= 0) return status;
    uint8_t id[16];
    if (!id_hex || schakel_hex_decode(id_hex, id, 16) != 0) {
        fprintf(stderr, "schakel explain: give the event id or referral id as 32 hex characters\n");
        return 2;
    }
    if ((status = audit_purpose_check("explain", purpose, 1))) return status;
    if (!c.as_org[0]) snprintf(c.as_org, sizeof c.as_org, "svc-audit");
    if (tool_conn_finish(&c, "explain") != 0) return 2;
    char stream[64], why[SCHAKEL_ERRLEN] = "", lower_hex[33];
    schakel_hex_encode(id, 16, lower_hex);
    snprintf(stream, sizeof stream, "about/%s", lower_hex);
    void *ctx = zmq_ctx_new();
    if (audit_broker_answers(ctx, &c, NULL, why) != 0) {
        fprintf(stderr,
                "schakel explain: the broker at %s does not answer (%s): start the node, or give "
                "--node DIR or --endpoint of the running one\n",
                c.endpoint, why[0] ? why : "no reply");
        schakel_keys_wipe(&c.keys);
        schakel_wire_ctx_term(ctx);
        return 3;
    }
    explain_all_t *all = calloc(1, sizeof *all);
    int rc = all ? audit_read_stream(ctx, &c, stream, 1, (size_t)-1, about_record, all, why) : SCHAKEL_ENOMEM;
    /* the event each group is about, and only PUBLISHER's with --org */
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < all->n; i++) {
        explain_t *x = &all->ev[i];
        rc = audit_read_stream(ctx, &c, "all", x->seq, 1, event_record, x, why);
        if (rc == 0 && (!publisher || !strcmp(x->source, publisher))) all->ev[kept++] = *x;
        else {
            json_decref(x->orgs);
            json_decref(x->event);
            json_decref(x->routing);
        }
    }
    if (all) all->n = kept;
    /* no event has this id: the referral whose referral_id it is */
    int by_referral = 0;
    referral_scan_t *scan = rc == 0 && all && !all->n ? calloc(1, sizeof *scan) : NULL;
    if (scan) {
        memcpy(scan->rid, id, 16);
        scan->publisher = publisher;
        rc = audit_read_stream(ctx, &c, "all", 1, (size_t)-1, referral_record, scan, why);
        for (size_t i = 0; rc == 0 && i < scan->n; i++) all->want[all->n_want++] = scan->seq[i];
        for (size_t i = 0; rc == 0 && i < scan->n; i++) {
            if (i && !strcmp(scan->event_hex[i], scan->event_hex[i - 1])) continue;
            char about[64];
            snprintf(about, sizeof about, "about/%s", scan->event_hex[i]);
            rc = audit_read_stream(ctx, &c, about, 1, (size_t)-1, about_record, all, why);
        }
        for (size_t i = 0; rc == 0 && i < all->n; i++)
            rc = audit_read_stream(ctx, &c, "all", all->ev[i].seq, 1, event_record, &all->ev[i], why);
        by_referral = rc == 0 && all->n > 0;
        free(scan);
    }
    const char *rid_hex = by_referral ? lower_hex : NULL;
    int recorded = rc == 0 ? record_looks(ctx, &c, all, lower_hex, purpose, why) : 0;
    if (recorded) {
        fprintf(stderr,
                "schakel explain: this look could not be recorded on the log (%s): nothing is shown, as "
                "every look at a child's records must be on the log\n",
                why);
        rc = recorded;
    } else if (rc) {
        fprintf(stderr, "schakel explain: %s\n", why);
    } else {
        schakel_directory_t *dir = NULL;
        if (c.node_dir[0]) {
            char path[SCHAKEL_PATH_MAX]; /* too long: names stay ids, as without --node */
            if (schakel_path_join(path, sizeof path, c.node_dir, "directory.json", NULL) == 0)
                dir = schakel_directory_load(path, NULL);
        }
        explain_t none = {0};
        none.orgs = json_object();
        if (as_json) {
            json_t *out;
            if (all->n <= 1) {
                out = event_json(all->n ? &all->ev[0] : &none, lower_hex, rid_hex);
            } else {
                out = json_pack("{s:s, s:[]}", rid_hex ? "referral_id" : "event_id", lower_hex, "events");
                for (size_t i = 0; i < all->n; i++)
                    json_array_append_new(json_object_get(out, "events"),
                                          event_json(&all->ev[i], lower_hex, rid_hex));
            }
            char *text = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);
            printf("%s\n", text);
            free(text);
            json_decref(out);
        } else {
            if (rid_hex)
                printf("referral %s: %s below\n\n", lower_hex,
                       all->n > 1 ? "several organisations recorded a referral with this id (ids are scoped "
                                    "to their publisher); each one's event is listed"
                                  : "its event is listed");
            else if (all->n > 1)
                printf("%zu organisations published an event with id %s (ids are scoped to their\n"
                       "publisher); each is listed below. --org PUBLISHER shows one.\n\n",
                       all->n, lower_hex);
            for (size_t i = 0; i < all->n; i++) {
                if (i) printf("\n");
                print_text(&all->ev[i], lower_hex, dir);
            }
            if (!all->n) {
                if (publisher)
                    printf("event %s of %s: no decisions about it on the log\n", lower_hex, publisher);
                else print_text(&none, lower_hex, dir);
            }
            if (all->more) printf("(more events have this id than are listed: give --org)\n");
            if (!dir) printf("(give --node DIR to list every organisation of the directory)\n");
        }
        json_decref(none.orgs);
        schakel_directory_destroy(&dir);
    }
    for (size_t i = 0; all && i < all->n; i++) {
        json_decref(all->ev[i].orgs);
        json_decref(all->ev[i].event);
        json_decref(all->ev[i].routing);
    }
    size_t found = all ? all->n : 0;
    free(all);
    schakel_keys_wipe(&c.keys);
    schakel_wire_ctx_term(ctx);
    if (rc) return 3;
    if (!found) {
        fprintf(stderr,
                "schakel explain: no event with id %s%s%s, and no referral with that referral_id, has "
                "decisions on the log: check the id (the event_id of an event or the referral_id of a "
                "referral, 32 hex characters; a case reference is neither), or, for an event published "
                "moments ago, ask again when the routing service has decided\n",
                lower_hex, publisher ? " of " : "", publisher ? publisher : "");
        return 1;
    }
    return 0;
}
