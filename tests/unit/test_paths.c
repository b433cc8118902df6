/* Building paths (lib/fileio.c): a path that fits exactly is built, one
 * byte more is refused with a reason naming it and the limit, and the
 * buffer is left empty (a cut path names another file); empty parts join
 * as the other part alone, both empty is refused; a directory ending in
 * '/' gets no second one. Texts for people (schakel_textf) are cut to fit
 * and say so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "fileio.h"

static void exact_fit_and_one_byte_over(void **state)
{
    (void)state;
    char out[16], why[SCHAKEL_ERRLEN];
    /* "abcdefghij/name" is 15 characters: with its NUL, exactly 16 */
    assert_int_equal(schakel_path_join(out, sizeof out, "abcdefghij", "name", why), 0);
    assert_string_equal(out, "abcdefghij/name");
    why[0] = 0;
    assert_int_equal(schakel_path_join(out, sizeof out, "abcdefghijk", "name", why), SCHAKEL_ETOOBIG);
    assert_string_equal(out, "");
    if (!strstr(why, "path too long: abcdefghijk/name") || !strstr(why, "16 characters; at most 15"))
        fail_msg("reason \"%s\" does not name the path and the limit", why);
    assert_int_equal(schakel_path_fmt(out, sizeof out, why, "%s.tmp", "abcdefghij"), 0);
    assert_string_equal(out, "abcdefghij.tmp");
    assert_int_equal(schakel_path_fmt(out, sizeof out, why, "%s.tmp", "abcdefghijkl"), SCHAKEL_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(schakel_path_fmt(out, sizeof out, NULL, "%s.tmp", "abcdefghijkl"), SCHAKEL_ETOOBIG);
}

static void empty_parts(void **state)
{
    (void)state;
    char out[16], why[SCHAKEL_ERRLEN];
    assert_int_equal(schakel_path_join(out, sizeof out, "", "name", why), 0);
    assert_string_equal(out, "name");
    assert_int_equal(schakel_path_join(out, sizeof out, "dir", "", why), 0);
    assert_string_equal(out, "dir");
    assert_int_equal(schakel_path_join(out, sizeof out, "dir/", "name", why), 0);
    assert_string_equal(out, "dir/name");
    assert_int_equal(schakel_path_join(out, sizeof out, "/", "name", why), 0);
    assert_string_equal(out, "/name");
    why[0] = 0;
    assert_int_equal(schakel_path_join(out, sizeof out, "", "", why), SCHAKEL_EINVAL);
    assert_string_equal(out, "");
    assert_non_null(strstr(why, "empty path"));
}

/* A path longer than the reason's room: its start and its end (the file
 * name) are said, the middle left out. */
static void a_long_path_is_named_by_both_ends(void **state)
{
    (void)state;
    static char dir[SCHAKEL_PATH_MAX + 100], out[SCHAKEL_PATH_MAX];
    char why[SCHAKEL_ERRLEN];
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = 0;
    assert_int_equal(schakel_path_join(out, sizeof out, dir, "node.json", why), SCHAKEL_ETOOBIG);
    assert_string_equal(out, "");
    if (strncmp(why, "path too long: /ddd", 19) != 0 || !strstr(why, "ddd/node.json (") ||
        !strstr(why, "at most 4095") || !strstr(why, "..."))
        fail_msg("reason \"%s\"", why);
    dir[SCHAKEL_PATH_MAX - 1 - strlen("/node.json")] = 0; /* now it fits exactly */
    assert_int_equal(schakel_path_join(out, sizeof out, dir, "node.json", why), 0);
    assert_int_equal(strlen(out), SCHAKEL_PATH_MAX - 1);
}

static void texts_are_cut_and_say_so(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(schakel_textf(buf, sizeof buf, "%s", "1234567"), 0);
    assert_string_equal(buf, "1234567");
    assert_int_equal(schakel_textf(buf, sizeof buf, "%s", "12345678"), 1);
    assert_string_equal(buf, "1234567");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_fit_and_one_byte_over),
        cmocka_unit_test(empty_parts),
        cmocka_unit_test(a_long_path_is_named_by_both_ends),
        cmocka_unit_test(texts_are_cut_and_say_so),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
