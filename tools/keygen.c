/* schakel keygen: one key file per organisation (CURVE + Ed25519). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "fileio.h"
#include "tool.h"

static const char usage[] = "usage: schakel keygen --id ORG --out DIR\n"
                            "       schakel keygen --region FILE\n"
                            "\n"
                            "Makes DIR/ORG.key (secret, mode 0600: keep it on the adapter's machine)\n"
                            "and DIR/ORG.pub (public: give it to whoever keeps the directory).\n"
                            "ORG is the organisation id: lower-case letters, digits, . _ / -.\n"
                            "DIR is made (mode 0700) when it does not exist; an existing ORG.key is\n"
                            "never overwritten. Exit status: 0 made, 1 not written, 2 wrong arguments.\n"
                            "\n"
                            "--region FILE makes a region's pseudonym key (32 random bytes, hex, mode\n"
                            "0600): every adapter of the region turns a BSN into the same pseudonym\n"
                            "with it, and it never reaches the broker. An existing FILE is kept.\n";

/* A region key: the adapters' shared secret for pseudonyms. */
static int region_key(const char *path)
{
    uint8_t key[32];
    char why[SCHAKEL_ERRLEN];
    int created;
    int rc = schakel_secret_file(path, key, sizeof key, 1, &created, why);
    memset(key, 0, sizeof key);
    if (rc) {
        fprintf(stderr, "schakel keygen: %s\n", why);
        return 1;
    }
    if (!created) fprintf(stderr, "schakel keygen: %s exists already: kept\n", path);
    else printf("{\"region_key\":\"%s\"}\n", path);
    return 0;
}

/* Makes dir and any missing parent, each mode 0700: the secret key goes
 * in there, so a directory made for it is nobody else's. An existing
 * directory is left as it is. */
static int make_dir(const char *dir, char *why)
{
    char p[SCHAKEL_PATH_MAX], inner[SCHAKEL_ERRLEN];
    if (!dir[0]) return schakel_fail(why, SCHAKEL_EINVAL, "--out: give a directory");
    /* room for the key file's name in it */
    if (schakel_path_fmt(p, sizeof p - SCHAKEL_ID_MAX - sizeof "/.key.tmp", inner, "%s", dir))
        return schakel_fail(why, SCHAKEL_ETOOBIG, "--out: %s", inner);
    for (char *s = p + 1;; s++) {
        if (*s && *s != '/') continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return schakel_fail(why, SCHAKEL_EIO, "cannot make the directory %s: %s", p, strerror(errno));
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            return schakel_fail(why, SCHAKEL_EIO, "%s is not a directory: give --out a directory", p);
        *s = c;
        if (!c) return 0;
    }
}

/* Says what went wrong with the key files in words a user can act on. */
static void save_failed(int rc, const char *out, const char *id)
{
    if (rc == SCHAKEL_EEXIST)
        fprintf(stderr,
                "schakel keygen: %s/%s.key exists already: kept (to replace a key, make the new one "
                "in another directory)\n",
                out, id);
    else if (rc == SCHAKEL_ETOOBIG)
        fprintf(stderr, "schakel keygen: path too long: %.200s/%s.key (at most %d characters)\n", out, id,
                SCHAKEL_PATH_MAX - 1);
    else if (rc == SCHAKEL_EIO)
        fprintf(stderr, "schakel keygen: cannot write %s/%s.key or .pub: %s\n", out, id, strerror(errno));
    else fprintf(stderr, "schakel keygen: %s\n", schakel_strerror(rc));
}

int cmd_keygen(int argc, char **argv)
{
    const char *id = NULL, *out = ".", *region = NULL;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--id", "ORG", &id),
        SCHAKEL_FLAG_S("--out", "DIR", &out),
        SCHAKEL_FLAG_S("--region", "FILE", &region),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("keygen", flags, argc, argv, 1, usage, NULL, usage);
    if (status >= 0) return status;
    if (region) return region_key(region);
    if (!id) {
        fprintf(stderr, "schakel keygen: --id is required\n\n%s", usage);
        return 2;
    }
    if (!schakel_id_valid(id)) {
        fprintf(stderr, "schakel keygen: \"%s\" is not a valid id: use 1-63 of a-z 0-9 . _ / -\n", id);
        return 2;
    }
    char why[SCHAKEL_ERRLEN];
    int made = make_dir(out, why);
    if (made != 0) {
        fprintf(stderr, "schakel keygen: %s\n", why);
        return made == SCHAKEL_ETOOBIG ? 2 : 1;
    }
    schakel_keys_t k;
    int rc = schakel_keys_generate(&k, id);
    if (rc == 0) rc = schakel_keys_save(&k, out);
    if (rc) {
        save_failed(rc, out, id);
        schakel_keys_wipe(&k);
        return 1;
    }
    printf("{\"id\":\"%s\",\"key\":\"%s/%s.key\",\"pub\":\"%s/%s.pub\",\"curve_public\":\"%s\"}\n", id, out,
           id, out, id, k.curve_public);
    schakel_keys_wipe(&k);
    return 0;
}
