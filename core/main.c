/* main.c: the nbdkit program: a server from the command line. */

#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

int
main (int argc, char *argv[])
{
  struct server *s = server_new ();
  int status, r;

  if (s == NULL) {
    perror ("nbdkit");
    return EXIT_FAILURE;
  }
  r = cmdline_parse (s, argc, argv, &status);
  if (r == 0)
    status = server_run (s);
  else if (r == -1)
    status = EXIT_FAILURE;
  fflush (stdout);
  /* On errors before running, or after --dump-plugin, the plugin may
   * still be loaded; the process ends here, which unloads it.  With
   * nothing loaded (--version, --help, a bad option) the server is
   * freed, so leak checkers see a clean exit.
   */
  if (r == 0 || s->top == NULL)
    server_free (s);
  return status;
}
