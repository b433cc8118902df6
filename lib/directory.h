/* The directory: which organisations are on the bus, their public keys,
 * which event types each may publish and what each may read. Loaded from a
 * versioned JSON file; immutable once loaded (reload = load a new one and
 * swap). Later parts (routing) read more sections from the same file.
 *
 *   {"version": 3,
 *    "organisations": [
 *      {"id": "school-12ab00", "kind": "school", "name": "OBS De Linde",
 *       "curve_public": "<Z85>", "sign_public": "<hex>",
 *       "publish": ["signal", "consultation", "referral"],
 *       "rights": ["read_all", "decide"], "escalation": "gemeente-region"}],
 *    "schools": [
 *      {"brinvest": "12AB00", "org": "school-12ab00", "district": "noord",
 *       "team": {"smw": "smw-farent", "ggd": "ggd-jgz", "ppo": "ppo-region",
 *                "wijkteam": "wijkteam-noord"},
 *       "wijkteam_override": "wijkteam-noord"}],
 *    "districts": [{"code": "noord", "wijkteam": "wijkteam-noord"}],
 *    "municipalities": [{"code": "stad", "leerplicht": "leerplicht-stad",
 *                        "districts": ["noord", "centrum"]}],
 *    "region": {"veiligthuis": "veiligthuis-region", "leerplicht": "leerplicht-region"},
 *    "holidays": {"decree": "<title>", "decree_days": ["2026-01-02", ...]}}
 *
 * kind is one of school smw ggd wijkteam ppo veiligthuis gemeente leerplicht
 * service admin (gemeente: the municipality's youth care, jeugdconsulent;
 * leerplicht: a leerplicht office). publish lists event type names (docs/events.md). rights:
 * "read_all" may fetch the stream "all" and any org/<id>; "decide" may
 * publish consent decisions that the broker acts on (delivery into
 * org/<id>); "directory" may publish directory_update events that the
 * broker applies; "clock" may publish clock_tick events that move the log's
 * time forward. Every org may read its own stream org/<own id>. escalation
 * names the organisation to escalate to when this one leaves a referral
 * unanswered.
 *
 * Least privilege, refused by the parser (at load and for every
 * directory_update): an organisation of a data-holding kind (school to
 * gemeente, leerplicht) has no rights at all; only an "admin" has "directory", and an
 * admin has no other right and publishes only directory_update; a
 * "service" may have read_all, decide and clock. Unknown fields, duplicate
 * keys in an object, duplicate ids or keys, names over 127 bytes are
 * errors too.
 *
 * schools: each school (BRINVEST) with its organisation on the bus, the
 * district it stands in, the team that serves it (an organisation per
 * kind), and optionally the wijkteam that takes all its children whatever
 * district they live in. districts: which wijkteam covers which district.
 * municipalities: each municipality with its leerplicht office (a leerplicht)
 * and the districts in it (a district in at most one). region: the Veilig
 * Thuis organisation and the leerplicht office for a region without
 * municipalities (docs/routing.md). holidays: the days a royal decree
 * equates with holidays (Algemene termijnenwet art. 3 lid 3), which the
 * feedback service counts deadlines with (docs/feedback.md); none when
 * absent. Every
 * organisation named must be listed, with the right kind; a leerplicht
 * office named as a gemeente is accepted only in a document already on
 * the log (SCHAKEL_DIRECTORY_HISTORY: written before OrgKind leerplicht). */
#ifndef SCHAKEL_DIRECTORY_H
#define SCHAKEL_DIRECTORY_H

#include <stdint.h>

#include "calendar.h"
#include "codec.h"
#include "keys.h"

#define SCHAKEL_RIGHT_READ_ALL 0x1u
#define SCHAKEL_RIGHT_DECIDE 0x2u
#define SCHAKEL_RIGHT_DIRECTORY 0x4u
#define SCHAKEL_RIGHT_CLOCK 0x8u

#define SCHAKEL_ORG_KINDS 10 /* OrgKind values 0..9 */
/* The directory's administration identity: a kind of the directory only,
 * never an OrgKind on the wire (nobody refers a child to it). */
#define SCHAKEL_ORG_KIND_ADMIN 10

/* Highest event type number + 1 (see envelope.proto). */
#define SCHAKEL_EVENT_TYPE_LIMIT 256

typedef struct {
    char id[SCHAKEL_ID_MAX];
    int kind; /* SCHAKEL__V1__ORG_KIND__* */
    char name[128];
    char curve_public[SCHAKEL_Z85_KEY_LEN + 1];
    uint8_t sign_public[SCHAKEL_ED25519_PUB_LEN];
    uint8_t may_publish[SCHAKEL_EVENT_TYPE_LIMIT]; /* indexed by event type */
    unsigned rights;
    char escalation[SCHAKEL_ID_MAX]; /* "" when none */
} schakel_org_t;

typedef struct {
    char brinvest[8];
    char org[SCHAKEL_ID_MAX]; /* "" when not on the bus */
    char district[SCHAKEL_ID_MAX];
    char team[SCHAKEL_ORG_KINDS][SCHAKEL_ID_MAX]; /* indexed by OrgKind; "" when none */
    char wijkteam_override[SCHAKEL_ID_MAX];
} schakel_school_t;

typedef struct schakel_directory schakel_directory_t;

/* Parses a directory from a JSON text / file. Returns NULL on failure with
 * the reason in why (SCHAKEL_ERRLEN bytes, may be NULL): which organisation
 * and which field is wrong. Duplicate ids or keys are an error. */
schakel_directory_t *schakel_directory_parse(const char *json, size_t len, char *why);
schakel_directory_t *schakel_directory_load(const char *path, char *why);
/* The same with flags: SCHAKEL_DIRECTORY_HISTORY skips the least-privilege
 * checks, for a document already on the log (the broker admitted it under
 * the rules of its day; replaying the log must use it as it was). */
#define SCHAKEL_DIRECTORY_HISTORY 0x1u
schakel_directory_t *schakel_directory_parse_with(const char *json, size_t len, unsigned flags, char *why);
void schakel_directory_destroy(schakel_directory_t **self_p);

uint64_t schakel_directory_version(const schakel_directory_t *self);
size_t schakel_directory_count(const schakel_directory_t *self);
const schakel_org_t *schakel_directory_at(const schakel_directory_t *self, size_t i);
/* Lookups return NULL when there is no such organisation. */
const schakel_org_t *schakel_directory_by_id(const schakel_directory_t *self, const char *id);
const schakel_org_t *schakel_directory_by_curve(const schakel_directory_t *self,
                                                const char *curve_public_z85);

/* The school with BRINVEST code brinvest, or the school whose organisation
 * is org; NULL when none. */
const schakel_school_t *schakel_directory_school(const schakel_directory_t *self, const char *brinvest);
const schakel_school_t *schakel_directory_school_of(const schakel_directory_t *self, const char *org);

/* The wijkteam covering district, or NULL. */
const char *schakel_directory_district_wijkteam(const schakel_directory_t *self, const char *district);

/* What the broker can check at publish of the organisations an event from
 * `from` names (addressees, referral.to_org, consent_given.recipient_org):
 * each is listed, none is the admin, a school names no other school, and a
 * to_org is of the referral's to_kind. Returns 0 or SCHAKEL_EINVAL with the
 * field in why (a name not listed is not repeated). The routing rules
 * limit the rest (docs/routing.md). */
int schakel_directory_check_named(const schakel_directory_t *self, const schakel_org_t *from,
                                  const schakel_envelope_t *env, char *why);

/* How many organisations have right (a SCHAKEL_RIGHT_* bit). */
size_t schakel_directory_count_right(const schakel_directory_t *self, unsigned right);

/* The region's Veilig Thuis and leerplicht organisations ("" when none). */
const char *schakel_directory_veiligthuis(const schakel_directory_t *self);
const char *schakel_directory_leerplicht(const schakel_directory_t *self);

/* How many municipalities are listed; the municipality a district lies in
 * and a municipality's leerplicht office (NULL when not listed). */
size_t schakel_directory_municipality_count(const schakel_directory_t *self);
const char *schakel_directory_district_municipality(const schakel_directory_t *self, const char *district);
const char *schakel_directory_municipality_leerplicht(const schakel_directory_t *self,
                                                      const char *municipality);

/* The leerplicht office of a child's home municipality: the municipality
 * named, else the one district lies in; the region's office when no
 * municipality is listed. NULL when there is none, with *reason a code
 * (municipality_not_in_directory, district_not_in_a_municipality,
 * home_municipality_unknown) when it cannot be told which. */
const char *schakel_directory_home_leerplicht(const schakel_directory_t *self, const char *municipality,
                                              const char *district, const char **reason);

/* SHA-256 of the document text the directory was parsed from, and that
 * text (NUL-terminated). */
/* The days a royal decree equates with holidays (empty when the directory
 * has no "holidays" section). */
const schakel_decree_days_t *schakel_directory_decree_days(const schakel_directory_t *self);
const uint8_t *schakel_directory_hash(const schakel_directory_t *self);
const char *schakel_directory_text(const schakel_directory_t *self);

/* Org kind name <-> SCHAKEL__V1__ORG_KIND__* value; -1 / NULL if unknown.
 * parse knows only OrgKinds (1..9, never "admin"); name also names
 * SCHAKEL_ORG_KIND_ADMIN. */
int schakel_org_kind_parse(const char *name);
const char *schakel_org_kind_name(int kind);
/* 1 for the kinds that hold data about children (school to gemeente, and
 * leerplicht). */
int schakel_org_kind_data_holding(int kind);

#endif
