/* What the routing engine remembers, in LMDB, so that later events can be
 * routed back ("referrer", "reporter", "referral_loop", "handover_sides",
 * "requester"): the last directory_update seen, who sent each referral
 * and Veilig Thuis report (by id and child, the first sender kept), and
 * whom each consent was for (by id and recording organisation). In
 * "flows", keyed by a tag, the 16-byte id and the child:
 *   'R' id child NUL org -> ""   an organisation a referral was routed to
 *   'H' id child -> giver NUL to  a warm handover's two sides
 *   'M' id child -> school        who asked a MAZL advice
 * Everything here follows from the log, which `schakel audit replay`
 * checks. */
#include <string.h>

#include "error.h"
#include "routing_impl.h"

/* Opens the engine's tables and the directory in force; a state written
 * by an older version is refused, as it would route unlike a replay. */
int routing_open(void *engine, MDB_txn *txn, char *why)
{
    schakel_routing_t *r = engine;
    MDB_dbi old;
    if (mdb_dbi_open(txn, "referrals", 0, &old) == 0)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "routing: this state directory was written by an older version that let "
                            "a later publisher of an id take over its referrer: stop the service, "
                            "delete the directory (it is rebuilt from the log) and start it again");
    /* a state from before "flows" lacks the receivers of old referrals:
     * case_lead would be routed differently from a replay */
    MDB_stat st;
    if (mdb_dbi_open(txn, "flows", 0, &old) != 0 && mdb_dbi_open(txn, "referrers", 0, &old) == 0 &&
        mdb_stat(txn, old, &st) == 0 && st.ms_entries)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "routing: this state directory was written by an older version that did "
                            "not keep whom a referral was routed to: stop the service, delete the "
                            "directory (it is rebuilt from the log) and start it again");
    const char *const names[] = {"state", "referrers", "reporters", "consent_for", "flows"};
    MDB_dbi *const dbis[] = {&r->dbi_state, &r->dbi_referrals, &r->dbi_reports, &r->dbi_consents,
                             &r->dbi_flows};
    int rc = schakel_engine_tables(txn, "routing", names, dbis, 5, why);
    if (rc == 0)
        rc = schakel_engine_rules_load(txn, r->dbi_state, schakel_routing_install, r, "routing", why);
    return rc ? rc : schakel_engine_directory_load(txn, r->dbi_state, &r->dir);
}

/* Key of an id as routing remembers it: the 16-byte id and who may refer
 * to it with that id (the child's pseudonym for a referral or a report,
 * the recording organisation for a consent). Ids are chosen by
 * publishers and can be reused or guessed by another organisation. */
static size_t id_key(uint8_t *key, const ProtobufCBinaryData *id, const char *scope)
{
    size_t n = strnlen(scope, 100); /* a pseudonym is 64, an org id shorter */
    memcpy(key, id->data, 16);
    memcpy(key + 16, scope, n);
    return 16 + n;
}

/* Remembers the organisation behind an id (a referral, a report, a
 * consent) for events that refer to it later. The first one stays: a
 * later event that reuses the id cannot take over where news about an
 * earlier referral, report or consent goes. */
int routing_remember(MDB_txn *txn, MDB_dbi dbi, const ProtobufCBinaryData *id, const char *scope,
                     const char *org)
{
    if (!id || id->len != 16) return 0;
    uint8_t key[16 + 128];
    MDB_val k = {id_key(key, id, scope), key}, v = {strlen(org) + 1, (void *)org};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc ? SCHAKEL_ESTORE : 0;
}

const char *routing_recall(MDB_txn *txn, MDB_dbi dbi, const ProtobufCBinaryData *id, const char *scope)
{
    MDB_val v;
    uint8_t key[16 + 128];
    if (!id || id->len != 16 || schakel_kv_get(txn, dbi, key, id_key(key, id, scope), &v) != 0) return NULL;
    const char *s = v.mv_data;
    return v.mv_size > 0 && s[v.mv_size - 1] == 0 ? s : NULL;
}

/* Key in "flows": tag, id, the child, and (for 'R') NUL and an org. */
size_t routing_flow_key(uint8_t *key, char tag, const ProtobufCBinaryData *id, const char *subject,
                        const char *org)
{
    size_t n = strnlen(subject, 100), m = org ? strnlen(org, SCHAKEL_ID_MAX) : 0;
    key[0] = (uint8_t)tag;
    memcpy(key + 1, id->data, 16);
    memcpy(key + 17, subject, n);
    if (!org) return 17 + n;
    key[17 + n] = 0;
    memcpy(key + 18 + n, org, m);
    return 18 + n + m;
}

/* Remembers a flow's organisations (value), the first one kept. */
int routing_remember_flow(MDB_txn *txn, MDB_dbi dbi, char tag, const ProtobufCBinaryData *id,
                          const char *subject, const char *org, const void *val, size_t vlen)
{
    if (!id || id->len != 16) return 0;
    uint8_t key[FLOW_KEY_MAX];
    MDB_val k = {routing_flow_key(key, tag, id, subject, org), key}, v = {vlen, (void *)val};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc ? SCHAKEL_ESTORE : 0;
}

const char *routing_recall_flow(MDB_txn *txn, MDB_dbi dbi, char tag, const ProtobufCBinaryData *id,
                                const char *subject, size_t *len)
{
    uint8_t key[FLOW_KEY_MAX];
    MDB_val v;
    if (!id || id->len != 16 ||
        schakel_kv_get(txn, dbi, key, routing_flow_key(key, tag, id, subject, NULL), &v) != 0 || !v.mv_size ||
        ((const char *)v.mv_data)[v.mv_size - 1])
        return NULL;
    *len = v.mv_size;
    return v.mv_data;
}

/* A handover's sides, "giver NUL to NUL". */
int routing_remember_handover(MDB_txn *txn, MDB_dbi dbi, const schakel_envelope_t *env)
{
    char v[2 * SCHAKEL_ID_MAX + 2];
    int n = snprintf(v, sizeof v, "%s%c%s", env->source_org, 0, env->handover->to_org);
    if (n < 0 || (size_t)n >= sizeof v) return 0;
    return routing_remember_flow(txn, dbi, 'H', &env->handover->handover_id, env->subject, NULL, v,
                                 (size_t)n + 1);
}

/* Deletes every entry of dbi whose key holds subject at offset at: a
 * scan, as the child is not the key's prefix; erasures are rare. */
static int forget_in(MDB_txn *txn, MDB_dbi dbi, size_t at, const char *subject)
{
    size_t n = strlen(subject);
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, dbi, &cur) != 0) return SCHAKEL_ESTORE;
    MDB_val k, v;
    int rc = 0;
    for (int op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT)
        if (k.mv_size >= at + n && !memcmp((const uint8_t *)k.mv_data + at, subject, n) &&
            (k.mv_size == at + n || ((const uint8_t *)k.mv_data)[at + n] == 0) &&
            (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc ? SCHAKEL_ESTORE : 0;
}

/* An erasure: what routing remembers about the child goes (who sent its
 * referrals and reports, its flows), as a replay, which cannot read the
 * child's erased events, never learnt it. Whom a consent was for is kept
 * by consent id and recording organisation, with no child in it. */
int routing_forget(schakel_routing_t *r, MDB_txn *txn, const char *subject)
{
    if (!subject || strlen(subject) != 64) return 0;
    int rc = forget_in(txn, r->dbi_referrals, 16, subject);
    if (rc == 0) rc = forget_in(txn, r->dbi_reports, 16, subject);
    if (rc == 0) rc = forget_in(txn, r->dbi_flows, 17, subject);
    return rc;
}
