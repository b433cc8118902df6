/* schakel-routing: the routing service as its own process. */
#include "runner.h"

int main(int argc, char **argv)
{
    return schakel_svc_cli("routing", argc, argv);
}
