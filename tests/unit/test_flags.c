/* The one flag parser every command uses (lib/flags.c): each kind of flag
 * takes its value, a flag given twice keeps the last, --help wins only
 * when no error came before it, and every wrong argument is refused with
 * a reason naming the flag and what it wants: an unknown flag, a missing
 * value, a number that is not digits, out of range, signed where it may
 * not be, or overflowing; a value too long for its buffer; a second plain
 * argument. A list takes the plain arguments left over. The connection
 * flags (conn.h) work through the same table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "error.h"
#include "flags.h"

typedef struct {
    const char *name, *arg;
    int on;
    char buf[8];
    uint64_t u;
    int64_t s;
} opts_t;

/* Parses the NULL-ended words with a table of every kind; returns what
 * schakel_flags_parse returned, why in why. */
static int parse(opts_t *o, char *why, const char *const *words)
{
    memset(o, 0, sizeof *o);
    o->u = 7; /* defaults stay when a flag is not given */
    o->s = -7;
    schakel_flag_t t[] = {
        SCHAKEL_FLAG_S("--name", "NAME", &o->name),
        SCHAKEL_FLAG_B("--on", "-o", &o->on),
        SCHAKEL_FLAG_BUFFER("--buf", "TEXT", o->buf),
        SCHAKEL_FLAG_U("--count", &o->u, 1, 100),
        SCHAKEL_FLAG_I("--delta", &o->s, -5, 5),
        SCHAKEL_FLAG_A("ID", &o->arg),
        SCHAKEL_FLAGS_END,
    };
    char *argv[32] = {"cmd"};
    int argc = 1;
    for (; words[argc - 1]; argc++) argv[argc] = (char *)words[argc - 1];
    why[0] = 0;
    return schakel_flags_parse(t, argc, argv, 1, why);
}

/* The words are refused, and the reason holds each of the needles. */
static void refused(const char *const *words, const char *needle1, const char *needle2)
{
    opts_t o;
    char why[SCHAKEL_ERRLEN];
    int rc = parse(&o, why, words);
    if (rc != SCHAKEL_EINVAL) fail_msg("%s ...: not refused (%d)", words[0], rc);
    if (!strstr(why, needle1) || (needle2 && !strstr(why, needle2)))
        fail_msg("%s ...: reason \"%s\" lacks \"%s\" / \"%s\"", words[0], why, needle1,
                 needle2 ? needle2 : "");
}

static void each_kind_takes_its_value(void **state)
{
    (void)state;
    opts_t o;
    char why[SCHAKEL_ERRLEN];
    const char *w[] = {"--name", "x",       "-o", "--buf", "1234567", "--count",
                       "100",    "--delta", "-5", "abc",   NULL};
    assert_int_equal(parse(&o, why, w), 0);
    assert_string_equal(o.name, "x");
    assert_int_equal(o.on, 1);
    assert_string_equal(o.buf, "1234567");
    assert_int_equal(o.u, 100);
    assert_int_equal(o.s, -5);
    assert_string_equal(o.arg, "abc");
    const char *none[] = {NULL};
    assert_int_equal(parse(&o, why, none), 0);
    assert_int_equal(o.u, 7);
    assert_int_equal(o.s, -7);
    assert_null(o.name);
    const char *twice[] = {"--count", "3", "--count", "4", "--name", "-", NULL};
    assert_int_equal(parse(&o, why, twice), 0);
    assert_int_equal(o.u, 4);
    assert_string_equal(o.name, "-"); /* a value may look like anything */
    const char *lower[] = {"--count", "1", "--delta", "5", NULL};
    assert_int_equal(parse(&o, why, lower), 0);
    assert_int_equal(o.u, 1);
    assert_int_equal(o.s, 5);
}

static void help_unless_an_error_came_first(void **state)
{
    (void)state;
    opts_t o;
    char why[SCHAKEL_ERRLEN];
    const char *h[] = {"--name", "x", "--help", "--bogus", NULL}, *s[] = {"-h", NULL},
               *late[] = {"--count", "x", "--help", NULL};
    assert_int_equal(parse(&o, why, h), SCHAKEL_FLAGS_HELP);
    assert_int_equal(parse(&o, why, s), SCHAKEL_FLAGS_HELP);
    assert_int_equal(parse(&o, why, late), SCHAKEL_EINVAL);
}

static void wrong_arguments_name_the_flag(void **state)
{
    (void)state;
    const char *unknown[] = {"--bogus", NULL}, *dash[] = {"-x", NULL}, *second[] = {"one", "two", NULL};
    refused(unknown, "unexpected --bogus", NULL);
    refused(dash, "unexpected -x", NULL);
    refused(second, "unexpected two", NULL);

    const char *no_name[] = {"--name", NULL}, *no_count[] = {"--count", NULL};
    refused(no_name, "--name needs a value", "NAME");
    refused(no_count, "--count needs a value", "a whole number from 1 to 100");

    /* what atoi and a bare strtoull took as a number */
    const char *bad[] = {"abc",
                         "",
                         "12abc",
                         " 12",
                         "+5",
                         "-1",
                         "1.5",
                         "0x10",
                         "5 ",
                         "18446744073709551616",
                         "99999999999999999999999",
                         NULL};
    for (size_t i = 0; bad[i]; i++) {
        const char *w[] = {"--count", bad[i], NULL};
        refused(w, "--count wants a whole number from 1 to 100", bad[i]);
    }
    const char *low[] = {"--count", "0", NULL}, *high[] = {"--count", "101", NULL};
    refused(low, "--count wants a whole number from 1 to 100", "\"0\"");
    refused(high, "--count wants a whole number from 1 to 100", "\"101\"");
    const char *sbad[] = {"-6", "6", "--", "-", "x", "-9223372036854775809", NULL};
    for (size_t i = 0; sbad[i]; i++) {
        const char *w[] = {"--delta", sbad[i], NULL};
        refused(w, "--delta wants a whole number from -5 to 5", NULL);
    }
    const char *long_buf[] = {"--buf", "12345678", NULL};
    refused(long_buf, "--buf", "too long (at most 7 characters)");
}

static void numbers_in_full_range(void **state)
{
    (void)state;
    uint64_t u;
    int64_t s;
    assert_int_equal(schakel_flags_unsigned("18446744073709551615", 0, UINT64_MAX, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(schakel_flags_unsigned("0", 0, UINT64_MAX, &u), 0);
    assert_int_equal(u, 0);
    assert_int_equal(schakel_flags_signed("-9223372036854775808", INT64_MIN, INT64_MAX, &s), 0);
    assert_true(s == INT64_MIN);
    assert_int_equal(schakel_flags_signed("9223372036854775808", INT64_MIN, INT64_MAX, &s), SCHAKEL_EINVAL);
    assert_int_equal(schakel_flags_unsigned(NULL, 0, 1, &u), SCHAKEL_EINVAL);
}

static void connection_flags_through_the_table(void **state)
{
    (void)state;
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    const char *timeout = NULL;
    schakel_flag_t t[] = {SCHAKEL_CONN_FLAGS(&c), SCHAKEL_FLAG_S("--timeout-ms", "MS", &timeout),
                          SCHAKEL_FLAGS_END};
    char *argv[] = {"tail",       "--node",    "/srv/n", "--as",         "school-12ab00",
                    "--endpoint", "tcp://h:1", "--pub",  "tcp://h:2",    "--server-key",
                    "b.pub",      "--key",     "o.key",  "--timeout-ms", "9"};
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_flags_parse(t, 15, argv, 1, why), 0);
    assert_string_equal(c.node_dir, "/srv/n");
    assert_string_equal(c.as_org, "school-12ab00");
    assert_string_equal(c.endpoint, "tcp://h:1");
    assert_string_equal(c.pub_endpoint, "tcp://h:2");
    assert_string_equal(c.server_arg, "b.pub");
    assert_string_equal(c.key_path, "o.key");
    assert_string_equal(timeout, "9");
    assert_true(schakel_flags_given(t, "--as"));
    assert_false(schakel_flags_given(t, "--nope"));
    /* a missing value names the flag; an organisation id that cannot be one is refused */
    char *short_argv[] = {"tail", "--key"};
    assert_int_equal(schakel_flags_parse(t, 2, short_argv, 1, why), SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "--key needs a value: FILE"));
    char as[200];
    memset(as, 'a', sizeof as - 1);
    as[sizeof as - 1] = 0;
    char *long_argv[] = {"tail", "--as", as};
    assert_int_equal(schakel_flags_parse(t, 3, long_argv, 1, why), SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "--as: the value is too long"));
    /* finishing says what is missing, and prints nothing */
    memset(&c, 0, sizeof c);
    assert_int_equal(schakel_conn_finish(&c, why), SCHAKEL_ECONFIG);
    assert_non_null(strstr(why, "--server-key"));
}

/* A list takes the plain arguments no single ARG took, in order; more
 * than it holds is refused, naming the first one left over. */
static void a_list_takes_the_rest(void **state)
{
    (void)state;
    const char *first = NULL, *rest[2] = {NULL, NULL}, *org = NULL;
    schakel_flag_t t[] = {
        SCHAKEL_FLAG_S("--org", "ORG", &org),
        SCHAKEL_FLAG_A("FIRST", &first),
        SCHAKEL_FLAG_LIST("FILE", rest, 2),
        SCHAKEL_FLAGS_END,
    };
    char *argv[] = {"cmd", "a.csv", "--org", "x", "b.csv", "-", NULL}, why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_flags_parse(t, 6, argv, 1, why), 0);
    assert_string_equal(first, "a.csv");
    assert_string_equal(org, "x");
    assert_int_equal(t[2].seen, 2);
    assert_string_equal(rest[0], "b.csv");
    assert_string_equal(rest[1], "-");
    for (size_t i = 0; i < 3; i++) t[i].seen = 0;
    char *more[] = {"cmd", "a", "b", "c", "d", NULL};
    assert_int_equal(schakel_flags_parse(t, 5, more, 1, why), SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "unexpected d"));
    for (size_t i = 0; i < 3; i++) t[i].seen = 0;
    char *flagish[] = {"cmd", "a", "--bogus", NULL};
    assert_int_equal(schakel_flags_parse(t, 3, flagish, 1, why), SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "unexpected --bogus"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_kind_takes_its_value),
        cmocka_unit_test(help_unless_an_error_came_first),
        cmocka_unit_test(wrong_arguments_name_the_flag),
        cmocka_unit_test(numbers_in_full_range),
        cmocka_unit_test(connection_flags_through_the_table),
        cmocka_unit_test(a_list_takes_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
