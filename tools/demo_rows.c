/* The demo's scenario: what the organisations' own systems export. A
 * school's story (a signal, an anonymous consultation, or a consent and a
 * referral, sometimes without consent; one signal in 200 with a BSN
 * mistyped on purpose) comes from the seed and its number
 * alone; a receiver (school social work, a wijkteam, the GGD) answers a
 * referral that reached its inbox with the steps of the feedback loop,
 * each after a delay on the simulated clock. Proportions and delays are
 * in docs/demo.md. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

typedef struct {
    int64_t due, received;
    int org, step, child;
    char rid[33];
} step_t;

struct demo_sim {
    demo_region_t *r;
    uint64_t next, deliberate;
    int64_t now;
    step_t *heap;
    size_t n, cap;
    int index[2048]; /* children by pseudonym: open addressing, -1 empty */
};

#define DAY_MS (86400LL * 1000)

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
static void fmt_date(int64_t ms, int style, char out[11])
{
    time_t t = (time_t)(ms / 1000) + 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = style == 0   ? strftime(out, 11, "%d-%m-%Y", &tm)
               : style == 1 ? strftime(out, 11, "%d/%m/%Y", &tm)
                            : strftime(out, 11, "%Y-%m-%d", &tm);
    if (n == 0) out[0] = 0;
}

static void fmt_clock(int64_t ms, char out[6])
{
    time_t t = (time_t)(ms / 1000) + 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 6, "%H:%M", &tm) == 0) out[0] = 0;
}

static void birth_as(const char *iso, int style, char out[11])
{
    if (style == 2) snprintf(out, 11, "%.10s", iso);
    else snprintf(out, 11, "%.2s%c%.2s%c%.4s", iso + 8, style ? '/' : '-', iso + 5, style ? '/' : '-', iso);
}

static const char *const topics[] = {"gedrag",      "leren",      "thuissituatie",
                                     "welbevinden", "gezondheid", "verzuim"};

static void categories(demo_rng_t *g, char out[64])
{
    unsigned a = demo_below(g, 6), b = demo_below(g, 6);
    if (a == b || demo_below(g, 2)) snprintf(out, 64, "%s", topics[a]);
    else snprintf(out, 64, "%s|%s", topics[a], topics[b]);
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
    fmt_date(s->now, 0, date);
    fmt_clock(s->now, clock);
    birth_as(ch->birth, 0, birth);
    /* most children live in the school's district, some elsewhere */
    int d = demo_below(&g, 10) ? sc->district : (int)demo_below(&g, (unsigned)r->ndistricts);
    demo_district_name(d, wijk);
    categories(&g, cat);
    unsigned what = demo_below(&g, 100);
    if (what < 40) { /* a signal */
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
    if (what < 55) { /* an anonymous consultation: no pupil columns */
        static const char *const to[] = {"SMW", "SMW", "wijkteam", "wijkteam", "GGD", "Veilig Thuis"};
        demo_buf_add(o, 0, "ZR-%08llu;;;;;%s;;consultatie;%s;%s;%s;;;;%s;advies;;;;;IB-01;IB;\n",
                     (unsigned long long)k, sc->brinvest, date, clock, cat, to[demo_below(&g, 6)]);
        return 1;
    }
    /* a referral: to SMW half the time, the wijkteam a third, the GGD the
     * rest; the parents refuse consent for one in seven */
    unsigned t = demo_below(&g, 20);
    const char *to = t < 10 ? "SMW" : t < 17 ? "wijkteam" : "GGD";
    int consent = demo_below(&g, 7) != 0;
    char guid[33] = "";
    int rows = 1;
    if (consent) {
        snprintf(guid, sizeof guid, "%016llx%016llx", (unsigned long long)demo_next(&g),
                 (unsigned long long)demo_next(&g));
        char until[11];
        fmt_date(s->now + 700 * DAY_MS, 0, until);
        demo_buf_add(o, 1,
                     "TS-%08llu;;%s;%s;;%s;%s;toestemming;%s;%s;%s;hulp|terugkoppeling;%s|zorgstatus|contact;"
                     "ouders;;%s;IB-01;IB;\n",
                     (unsigned long long)k, ch->bsn, birth, sc->brinvest, wijk, date, guid, to, cat, until);
        rows++;
    }
    demo_buf_add(o, 0, "ZR-%08llu;;%s;%s;;%s;%s;aanmelding;%s;%s;%s;%s;;;%s;intake;%s;;;;IB-01;IB;\n",
                 (unsigned long long)k, ch->bsn, birth, sc->brinvest, wijk, date, clock, cat,
                 demo_below(&g, 3) ? "normaal" : "snel", to, guid);
    return rows;
}

static void push(demo_sim_t *s, step_t st)
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

/* The delay before step st.step: received within hours, first contact
 * within 1 to 5 days (the 5 working days promised in Oost-Achterhoek),
 * intake 2 to 10 days later, closure 10 to 40 days after that. */
static int64_t delay(demo_sim_t *s, const step_t *st)
{
    uint64_t h = 0;
    for (int i = 0; i < 32; i++) h = demo_mix(h ^ (unsigned char)st->rid[i]);
    demo_rng_t g = demo_rng(s->r->seed, 5 + (uint64_t)st->step, h);
    static const int64_t lo[] = {0, DAY_MS, 2 * DAY_MS, 10 * DAY_MS},
                         span[] = {4 * 3600000LL, 4 * DAY_MS, 8 * DAY_MS, 30 * DAY_MS};
    return lo[st->step] + (int64_t)(demo_next(&g) % (uint64_t)span[st->step]);
}

void demo_sim_referral(demo_sim_t *s, int o, const char *referral_id, const char *subject)
{
    if (strlen(referral_id) != 32 || strlen(subject) != 64) return;
    unsigned h = slot(subject);
    while (s->index[h] >= 0 && strcmp(s->r->children[s->index[h]].pseudonym, subject)) h = (h + 1) & 2047u;
    if (s->index[h] < 0) return; /* not one of ours */
    step_t st = {.org = o, .step = 0, .child = s->index[h]};
    memcpy(st.rid, referral_id, 33);
    st.due = s->now + delay(s, &st);
    st.received = st.due;
    push(s, st);
}

static void emit(demo_sim_t *s, const step_t *st)
{
    demo_region_t *r = s->r;
    demo_org_t *o = &r->orgs[st->org];
    demo_child_t *ch = &r->children[st->child];
    const char *brin = r->schools[ch->school].brinvest;
    char date[11], clock[6], birth[11], recv[11];
    fmt_clock(st->due, clock);
    if (o->kind == DEMO_SMW) {
        static const char *const status[] = {"aangemeld", "eerste contact", "intake", "afgesloten"};
        fmt_date(st->due, 0, date);
        fmt_date(st->received, 0, recv);
        birth_as(ch->birth, 0, birth);
        demo_buf_add(o, 0, "D-%.12s;%d;%s;%s;%s;;%s;%s;%s;%s;%s;;%s;%s;SMW-01\n", st->rid, st->step + 1,
                     ch->bsn, birth, brin, recv, st->rid, status[st->step], date,
                     st->step == 2 ? "kortdurende hulp" : "", st->step == 3 ? "doelen behaald" : "",
                     st->step == 3 ? "nee" : "");
    } else if (o->kind == DEMO_WIJKTEAM) {
        static const char *const what[] = {"aanmelding ontvangen", "eerste contact", "intake", "afsluiting"};
        fmt_date(st->due, 1, date);
        birth_as(ch->birth, 1, birth);
        demo_buf_add(o, 0,
                     "%s{\"casusnummer\":\"WT-%.12s\",\"regelnummer\":\"%d\",\"team\":\"%s\",\"bsn\":\"%s\","
                     "\"geboortedatum\":\"%s\",\"brinvest\":\"%s\",\"wijk\":\"\",\"verwijzing_id\":\"%s\","
                     "\"datum\":\"%s\",\"tijd\":\"%s\",\"gebeurtenis\":\"%s\",\"uitkomst\":\"%s\","
                     "\"doorverwezen_naar\":\"\",\"afsluitreden\":\"%s\",\"contact_blijft\":\"%s\","
                     "\"medewerker\":\"wt-01\"}",
                     o->rows[0] ? "," : "", st->rid, st->step + 1, o->id, ch->bsn, birth, brin, st->rid, date,
                     clock, what[st->step], st->step == 2 ? "kortdurende hulp" : "",
                     st->step == 3 ? "doelen behaald" : "", st->step == 3 ? "nee" : "");
    } else if (o->kind == DEMO_GGD) {
        static const char *const what[] = {"verwijzing ontvangen", "eerste contact", "intake", "afsluiting"};
        fmt_date(st->due, 2, date);
        demo_buf_add(o, 0,
                     "{\"dossier_id\":\"JGZ-%.12s\",\"bsn\":\"%s\",\"geboortedatum\":\"%s\","
                     "\"school_brinvest\":\"%s\",\"wijk\":\"\",\"regel\":\"%d\",\"registratie\":\"%s\","
                     "\"datum\":\"%s\",\"tijd\":\"%s\",\"verwijzing_id\":\"%s\",\"discipline\":\"JVP\","
                     "\"medewerker_code\":\"jvp-01\",\"uitkomst\":\"%s\",\"afsluitreden\":\"%s\","
                     "\"contact_blijft\":\"%s\"}\n",
                     st->rid, ch->bsn, ch->birth, brin, st->step + 1, what[st->step], date, clock, st->rid,
                     st->step == 2 ? "advies en begeleiding JGZ" : "", st->step == 3 ? "doelen behaald" : "",
                     st->step == 3 ? "nee" : "");
    }
}

int demo_sim_due(demo_sim_t *s)
{
    int rows = 0;
    while (s->n && s->heap[0].due <= s->now) {
        step_t st = pop(s);
        emit(s, &st);
        rows++;
        if (st.step < 3) {
            st.step++;
            st.due += delay(s, &st);
            push(s, st);
        }
    }
    return rows;
}
