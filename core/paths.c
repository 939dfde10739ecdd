/* paths.c: where plugins and filters are found by short name.
 *
 * They come from the build tree when the program (or libnbdkit) runs
 * from there, so nothing needs installing to try it.  An installed
 * tree can be moved: the nbdkit program finds them relative to itself,
 * and any other program linked with an installed libnbdkit (see
 * <nbdkit-server.h>) relative to the library.  Worked out once per
 * process: it depends only on where the program and the library are
 * and on the environment at start.
 */

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Cut PATH to its directory ("" if it has none). */
static void
dirname_of (char *path)
{
  char *slash = strrchr (path, '/');
  if (slash)
    *slash = '\0';
  else
    *path = '\0';
}

/* The directory the running program is in ("" if unknown). */
static void
exe_dir (char *dir, size_t len)
{
  ssize_t n = readlink ("/proc/self/exe", dir, len - 1);

  dir[n > 0 ? n : 0] = '\0';
  dirname_of (dir);
}

/* The directory libnbdkit is in ("" if unknown). */
static void
lib_dir (char *dir, size_t len)
{
  Dl_info info;
  char *real;

  *dir = '\0';
  if (dladdr ((void *)lib_dir, &info) == 0 || info.dli_fname == NULL)
    return;
  real = realpath (info.dli_fname, NULL);
  if (real && strlen (real) < len) {
    strcpy (dir, real);
    dirname_of (dir);
  }
  free (real);
}

static char plugindir[PATH_MAX], filterdir[PATH_MAX];
static pthread_once_t dirs_once = PTHREAD_ONCE_INIT;

/* FROM_BIN is relative to the program's directory, FROM_LIB to the
 * library's.
 */
static void
layer_dir (char *out, const char *env, const char *build_sub,
           const char *from_bin, const char *from_lib, const char *configured)
{
  const char *e = getenv (env);
  char exe[PATH_MAX], lib[PATH_MAX];

  if (e && *e && strlen (e) < PATH_MAX) {
    strcpy (out, e);
    return;
  }
  exe_dir (exe, sizeof exe);
  lib_dir (lib, sizeof lib);
  if ((strcmp (exe, NBDKIT_BUILD_DIR) == 0
       || strcmp (lib, NBDKIT_BUILD_DIR) == 0)
      && snprintf (out, PATH_MAX, "%s/%s", NBDKIT_BUILD_DIR, build_sub)
             < PATH_MAX)
    return;
  if (*exe && snprintf (out, PATH_MAX, "%s/%s", exe, from_bin) < PATH_MAX
      && access (out, X_OK) == 0)
    return;
  if (*lib && snprintf (out, PATH_MAX, "%s/%s", lib, from_lib) < PATH_MAX
      && access (out, X_OK) == 0)
    return;
  snprintf (out, PATH_MAX, "%s", configured);
}

static void
find_dirs (void)
{
  layer_dir (plugindir, "NBDKIT_PLUGINDIR", "plugins", NBDKIT_BIN_TO_PLUGINDIR,
             NBDKIT_LIB_TO_PLUGINDIR, NBDKIT_PLUGINDIR);
  layer_dir (filterdir, "NBDKIT_FILTERDIR", "filters", NBDKIT_BIN_TO_FILTERDIR,
             NBDKIT_LIB_TO_FILTERDIR, NBDKIT_FILTERDIR);
}

const char *
server_plugindir (void)
{
  pthread_once (&dirs_once, find_dirs);
  return plugindir;
}

const char *
server_filterdir (void)
{
  pthread_once (&dirs_once, find_dirs);
  return filterdir;
}
