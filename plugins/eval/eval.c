/* eval.c: the eval plugin, a shell-script plugin on the command line.
 *
 *   nbdkit eval get_size='echo 64M' pread='dd if=/dev/zero ...' [...]
 *
 * Each key named after a method gives that method's shell code, run as
 * "/bin/sh -c CODE eval METHOD ARGS..." (so $1 is the method, as with
 * the sh plugin, whose callbacks this plugin shares).  missing=CODE
 * runs for every method not given (default: exit 2).  Other keys go
 * to the config method once all methods are known.  Unlike sh, a
 * can_* method that is not given is answered from whether its data
 * method is (can_write from pwrite, and so on).
 */

#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "methods.h"

static const char *const methods[] = {
  "after_fork",     "block_size",    "cache",
  "can_cache",      "can_extents",   "can_fast_zero",
  "can_flush",      "can_fua",       "can_multi_conn",
  "can_trim",       "can_write",     "can_zero",
  "close",          "config",        "config_complete",
  "default_export", "dump_plugin",   "export_description",
  "extents",        "flush",         "get_ready",
  "get_size",       "is_rotational", "list_exports",
  "open",           "pread",         "preconnect",
  "pwrite",         "thread_model",  "trim",
  "unload",         "zero",          "missing",
};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const char *code[NMETHODS];

/* Keys that are not methods, kept for config until all are known. */
static char **pending;
static size_t npending;

const char *
script_name (void)
{
  return "eval";
}

/* Every method is a script of its own; missing ones are missing. */
bool
have_script (void)
{
  return true;
}

static int
method_index (const char *method)
{
  for (size_t i = 0; i < NMETHODS; i++)
    if (strcmp (methods[i], method) == 0)
      return i;
  return -1;
}

bool
script_defined (const char *method)
{
  int i = method_index (method);
  return i >= 0 && code[i] != NULL;
}

int
script_command (const char *method, const char **prefix)
{
  int i = method_index (method);
  const char *c = i >= 0 ? code[i] : NULL;

  if (c == NULL)
    c = code[NMETHODS - 1]; /* missing= */
  if (c == NULL)
    return 0;
  prefix[0] = "/bin/sh";
  prefix[1] = "-c";
  prefix[2] = c;
  prefix[3] = "eval"; /* $0 */
  return 4;
}

static void
eval_load (void)
{
  tmpdir_create ();
}

static void
eval_unload (void)
{
  sh_unload ();
  for (size_t i = 0; i < npending; i++)
    free (pending[i]);
  free (pending);
  pending = NULL;
  npending = 0;
}

static int
eval_config (const char *key, const char *value)
{
  int i = method_index (key);
  char **p;

  if (i >= 0) {
    code[i] = value;
    return 0;
  }
  p = realloc (pending, (npending + 2) * sizeof *p);
  if (p == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  pending = p;
  pending[npending] = strdup (key);
  pending[npending + 1] = strdup (value);
  npending += 2;
  if (pending[npending - 2] == NULL || pending[npending - 1] == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  return 0;
}

static int
eval_config_complete (void)
{
  for (size_t i = 0; i < npending; i += 2)
    if (sh_config (pending[i], pending[i + 1]) == -1)
      return -1;
  return sh_config_complete ();
}

static const char *
eval_config_help (void)
{
  return "METHOD=CODE   shell code run for METHOD (get_size, pread, pwrite, "
         "...)\n"
         "missing=CODE  run for every method not given (default: exit 2)\n"
         "key=value     any other key goes to the config method";
}

static struct nbdkit_plugin plugin = {
  SH_METHODS,
  .name = "eval",
  .longname = "nbdkit eval plugin",
  .version = NBDKIT_VERSION,
  .description = "a shell-script plugin written on the command line",
  .load = eval_load,
  .unload = eval_unload,
  .config = eval_config,
  .config_complete = eval_config_complete,
  .config_help = eval_config_help,
};

NBDKIT_REGISTER_PLUGIN (plugin)
