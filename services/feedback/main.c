/* schakel-feedback: the feedback-loop service as its own process. */
#include "runner.h"

int main(int argc, char **argv)
{
    return schakel_svc_cli("feedback", argc, argv);
}
