/* Fuzzes the services' policy files: routing.json, consent.json and
 * feedback.json (docs/routing.md, docs/feedback.md). The first byte picks
 * the parser (0 routing, 1 consent, 2 feedback, modulo 3), the rest is the
 * file. Property: no crash or sanitizer report; a refusal has a reason. */
#include <stdint.h>
#include <stdlib.h>

#include "consent.h"
#include "error.h"
#include "feedback.h"
#include "routing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char why[SCHAKEL_ERRLEN] = "";
    int ok;
    switch (data[0] % 3) {
    case 0: {
        schakel_routing_t *r = schakel_routing_new("service-routing", text, len, why);
        ok = r != NULL;
        schakel_routing_destroy(&r);
        break;
    }
    case 1: {
        schakel_consent_t *c = schakel_consent_new("service-consent", text, len, why);
        ok = c != NULL;
        schakel_consent_destroy(&c);
        break;
    }
    default: {
        schakel_feedback_t *f = schakel_feedback_new("service-feedback", text, len, why);
        ok = f != NULL;
        schakel_feedback_destroy(&f);
        break;
    }
    }
    if (!ok && !why[0]) abort();
    return 0;
}
