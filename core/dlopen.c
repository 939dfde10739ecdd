/* dlopen.c: opening a plugin's or filter's shared object, so that
 * servers in one process (<nbdkit-server.h>) do not share one.
 *
 * dlopen gives the same object, with the same globals, to everyone who
 * opens the same file: two servers serving "memory" would share its
 * size and its data.  So the process keeps a list of the objects each
 * server opened, and a server that opens a file another server holds
 * gets a private copy, opened from a temporary file that is removed at
 * once.  Within one server, opening a file twice shares it, as
 * filters given twice (--filter=F --filter=F) expect.
 *
 * What a copy does not separate: what the object's own exported
 * symbols resolve to (a -D debug flag the plugin reads through its
 * exported variable), and libraries it links, which are loaded once
 * per process (a language host's interpreter).
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct opened {
  struct opened *next;
  char *path; /* the real path asked for */
  const struct server *owner;
  void *dl;
};

/* The process's list: dlopen's table is process-wide too. */
static pthread_mutex_t opened_lock = PTHREAD_MUTEX_INITIALIZER;
static struct opened *opened;

/* Is PATH open by a server other than S?  Call with opened_lock. */
static bool
held_by_other (const struct server *s, const char *path)
{
  for (struct opened *o = opened; o; o = o->next)
    if (o->owner != s && strcmp (o->path, path) == 0)
      return true;
  return false;
}

/* Copy FILENAME to a new temporary file; its path in TMP. */
static int
copy_object (struct server *s, const char *filename, char *tmp, size_t len)
{
  const char *dir = getenv ("TMPDIR");
  char buf[65536];
  ssize_t n;
  int in, out;

  if (dir == NULL || *dir == '\0')
    dir = "/tmp";
  if ((size_t)snprintf (tmp, len, "%s/nbdkit-layer-XXXXXX.so", dir) >= len) {
    log_error (s, "%s: TMPDIR is too long", filename);
    return -1;
  }
  in = open (filename, O_RDONLY | O_CLOEXEC);
  if (in == -1) {
    log_error (s, "%s: %m", filename);
    return -1;
  }
  out = mkostemps (tmp, 3, O_CLOEXEC);
  if (out == -1) {
    log_error (s, "%s: a private copy in %s: %m", filename, dir);
    close (in);
    return -1;
  }
  while ((n = read (in, buf, sizeof buf)) > 0)
    if (write (out, buf, n) != n) {
      n = -1;
      break;
    }
  if (n == -1 || close (out) == -1) {
    log_error (s, "%s: a private copy in %s: %m", filename, tmp);
    close (in);
    unlink (tmp);
    return -1;
  }
  close (in);
  return 0;
}

void *
layer_dlopen (struct server *s, const char *filename, const char **why)
{
  struct opened *o = calloc (1, sizeof *o);
  char *path = realpath (filename, NULL);
  char tmp[PATH_MAX];
  void *dl = NULL;

  *why = NULL;
  if (o == NULL || path == NULL) {
    log_error (s, "%s: %m", filename);
    goto out;
  }
  pthread_mutex_lock (&opened_lock);
  if (!held_by_other (s, path))
    dl = dlopen (filename, RTLD_NOW | RTLD_GLOBAL);
  else if (copy_object (s, path, tmp, sizeof tmp) == 0) {
    /* Local: the copy's symbols must not stand in for the original's. */
    dl = dlopen (tmp, RTLD_NOW | RTLD_LOCAL);
    unlink (tmp);
    if (dl)
      log_debug (s, "%s is open in another server: using a copy", filename);
  } else {
    pthread_mutex_unlock (&opened_lock);
    goto out;
  }
  if (dl == NULL) {
    *why = dlerror ();
    pthread_mutex_unlock (&opened_lock);
    goto out;
  }
  o->path = path;
  o->owner = s;
  o->dl = dl;
  o->next = opened;
  opened = o;
  pthread_mutex_unlock (&opened_lock);
  return dl;

out:
  free (path);
  free (o);
  return NULL;
}

void
layer_dlclose (void *dl)
{
  struct opened **p, *o = NULL;

  pthread_mutex_lock (&opened_lock);
  for (p = &opened; *p; p = &(*p)->next)
    if ((*p)->dl == dl) {
      o = *p;
      *p = o->next;
      break;
    }
  pthread_mutex_unlock (&opened_lock);
  if (o) {
    free (o->path);
    free (o);
  }
  /* Under the sanitizers keep the code mapped, so leak reports can
   * still name the plugin's functions.
   */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  dlclose (dl);
#endif
}
