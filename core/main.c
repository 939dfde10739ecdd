/* main.c: the nbdkit program, one user of <nbdkit-server.h>. */

#include "nbdkit-server.h"

int
main (int argc, char *argv[])
{
  return nbdkit_main (argc, argv);
}
