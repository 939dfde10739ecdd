/* watch.c: --watch reloads when a script changes.  The layers name the
 * files their code comes from (nbdkit_watch_file); the accept loop
 * polls an inotify descriptor watching the directories that hold
 * them, and reloads (reload.c) once a watched file has been quiet for
 * WATCH_SETTLE_MS: editors write a file in several steps (a backup, a
 * temporary file renamed over it, its mode), and one reload should
 * see the last of them.  Directories, not the files, are watched, so
 * that a file replaced by a rename is still followed.
 */

#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define WATCH_SETTLE_MS 200

struct watched {
  char *path; /* absolute, symbolic links resolved */
  char *dir;
  const char *base; /* in path */
  int wd;           /* -1 until watched */
};

struct watcher {
  pthread_mutex_t lock; /* the files, which reloads may add to */
  struct watched *files;
  size_t nfiles;
  int fd;         /* inotify, -1 until the accept loop starts it */
  int64_t due_ms; /* when to reload (monotonic), 0 if no change */
};

static int64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct watcher *
watcher (struct server *s)
{
  struct watcher *w;

  pthread_mutex_lock (&s->lock);
  w = s->watcher;
  if (w == NULL && (w = calloc (1, sizeof *w)) != NULL) {
    pthread_mutex_init (&w->lock, NULL);
    w->fd = -1;
    s->watcher = w;
  }
  pthread_mutex_unlock (&s->lock);
  return w;
}

/* Watch file F's directory (W locked, W->fd open). */
static void
watch_one (struct server *s, struct watcher *w, struct watched *f)
{
  f->wd = inotify_add_watch (w->fd, f->dir,
                             IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
                                 | IN_MODIFY | IN_DELETE | IN_ATTRIB);
  if (f->wd == -1)
    log_error (s, "--watch: cannot watch %s (for %s): %m", f->dir, f->path);
  else
    log_debug (s, "--watch: watching %s", f->path);
}

int
watch_add (struct server *s, const char *path)
{
  struct watcher *w = watcher (s);
  char *abs = realpath (path, NULL), *slash;
  struct watched *n;

  if (abs == NULL) {
    log_error (s, "nbdkit_watch_file: %s: %m", path);
    return -1;
  }
  if (w == NULL) {
    log_error (s, "nbdkit_watch_file: %s: out of memory", path);
    free (abs);
    return -1;
  }
  pthread_mutex_lock (&w->lock);
  for (size_t i = 0; i < w->nfiles; i++)
    if (strcmp (w->files[i].path, abs) == 0) {
      pthread_mutex_unlock (&w->lock);
      free (abs);
      return 0;
    }
  n = realloc (w->files, (w->nfiles + 1) * sizeof *n);
  slash = strrchr (abs, '/');
  if (n == NULL || slash == NULL) {
    pthread_mutex_unlock (&w->lock);
    log_error (s, "nbdkit_watch_file: %s: out of memory", path);
    free (abs);
    return -1;
  }
  w->files = n;
  n = &w->files[w->nfiles];
  n->path = abs;
  n->dir = slash == abs ? strdup ("/") : strndup (abs, slash - abs);
  n->base = slash + 1;
  n->wd = -1;
  if (n->dir == NULL) {
    pthread_mutex_unlock (&w->lock);
    free (abs);
    return -1;
  }
  w->nfiles++;
  if (w->fd >= 0)
    watch_one (s, w, n);
  pthread_mutex_unlock (&w->lock);
  return 0;
}

int
watch_start (struct server *s)
{
  struct watcher *w;

  if (!s->opt.watch)
    return -1;
  w = watcher (s);
  if (w == NULL)
    return -1;
  pthread_mutex_lock (&w->lock);
  if (w->fd == -1) {
    w->fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd == -1)
      log_error (s, "--watch: inotify: %m: scripts will not be watched");
    for (size_t i = 0; w->fd >= 0 && i < w->nfiles; i++)
      watch_one (s, w, &w->files[i]);
    if (w->fd >= 0 && w->nfiles == 0)
      log_debug (s, "--watch: no layer named a file to watch (yet)");
  }
  pthread_mutex_unlock (&w->lock);
  return w->fd;
}

void
watch_read (struct server *s)
{
  struct watcher *w = s->watcher;
  char buf[4096] __attribute__ ((aligned (__alignof__(struct inotify_event))));
  ssize_t n;
  bool changed = false;

  while ((n = read (w->fd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *e = (const struct inotify_event *)p;
      if (e->mask & IN_Q_OVERFLOW)
        changed = true;
      pthread_mutex_lock (&w->lock);
      for (size_t i = 0; e->len && i < w->nfiles; i++)
        if (w->files[i].wd == e->wd
            && strcmp (w->files[i].base, e->name) == 0) {
          if (!changed)
            log_debug (s, "--watch: %s changed", w->files[i].path);
          changed = true;
        }
      pthread_mutex_unlock (&w->lock);
      p += sizeof *e + e->len;
    }
  }
  /* Each change pushes the reload back: it comes once they stop. */
  if (changed)
    w->due_ms = now_ms () + WATCH_SETTLE_MS;
}

int
watch_timeout (struct server *s)
{
  struct watcher *w = s->watcher;
  int64_t left;

  if (w == NULL || w->due_ms == 0)
    return -1;
  left = w->due_ms - now_ms ();
  return left < 0 ? 0 : (int)left;
}

bool
watch_due (struct server *s)
{
  struct watcher *w = s->watcher;

  if (w == NULL || w->due_ms == 0 || now_ms () < w->due_ms)
    return false;
  w->due_ms = 0;
  return true;
}

void
watch_free (struct server *s)
{
  struct watcher *w = s->watcher;

  if (w == NULL)
    return;
  for (size_t i = 0; i < w->nfiles; i++) {
    free (w->files[i].path);
    free (w->files[i].dir);
  }
  free (w->files);
  if (w->fd >= 0)
    close (w->fd);
  pthread_mutex_destroy (&w->lock);
  free (w);
  s->watcher = NULL;
}

NBDKIT_EXTERN_C int
nbdkit_watch_file (const char *path)
{
  struct server *s = thread_ctx ()->server;

  if (s == NULL) {
    nbdkit_error ("nbdkit_watch_file: %s: called outside a server", path);
    return -1;
  }
  return watch_add (s, path);
}
