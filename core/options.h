/* options.h: what options.c hands to cmdline.c: the command line's
 * options read into struct server_options, plus the requests that are
 * answered rather than served, the filters, the -D flags, and the other
 * words in order (the plugin, then its parameters).
 */

#ifndef NBDKIT_OPTIONS_H
#define NBDKIT_OPTIONS_H

#include <stdbool.h>

#define MAX_FILTERS 64
#define MAX_DEBUG_FLAGS 64

struct cmdline {
  const char *filters[MAX_FILTERS];
  int nfilters;
  const char *debug_args[MAX_DEBUG_FLAGS];
  int ndebug;
  bool help, version, dump_config, dump_plugin;
  char **args; /* the plugin, then its parameters (malloc'd array) */
  int nargs;
};

/* Read ARGV's options into S->opt and CL, and check that they make
 * sense together.  CMDLINE_DONE when an option was answered on the
 * spot (--long-options), with *STATUS set.
 */
extern enum cmdline_result options_parse (struct server *s, int argc,
                                          char **argv, struct cmdline *cl,
                                          int *status);

/* --help without a plugin. */
extern void usage (FILE *fp);

#endif /* NBDKIT_OPTIONS_H */
