/* schakel-broker: the broker as its own process. */
#include "cli.h"

int main(int argc, char **argv)
{
    return schakel_broker_cli(argc, argv);
}
