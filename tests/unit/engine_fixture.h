/* A fixture for the fast engine tests: one service engine (routing,
 * consent, feedback) driven over a synthetic list of log records without
 * a broker or a node. The engine's state is a real LMDB environment in a
 * temp directory, opened and fed through the calls the service runner
 * itself uses (service_state_open, service_make_rec, ops->process in a
 * write transaction, lib/service_impl.h); records the engine reads back
 * (schakel_log_event) come from the runner's cache of recent records, as
 * live. What the engine emits is decoded for the test to look at, and can
 * be fed back as the next record, as the broker would put it on the log.
 * Include after cmocka.h. */
#ifndef SCHAKEL_TEST_ENGINE_FIXTURE_H
#define SCHAKEL_TEST_ENGINE_FIXTURE_H

#include <ftw.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "json.h"
#include "keys.h"
#include "service.h"
#include "service_impl.h"

#define EFX_MAX_OUT 64

typedef struct {
    char dir[64];
    state_t s;
    schakel_logsrc_t *log; /* the runner's cache of recent records */
    schakel_emit_t out;
    const schakel_engine_ops_t *ops;
    void *engine;
    const char *org; /* the engine's organisation */
    uint64_t seq;    /* of the last record fed */
    int64_t clock;   /* recorded_at of the next record */
    schakel_envelope_t *emitted[EFX_MAX_OUT];
    size_t n_emitted;
    int abort_next; /* the next record's transaction aborts, as a failed group's (then 0 again) */
} efx_t;

static inline int efx_rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    return remove(p);
}

/* Monday 2 November 2026, 09:00 UTC: no holiday near it. */
#define EFX_START 1793610000000LL
#define EFX_DAY 86400000LL

static inline efx_t *efx_open(const schakel_engine_ops_t *ops, void *engine, const char *org)
{
    efx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/schakel-engine-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->log = calloc(1, sizeof *fx->log);
    assert_non_null(fx->log);
    fx->ops = ops;
    fx->engine = engine;
    fx->org = org;
    fx->clock = EFX_START;
    char why[SCHAKEL_ERRLEN] = "";
    if (service_state_open(&fx->s, fx->dir, ops, engine, why)) fail_msg("open %s: %s", ops->name, why);
    return fx;
}

static inline void efx_clear_emitted(efx_t *fx)
{
    for (size_t i = 0; i < fx->n_emitted; i++) schakel_envelope_free(fx->emitted[i]);
    fx->n_emitted = 0;
}

static inline void efx_close(efx_t **fx_p)
{
    efx_t *fx = *fx_p;
    efx_clear_emitted(fx);
    service_emit_free(&fx->out);
    service_state_close(&fx->s);
    for (size_t i = 0; i < RECENT; i++) free(fx->log->recent[i].bytes);
    free(fx->log);
    nftw(fx->dir, efx_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    *fx_p = NULL;
}

/* Feeds the encoded event as the next record of the log (seq fx->seq + 1,
 * recorded at fx->clock) in one transaction, as the runner does, and keeps
 * what the engine emitted in fx->emitted (the previous record's output is
 * dropped). Returns the record's seq. */
static inline uint64_t efx_feed_bytes(efx_t *fx, const uint8_t *bytes, size_t len)
{
    uint64_t seq = ++fx->seq;
    schakel_envelope_t *env = schakel_envelope_decode(bytes, len, NULL);
    assert_non_null(env);
    size_t i = seq % RECENT; /* what schakel_log_event reads back */
    free(fx->log->recent[i].bytes);
    fx->log->recent[i].seq = seq;
    fx->log->recent[i].bytes = malloc(len);
    memcpy(fx->log->recent[i].bytes, bytes, len);
    fx->log->recent[i].len = len;

    efx_clear_emitted(fx);
    service_emit_clear(&fx->out);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(fx->s.env, NULL, 0, &txn), 0);
    fx->s.txn++;
    schakel_logrec_t rec;
    int64_t saved_now = fx->s.now;
    service_make_rec(&fx->s, &rec, seq, fx->clock, env, env->source_org, fx->log);
    char why[SCHAKEL_ERRLEN] = "";
    int rc = fx->ops->process(fx->engine, txn, &rec, &fx->out, why);
    if (rc) {
        mdb_txn_abort(txn);
        fail_msg("%s at seq %llu: %s", fx->ops->name, (unsigned long long)seq, why);
    }
    if (fx->abort_next) { /* as the runner after a failed group: nothing of it counts */
        mdb_txn_abort(txn);
        fx->abort_next = 0;
        fx->s.now = saved_now;
        fx->seq--;
    } else {
        assert_int_equal(mdb_txn_commit(txn), 0);
    }
    schakel_envelope_free(env);
    assert_true(fx->out.n <= EFX_MAX_OUT);
    for (size_t k = 0; k < fx->out.n; k++) {
        fx->emitted[k] = schakel_envelope_decode(fx->out.bufs[k], fx->out.lens[k], NULL);
        assert_non_null(fx->emitted[k]);
    }
    fx->n_emitted = fx->out.n;
    return seq;
}

/* Feeds an event given in its JSON form (docs/events.md), published by
 * source_org; the event id, when the JSON has none, is derived from the
 * seq, occurred_at is the record's time. Returns the record's seq; *id
 * (if not NULL) gets the event id. */
static inline uint64_t efx_feed(efx_t *fx, const char *source_org, uint8_t id[16], const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    assert_true(n > 0);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j) fail_msg("test JSON: %s: %s", jerr.text, text);
    uint8_t eid[16];
    uint64_t next = fx->seq + 1; /* the same log gives the same ids */
    schakel_derive_id(eid, "test/engine-fixture", &next, sizeof next, NULL);
    char hexid[33], at[32];
    schakel_hex_encode(eid, 16, hexid);
    if (!json_object_get(j, "event_id")) json_object_set_new(j, "event_id", json_string(hexid));
    schakel_time_format(fx->clock, at);
    if (!json_object_get(j, "occurred_at")) json_object_set_new(j, "occurred_at", json_string(at));
    json_object_set_new(j, "source_org", json_string(source_org));
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *env = schakel_json_to_envelope(j, why);
    json_decref(j);
    if (!env) fail_msg("test event: %s: %s", why, text);
    free(text);
    if (id) memcpy(id, env->event_id.data, 16);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(schakel_envelope_encode(env, &bytes, &len), 0);
    schakel_envelope_free(env);
    uint64_t seq = efx_feed_bytes(fx, bytes, len);
    free(bytes);
    return seq;
}

/* Puts what the engine emitted (index k of the last record's output) on
 * the log as the next record, as the broker would, and returns its seq.
 * The output it was part of is replaced by that record's. */
static inline uint64_t efx_feed_emitted(efx_t *fx, size_t k)
{
    assert_true(k < fx->out.n);
    size_t len = fx->out.lens[k];
    uint8_t *bytes = malloc(len);
    memcpy(bytes, fx->out.bufs[k], len);
    uint64_t seq = efx_feed_bytes(fx, bytes, len);
    free(bytes);
    return seq;
}

/* A clock tick from the service at at_ms: moves the log's time. */
static inline uint64_t efx_tick(efx_t *fx, int64_t at_ms)
{
    fx->clock = at_ms;
    return efx_feed(fx, fx->org, NULL,
                    "{\"type\":\"clock_tick\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
                    "\"clock_tick\":{\"at_ms\":%lld}}",
                    (long long)at_ms);
}

/* The emitted events of one type. */
static inline size_t efx_count(const efx_t *fx, int type)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->n_emitted; i++) n += (int)fx->emitted[i]->type == type;
    return n;
}

/* ---- the directory on the log ---- */

static inline json_t *efx_org(const char *id, const char *kind, const char *publish, const char *rights)
{
    schakel_keys_t k;
    assert_int_equal(schakel_keys_generate(&k, id), 0);
    char sign[65];
    schakel_hex_encode(k.sign_public, 32, sign);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:[]}", "id", id, "kind", kind, "name", "synthetic",
                  "curve_public", k.curve_public, "sign_public", sign, "publish", "rights");
    char buf[256];
    char *save = NULL;
    snprintf(buf, sizeof buf, "%s", publish);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "publish"), json_string(w));
    snprintf(buf, sizeof buf, "%s", rights);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "rights"), json_string(w));
    schakel_keys_wipe(&k);
    return o;
}

/* A small region: school-1 (BRIN 12AB00, district noord), smw-1, the
 * wijkteams of districts noord and zuid (wijkteam-noord, wijkteam-zuid;
 * with zuid_to_noord, district zuid is served by wijkteam-noord too),
 * veiligthuis-1, leerplicht-1, the service "svc" and the admin. */
static inline json_t *efx_region(int version, int zuid_to_noord)
{
    json_t *orgs = json_array();
    json_array_append_new(orgs, efx_org("school-1", "school", "signal referral consent_given", ""));
    json_array_append_new(orgs, efx_org("smw-1", "smw", "signal", ""));
    json_array_append_new(orgs, efx_org("wijkteam-noord", "wijkteam", "referral_received first_contact", ""));
    json_array_append_new(orgs, efx_org("wijkteam-zuid", "wijkteam", "referral_received first_contact", ""));
    json_array_append_new(orgs, efx_org("veiligthuis-1", "veiligthuis", "veiligthuis_feedback", ""));
    json_array_append_new(orgs, efx_org("leerplicht-1", "leerplicht", "absence", ""));
    json_array_append_new(orgs, efx_org("svc", "service", "routing_decision consent_decision clock_tick",
                                        "read_all decide clock"));
    json_array_append_new(orgs, efx_org("admin-1", "admin", "directory_update", "directory"));
    return json_pack(
        "{s:i, s:o, s:[{s:s, s:s, s:s, s:{s:s, s:s}}], s:[{s:s, s:s}, {s:s, s:s}], s:{s:s, s:s}}", "version",
        version, "organisations", orgs, "schools", "brinvest", "12AB00", "org", "school-1", "district",
        "noord", "team", "smw", "smw-1", "wijkteam", "wijkteam-noord", "districts", "code", "noord",
        "wijkteam", "wijkteam-noord", "code", "zuid", "wijkteam",
        zuid_to_noord ? "wijkteam-noord" : "wijkteam-zuid", "region", "veiligthuis", "veiligthuis-1",
        "leerplicht", "leerplicht-1");
}

/* Puts a directory_update with doc (taken) on the log, from the admin. */
static inline uint64_t efx_directory(efx_t *fx, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_t *e =
        json_pack("{s:s, s:s, s:s, s:{s:I, s:s}}", "type", "directory_update", "purpose", "bus",
                  "legal_basis", "bus", "directory_update", "version",
                  (json_int_t)json_integer_value(json_object_get(doc, "version")), "document_json", text);
    char *etext = json_dumps(e, JSON_COMPACT);
    uint64_t seq = efx_feed(fx, "admin-1", NULL, "%s", etext);
    free(etext);
    json_decref(e);
    free(text);
    json_decref(doc);
    return seq;
}

/* A synthetic child's pseudonym (64 hex) from a label. */
static inline void efx_child(const char *label, char out[65])
{
    uint8_t h[32];
    schakel_sha256(label, strlen(label), h);
    schakel_hex_encode(h, 32, out);
}

#endif
