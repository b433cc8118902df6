/* schakel-consent: the consent service as its own process. */
#include "runner.h"

int main(int argc, char **argv)
{
    return schakel_svc_cli("consent", argc, argv);
}
