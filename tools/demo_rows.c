/* The demo's scenario: what the schools' own systems export. A school's
 * story (a signal, an anonymous consultation, a consent and a referral,
 * sometimes without consent, sometimes withdrawn later or valid only for
 * weeks; the meldcode; absence; a thuiszitter; one signal in 200 with a
 * BSN mistyped on purpose) comes from the seed and its number alone; what
 * follows on the simulated clock is scheduled here and run in
 * demo_steps.c. Proportions and delays are in docs/demo.md. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"
#include "demo_sim.h"

void demo_buf_add(demo_org_t *o, int f, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) return; /* our own formats: never that long */
    if (o->len[f] + (size_t)n + 1 > o->cap[f]) {
        size_t cap = o->cap[f] ? o->cap[f] * 2 : 8192;
        while (cap < o->len[f] + (size_t)n + 1) cap *= 2;
        char *b = realloc(o->buf[f], cap);
        if (!b) return;
        o->buf[f] = b;
        o->cap[f] = cap;
    }
    memcpy(o->buf[f] + o->len[f], line, (size_t)n + 1);
    o->len[f] += (size_t)n;
    o->rows[f]++;
}

static unsigned slot(const char *pseudonym)
{
    return (unsigned)(strtoull((char[17]){pseudonym[0], pseudonym[1], pseudonym[2], pseudonym[3],
                                          pseudonym[4], pseudonym[5], pseudonym[6], pseudonym[7], 0},
                               NULL, 16) &
                      2047u);
}

demo_sim_t *demo_sim_new(demo_region_t *r, uint64_t story0, int64_t sim_ms)
{
    demo_sim_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->r = r;
    s->next = story0;
    s->now = sim_ms;
    for (int i = 0; i < 2048; i++) s->index[i] = -1;
    for (int i = 0; i < r->nchildren; i++) {
        if (!r->children[i].pseudonym[0]) continue; /* --plan: no region key */
        unsigned h = slot(r->children[i].pseudonym);
        while (s->index[h] >= 0) h = (h + 1) & 2047u;
        s->index[h] = i;
    }
    return s;
}

void demo_sim_free(demo_sim_t *s)
{
    if (!s) return;
    free(s->heap);
    free(s);
}

void demo_sim_set_time(demo_sim_t *s, int64_t sim_ms)
{
    if (sim_ms > s->now) s->now = sim_ms;
}

uint64_t demo_sim_next_story(const demo_sim_t *s)
{
    return s->next;
}

uint64_t demo_sim_deliberate(const demo_sim_t *s)
{
    return s->deliberate;
}

size_t demo_sim_pending(const demo_sim_t *s)
{
    return s->n;
}

/* Dates as the systems write them, in Amsterdam's winter time (the date
 * is what matters; an hour off in summer changes no day boundary we use,
 * as the clock hours are within office hours). */
void demo_fmt_date(int64_t ms, int style, char out[11])
{
    time_t t = (time_t)(ms / 1000) + 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = style == 0   ? strftime(out, 11, "%d-%m-%Y", &tm)
               : style == 1 ? strftime(out, 11, "%d/%m/%Y", &tm)
                            : strftime(out, 11, "%Y-%m-%d", &tm);
    if (n == 0) out[0] = 0;
}

void demo_fmt_clock(int64_t ms, char out[6])
{
    time_t t = (time_t)(ms / 1000) + 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 6, "%H:%M", &tm) == 0) out[0] = 0;
}

void demo_birth_as(const char *iso, int style, char out[11])
{
    if (style == 2) snprintf(out, 11, "%.10s", iso);
    else snprintf(out, 11, "%.2s%c%.2s%c%.4s", iso + 8, style ? '/' : '-', iso + 5, style ? '/' : '-', iso);
}

int demo_age(const demo_child_t *ch, int64_t ms)
{
    char today[11];
    demo_fmt_date(ms, 2, today);
    int age = atoi(today) - atoi(ch->birth);
    return strcmp(today + 4, ch->birth + 4) < 0 ? age - 1
                                                : age; /* "-mm-dd" compares as the day in the year */
}

const char *demo_given_by(const demo_child_t *ch, int64_t ms, const char *adult)
{
    int age = demo_age(ch, ms);
    return age >= 18 ? adult : age >= 16 ? "jongere" : age >= 12 ? "jongere en ouders" : "ouders";
}

static const char *const topics[] = {"gedrag",      "leren",      "thuissituatie",
                                     "welbevinden", "gezondheid", "verzuim"};

static void categories(demo_rng_t *g, char out[64])
{
    unsigned a = demo_below(g, 6), b = demo_below(g, 6);
    if (a == b || demo_below(g, 2)) snprintf(out, 64, "%s", topics[a]);
    else snprintf(out, 64, "%s|%s", topics[a], topics[b]);
}

/* A consent for the referral, given by the parents, or by the child of
 * 12 or more together with them; one in ten valid for a few weeks only,
 * one in twelve withdrawn some days later. */
static void consent(demo_sim_t *s, demo_rng_t *g, uint64_t k, int c, int d, const char *to, const char *cat,
                    char guid[33])
{
    demo_child_t *ch = &s->r->children[c];
    demo_org_t *o = &s->r->orgs[s->r->schools[ch->school].org];
    char date[11], birth[11], wijk[16], until[11];
    demo_fmt_date(s->now, 0, date);
    demo_birth_as(ch->birth, 0, birth);
    demo_district_name(d, wijk);
    snprintf(guid, 33, "%016llx%016llx", (unsigned long long)demo_next(g), (unsigned long long)demo_next(g));
    int ppo = !strcmp(to, "PPO");
    demo_fmt_date(s->now + (demo_below(g, 10) ? 700 : 21 + (int64_t)demo_below(g, 22)) * DAY_MS, 0, until);
    demo_buf_add(o, 1,
                 "TS-%08llu;;%s;%s;;%s;%s;toestemming;%s;%s;%s;%s;%s|%szorgstatus|contact;%s;;%s;IB-01;IB;\n",
                 (unsigned long long)k, ch->bsn, birth, s->r->schools[ch->school].brinvest, wijk, date, guid,
                 to, ppo ? "passend onderwijs|terugkoppeling" : "hulp|terugkoppeling", cat,
                 ppo ? "arrangement|" : "", demo_given_by(ch, s->now, "leerling 18+"), until);
    if (demo_below(g, 12) == 0) {
        step_t st = {
            .kind = ST_WITHDRAW, .org = (int)(o - s->r->orgs), .child = c, .story = k, .path = d << 8};
        st.due = s->now + (3 + (int64_t)demo_below(g, 28)) * DAY_MS;
        memcpy(st.rid, guid, 33);
        snprintf(st.to, sizeof st.to, "%s", to);
        demo_push(s, st);
    }
}

/* Absence the school records: unauthorised (reported to leerplicht) or
 * not, in DUO's kinds (docs/demo.md). */
static void absence(demo_sim_t *s, demo_rng_t *g, uint64_t k, int c, int d)
{
    static const struct {
        const char *kind, *report;
        int hours_lo, hours_span, days;
    } kinds[] = {{"wettelijk verzuim", "ja", 16, 24, 28},
                 {"wettelijk verzuim", "ja", 16, 24, 28},
                 {"ziek", "nee", 8, 22, 7},
                 {"ziek", "nee", 8, 22, 7},
                 {"geoorloofd", "nee", 2, 4, 1},
                 {"luxeverzuim", "ja", 8, 8, 3},
                 {"langdurig relatief verzuim", "ja", 40, 80, 56}};
    demo_child_t *ch = &s->r->children[c];
    unsigned x = demo_below(g, 7);
    /* from 18 the leerplicht office no longer: a student without a
     * qualification goes to the RMC, which the demo does not model */
    const char *report = demo_age(ch, s->now) >= 18 ? "nee" : kinds[x].report;
    char date[11], clock[6], birth[11], wijk[16], from[11], to[11];
    demo_fmt_date(s->now, 0, date);
    demo_fmt_clock(s->now, clock);
    demo_birth_as(ch->birth, 0, birth);
    demo_fmt_date(s->now - (int64_t)kinds[x].days * DAY_MS, 0, from);
    demo_fmt_date(s->now - DAY_MS, 0, to);
    demo_buf_add(&s->r->orgs[s->r->schools[ch->school].org], 3,
                 "VZ-%08llu;;%s;%s;;%s;%s;verzuim;%s;%s;%s;%u;%s;%s;%s;;;;;\n", (unsigned long long)k,
                 ch->bsn, birth, s->r->schools[ch->school].brinvest, demo_district_name(d, wijk), date, clock,
                 kinds[x].kind, kinds[x].hours_lo + demo_below(g, (unsigned)kinds[x].hours_span), from, to,
                 report);
}

int demo_sim_story(demo_sim_t *s)
{
    demo_region_t *r = s->r;
    uint64_t k = s->next++;
    demo_rng_t g = demo_rng(r->seed, 4, k);
    int c = (int)demo_below(&g, (unsigned)r->nchildren);
    demo_child_t *ch = &r->children[c];
    demo_school_t *sc = &r->schools[ch->school];
    demo_org_t *o = &r->orgs[sc->org];
    char date[11], clock[6], birth[11], wijk[16], cat[64];
    demo_fmt_date(s->now, 0, date);
    demo_fmt_clock(s->now, clock);
    demo_birth_as(ch->birth, 0, birth);
    /* most children live in the school's district, some elsewhere */
    int d = demo_below(&g, 10) ? sc->district : (int)demo_below(&g, (unsigned)r->ndistricts);
    demo_district_name(d, wijk);
    categories(&g, cat);
    unsigned what = demo_below(&g, 100);
    if (what < 33) { /* a signal */
        char bsn[10];
        memcpy(bsn, ch->bsn, sizeof bsn);
        if (demo_below(&g, 200) ==
            0) { /* a typo, on purpose: the elfproef fails and the adapter rejects it */
            bsn[8] = (char)('0' + (bsn[8] - '0' + 1) % 10);
            s->deliberate++;
        }
        demo_buf_add(o, 0, "ZR-%08llu;;%s;%s;;%s;%s;signaal;%s;%s;%s;%s;leerkracht;ja;;;;;;;IB-01;IB;\n",
                     (unsigned long long)k, bsn, birth, sc->brinvest, wijk, date, clock, cat,
                     demo_below(&g, 4) ? "normaal" : "snel");
        return 1;
    }
    if (what < 45) { /* an anonymous consultation: no pupil columns */
        static const char *const to[] = {"SMW", "SMW", "wijkteam", "wijkteam", "GGD", "Veilig Thuis"};
        demo_buf_add(o, 0, "ZR-%08llu;;;;;%s;;consultatie;%s;%s;%s;;;;%s;advies;;;;;IB-01;IB;\n",
                     (unsigned long long)k, sc->brinvest, date, clock, cat, to[demo_below(&g, 6)]);
        return 1;
    }
    if (what < 80) {
        /* a referral: to SMW 45 %, the wijkteam 30 %, the GGD 15 %, the
         * samenwerkingsverband 10 %; the parents refuse consent for one in seven */
        unsigned t = demo_below(&g, 20);
        const char *to = t < 9 ? "SMW" : t < 15 ? "wijkteam" : t < 18 ? "GGD" : "PPO";
        char guid[33] = "";
        int consented = demo_below(&g, 7) != 0;
        if (consented) consent(s, &g, k, c, d, to, cat, guid);
        demo_buf_add(o, 0, "ZR-%08llu;;%s;%s;;%s;%s;aanmelding;%s;%s;%s;%s;;;%s;%s;%s;;;;IB-01;IB;\n",
                     (unsigned long long)k, ch->bsn, birth, sc->brinvest, wijk, date, clock, cat,
                     demo_below(&g, 3) ? "normaal" : "snel", to, strcmp(to, "PPO") ? "intake" : "arrangement",
                     guid);
        return 1 + consented;
    }
    step_t st = {.org = sc->org, .child = c, .story = k, .path = d << 8, .due = s->now, .start = s->now};
    if (what < 85) { /* the meldcode's first step: the signals mapped */
        st.kind = ST_MELDCODE;
        st.step = 1;
        return demo_step_run(s, &st);
    }
    if (what < 98) {
        absence(s, &g, k, c, d);
        return 1;
    }
    st.kind = ST_THUIS; /* at home without school: a reason, and weeks to months */
    st.path |= (int)demo_below(&g, 9);
    st.received = s->now + (14 + (int64_t)demo_below(&g, 197)) * DAY_MS;
    return demo_step_run(s, &st);
}

void demo_push(demo_sim_t *s, step_t st)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        step_t *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return; /* the step is lost; the loop shows it overdue */
        s->heap = h;
        s->cap = cap;
    }
    size_t i = s->n++;
    while (i > 0 && s->heap[(i - 1) / 2].due > st.due) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = st;
}

static step_t pop(demo_sim_t *s)
{
    step_t top = s->heap[0], last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n) break;
        if (c + 1 < s->n && s->heap[c + 1].due < s->heap[c].due) c++;
        if (s->heap[c].due >= last.due) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n) s->heap[i] = last;
    return top;
}

demo_rng_t demo_step_rng(const demo_sim_t *s, const step_t *st, unsigned salt)
{
    uint64_t h = demo_mix(st->story ^ ((uint64_t)st->kind << 56) ^ ((uint64_t)(unsigned)st->org << 40));
    for (int i = 0; i < 32 && st->rid[i]; i++) h = demo_mix(h ^ (unsigned char)st->rid[i]);
    return demo_rng(s->r->seed, 5 + (uint64_t)salt, h);
}

/* A referral, or a report to Veilig Thuis, reached org o's inbox: its
 * receiver's steps begin within hours. */
void demo_sim_referral(demo_sim_t *s, int o, const char *referral_id, const char *subject)
{
    if (strlen(referral_id) != 32 || strlen(subject) != 64) return;
    unsigned h = slot(subject);
    while (s->index[h] >= 0 && strcmp(s->r->children[s->index[h]].pseudonym, subject)) h = (h + 1) & 2047u;
    if (s->index[h] < 0) return; /* not one of ours */
    step_t st = {.org = o, .kind = s->r->orgs[o].kind == DEMO_VT ? ST_VT : ST_CARE, .child = s->index[h]};
    memcpy(st.rid, referral_id, 33);
    demo_rng_t g = demo_step_rng(s, &st, 0);
    st.due = s->now + (int64_t)(demo_next(&g) % (4 * 3600000ULL));
    st.received = st.due;
    demo_push(s, st);
}

void demo_sim_leerplicht(demo_sim_t *s, int o, const char *subject, const char *event_id, int thuiszitter,
                         const char *code, int hours, const char *from, const char *to)
{
    if (strlen(subject) != 64 || !event_id || strlen(event_id) != 32) return;
    unsigned h = slot(subject);
    while (s->index[h] >= 0 && strcmp(s->r->children[s->index[h]].pseudonym, subject)) h = (h + 1) & 2047u;
    int32_t a = schakel_date_days(from), b = thuiszitter ? a : schakel_date_days(to);
    if (s->index[h] < 0 || a <= 0 || b <= 0) return; /* not one of ours */
    step_t st = {.org = o, .kind = ST_LEERPLICHT, .child = s->index[h], .step = thuiszitter, .path = hours};
    snprintf(st.to, sizeof st.to, "%s", code);
    st.start = (int64_t)a * DAY_MS;
    st.received = (int64_t)b * DAY_MS;
    /* one registration per report: not per child and minute, which two
     * reports about a child read in one go shared (and the second was
     * refused as the first sent again with other content) */
    snprintf(st.rid, sizeof st.rid, "%s", event_id);
    demo_rng_t g = demo_step_rng(s, &st, 900);
    /* the report registered within days; the officer's own account of a
     * thuiszitter after the first talk with the family, in two weeks */
    st.due =
        s->now + (thuiszitter ? 5 + (int64_t)demo_below(&g, 10) : 1 + (int64_t)demo_below(&g, 4)) * DAY_MS;
    demo_push(s, st);
}

int demo_sim_due(demo_sim_t *s)
{
    int rows = 0;
    while (s->n && s->heap[0].due <= s->now) {
        step_t st = pop(s);
        rows += demo_step_run(s, &st);
    }
    return rows;
}
