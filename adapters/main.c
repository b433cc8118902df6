/* schakel-adapter: an organisation's adapter as its own program. */
#include "adapter.h"

int main(int argc, char **argv)
{
    return schakel_adapter_cli(argc, argv);
}
