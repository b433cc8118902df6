/* schakel keygen: one key file per organisation (CURVE + Ed25519). */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel keygen --id ORG --out DIR\n"
    "\n"
    "Makes DIR/ORG.key (secret, mode 0600: keep it on the adapter's machine)\n"
    "and DIR/ORG.pub (public: give it to whoever keeps the directory).\n"
    "ORG is the organisation id: lower-case letters, digits, . _ / -.\n"
    "An existing ORG.key is never overwritten.\n";

int cmd_keygen(int argc, char **argv)
{
    const char *id = NULL, *out = ".";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--id") && i + 1 < argc) {
            id = argv[++i];
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else {
            fprintf(stderr, "schakel keygen: unexpected %s\n\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!id) {
        fprintf(stderr, "schakel keygen: --id is required\n\n%s", usage);
        return 2;
    }
    if (!schakel_id_valid(id)) {
        fprintf(stderr, "schakel keygen: \"%s\" is not a valid id: use 1-63 of a-z 0-9 . _ / -\n", id);
        return 2;
    }
    schakel_keys_t k;
    int rc = schakel_keys_generate(&k, id);
    if (rc == 0) rc = schakel_keys_save(&k, out);
    if (rc) {
        fprintf(stderr, "schakel keygen: %s\n", schakel_strerror(rc));
        return 1;
    }
    printf("{\"id\":\"%s\",\"key\":\"%s/%s.key\",\"pub\":\"%s/%s.pub\",\"curve_public\":\"%s\"}\n",
           id, out, id, out, id, k.curve_public);
    schakel_keys_wipe(&k);
    return 0;
}
