/* One child's history (subject.h): the records of stream all about one
 * pseudonym, in log order. Every decision is about an event earlier on the
 * log (about_seq), so one pass gathers each event with its routing and
 * consent decisions; what was held and what was denied is read off those
 * decisions at the end. Fields are the JSON form of the events (lib/json.h):
 * the same names and values as docs/events.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "json.h"
#include "subject.h"

struct subject_history {
    char subject[65];
    json_t *events;   /* the events about the child, in log order */
    json_t *by_seq;   /* "seq" -> the event's object in events (borrowed) */
    json_t *accesses; /* audit_access about the child */
    json_t *erasures; /* the broker's erasure events naming the child */
    uint64_t last_seq, records, unreadable;
    size_t found; /* events other than audit_access */
};

subject_history_t *subject_history_new(const char subject[65])
{
    subject_history_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    memcpy(h->subject, subject, 65);
    h->events = json_array();
    h->by_seq = json_object();
    h->accesses = json_array();
    h->erasures = json_array();
    if (!h->events || !h->by_seq || !h->accesses || !h->erasures) subject_history_destroy(&h);
    return h;
}

void subject_history_destroy(subject_history_t **self_p)
{
    if (!self_p || !*self_p) return;
    subject_history_t *h = *self_p;
    json_decref(h->events);
    json_decref(h->by_seq);
    json_decref(h->accesses);
    json_decref(h->erasures);
    free(h);
    *self_p = NULL;
}

uint64_t subject_history_last_seq(const subject_history_t *h)
{
    return h->last_seq;
}

int subject_history_found(const subject_history_t *h)
{
    return h->found > 0;
}

int subject_history_erased(const subject_history_t *h)
{
    return json_array_size(h->erasures) > 0;
}

/* Copies field name of from into to, when from has it. */
static void copy(json_t *to, const char *as, const json_t *from, const char *name)
{
    json_t *v = json_object_get(from, name);
    if (v) json_object_set(to, as, v);
}

/* The event at seq; a placeholder when it was not seen (its payload was
 * erased, or it is not the child's). */
static json_t *event_at(subject_history_t *h, uint64_t seq)
{
    char key[24];
    snprintf(key, sizeof key, "%llu", (unsigned long long)seq);
    json_t *ev = json_object_get(h->by_seq, key);
    if (ev) return ev;
    ev = json_pack("{s:I, s:n, s:n, s:[]}", "seq", (json_int_t)seq, "type", "routing", "decisions");
    json_array_append_new(h->events, ev);
    json_object_set(h->by_seq, key, ev);
    return ev;
}

/* The ids in an event's body that name what it is part of. */
static const char *const body_refs[] = {"referral_id", "report_id",  "handover_id",
                                        "request_id",  "consent_id", NULL};

static void add_event(subject_history_t *h, const Schakel__V1__Delivered *d, const json_t *j,
                      const char *type)
{
    char at[32];
    schakel_time_format(d->recorded_at, at);
    json_t *ev = json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)d->seq, "recorded_at", at, "type", type);
    static const char *const env[] = {"event_id",    "source_org", "occurred_at", "purpose",
                                      "legal_basis", "categories", NULL};
    for (size_t i = 0; env[i]; i++) copy(ev, env[i], j, env[i]);
    const json_t *body = json_object_get(j, type);
    for (size_t i = 0; body_refs[i]; i++) copy(ev, body_refs[i], body, body_refs[i]);
    json_object_set_new(ev, "routing", json_null());
    json_object_set_new(ev, "decisions", json_array());
    char key[24];
    snprintf(key, sizeof key, "%llu", (unsigned long long)d->seq);
    json_array_append_new(h->events, ev);
    json_object_set(h->by_seq, key, ev);
    h->found++;
}

static void add_routing(subject_history_t *h, const Schakel__V1__Delivered *d, const schakel_envelope_t *e)
{
    const Schakel__V1__RoutingDecision *r = e->routing_decision;
    char at[32];
    schakel_time_format(d->recorded_at, at);
    json_t *rt = json_pack("{s:I, s:s, s:s, s:[], s:[]}", "seq", (json_int_t)d->seq, "at", at, "by",
                           e->source_org, "recipients", "refused");
    for (size_t i = 0; i < r->n_recipients; i++)
        json_array_append_new(
            json_object_get(rt, "recipients"),
            json_pack("{s:s, s:s}", "org", r->recipients[i]->org_id, "rule", r->recipients[i]->rule_id));
    for (size_t i = 0; i < r->n_refused; i++) {
        const Schakel__V1__RefusedRecipient *x = r->refused[i];
        json_array_append_new(json_object_get(rt, "refused"),
                              json_pack("{s:s, s:s, s:s, s:s}", "field", x->field, "org", x->org_id, "rule",
                                        x->rule_id, "reason_code", x->reason_code));
    }
    json_object_set_new(event_at(h, r->about_seq), "routing", rt);
}

static void add_decision(subject_history_t *h, const Schakel__V1__Delivered *d, const schakel_envelope_t *e,
                         const json_t *j)
{
    const json_t *c = json_object_get(j, "consent_decision");
    char at[32];
    schakel_time_format(d->recorded_at, at);
    json_t *x = json_pack("{s:I, s:s, s:s, s:b}", "seq", (json_int_t)d->seq, "at", at, "by", e->source_org,
                          "duty_to_inform", e->consent_decision->duty_to_inform);
    copy(x, "recipient", c, "recipient_org");
    copy(x, "outcome", c, "outcome");
    copy(x, "rule", c, "rule_id");
    copy(x, "legal_basis", c, "legal_basis");
    copy(x, "consent_id", c, "consent_id");
    copy(x, "inform_org", c, "inform_org");
    copy(x, "concerned_org", json_object_get(c, "notice"), "concerned_org");
    json_array_append_new(json_object_get(event_at(h, e->consent_decision->about_seq), "decisions"), x);
}

static void add_access(subject_history_t *h, const Schakel__V1__Delivered *d, const schakel_envelope_t *e,
                       const json_t *j)
{
    const json_t *a = json_object_get(j, "audit_access");
    char at[32];
    schakel_time_format(d->recorded_at, at);
    json_t *x = json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)d->seq, "at", at, "by", e->source_org);
    copy(x, "auditor_ref", a, "auditor_ref");
    copy(x, "command", a, "request_code");
    copy(x, "query_ref", a, "query_ref");
    copy(x, "purpose", a, "stated_purpose");
    copy(x, "from_seq", a, "from_seq");
    copy(x, "to_seq", a, "to_seq");
    json_array_append_new(h->accesses, x);
}

/* An erasure names the child in its body, not in its envelope (the
 * broker's event has no subject, so that it stays readable). */
static void add_erasure(subject_history_t *h, const Schakel__V1__Delivered *d, const schakel_envelope_t *e)
{
    json_t *j = schakel_json_from_envelope(e);
    const json_t *er = json_object_get(j, "erasure");
    char at[32];
    schakel_time_format(d->recorded_at, at);
    json_t *x =
        j ? json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)d->seq, "at", at, "by", e->source_org) : NULL;
    if (!x) { /* out of memory: an erasure seen but not shown would mislead */
        h->unreadable++;
        json_decref(j);
        return;
    }
    copy(x, "basis", er, "basis");
    copy(x, "purpose", er, "purpose");
    copy(x, "requested_by", er, "requested_by");
    copy(x, "erased_upto", er, "erased_upto");
    json_array_append_new(h->erasures, x);
    json_decref(j);
}

void subject_history_add(subject_history_t *h, const Schakel__V1__Delivered *d)
{
    h->last_seq = d->seq;
    h->records++;
    schakel_envelope_t *e = d->event.len ? schakel_envelope_decode(d->event.data, d->event.len, NULL) : NULL;
    if (!e) {
        h->unreadable++;
        return;
    }
    if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE && e->erasure &&
        !strcmp(e->source_org, "broker") && !strcmp(e->erasure->erased_subject, h->subject)) {
        add_erasure(h, d, e);
        schakel_envelope_free(e);
        return;
    }
    if (strcmp(e->subject, h->subject) != 0) {
        schakel_envelope_free(e);
        return;
    }
    json_t *j = schakel_json_from_envelope(e);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!j || !type) {
        /* out of memory: an event seen but not shown would mislead */
        h->unreadable++;
    } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) {
        add_routing(h, d, e);
    } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) {
        add_decision(h, d, e, j);
    } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS) {
        add_access(h, d, e, j);
    } else {
        add_event(h, d, j, type);
    }
    json_decref(j);
    schakel_envelope_free(e);
}

/* A held decision, and what became of it: a later decision about the same
 * event for the same recipient. */
static json_t *held_entry(const json_t *ev, const json_t *dec, size_t from)
{
    json_t *x =
        json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:s}", "event_seq", json_object_get(ev, "seq"), "recipient",
                  json_object_get(dec, "recipient"), "seq", json_object_get(dec, "seq"), "at",
                  json_object_get(dec, "at"), "rule", json_object_get(dec, "rule"), "then", "still held");
    copy(x, "legal_basis", dec, "legal_basis");
    const json_t *decs = json_object_get(ev, "decisions");
    for (size_t k = from + 1; k < json_array_size(decs); k++) {
        const json_t *later = json_array_get(decs, k);
        const char *o = json_string_value(json_object_get(later, "outcome"));
        if (!o || !json_equal(json_object_get(later, "recipient"), json_object_get(dec, "recipient")) ||
            !strcmp(o, "hold"))
            continue;
        json_object_set_new(x, "then",
                            json_string(!strcmp(o, "deliver")   ? "delivered"
                                        : !strcmp(o, "expired") ? "expired"
                                                                : o));
        json_object_set(x, "then_seq", json_object_get(later, "seq"));
        json_object_set(x, "then_at", json_object_get(later, "at"));
        break;
    }
    return x;
}

json_t *subject_history_json(subject_history_t *h)
{
    json_t *held = json_array(), *denied = json_array();
    size_t i, k;
    json_t *ev, *dec;
    json_array_foreach(h->events, i, ev) {
        json_array_foreach(json_object_get(ev, "decisions"), k, dec) {
            const char *o = json_string_value(json_object_get(dec, "outcome"));
            if (o && !strcmp(o, "hold")) json_array_append_new(held, held_entry(ev, dec, k));
            if (o && !strcmp(o, "deny")) {
                json_t *x = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "event_seq",
                                      json_object_get(ev, "seq"), "recipient",
                                      json_object_get(dec, "recipient"), "seq", json_object_get(dec, "seq"),
                                      "at", json_object_get(dec, "at"), "rule", json_object_get(dec, "rule"));
                copy(x, "legal_basis", dec, "legal_basis");
                json_array_append_new(denied, x);
            }
        }
    }
    /* the last erasure, in words: what happened to the child's records */
    json_t *said = json_null();
    const json_t *last = json_array_get(h->erasures, json_array_size(h->erasures) - 1);
    const char *at = json_string_value(json_object_get(last, "at"));
    const char *basis = json_string_value(json_object_get(last, "basis"));
    if (last && at && basis && strlen(at) >= 10) said = json_sprintf("erased on %.10s under %s", at, basis);
    return json_pack("{s:s, s:I, s:I, s:O, s:o, s:o, s:O, s:O, s:o}", "subject", h->subject, "records",
                     (json_int_t)h->records, "unreadable", (json_int_t)h->unreadable, "events", h->events,
                     "held", held, "denied", denied, "accesses", h->accesses, "erasures", h->erasures,
                     "erased", said ? said : json_null());
}
