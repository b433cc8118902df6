/* The demo's steps on the simulated clock: what a receiver's system
 * exports after a referral reached its inbox (received, first contact, an
 * intake whose outcome picks a path: short help, a waiting list with or
 * without bridging care, a decline, a redirect, the samenwerkingsverband's
 * arrangement and TLV; then closure), Veilig Thuis's answers to a report,
 * the municipality's decision on specialised care, and a school's own
 * chains: the meldcode's five steps and its report, a
 * thuiszitter's status, a consent withdrawn. Each delay and choice comes
 * from the seed and what the step is about; docs/demo.md gives the shares
 * and the delays. */
#include <stdlib.h>
#include <string.h>

#include "demo_sim.h"

enum {
    C_RECEIVED,
    C_FIRST,
    C_INTAKE,
    C_WAIT,
    C_BRIDGE,
    C_WAIT_START,
    C_ARRANGE,
    C_TLV_PENDING,
    C_TLV_DECIDED,
    C_CLOSE
};
enum { P_SHORT, P_PREVENT, P_SPECIAL_BRIDGE, P_SPECIAL, P_DECLINED, P_REDIRECT, P_NOHELP, P_ARRANGE, P_TLV };

static int64_t days(demo_rng_t *g, int lo, int span)
{
    return (int64_t)lo * DAY_MS + (int64_t)(demo_next(g) % (uint64_t)(span * DAY_MS + 1));
}

/* The intake's outcome, per kind of receiver (docs/demo.md). */
static int pick_path(const demo_sim_t *s, const step_t *st, demo_kind_t k)
{
    demo_rng_t g = demo_step_rng(s, st, 100 + (unsigned)k);
    unsigned x = demo_below(&g, 100);
    if (k == DEMO_GGD) return x < 60 ? P_SHORT : x < 75 ? P_PREVENT : x < 85 ? P_SPECIAL : P_DECLINED;
    if (k == DEMO_PPO)
        return x < 55 ? P_ARRANGE : x < 75 ? P_NOHELP : x < 85 ? P_TLV : x < 95 ? P_SPECIAL : P_DECLINED;
    return x < 55   ? P_SHORT
           : x < 65 ? P_PREVENT
           : x < 75 ? P_SPECIAL_BRIDGE
           : x < 80 ? P_SPECIAL
           : x < 90 ? P_DECLINED
                    : P_REDIRECT;
}

/* The step after c on path p, and its delay; -1 when the chain ends. */
static int care_next(const step_t *st, demo_kind_t k, demo_rng_t *g, int64_t *delay)
{
    int p = st->path, n = -1;
    switch (st->step) {
    case C_RECEIVED: n = C_FIRST, *delay = k == DEMO_PPO ? days(g, 2, 8) : days(g, 1, 4); break;
    case C_FIRST: n = C_INTAKE, *delay = days(g, 2, 8); break;
    case C_INTAKE:
        if (p == P_SHORT || p == P_PREVENT) n = C_CLOSE, *delay = days(g, 10, 30);
        else if (p == P_DECLINED) n = C_CLOSE, *delay = days(g, 0, 3);
        else if (p == P_SPECIAL && k == DEMO_GGD) n = C_CLOSE, *delay = days(g, 1, 4);
        else if ((p == P_SPECIAL || p == P_SPECIAL_BRIDGE) && k != DEMO_PPO)
            n = C_WAIT, *delay = days(g, 0, 2);
        else if (p == P_ARRANGE || p == P_TLV) n = C_ARRANGE, *delay = days(g, 0, 10);
        break;
    case C_WAIT: n = p == P_SPECIAL_BRIDGE ? C_BRIDGE : C_WAIT_START, *delay = days(g, 0, 3); break;
    case C_BRIDGE: n = C_WAIT_START, *delay = days(g, 20, 40); break;
    case C_WAIT_START: n = C_CLOSE, *delay = days(g, 10, 30); break;
    case C_ARRANGE:
        n = p == P_TLV ? C_TLV_PENDING : C_CLOSE, *delay = p == P_TLV ? days(g, 5, 10) : days(g, 20, 40);
        break;
    case C_TLV_PENDING: n = C_TLV_DECIDED, *delay = days(g, 10, 30); break;
    case C_TLV_DECIDED: n = C_CLOSE, *delay = days(g, 5, 15); break;
    }
    if (st->step == C_WAIT && p == P_SPECIAL) *delay = days(g, 20, 40);
    return n;
}

typedef struct {
    const char *what, *outcome, *redirect, *reason, *provider, *wl, *goal;
    char expected[11];
} row_t;

static const char *const goals[] = {"ritme vasthouden", "naar school blijven gaan", "ouders ondersteunen",
                                    "veiligheid bewaken"};

/* What the receiver's system says at step c, in its own words. */
static void care_row(demo_sim_t *s, const step_t *st, demo_kind_t k, row_t *w, char redirect[24])
{
    static const char *const what[][4] = {
        /* received, first contact, intake, closure */
        [DEMO_SMW] = {"aangemeld", "eerste contact", "intake", "afgesloten"},
        [DEMO_WIJKTEAM] = {"aanmelding ontvangen", "eerste contact", "intake", "afsluiting"},
        [DEMO_GGD] = {"verwijzing ontvangen", "eerste contact", "intake", "afsluiting"},
        [DEMO_PPO] = {"aanvraag ontvangen", "eerste contact", "ondersteuningsbesluit", "afsluiting"},
    };
    static const char *const outcome[][9] = {
        [DEMO_SMW] = {"kortdurende hulp", "voorliggend veld", "specialistische zorg", "specialistische zorg",
                      "gezin wil niet", "doorverwezen"},
        [DEMO_WIJKTEAM] = {"kortdurende hulp", "voorliggend veld", "specialistische jeugdhulp",
                           "specialistische jeugdhulp", "gezin ziet af", "doorverwezen"},
        [DEMO_GGD] = {"advies en begeleiding JGZ", "voorliggend veld", "", "verwijzing specialistische zorg",
                      "ouders zien af"},
        [DEMO_PPO] = {"", "", "", "naar jeugdhulp", "ouders zien af", "", "basisondersteuning volstaat",
                      "arrangement", "arrangement"},
    };
    memset(w, 0, sizeof *w);
    w->outcome = w->redirect = w->reason = w->provider = w->wl = w->goal = "";
    int p = st->path;
    demo_rng_t g = demo_step_rng(s, st, 200 + (unsigned)st->step);
    switch (st->step) {
    case C_RECEIVED:
    case C_FIRST: w->what = what[k][st->step]; break;
    case C_INTAKE:
        w->what = what[k][2];
        w->outcome = outcome[k][p];
        if (p == P_REDIRECT && k == DEMO_SMW) { /* the wijkteam of the school's district, or the GGD */
            char name[16];
            int d = s->r->schools[s->r->children[st->child].school].district;
            if (demo_below(&g, 3)) snprintf(redirect, 24, "Wijkteam %s", demo_district_name(d, name) + 5);
            else snprintf(redirect, 24, "GGD");
            w->redirect = redirect;
        } else if (p == P_REDIRECT) {
            w->redirect = demo_below(&g, 2) ? "GGD" : "PPO";
        }
        break;
    case C_WAIT:
    case C_WAIT_START:
        w->what = "wachtlijst";
        w->wl = st->step == C_WAIT ? (k == DEMO_SMW ? "geplaatst" : "aangemeld bij aanbieder")
                                   : (k == DEMO_SMW ? "gestart" : "hulp gestart");
        snprintf(redirect, 24, "prov-%04u", (unsigned)demo_below(&g, 40) + 1);
        w->provider = redirect;
        demo_fmt_date(st->due + days(&g, 20, 40), k == DEMO_SMW ? 0 : 1, w->expected);
        break;
    case C_BRIDGE:
        w->what = "overbrugging";
        w->goal = goals[demo_below(&g, 4)];
        break;
    case C_CLOSE:
        w->what = what[k][3];
        if (k == DEMO_PPO)
            w->reason = p == P_DECLINED ? "ingetrokken door ouders"
                        : p == P_TLV    ? "TLV afgegeven"
                                        : "arrangement afgerond";
        else if (p == P_DECLINED) w->reason = k == DEMO_GGD ? "ouders gestopt" : "gezin gestopt";
        else if (p == P_SPECIAL || p == P_SPECIAL_BRIDGE) w->reason = "overgedragen";
        else w->reason = "doelen behaald";
        break;
    }
}

/* A redirect: the new receiver hears of it from the intake, which the bus
 * delivers on a consent that covers it (docs/routing.md, "Redirected"). So
 * the redirecting organisation records the family's consent for that
 * kind of organisation first, except in one case in seven: the family
 * will not have its data passed on, and the intake waits for a consent
 * that does not come (held, then expired). */
static void redirect_consent(demo_sim_t *s, const step_t *st, demo_kind_t k, const char *to)
{
    demo_org_t *o = &s->r->orgs[st->org];
    demo_child_t *ch = &s->r->children[st->child];
    demo_rng_t g = demo_step_rng(s, st, 420);
    if (demo_below(&g, 7) == 0) return;
    char guid[33], date[11], until[11], birth[11], clock[6];
    snprintf(guid, sizeof guid, "%016llx%016llx", (unsigned long long)demo_next(&g),
             (unsigned long long)demo_next(&g));
    const char *kind = !strncmp(to, "Wijkteam", 8) ? "Wijkteam" : to,
               *by = demo_given_by(ch, st->due, "client 18+");
    demo_fmt_clock(st->due, clock);
    if (k == DEMO_SMW) {
        demo_fmt_date(st->due, 0, date);
        demo_fmt_date(st->due + 365 * DAY_MS, 0, until);
        demo_birth_as(ch->birth, 0, birth);
        demo_buf_add(
            o, 0,
            "D-%.12s;20;%s;%s;%s;;;%s;toestemming;%s;;;;;SMW-01;;;;;;%s;%s;%s;;%s;zorgstatus|contact;;\n",
            st->rid, ch->bsn, birth, s->r->schools[ch->school].brinvest, st->rid, date, until, guid, by,
            kind);
    } else {
        char team[16];
        demo_fmt_date(st->due, 1, date);
        demo_fmt_date(st->due + 365 * DAY_MS, 1, until);
        demo_birth_as(ch->birth, 1, birth);
        demo_buf_add(
            o, 0,
            "%s{\"casusnummer\":\"WT-%.12s\",\"regelnummer\":\"20\",\"team\":\"%s\",\"bsn\":\"%s\","
            "\"geboortedatum\":\"%s\",\"brinvest\":\"%s\",\"wijk\":\"\",\"verwijzing_id\":\"%s\","
            "\"datum\":\"%s\",\"tijd\":\"%s\",\"gebeurtenis\":\"toestemming\",\"toestemming_id\":\"%s\","
            "\"toestemming_door\":\"%s\",\"gezag\":\"\",\"naar\":\"%s\",\"categorie\":\"zorgstatus|contact\","
            "\"geldig_tot\":\"%s\",\"medewerker_id\":\"wt-01\"}",
            o->rows[0] ? "," : "", st->rid, demo_district_name(o->district, team), ch->bsn, birth,
            s->r->schools[ch->school].brinvest, st->rid, date, clock, guid, by, kind, until);
    }
}

/* The step of the loop the family hears of at step c on path p, in the
 * system's words; NULL: none new (the GGD's specialised care and the
 * PPO's youth care wait at first contact; an arrangement or a TLV is no
 * step of the loop). */
static const char *family_step(const step_t *st, demo_kind_t k)
{
    int p = st->path;
    if (k == DEMO_GGD || k == DEMO_PPO) {
        switch (st->step) {
        case C_RECEIVED: return k == DEMO_GGD ? "verwijzing ontvangen" : "aanvraag ontvangen";
        case C_FIRST: return "eerste contact";
        case C_INTAKE:
            return p == P_SHORT || p == P_PREVENT ? "begeleiding gestart"
                   : p == P_ARRANGE || p == P_TLV ? "arrangement"
                   : p == P_DECLINED              ? "ouders zien af"
                   : p == P_NOHELP                ? "afgesloten"
                                                  : NULL;
        case C_CLOSE: return "afgesloten";
        default: return NULL;
        }
    }
    switch (st->step) {
    case C_RECEIVED: return k == DEMO_SMW ? "aangemeld" : "aanmelding ontvangen";
    case C_FIRST: return "eerste contact";
    case C_INTAKE:
        return p == P_SHORT || p == P_PREVENT ? "hulp gestart"
               : p == P_DECLINED              ? (k == DEMO_SMW ? "afgewezen" : "gezin ziet af")
               : p == P_REDIRECT              ? "doorverwezen"
                                              : NULL;
    case C_WAIT: return "wachtlijst";
    case C_WAIT_START: return "hulp gestart";
    case C_CLOSE: return "afgesloten";
    default: return NULL;
    }
}

/* Every receiver tells the family of each step and says so
 * (family_informed), the same day: school social work, the wijkteams and
 * the GGD (its nurse knows the family from the consultatiebureau) nine
 * times in ten, the samenwerkingsverband (its school contact reaches the
 * parents through the school) four in five; otherwise the family is not
 * told in time, and the receiver is reminded. How, per kind: docs/demo.md. */
static void family_row(demo_sim_t *s, const step_t *st, demo_kind_t k)
{
    static const char *const how[] = {"gesprek", "telefoon", "telefoon", "brief", "huisbezoek"},
                             *const ggd_how[] = {"spreekuur", "spreekuur", "telefoon", "telefoon", "brief"},
                             *const ppo_how[] = {"gesprek op school", "gesprek op school", "brief", "brief",
                                                 "telefoon"};
    const char *what = k <= DEMO_PPO && k != DEMO_SCHOOL ? family_step(st, k) : NULL;
    demo_rng_t g = demo_step_rng(s, st, 800 + (unsigned)st->step);
    if (!what || demo_below(&g, k == DEMO_PPO ? 5 : 10) == 0) return;
    demo_org_t *o = &s->r->orgs[st->org];
    demo_child_t *ch = &s->r->children[st->child];
    char date[11], clock[6], birth[11], team[16];
    const char *brin = s->r->schools[ch->school].brinvest, *by = how[demo_below(&g, 5)];
    demo_fmt_clock(st->due, clock);
    if (k == DEMO_GGD) {
        demo_fmt_date(st->due, 2, date);
        demo_buf_add(o, 0,
                     "{\"dossier_id\":\"JGZ-%.12s\",\"bsn\":\"%s\",\"geboortedatum\":\"%s\","
                     "\"school_brinvest\":\"%s\",\"wijk\":\"\",\"regel\":\"%d\",\"registratie\":"
                     "\"gezin geinformeerd\",\"datum\":\"%s\",\"tijd\":\"%s\",\"verwijzing_id\":\"%s\","
                     "\"geinformeerd_over\":\"%s\",\"hoe\":\"%s\",\"discipline\":\"JVP\","
                     "\"medewerker_code\":\"jvp-01\"}\n",
                     st->rid, ch->bsn, ch->birth, brin, 41 + st->step, date, clock, st->rid, what,
                     ggd_how[demo_below(&g, 5)]);
    } else if (k == DEMO_PPO) {
        demo_fmt_date(st->due, 0, date);
        demo_birth_as(ch->birth, 0, birth);
        demo_buf_add(o, 0, "OA-%.12s;%d;%s;%s;%s;ouders geinformeerd;%s;%s;;;;;;;;;;;;;;;;;;scp-01;;%s;%s\n",
                     st->rid, 41 + st->step, ch->bsn, birth, brin, date, st->rid, what,
                     ppo_how[demo_below(&g, 5)]);
    } else if (k == DEMO_SMW) {
        demo_fmt_date(st->due, 0, date);
        demo_birth_as(ch->birth, 0, birth);
        demo_buf_add(o, 0, "D-%.12s;%d;%s;%s;%s;;;%s;gezin geinformeerd;%s;;;;;SMW-01;;;;;;;;;;;;%s;%s\n",
                     st->rid, 41 + st->step, ch->bsn, birth, brin, st->rid, date, what, by);
    } else {
        demo_fmt_date(st->due, 1, date);
        demo_birth_as(ch->birth, 1, birth);
        demo_buf_add(o, 0,
                     "%s{\"casusnummer\":\"WT-%.12s\",\"regelnummer\":\"%d\",\"team\":\"%s\",\"bsn\":\"%s\","
                     "\"geboortedatum\":\"%s\",\"brinvest\":\"%s\",\"wijk\":\"\",\"verwijzing_id\":\"%s\","
                     "\"datum\":\"%s\",\"tijd\":\"%s\",\"gebeurtenis\":\"gezin geinformeerd\","
                     "\"geinformeerd_over\":\"%s\",\"hoe\":\"%s\",\"medewerker_id\":\"wt-01\"}",
                     o->rows[0] ? "," : "", st->rid, 41 + st->step, demo_district_name(o->district, team),
                     ch->bsn, birth, brin, st->rid, date, clock, what, by);
    }
}

static int care_step(demo_sim_t *s, step_t *st)
{
    demo_region_t *r = s->r;
    demo_org_t *o = &r->orgs[st->org];
    demo_kind_t k = o->kind;
    demo_child_t *ch = &r->children[st->child];
    const char *brin = r->schools[ch->school].brinvest;
    if (st->step == C_INTAKE) st->path = pick_path(s, st, k);
    row_t w;
    char date[11], clock[6], birth[11], recv[11], buf[24] = "";
    care_row(s, st, k, &w, buf);
    if (st->step == C_INTAKE && st->path == P_REDIRECT) redirect_consent(s, st, k, w.redirect);
    demo_fmt_clock(st->due, clock);
    const char *end = st->step == C_CLOSE ? "nee" : "";
    int no = st->step + 1;
    if (k == DEMO_SMW) {
        demo_fmt_date(st->due, 0, date);
        demo_fmt_date(st->received, 0, recv);
        demo_birth_as(ch->birth, 0, birth);
        demo_buf_add(o, 0, "D-%.12s;%d;%s;%s;%s;;%s;%s;%s;%s;%s;%s;%s;%s;SMW-01;%s;%s;%s;%s;%s;;;;;;;;\n",
                     st->rid, no, ch->bsn, birth, brin, recv, st->rid, w.what, date, w.outcome, w.redirect,
                     w.reason, end, w.provider, w.wl, w.expected, w.goal, st->step == C_BRIDGE ? o->id : "");
    } else if (k == DEMO_WIJKTEAM) {
        char team[16];
        demo_fmt_date(st->due, 1, date);
        demo_birth_as(ch->birth, 1, birth);
        demo_buf_add(o, 0,
                     "%s{\"casusnummer\":\"WT-%.12s\",\"regelnummer\":\"%d\",\"team\":\"%s\",\"bsn\":\"%s\","
                     "\"geboortedatum\":\"%s\",\"brinvest\":\"%s\",\"wijk\":\"\",\"verwijzing_id\":\"%s\","
                     "\"datum\":\"%s\",\"tijd\":\"%s\",\"gebeurtenis\":\"%s\",\"uitkomst\":\"%s\","
                     "\"doorverwezen_naar\":\"%s\",\"afsluitreden\":\"%s\",\"contact_blijft\":\"%s\","
                     "\"aanbieder_code\":\"%s\",\"wachtlijststatus\":\"%s\",\"verwachte_start\":\"%s\","
                     "\"overbruggingsdoel\":\"%s\",\"medewerker_id\":\"wt-01\"}",
                     o->rows[0] ? "," : "", st->rid, no, demo_district_name(o->district, team), ch->bsn,
                     birth, brin, st->rid, date, clock, w.what, w.outcome, w.redirect, w.reason, end,
                     w.provider, w.wl, w.expected, w.goal);
    } else if (k == DEMO_GGD) {
        demo_fmt_date(st->due, 2, date);
        demo_buf_add(o, 0,
                     "{\"dossier_id\":\"JGZ-%.12s\",\"bsn\":\"%s\",\"geboortedatum\":\"%s\","
                     "\"school_brinvest\":\"%s\",\"wijk\":\"\",\"regel\":\"%d\",\"registratie\":\"%s\","
                     "\"datum\":\"%s\",\"tijd\":\"%s\",\"verwijzing_id\":\"%s\",\"discipline\":\"JVP\","
                     "\"medewerker_code\":\"jvp-01\",\"uitkomst\":\"%s\",\"afsluitreden\":\"%s\","
                     "\"contact_blijft\":\"%s\"}\n",
                     st->rid, ch->bsn, ch->birth, brin, no, w.what, date, clock, st->rid, w.outcome, w.reason,
                     end);
    } else if (k == DEMO_PPO) {
        demo_rng_t g = demo_step_rng(s, st, 300 + (unsigned)st->step);
        static const char *const arr[] = {"AB", "LB", "OZA", "RT"},
                                 *const fund[] = {"SWV", "gemeente", "samen"},
                                 *const tlv[] = {"SBO", "SBO", "SO cat. 1", "SO cat. 2", "SO cat. 3"};
        char from[11] = "", until[11] = "", arrno[24] = "", tlvno[24] = "";
        const char *what = w.what, *code = "", *funded = "", *kind = "", *decision = "";
        demo_fmt_date(st->due, 0, date);
        demo_birth_as(ch->birth, 0, birth);
        if (st->step == C_ARRANGE) {
            what = "arrangement";
            snprintf(arrno, sizeof arrno, "ARR-%.12s", st->rid);
            code = arr[demo_below(&g, 4)];
            funded = fund[demo_below(&g, 3)];
            demo_fmt_date(st->due, 0, from);
            demo_fmt_date(st->due + days(&g, 60, 120), 0, until);
        } else if (st->step == C_TLV_PENDING || st->step == C_TLV_DECIDED) {
            what = "TLV";
            snprintf(tlvno, sizeof tlvno, "TLV-%.12s", st->rid);
            kind = tlv[demo_below(&g, 5)];
            decision = st->step == C_TLV_PENDING ? "in behandeling"
                       : demo_below(&g, 7)       ? "toegekend"
                                                 : "afgewezen";
            if (!strcmp(decision, "toegekend")) {
                demo_fmt_date(st->due + 14 * DAY_MS, 0, from);
                demo_fmt_date(st->due + 730 * DAY_MS, 0, until);
            }
        }
        /* arrangement's dates in startdatum/einddatum, a TLV's in geldig_van/geldig_tot */
        int a = st->step == C_ARRANGE;
        demo_buf_add(o, 0,
                     "OA-%.12s;%d;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;%s;;;;;%s;%s;scp-01;;;\n",
                     st->rid, no, ch->bsn, birth, brin, what, date, st->rid,
                     st->step == C_INTAKE ? w.outcome : "", arrno, code, funded, a ? from : "",
                     a ? until : "", tlvno, kind, decision, a ? "" : from, a ? "" : until, w.reason, end);
    }
    family_row(s, st, k);
    demo_rng_t g = demo_step_rng(s, st, 400 + (unsigned)st->step);
    if (st->step == C_INTAKE && k != DEMO_PPO && (st->path == P_SPECIAL || st->path == P_SPECIAL_BRIDGE))
        for (int i = 0; i < s->r->norgs; i++) /* specialised care needs the municipality's decision */
            if (s->r->orgs[i].kind == DEMO_GEMEENTE) {
                step_t b = {
                    .kind = ST_BESCHIKKING, .org = i, .child = st->child, .due = st->due + days(&g, 1, 2)};
                memcpy(b.rid, st->rid, sizeof b.rid);
                demo_push(s, b);
            }
    int64_t delay = 0;
    int n = care_next(st, k, &g, &delay);
    demo_rng_t slow = demo_step_rng(s, st, 450);
    if (st->step == C_RECEIVED && demo_below(&slow, 10) == 0) /* a busy receiver: first contact late */
        delay = days(&slow, 8, 7);
    if (n >= 0) {
        st->step = n;
        st->due += delay;
        demo_push(s, *st);
    }
    return 1;
}

/* Veilig Thuis: it registers the report, tells the reporter it came in,
 * decides within days (most within its 5 working days), and closes the
 * case later unless it closed it without action. */
static int vt_step(demo_sim_t *s, step_t *st)
{
    static const char *const outcome[] = {
        "onderzoek gestart",         "onderzoek gestart",    "onderzoek gestart", "overgedragen aan wijkteam",
        "overgedragen aan wijkteam", "veiligheidsafspraken", "advies gegeven",    "advies gegeven",
        "afgesloten zonder vervolg"};
    demo_region_t *r = s->r;
    demo_org_t *o = &r->orgs[st->org];
    demo_child_t *ch = &r->children[st->child];
    demo_rng_t g = demo_step_rng(s, st, 500);
    unsigned x = demo_below(&g, 9);
    char date[11], clock[6], birth[11];
    demo_fmt_date(st->due, 0, date);
    demo_fmt_clock(st->due, clock);
    demo_birth_as(ch->birth, 0, birth);
    static const char *const what[] = {"melding ontvangen", "terugkoppeling melder", "terugkoppeling melder",
                                       "afsluiting"};
    const char *out = st->step == 1 ? "melding ontvangen" : st->step == 2 ? outcome[x] : "";
    const char *reason = st->step < 3      ? ""
                         : x < 3 || x == 5 ? "veiligheid geborgd"
                         : x < 5           ? "overgedragen"
                                           : "geen vervolg nodig";
    demo_buf_add(o, 0, "VT-%.12s;%d;%s;%s;%s;%s;%s;%s;onderwijs;%s;%s;%s;team/%s;vt-01;\n", st->rid,
                 st->step + 1, st->rid, ch->bsn, birth, what[st->step], date, clock, out, reason,
                 st->step == 3 ? "nee" : "", st->step < 2 ? "triage" : "vervolg");
    static const int lo[] = {0, 1, 20}, span[] = {1, 6, 40};
    if (st->step < 3 && !(st->step == 2 && x == 8)) {
        demo_rng_t d = demo_step_rng(s, st, 510 + (unsigned)st->step);
        st->due += days(&d, lo[st->step], span[st->step]) / (st->step == 0 ? 6 : 1); /* hours, then days */
        st->step++;
        demo_push(s, *st);
    }
    return 1;
}

static void school_cols(demo_sim_t *s, const step_t *st, char *date, char *clock, char *birth, char *wijk)
{
    demo_child_t *ch = &s->r->children[st->child];
    demo_fmt_date(st->due, 0, date);
    demo_fmt_clock(st->due, clock);
    demo_birth_as(ch->birth, 0, birth);
    demo_district_name(st->path >> 8, wijk);
}

/* The meldcode at school: map the signals (the story itself), consult a
 * colleague and Veilig Thuis (anonymously), talk with the parents and the
 * child, weigh, decide: organise help, report to Veilig Thuis, or both. */
static int meldcode_step(demo_sim_t *s, step_t *st)
{
    demo_region_t *r = s->r;
    demo_org_t *o = &r->orgs[st->org];
    demo_child_t *ch = &r->children[st->child];
    const char *brin = r->schools[ch->school].brinvest;
    char date[11], clock[6], birth[11], wijk[16];
    school_cols(s, st, date, clock, birth, wijk);
    demo_rng_t g = demo_step_rng(s, st, 600);
    unsigned decide = demo_below(&g, 20); /* the same draw at every step: the decision */
    int acute = decide < 4;               /* acute danger: every step within hours, then a report */
    int rows = 1;
    unsigned long long k = (unsigned long long)st->story;
    if (st->step == 2) { /* the anonymous consultation: no pupil columns */
        demo_buf_add(o, 2,
                     "MC-%08llu-C;;;;;%s;;consultatie VT;%s;%s;;;;veiligheid|thuissituatie;;;;IB-01;IB;\n", k,
                     brin, date, clock);
        rows++;
    }
    if (st->step <= 5) {
        const char *besluit = st->step < 5  ? ""
                              : decide < 8  ? "melden"
                              : decide < 17 ? "hulp organiseren"
                                            : "beide";
        demo_buf_add(o, 2, "MC-%08llu-%d;;%s;%s;;%s;%s;meldcodestap;%s;%s;%d;%s;%s;veiligheid;;;;IB-01;IB;\n",
                     k, st->step, ch->bsn, birth, brin, wijk, date, clock, st->step, besluit,
                     st->step == 2 ? "ja" : "");
    } else { /* the report: the family told, or why not */
        static const char *const why[] = {"veiligheid kind", "veiligheid ander", "veiligheid melder",
                                          "contact verbreekt"};
        static const char *const taxatie[] = {"structureel", "zorg"};
        demo_rng_t h = demo_step_rng(s, st, 601);
        int told = demo_below(&h, 5) != 0;
        demo_buf_add(o, 2,
                     "MC-%08llu-R;;%s;%s;;%s;%s;melding "
                     "VT;%s;%s;;;;veiligheid|thuissituatie|contact;%s;%s;%s;IB-01;IB;\n",
                     k, ch->bsn, birth, brin, wijk, date, clock, acute ? "acuut" : taxatie[demo_below(&h, 2)],
                     told ? "ja" : "nee", told ? "" : why[demo_below(&h, 4)]);
    }
    /* days to the next step: consult 1-5, talk 1-7, weigh 1-5, decide 1-3; the report within
     * hours; acute: hours instead of days */
    static const int lo[] = {0, 0, 1, 1, 1, 1, 0}, span[] = {0, 0, 4, 6, 4, 2, 1};
    int report = decide < 8 || decide >= 17;
    if (st->step < 5 || (st->step == 5 && report)) {
        demo_rng_t d = demo_step_rng(s, st, 610 + (unsigned)st->step);
        st->step++;
        st->due += days(&d, lo[st->step], span[st->step]) / (st->step == 6 ? 4 : acute ? 24 : 1);
        demo_push(s, *st);
    }
    return rows;
}

/* A thuiszitter: started (the story), ongoing after four weeks, ended. */
static int thuis_step(demo_sim_t *s, step_t *st)
{
    static const char *const reason[] = {"wachtlijst (v)so",
                                         "wacht op plaatsing sbo",
                                         "weigering ouders/leerplichtige",
                                         "wacht op oza",
                                         "zorg voorliggend",
                                         "nog geen school gevonden",
                                         "leerlingvervoer ontbreekt",
                                         "onbekend",
                                         "overig"};
    demo_region_t *r = s->r;
    demo_org_t *o = &r->orgs[st->org];
    demo_child_t *ch = &r->children[st->child];
    char date[11], clock[6], birth[11], wijk[16], since[11], back[11] = "";
    school_cols(s, st, date, clock, birth, wijk);
    demo_fmt_date(st->start, 0, since);
    if (st->step == 2) demo_fmt_date(st->due, 0, back);
    static const char *const state[] = {"gestart", "lopend", "beeindigd"};
    demo_buf_add(o, 3, "VZ-%08llu-%d;;%s;%s;;%s;%s;thuiszitter;%s;%s;;;;;;%s;%s;%s;%s;\n",
                 (unsigned long long)st->story, st->step, ch->bsn, birth, r->schools[ch->school].brinvest,
                 wijk, date, clock, state[st->step], reason[st->path & 0xff], since, back);
    if (st->step < 2) {
        int64_t ongoing = st->start + 28 * DAY_MS;
        st->step = st->step == 0 && ongoing < st->received ? 1 : 2;
        st->due = st->step == 1 ? ongoing : st->received;
        demo_push(s, *st);
    }
    return 1;
}

/* The parents (and a child of 12 or more) withdraw the consent they gave. */
static int withdraw_step(demo_sim_t *s, step_t *st)
{
    demo_region_t *r = s->r;
    demo_child_t *ch = &r->children[st->child];
    char date[11], clock[6], birth[11], wijk[16];
    school_cols(s, st, date, clock, birth, wijk);
    demo_buf_add(&r->orgs[st->org], 1, "TS-%08llu-W;;%s;%s;;%s;%s;intrekking;%s;%s;%s;;;%s;;;IB-01;IB;\n",
                 (unsigned long long)st->story, ch->bsn, birth, r->schools[ch->school].brinvest, wijk, date,
                 st->rid, st->to, demo_given_by(ch, st->due, "leerling 18+"));
    return 1;
}

/* The municipality's youth consultant: the application for specialised
 * care in progress, then granted (9 in 10, ambulant or day treatment, for
 * a year) or refused. */
static int beschikking_step(demo_sim_t *s, step_t *st)
{
    demo_region_t *r = s->r;
    demo_child_t *ch = &r->children[st->child];
    demo_rng_t g = demo_step_rng(s, st, 700);
    int granted = demo_below(&g, 10) != 0;
    const char *form = demo_below(&g, 3) ? "ambulant" : "dagbehandeling";
    char date[11], birth[11], from[11] = "", until[11] = "";
    demo_fmt_date(st->due, 0, date);
    demo_birth_as(ch->birth, 0, birth);
    const char *decision = st->step == 0 ? "in behandeling" : granted ? "toegekend" : "afgewezen";
    if (st->step == 1 && granted) {
        demo_fmt_date(st->due + 7 * DAY_MS, 0, from);
        demo_fmt_date(st->due + 372 * DAY_MS, 0, until);
    }
    demo_buf_add(&r->orgs[st->org], 0, "BS-%.12s;%d;%s;%s;beschikking;%s;%s;%s;%s;%s;%s\n", st->rid,
                 st->step + 1, ch->bsn, birth, date, st->rid, decision, st->step ? form : "", from, until);
    if (st->step == 0) {
        demo_rng_t d = demo_step_rng(s, st, 701);
        st->step = 1;
        st->due += days(&d, 5, 10);
        demo_push(s, *st);
    }
    return 1;
}

/* The leerplicht office's system: a school's absence report registered
 * (the office's own absence record of the same kind and period), or its
 * follow-up of a thuiszitter (ongoing, with the reason as it sees it). */
static int leerplicht_step(demo_sim_t *s, step_t *st)
{
    demo_child_t *ch = &s->r->children[st->child];
    char date[11], birth[11], from[11], to[11], hours[12] = "";
    demo_fmt_date(st->due, 0, date);
    demo_birth_as(ch->birth, 0, birth);
    demo_fmt_date(st->start, 0, from);
    demo_fmt_date(st->received, 0, to);
    if (st->path > 0) snprintf(hours, sizeof hours, "%d", st->path);
    if (st->step == 0)
        demo_buf_add(&s->r->orgs[st->org], 0, "LP-%s;1;%s;%s;verzuimmelding;%s;%s;%s;%s;%s;;\n", st->rid,
                     ch->bsn, birth, date, st->to, hours, from, to);
    else
        demo_buf_add(&s->r->orgs[st->org], 0, "LP-%s;1;%s;%s;thuiszitter;%s;;;;;%s;%s\n", st->rid, ch->bsn,
                     birth, date, st->to, from);
    return 1;
}

int demo_step_run(demo_sim_t *s, step_t *st)
{
    switch (st->kind) {
    case ST_CARE: return care_step(s, st);
    case ST_VT: return vt_step(s, st);
    case ST_MELDCODE: return meldcode_step(s, st);
    case ST_THUIS: return thuis_step(s, st);
    case ST_WITHDRAW: return withdraw_step(s, st);
    case ST_BESCHIKKING: return beschikking_step(s, st);
    case ST_LEERPLICHT: return leerplicht_step(s, st);
    }
    return 0;
}
