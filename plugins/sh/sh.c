/* sh.c: the sh plugin, a plugin written as a script or any program.
 *
 *   nbdkit sh SCRIPT [key=value ...]
 *   nbdkit sh - <<'EOF' ... EOF          (the script read from stdin)
 *
 * The script runs once per method: "SCRIPT METHOD ARGS...".  The
 * callbacks are shared with the eval plugin (methods.c, call.c); this
 * file only finds the script.  The plugin declares no typed
 * parameters, so every key reaches config: "script" (the magic key)
 * names the script the first time; later bare values go to the key
 * the script's magic_config_key method prints, and every other key to
 * the script's config method.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "methods.h"

static char *script;    /* absolute path */
static char *magic_key; /* what the script's magic_config_key printed */

bool
have_script (void)
{
  return script != NULL;
}

const char *
script_name (void)
{
  const char *slash = script ? strrchr (script, '/') : NULL;
  return slash ? slash + 1 : script ? script : "sh";
}

int
script_command (const char *method, const char **prefix)
{
  if (script == NULL)
    return 0;
  prefix[0] = script;
  return 1;
}

/* A script's methods cannot be listed without running them. */
bool
script_defined (const char *method)
{
  return false;
}

static void
sh_load (void)
{
  tmpdir_create ();
}

static void
sh_plugin_unload (void)
{
  sh_unload ();
  free (script);
  free (magic_key);
  script = magic_key = NULL;
}

/* "-": copy stdin into $tmpdir, where it runs from. */
static char *
inline_script (void)
{
  const char *dir = tmpdir_create ();
  char *path = NULL, buf[65536];
  FILE *fp;
  size_t n;

  if (dir == NULL)
    return NULL;
  if (!nbdkit_stdio_safe ()) {
    nbdkit_error ("script '-' (read from stdin) cannot be used with -s, "
                  "where stdin is the client");
    return NULL;
  }
  if (asprintf (&path, "%s/inline-script.sh", dir) == -1) {
    nbdkit_error ("asprintf: %m");
    return NULL;
  }
  fp = fopen (path, "we");
  if (fp == NULL) {
    nbdkit_error ("%s: %m", path);
    free (path);
    return NULL;
  }
  while ((n = fread (buf, 1, sizeof buf, stdin)) > 0)
    fwrite (buf, 1, n, fp);
  if (ferror (stdin) || fclose (fp) == EOF || chmod (path, 0700) == -1) {
    nbdkit_error ("saving the script from stdin to %s: %m", path);
    free (path);
    return NULL;
  }
  return path;
}

static int
set_script (const char *value)
{
  char *s;

  if (strcmp (value, "-") == 0)
    script = inline_script ();
  else
    script = nbdkit_realpath (value);
  if (script == NULL)
    return -1;
  if (access (script, X_OK) == -1) {
    nbdkit_error ("script %s cannot be run: %m (is it chmod +x?)", script);
    return -1;
  }
  if (call ("load", NULL, NULL, 0, NULL) == CALL_ERROR)
    return -1;
  switch (call_text ("magic_config_key", NULL, &s)) {
    case CALL_OK:
      if (*s)
        magic_key = s;
      else
        free (s);
      return 0;
    case CALL_ERROR:
      return -1;
    default:
      return 0;
  }
}

static int
sh_plugin_config (const char *key, const char *value)
{
  if (strcmp (key, "script") == 0) {
    if (script == NULL)
      return set_script (value);
    /* A later bare value: for the script's own magic key. */
    if (magic_key == NULL) {
      nbdkit_error ("'%s' is not key=value, and the script %s has no "
                    "magic_config_key method to take it",
                    value, script_name ());
      return -1;
    }
    return sh_config (magic_key, value);
  }
  if (script == NULL) {
    nbdkit_error ("the script must come first: "
                  "nbdkit sh SCRIPT [key=value ...]");
    return -1;
  }
  return sh_config (key, value);
}

static int
sh_plugin_config_complete (void)
{
  if (script == NULL) {
    nbdkit_error ("no script given: nbdkit sh SCRIPT [key=value ...]");
    return -1;
  }
  return sh_config_complete ();
}

static const char *
sh_config_help (void)
{
  return "script=SCRIPT (magic)  the script to run, \"-\" to read it from "
         "stdin\n"
         "key=value              passed to the script's config method";
}

static struct nbdkit_plugin plugin = {
  SH_METHODS,
  .name = "sh",
  .longname = "nbdkit shell script plugin",
  .version = NBDKIT_VERSION,
  .description = "a plugin written as a shell script or any program",
  .magic_config_key = "script",
  .load = sh_load,
  .unload = sh_plugin_unload,
  .config = sh_plugin_config,
  .config_complete = sh_plugin_config_complete,
  .config_help = sh_config_help,
};

NBDKIT_REGISTER_PLUGIN (plugin)
