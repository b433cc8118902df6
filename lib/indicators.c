/* The monitoring figures (indicators.h): one read of the node's log, each
 * event tallied into cells keyed by month, school, district, figure and
 * breakdown; referrals are remembered by id (in memory only) so that what
 * follows them (received, first contact, intake) lands in the referral's
 * cell, and each child's latest thuiszitter status by pseudonym (in memory
 * only). indicators_out.c writes the cells, suppressing small ones. */
#include "indicators.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "codec.h"
#include "directory.h"
#include "error.h"
#include "fileio.h"
#include "indicators_impl.h"
#include "json.h"
#include "store_lmdb.h"
#include "validate.h"

/* "" for a missing string member. */
static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

void ind_add(ind_t *t, const char *month, const char *school, const char *district, const char *figure,
             const char *breakdown, json_int_t n)
{
    char key[IND_KEY_MAX];
    if (schakel_textf(key, sizeof key, "%.7s\t%s\t%s\t%s\t%s", month, school, district, figure, breakdown))
        return; /* a key this long is not a code of ours: nothing to count */
    json_t *v = json_object_get(t->cells, key);
    json_object_set_new(t->cells, key, json_integer((v ? json_integer_value(v) : 0) + n));
}

/* The month "YYYY-MM" of a date "YYYY-MM-DD", or of unix ms in Amsterdam. */
static void month_of_ms(int64_t ms, char out[11])
{
    schakel_date_of(ms, out);
    out[7] = 0;
}

static const char *org_kind(const ind_t *t, const char *org)
{
    const schakel_org_t *o = t->dir ? schakel_directory_by_id(t->dir, org) : NULL;
    return o ? schakel_org_kind_name(o->kind) : "unknown";
}

/* The referral an event follows, by its referral_id; NULL when unknown. */
static json_t *referral_of(ind_t *t, const json_t *body)
{
    const char *id = str(body, "referral_id");
    return id[0] ? json_object_get(t->referrals, id) : NULL;
}

/* school and district: the event's own, else its referral's. */
static void place(const json_t *ev, const json_t *ref, const char **school, const char **district)
{
    *school = str(ev, "school");
    *district = str(ev, "district");
    if (ref && !(*school)[0]) *school = str(ref, "school");
    if (ref && !(*district)[0]) *district = str(ref, "district");
}

static void on_referral(ind_t *t, const json_t *ev, const json_t *body, int64_t occurred_at)
{
    char month[11];
    month_of_ms(occurred_at, month);
    const char *school = str(ev, "school"), *district = str(ev, "district");
    ind_add(t, month, school, district, "referrals", str(body, "to_kind"), 1);
    const char *id = str(body, "referral_id");
    if (!id[0] || json_object_get(t->referrals, id)) return; /* the first counts */
    json_object_set_new(t->referrals, id,
                        json_pack("{s:s, s:s, s:s, s:i, s:b, s:b, s:b}", "school", school, "district",
                                  district, "month", month, "day", (int)schakel_day_of(occurred_at),
                                  "reminded", 0, "received", 0, "contacted", 0));
}

static void on_received(ind_t *t, const json_t *body)
{
    json_t *ref = referral_of(t, body);
    if (!ref || json_is_true(json_object_get(ref, "received"))) return;
    json_object_set_new(ref, "received", json_true());
    if (!json_is_true(json_object_get(ref, "reminded")))
        ind_add(t, str(ref, "month"), str(ref, "school"), str(ref, "district"), "referrals_answered_in_time",
                "", 1);
}

static void on_first_contact(ind_t *t, const json_t *body)
{
    json_t *ref = referral_of(t, body);
    const char *on = str(body, "contact_on");
    if (!ref || json_is_true(json_object_get(ref, "contacted")) || !schakel_date_valid(on)) return;
    json_object_set_new(ref, "contacted", json_true());
    int from = (int)json_integer_value(json_object_get(ref, "day"));
    int days = schakel_working_days_between(&t->decree, from, schakel_date_days(on));
    char key[IND_KEY_MAX];
    if (schakel_textf(key, sizeof key, "%s\t%s\t%s", str(ref, "month"), str(ref, "school"),
                      str(ref, "district")))
        return;
    json_t *list = json_object_get(t->waits, key);
    if (!list) json_object_set_new(t->waits, key, list = json_array());
    json_array_append_new(list, json_integer(days));
}

/* A reminder that a referral was not received in time: it was not
 * answered within the deadline, whatever comes later. */
static void on_reminder(ind_t *t, const json_t *body)
{
    json_t *ref = referral_of(t, body);
    if (ref && !strcmp(str(body, "waiting_for"), "received") &&
        !json_is_true(json_object_get(ref, "received")))
        json_object_set_new(ref, "reminded", json_true());
}

static void on_thuiszitter(ind_t *t, const schakel_envelope_t *env, const json_t *ev, const json_t *body)
{
    if (!env->subject[0]) return;
    json_object_set_new(t->children, env->subject,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "school", str(ev, "school"),
                                  "district", str(ev, "district"), "state", str(body, "state"), "reason",
                                  str(body, "reason"), "since", str(body, "since"), "ended_on",
                                  str(body, "ended_on"), "exempted",
                                  json_is_true(json_object_get(body, "exempted"))));
}

static void tally(ind_t *t, const schakel_envelope_t *env)
{
    const char *name = schakel_event_type_name(env->type);
    json_t *ev = schakel_json_from_envelope(env);
    const json_t *body = name ? json_object_get(ev, name) : NULL;
    if (!ev || !body) {
        json_decref(ev);
        return;
    }
    const char *school = str(ev, "school"), *district = str(ev, "district");
    char month[11];
    month_of_ms(env->occurred_at, month);
    switch ((int)env->type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL:
        ind_add(t, str(body, "observed_on"), school, district, "signals", "", 1);
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSULTATION:
        ind_add(t, month, school, district, "consultations", str(body, "consulted_kind"), 1);
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL: on_referral(t, ev, body, env->occurred_at); break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL_RECEIVED: on_received(t, body); break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FIRST_CONTACT: on_first_contact(t, body); break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER: on_reminder(t, body); break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_INTAKE: {
        place(ev, referral_of(t, body), &school, &district);
        ind_add(t, str(body, "intake_on"), school, district, "intakes", org_kind(t, env->source_org), 1);
        break;
    }
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_TLV:
        ind_add(t, str(body, "decided_on"), school, district, "tlvs", str(body, "tlv_type"), 1);
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_THUISZITTER_STATUS: on_thuiszitter(t, env, ev, body); break;
    default: break;
    }
    json_decref(ev);
}

static int on_record(void *arg, const schakel_record_t *rec)
{
    ind_t *t = arg;
    if (rec->recorded_at > t->now) t->now = rec->recorded_at;
    t->last_seq = rec->seq;
    if (!rec->event) return 0; /* erased: nothing to count */
    char why[SCHAKEL_ERRLEN];
    schakel_envelope_t *env = schakel_envelope_decode(rec->event, rec->event_len, why);
    if (!env) {
        t->undecoded++;
        return 0;
    }
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK && env->clock_tick->at_ms > t->now)
        t->now = env->clock_tick->at_ms;
    tally(t, env);
    schakel_envelope_free(env);
    return 0;
}

/* Duration bands of the Rotterdam monitor. */
static const char *band_of(int days)
{
    return days < 28    ? "lt_4w"
           : days < 91  ? "4w_3m"
           : days < 182 ? "3m_6m"
           : days < 365 ? "6m_12m"
                        : "gt_12m";
}

/* Each child's latest thuiszitter status: one thuiszitter, in the month
 * its period began, by reason and how long it lasted (to its end, or to
 * the log's time while it goes on). An exempted child is not one. */
static void thuiszitters(ind_t *t)
{
    const char *subject;
    json_t *c;
    int32_t today = schakel_day_of(t->now);
    json_object_foreach(t->children, subject, c) {
        const char *since = str(c, "since"), *ended = str(c, "ended_on");
        if (json_is_true(json_object_get(c, "exempted")) || !schakel_date_valid(since)) continue;
        int32_t end = schakel_date_valid(ended) ? schakel_date_days(ended) : today;
        int days = end > schakel_date_days(since) ? (int)(end - schakel_date_days(since)) : 0;
        const char *reason = str(c, "reason");
        char breakdown[96];
        if (schakel_textf(breakdown, sizeof breakdown, "%s/%s", reason[0] ? reason : "unspecified",
                          band_of(days)))
            continue;
        ind_add(t, since, str(c, "school"), str(c, "district"), "thuiszitters", breakdown, 1);
    }
}

static int read_log(ind_t *t, const char *node_dir, char *why)
{
    char path[SCHAKEL_PATH_MAX];
    schakel_lmdb_options_t lo = {0};
    int rc = schakel_path_join(path, sizeof path, node_dir, "master.key", why);
    if (!rc) rc = schakel_secret_file(path, lo.master_key, sizeof lo.master_key, 0, NULL, why);
    if (rc) return rc;
    if ((rc = schakel_path_join(path, sizeof path, node_dir, "log", why))) return rc;
    lo.dir = path;
    lo.read_only = 1;
    schakel_store_t *s = schakel_store_open_lmdb(&lo, why);
    memset(lo.master_key, 0, sizeof lo.master_key);
    if (!s) return SCHAKEL_ESTORE;
    schakel_head_t head;
    schakel_store_head(s, &head);
    uint64_t from = 1;
    while (rc == 0 && from <= head.seq) {
        uint64_t next = from;
        rc = schakel_store_read(s, "all", from, 4096, (size_t)32 << 20, on_record, t, &next);
        if (rc == 0 && next <= from) break;
        from = next;
    }
    schakel_store_close(&s);
    return rc ? schakel_fail(why, SCHAKEL_ESTORE, "the log of %s could not be read to the end", node_dir) : 0;
}

int schakel_indicators_render(const char *node_dir, const char *format, char **out, size_t *len, char *why)
{
    *out = NULL;
    *len = 0;
    int csv = format && !strcmp(format, "csv");
    if (!csv && !(format && !strcmp(format, "json")))
        return schakel_fail(why, SCHAKEL_EINVAL, "indicators: format \"json\" or \"csv\"");
    ind_t t = {0};
    t.cells = json_object(), t.referrals = json_object(), t.children = json_object(), t.waits = json_object();
    const char *decree = schakel_decree_days_default();
    int rc = t.cells && t.referrals && t.children && t.waits ? 0 : SCHAKEL_ENOMEM;
    if (!rc) rc = schakel_decree_days_parse(decree, strlen(decree), &t.decree, why);
    char path[SCHAKEL_PATH_MAX], dwhy[SCHAKEL_ERRLEN];
    if (!rc && schakel_path_join(path, sizeof path, node_dir, "directory.json", NULL) == 0)
        t.dir = schakel_directory_load(path, dwhy); /* without one, intakes are by kind "unknown" */
    if (!rc) rc = read_log(&t, node_dir, why);
    if (!rc) {
        thuiszitters(&t);
        rc = ind_render(&t, csv, out, len, why);
    }
    schakel_directory_destroy(&t.dir);
    json_decref(t.cells), json_decref(t.referrals), json_decref(t.children), json_decref(t.waits);
    return rc;
}
