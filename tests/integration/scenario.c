/* Helpers shared by the scenario tests on a whole node: publishing the
 * events of the flows as JSON, reading what the log says about an event
 * (stream about/<id>) and what an organisation received, moving the log's
 * time, and waiting for the services. */
#include "clock.h"
#include "scenario.h"
#include "service.h"
#include "json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

harness_t *H;

void hex(const uint8_t *b, size_t n, char *out)
{
    schakel_hex_encode(b, n, out);
}

/* A synthetic child's pseudonym. */
void child(const char *label, char out[65])
{
    uint8_t h[32];
    schakel_sha256(label, strlen(label), h);
    hex(h, 32, out);
}

void new_id(char out[33])
{
    uint8_t id[16];
    harness_event_id(id);
    hex(id, 16, out);
}

int64_t now_ms(void)
{
    return schakel_wall_ms();
}

/* Where a service stands in the log: its own LMDB cursor. */
/* The service's "published", or 0 while an erasure's scrub is still to
 * be done (its key SCHAKEL_SERVICE_SCRUB_KEY): it has not finished. */
uint64_t service_cursor(const char *name)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/services/%s", H->data, name);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t seq = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_maxdbs(env, 32);
    if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        /* "published": its decisions up to there are on the log (its
         * "cursor" may be ahead while they are in its outbox) */
        MDB_val k = {strlen(SCHAKEL_SERVICE_PUBLISHED_KEY), (void *)SCHAKEL_SERVICE_PUBLISHED_KEY}, v;
        if (mdb_dbi_open(txn, "runner", 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
            memcpy(&seq, v.mv_data, 8);
        MDB_val sk = {strlen(SCHAKEL_SERVICE_SCRUB_KEY), (void *)SCHAKEL_SERVICE_SCRUB_KEY};
        if (seq && mdb_get(txn, dbi, &sk, &v) == 0) seq = 0;
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return seq;
}

/* Waits until every service has handled the log up to seq. */
void wait_services(uint64_t seq)
{
    for (int i = 0; i < 300; i++) {
        if (service_cursor("routing") >= seq && service_cursor("consent") >= seq &&
            service_cursor("feedback") >= seq)
            return;
        usleep(50000);
    }
    fail_msg("the services did not reach seq %llu in 15 s", (unsigned long long)seq);
}

/* Everything the log says about event id, read as svc-audit. */
void read_decisions(const uint8_t id[16], decisions_t *out)
{
    read_decisions_at(id, 0, out);
}

/* Only the decisions about the event at seq (0: any event with this id;
 * ids are scoped to their publisher, so one id may be several events). */
void read_decisions_at(const uint8_t id[16], uint64_t seq, decisions_t *out)
{
    memset(out, 0, sizeof *out);
    char stream[64], h[33];
    hex(id, 16, h);
    snprintf(stream, sizeof stream, "about/%s", h);
    harness_reader_t rd = harness_read(H, "svc-audit", stream);
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        uint64_t about =
            e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION   ? e->routing_decision->about_seq
            : e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION ? e->consent_decision->about_seq
                                                                              : 0;
        if (seq && about != seq) {
            continue;
        }
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) {
            for (size_t i = 0; i < e->routing_decision->n_recipients && out->n_routed < 8; i++)
                snprintf(out->routed[out->n_routed++], 64, "%s", e->routing_decision->recipients[i]->org_id);
        } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION && out->n < 32) {
            const Schakel__V1__ConsentDecision *d = e->consent_decision;
            decision_t *x = &out->d[out->n++];
            snprintf(x->recipient, sizeof x->recipient, "%s", d->recipient_org);
            snprintf(x->rule, sizeof x->rule, "%s", d->rule_id);
            snprintf(x->inform, sizeof x->inform, "%s", d->inform_org);
            if (d->consent_id.len == 16) hex(d->consent_id.data, 16, x->consent_id);
            x->outcome = d->outcome;
            x->basis = d->legal_basis;
            x->duty = d->duty_to_inform;
            x->seq = rd.r->seq;
        }
    }
    assert_int_equal(rd.undecoded, 0);
}

/* Waits (up to 15 s) until at least `want` consent decisions are about id. */
void wait_decisions(const uint8_t id[16], size_t want, decisions_t *out)
{
    wait_decisions_at(id, 0, want, out);
}

void wait_decisions_at(const uint8_t id[16], uint64_t seq, size_t want, decisions_t *out)
{
    for (int i = 0; i < 300; i++) {
        read_decisions_at(id, seq, out);
        if (out->n >= want) return;
        usleep(50000);
    }
    char h[33];
    hex(id, 16, h);
    fail_msg("event %s: %zu consent decisions after 15 s, wanted %zu", h, out->n, want);
}

const decision_t *find(const decisions_t *ds, const char *recipient, int outcome)
{
    for (size_t i = 0; i < ds->n; i++)
        if (!strcmp(ds->d[i].recipient, recipient) && (!outcome || ds->d[i].outcome == outcome))
            return &ds->d[i];
    return NULL;
}

int routed_to(const decisions_t *ds, const char *org)
{
    for (size_t i = 0; i < ds->n_routed; i++)
        if (!strcmp(ds->routed[i], org)) return 1;
    return 0;
}

/* Does org's own stream hold the event with this id (the event itself), or
 * with notice set, a notice-only or informing decision about it? Read as
 * org itself, as its adapter would. */
int received(const char *org, const uint8_t id[16], int outcome_about)
{
    harness_reader_t rd = harness_read(H, org, NULL);
    int found = 0;
    while (!found && harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (!outcome_about) {
            found = !memcmp(e->event_id.data, id, 16);
        } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) {
            found = !memcmp(e->consent_decision->about_event_id.data, id, 16) &&
                    (int)e->consent_decision->outcome == outcome_about;
        }
    }
    harness_read_end(&rd);
    assert_int_equal(rd.undecoded, 0);
    return found;
}

/* Publishes, and fails the test when the broker rejects. */
uint64_t publish(const char *org, const char *json, uint8_t id[16])
{
    uint64_t seq = harness_publish_json(H, org, json, id);
    if (!seq) fail_msg("%s could not publish %s", org, json);
    return seq;
}

/* Publishes json as org and returns the ACK's code (-1: no ACK); the
 * reason in reason (SCHAKEL_ERRLEN). */
int publish_code(const char *org, const char *json, char *reason)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *e = schakel_json_parse_envelope(json, strlen(json), why);
    if (!e) fail_msg("test event does not parse: %s", why);
    uint8_t id[16];
    harness_event_id(id);
    e->event_id.data = id;
    e->event_id.len = 16;
    e->source_org = (char *)org;
    e->occurred_at = now_ms();
    size_t len = schakel__v1__envelope__get_packed_size(e);
    uint8_t *buf = malloc(len);
    schakel__v1__envelope__pack(e, buf);
    e->event_id.data = NULL, e->event_id.len = 0, e->source_org = NULL;
    schakel_envelope_free(e);
    schakel_client_t *c = harness_client(H, org);
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    schakel_client_destroy(&c);
    free(buf);
    int code = a && a->n_entries == 1 ? (int)a->entries[0]->code : -1;
    snprintf(reason, SCHAKEL_ERRLEN, "%s", code >= 0 ? a->entries[0]->reason : "no ACK");
    if (a) schakel__v1__ack__free_unpacked(a, NULL);
    return code;
}

void referral_with_id(const char *org, const char *subject, const char *extra, const char *to_kind,
                      char rid[33], uint8_t id[16])
{
    char json[1024];
    new_id(rid);
    snprintf(json, sizeof json,
             "{\"type\":\"referral\",\"subject\":\"%s\",%s\"purpose\":\"support\","
             "\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
             "\"referral\":{\"referral_id\":\"%s\",\"to_kind\":\"%s\",\"reasons\":[\"home_situation\"],"
             "\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
             subject, extra, rid, to_kind);
    publish(org, json, id);
}

void referral(const char *org, const char *subject, const char *extra, const char *to_kind, uint8_t id[16])
{
    char rid[33];
    referral_with_id(org, subject, extra, to_kind, rid, id);
}

void consent(const char *org, const char *subject, const char *given_by, const char *age,
             const char *recipient_kind, char cid[33], uint8_t id[16])
{
    char json[1024];
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"%s\","
             "\"age_band\":\"%s\",\"recipient_kind\":\"%s\",\"purposes\":[\"support\",\"feedback\"],"
             "\"categories\":[\"home_situation\",\"behaviour\"],\"valid_from\":\"2020-01-01\"}}",
             subject, cid, given_by, age, recipient_kind);
    publish(org, json, id);
}

/* ---- the node, with a clock the test controls ---- */

int node_start(int override, int64_t at_ms)
{
    H = harness_new_node();
    if (harness_start(H) != 0) return -1;
    change_directory(override);
    tick(at_ms); /* also: the new directory is in force at the broker */
    return 0;
}

int node_teardown(void **state)
{
    (void)state;
    harness_destroy(&H);
    return 0;
}

int64_t at(const char *utc)
{
    int64_t ms;
    assert_int_equal(schakel_time_parse(utc, &ms), 0);
    return ms;
}

void clock_to(const char *utc)
{
    wait_services(tick(at(utc)));
}

/* Adds a test organisation with the clock right and, with override, makes
 * school 12AB00 send all its children to wijkteam-noord whatever their
 * district: a new directory version, which the broker puts on the log. */
void change_directory(int override)
{
    schakel_keys_t k;
    assert_int_equal(schakel_keys_generate(&k, "test-clock"), 0);
    assert_int_equal(schakel_keys_save(&k, H->keys), 0);
    char sign[65];
    hex(k.sign_public, 32, sign);
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_array_append_new(json_object_get(d, "organisations"),
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:[s]}", "id", "test-clock", "kind",
                                    "service", "name", "test clock", "curve_public", k.curve_public,
                                    "sign_public", sign, "publish", "clock_tick", "rights", "clock"));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(d, "schools"), i, s)
        if (override && !strcmp(json_string_value(json_object_get(s, "brinvest")), "12AB00"))
            json_object_set_new(s, "wijkteam_override", json_string("wijkteam-noord"));
    json_object_set_new(d, "version", json_integer(2));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", H->directory);
    assert_int_equal(json_dump_file(d, tmp, JSON_INDENT(2)), 0);
    assert_int_equal(rename(tmp, H->directory), 0);
    json_decref(d);
}

/* Publishes a clock tick at at_ms as the test clock; retries while the
 * broker has not yet loaded the directory that lists it. */
uint64_t tick(int64_t at_ms)
{
    char json[256];
    for (int i = 0; i < 100; i++) {
        snprintf(json, sizeof json,
                 "{\"type\":\"clock_tick\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
                 "\"clock_tick\":{\"at_ms\":%lld}}",
                 (long long)at_ms);
        uint64_t seq = harness_publish_json(H, "test-clock", json, NULL);
        if (seq) return seq;
        usleep(100000);
    }
    fail_msg("the test clock was never accepted");
    return 0;
}

int count_in_log(const char *needle)
{
    char path[600], line[2048];
    snprintf(path, sizeof path, "%s/broker.log", H->dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
    if (f) fclose(f);
    return n;
}

size_t reminders(const char *id_hex, reminder_t *out, size_t max)
{
    uint8_t id[16];
    schakel_hex_decode(id_hex, id, 16);
    size_t n = 0;
    for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);) {
        const schakel_envelope_t *e = rd.e;
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER && n < max &&
            !memcmp(e->loop_reminder->referral_id.data, id, 16)) {
            reminder_t *x = &out[n++];
            x->level = e->loop_reminder->level;
            x->waiting_for = e->loop_reminder->waiting_for;
            x->has_subject = e->subject[0] != 0;
            snprintf(x->due_on, sizeof x->due_on, "%s", e->loop_reminder->due_on);
            snprintf(x->to, sizeof x->to, "%s", e->loop_reminder->to_org);
            snprintf(x->overdue, sizeof x->overdue, "%s", e->loop_reminder->overdue_org);
        }
    }
    return n;
}

size_t in_stream(const char *org, const char *id_hex, int type)
{
    uint8_t id[16];
    schakel_hex_decode(id_hex, id, 16);
    size_t n = 0;
    for (harness_reader_t rd = harness_read(H, org, NULL); harness_next(&rd);) {
        const ProtobufCBinaryData *b = schakel_body_bytes(rd.e, "referral_id");
        if ((int)rd.e->type == type && b && b->len == 16 && !memcmp(b->data, id, 16)) n++;
    }
    return n;
}

size_t in_stream_soon(const char *org, const char *id_hex, int type, size_t want)
{
    size_t n = 0;
    for (int i = 0; i < 100 && (n = in_stream(org, id_hex, type)) < want; i++) usleep(100000);
    return n;
}

void directory_save_next(json_t *d)
{
    json_object_set_new(d, "version", json_integer(json_integer_value(json_object_get(d, "version")) + 1));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", H->directory);
    assert_int_equal(json_dump_file(d, tmp, JSON_INDENT(2)), 0);
    assert_int_equal(rename(tmp, H->directory), 0);
    json_decref(d);
}

void directory_publish(const char *org, const char *type, int allow)
{
    int before = count_in_log("event=directory_logged");
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    size_t i, j;
    json_t *o;
    json_array_foreach(json_object_get(d, "organisations"), i, o) {
        if (strcmp(json_string_value(json_object_get(o, "id")), org) != 0) continue;
        json_t *pub = json_object_get(o, "publish");
        for (j = json_array_size(pub); j-- > 0;)
            if (!strcmp(json_string_value(json_array_get(pub, j)), type)) json_array_remove(pub, j);
        if (allow) json_array_append_new(pub, json_string(type));
    }
    directory_save_next(d);
    for (int k = 0; k < 150 && count_in_log("event=directory_logged") <= before; k++) usleep(100000);
    assert_true(count_in_log("event=directory_logged") > before);
}
