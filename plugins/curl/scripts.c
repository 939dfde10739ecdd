/* scripts.c: header-script= and cookie-script=, the curl plugin's
 * headers and cookie made by a shell command and renewed over time.
 *
 * Each script runs with /bin/sh -c, its environment holding $iteration
 * (0 for its first run, then 1, 2, ...) and $url.  The lines it prints
 * are headers (header-script, added after those of header=), or the
 * first one is the cookie (cookie-script).  It runs before the first
 * request, and again before a request when its last run started at
 * least SECS seconds ago (header-script-renew=SECS, cookie-script-renew=).
 *
 * What the scripts printed is published as one immutable, reference
 * counted struct script_values.  A handle keeps a reference to the
 * values it was given, because libcurl keeps our header list, not a
 * copy, until the handle is given another.  A script never runs under
 * the lock: the thread that finds it due runs it; meanwhile other
 * requests go on with the values it printed last, and wait only when
 * there are none yet (its first run).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "curldefs.h"

extern char **environ;

/* -D curl.scripts=1: log the headers and cookie the scripts printed. */
NBDKIT_DLL_PUBLIC int curl_debug_scripts = 0;

/* Bounds on what a script may print. */
#define MAX_OUTPUT (1024 * 1024)
#define MAX_ERRORS 4096

struct script_values {
  unsigned refs;
  struct script_values *next; /* every live one, for scripts_free */
  struct curl_slist *headers; /* header= then header-script's lines */
  struct curl_slist *printed; /* header-script's lines alone */
  char *cookie;               /* cookie-script's line; NULL: none */
};

struct script {
  const char *key; /* "header-script" or "cookie-script" */
  const char *text;
  int64_t renew;      /* seconds; 0: never */
  unsigned iteration; /* runs started so far */
  bool ran;           /* a run succeeded: the values hold its output */
  bool running;
  struct timespec started; /* of the last successful run */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static struct script header_script = { .key = "header-script" };
static struct script cookie_script = { .key = "cookie-script" };
static struct script_values *current; /* NULL until the first run */
static struct script_values *live;    /* all still referenced */

/* A growing buffer for what a script prints. */
struct output {
  char *p;
  size_t len, max;
  bool truncated;
};

static void
values_unref (struct script_values *v)
{
  struct script_values **pp;

  if (v == NULL || --v->refs > 0)
    return;
  for (pp = &live; *pp; pp = &(*pp)->next)
    if (*pp == v) {
      *pp = v->next;
      break;
    }
  curl_slist_free_all (v->headers);
  curl_slist_free_all (v->printed);
  free (v->cookie);
  free (v);
}

/* A copy of list L appended to *TO; -1 when out of memory. */
static int
slist_append_all (struct curl_slist **to, const struct curl_slist *l)
{
  for (; l; l = l->next) {
    struct curl_slist *n = curl_slist_append (*to, l->data);
    if (n == NULL)
      return -1;
    *to = n;
  }
  return 0;
}

/* New values: those of CURRENT with the header lines PRINTED (if
 * HEADERS) or the cookie COOKIE (if not) replaced.  Takes both.
 */
static struct script_values *
values_new (bool headers, struct curl_slist *printed, char *cookie)
{
  struct script_values *v = calloc (1, sizeof *v);

  if (v == NULL)
    goto nomem;
  if (headers) {
    v->printed = printed;
    v->cookie = current && current->cookie ? strdup (current->cookie) : NULL;
    if (current && current->cookie && v->cookie == NULL)
      goto nomem;
  } else {
    v->cookie = cookie;
    if (current && slist_append_all (&v->printed, current->printed) == -1)
      goto nomem;
  }
  printed = NULL;
  cookie = NULL;
  if (slist_append_all (&v->headers, cfg.headers) == -1
      || slist_append_all (&v->headers, v->printed) == -1)
    goto nomem;
  v->refs = 1;
  v->next = live;
  live = v;
  return v;

nomem:
  nbdkit_error ("%s: out of memory",
                headers ? "header-script" : "cookie-script");
  curl_slist_free_all (printed);
  free (cookie);
  if (v) {
    curl_slist_free_all (v->headers);
    curl_slist_free_all (v->printed);
    free (v->cookie);
    free (v);
  }
  errno = ENOMEM;
  return NULL;
}

/* The script's text for messages: its first line, shortened. */
static void
shown_script (const struct script *s, char *buf, size_t size)
{
  const char *t = s->text;
  size_t n;

  while (*t == ' ' || *t == '\t' || *t == '\n')
    t++;
  n = strcspn (t, "\n");
  if (n + 1 > size || t[n] != '\0')
    snprintf (buf, size, "%.*s...", (int)(n + 4 > size ? size - 4 : n), t);
  else
    snprintf (buf, size, "%s", t);
}

/* The environment of a run: ours, with $iteration and $url set. */
static char **
script_env (unsigned iteration, char *it_var, size_t it_size)
{
  size_t n = 0, i, j = 0;
  char **env, *url_var;

  while (environ[n])
    n++;
  env = calloc (n + 3, sizeof *env);
  url_var = malloc (strlen (cfg.url) + 5);
  if (env == NULL || url_var == NULL) {
    free (env);
    free (url_var);
    return NULL;
  }
  snprintf (it_var, it_size, "iteration=%u", iteration);
  strcpy (url_var, "url=");
  strcat (url_var, cfg.url);
  for (i = 0; i < n; i++)
    if (strncmp (environ[i], "iteration=", 10) != 0
        && strncmp (environ[i], "url=", 4) != 0)
      env[j++] = environ[i];
  env[j++] = it_var;
  env[j++] = url_var; /* freed by the caller: the last entry */
  env[j] = NULL;
  return env;
}

/* Append what is readable on FD to O; 0 at end of file. */
static ssize_t
drain (int fd, struct output *o)
{
  char buf[4096];
  ssize_t r = read (fd, buf, sizeof buf);
  size_t keep;

  if (r <= 0)
    return r == -1 && errno == EINTR ? 1 : r;
  keep = o->max - o->len < (size_t)r ? o->max - o->len : (size_t)r;
  if (keep < (size_t)r)
    o->truncated = true;
  memcpy (o->p + o->len, buf, keep);
  o->len += keep;
  return r;
}

/* Run script S (its ITERATION-th run), collecting what it prints on
 * stdout in OUT and on stderr in ERR.  Returns its wait status, or -1
 * if it could not be run (logged).
 */
static int
run (struct script *s, unsigned iteration, struct output *out,
     struct output *err)
{
  char it_var[32];
  char *argv[] = { (char *)"sh", (char *)"-c", (char *)s->text, NULL };
  char **env = NULL;
  int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, status = -1, e;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, defaults;
  pid_t pid;

  out->p = malloc (out->max + 1);
  err->p = malloc (err->max + 1);
  env = script_env (iteration, it_var, sizeof it_var);
  if (out->p == NULL || err->p == NULL || env == NULL) {
    nbdkit_error ("%s: out of memory", s->key);
    goto out;
  }
  if (pipe2 (outp, O_CLOEXEC) == -1 || pipe2 (errp, O_CLOEXEC) == -1) {
    nbdkit_error ("%s: pipe: %m", s->key);
    goto out;
  }

  /* The script gets the default signal mask and dispositions, not the
   * server's (SIGPIPE ignored, signals blocked in this thread).
   */
  sigemptyset (&none);
  sigemptyset (&defaults);
  sigaddset (&defaults, SIGPIPE);
  sigaddset (&defaults, SIGINT);
  sigaddset (&defaults, SIGTERM);
  sigaddset (&defaults, SIGHUP);
  posix_spawnattr_init (&attr);
  posix_spawnattr_setflags (&attr,
                            POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask (&attr, &none);
  posix_spawnattr_setsigdefault (&attr, &defaults);
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 1);
  posix_spawn_file_actions_adddup2 (&fa, errp[1], 2);
  e = posix_spawn (&pid, "/bin/sh", &fa, &attr, argv, env);
  posix_spawn_file_actions_destroy (&fa);
  posix_spawnattr_destroy (&attr);
  close (outp[1]);
  close (errp[1]);
  outp[1] = errp[1] = -1;
  if (e != 0) {
    errno = e;
    nbdkit_error ("%s: running /bin/sh: %m", s->key);
    goto out;
  }

  /* Read both pipes to their end, then reap the script. */
  {
    struct pollfd fds[2] = { { .fd = outp[0], .events = POLLIN },
                             { .fd = errp[0], .events = POLLIN } };
    struct output *dest[2] = { out, err };

    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
      if (poll (fds, 2, -1) == -1) {
        if (errno == EINTR)
          continue;
        nbdkit_error ("%s: poll: %m", s->key);
        break;
      }
      for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0 && fds[i].revents != 0
            && drain (fds[i].fd, dest[i]) <= 0)
          fds[i].fd = -1;
    }
  }
  while (waitpid (pid, &status, 0) == -1)
    if (errno != EINTR) {
      nbdkit_error ("%s: waitpid: %m", s->key);
      status = -1;
      break;
    }

out:
  for (int i = 0; i < 2; i++) {
    if (outp[i] >= 0)
      close (outp[i]);
    if (errp[i] >= 0)
      close (errp[i]);
  }
  if (env) {
    size_t n = 0;
    while (env[n])
      n++;
    free (env[n - 1]); /* url_var */
    free (env);
  }
  if (out->p)
    out->p[out->len] = '\0';
  if (err->p)
    err->p[err->len] = '\0';
  return status;
}

/* Log why script S failed: what it printed on stderr, its text, how it
 * ended.
 */
static void
report_failure (struct script *s, int status, struct output *err)
{
  char shown[80], how[64];
  char *m = err->p ? err->p : (char *)"";

  /* Its messages on one line. */
  while (m[0] && strchr (" \t\r\n", m[strlen (m) - 1]))
    m[strlen (m) - 1] = '\0';
  for (char *p = m; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  shown_script (s, shown, sizeof shown);
  if (WIFEXITED (status))
    snprintf (how, sizeof how, "exited with status %d", WEXITSTATUS (status));
  else if (WIFSIGNALED (status))
    snprintf (how, sizeof how, "was killed by signal %d", WTERMSIG (status));
  else
    snprintf (how, sizeof how, "ended with wait status %d", status);
  if (*m)
    nbdkit_error ("%s failed: %s%s (the script '%s' %s)", s->key, m,
                  err->truncated ? "..." : "", shown, how);
  else
    nbdkit_error ("%s failed: the script '%s' %s", s->key, shown, how);
}

/* The lines of OUT as headers, in *LIST; -1 (logged) for a line that
 * is not one.
 */
static int
parse_headers (struct script *s, char *out, struct curl_slist **list)
{
  unsigned lineno = 0;
  char *line, *next;

  *list = NULL;
  for (line = out; *line; line = next) {
    size_t n = strcspn (line, "\n");
    struct curl_slist *l;

    next = line[n] ? line + n + 1 : line + n;
    line[n] = '\0';
    lineno++;
    while (
        n > 0
        && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
      line[--n] = '\0';
    while (*line == ' ' || *line == '\t') {
      line++;
      n--;
    }
    if (n == 0)
      continue;
    /* "Name: value", "Name:" (remove) or "Name;" (empty): libcurl's
     * forms.  Anything else would be sent raw.
     */
    if (strcspn (line, ":;") == n || line[0] == ':' || line[0] == ';'
        || strchr (line, '\r')) {
      nbdkit_error ("%s: line %u of its output is not a header "
                    "('Name: value', 'Name:' or 'Name;'): %.100s",
                    s->key, lineno, line);
      curl_slist_free_all (*list);
      *list = NULL;
      return -1;
    }
    if ((l = curl_slist_append (*list, line)) == NULL) {
      nbdkit_error ("%s: out of memory", s->key);
      curl_slist_free_all (*list);
      *list = NULL;
      return -1;
    }
    *list = l;
  }
  return 0;
}

/* Run script S (the caller holds the lock, and marked S running);
 * publish what it printed.  Returns with the lock held.
 */
static int
renew (struct script *s)
{
  struct output out = { .max = MAX_OUTPUT }, err = { .max = MAX_ERRORS };
  struct curl_slist *printed = NULL;
  struct script_values *v = NULL;
  struct timespec started;
  char *cookie = NULL;
  unsigned iteration = s->iteration++;
  int status, r = -1;

  clock_gettime (CLOCK_MONOTONIC, &started);
  pthread_mutex_unlock (&lock);

  nbdkit_debug ("%s: run %u", s->key, iteration);
  status = run (s, iteration, &out, &err);
  if (status == -1)
    goto done;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    report_failure (s, status, &err);
    goto done;
  }
  if (out.truncated) {
    nbdkit_error ("%s: the script printed more than %d bytes", s->key,
                  MAX_OUTPUT);
    goto done;
  }
  if (err.len > 0)
    nbdkit_debug ("%s printed on stderr: %s", s->key, err.p);
  if (s == &header_script) {
    if (parse_headers (s, out.p, &printed) == -1)
      goto done;
    if (curl_debug_scripts)
      for (struct curl_slist *l = printed; l; l = l->next)
        nbdkit_debug ("header-script: header: %s", l->data);
  } else {
    size_t n = strcspn (out.p, "\n");
    while (n > 0 && (out.p[n - 1] == '\r' || out.p[n - 1] == ' '))
      n--;
    out.p[n] = '\0';
    if (n > 0 && (cookie = strdup (out.p)) == NULL) {
      nbdkit_error ("%s: out of memory", s->key);
      goto done;
    }
    if (curl_debug_scripts)
      nbdkit_debug ("cookie-script: cookie: %s", cookie ? cookie : "(none)");
  }
  r = 0;

done:
  free (out.p);
  free (err.p);
  pthread_mutex_lock (&lock);
  s->running = false;
  if (r == 0) {
    v = values_new (s == &header_script, printed, cookie);
    if (v == NULL)
      r = -1;
    else {
      values_unref (current);
      current = v;
      s->ran = true;
      s->started = started;
    }
  }
  pthread_cond_broadcast (&done_cond);
  if (r == -1)
    errno = EIO;
  return r;
}

static bool
due (const struct script *s)
{
  struct timespec now;

  if (!s->ran)
    return true;
  if (s->renew == 0)
    return false;
  clock_gettime (CLOCK_MONOTONIC, &now);
  return now.tv_sec - s->started.tv_sec
             - (now.tv_nsec < s->started.tv_nsec ? 1 : 0)
         >= s->renew;
}

/* Bring script S up to date (the lock is held). */
static int
refresh (struct script *s)
{
  while (s->text && due (s)) {
    if (!s->running)
      return renew (s);
    if (s->ran) /* another thread renews: go on with the last values */
      return 0;
    pthread_cond_wait (&done_cond, &lock);
  }
  return 0;
}

int
scripts_refresh (void)
{
  int r = 0;

  if (header_script.text == NULL && cookie_script.text == NULL)
    return 0;
  pthread_mutex_lock (&lock);
  if (refresh (&header_script) == -1 || refresh (&cookie_script) == -1)
    r = -1;
  pthread_mutex_unlock (&lock);
  return r;
}

int
scripts_apply (struct chandle *ch)
{
  struct script_values *old = NULL;
  int r = 0;

  if (header_script.text == NULL && cookie_script.text == NULL)
    return 0;
  pthread_mutex_lock (&lock);
  if (refresh (&header_script) == -1 || refresh (&cookie_script) == -1)
    r = -1;
  else if (current == NULL) { /* a first run failed in another thread */
    nbdkit_error ("%s: no output yet",
                  header_script.text ? "header-script" : "cookie-script");
    errno = EIO;
    r = -1;
  } else if (ch->values != current) {
    old = ch->values;
    ch->values = current;
    current->refs++;
    if (header_script.text)
      curl_easy_setopt (ch->c, CURLOPT_HTTPHEADER, current->headers);
    if (cookie_script.text)
      curl_easy_setopt (ch->c, CURLOPT_COOKIE, current->cookie);
    values_unref (old);
  }
  pthread_mutex_unlock (&lock);
  return r;
}

struct curl_slist *
request_headers (const struct chandle *ch)
{
  if (header_script.text && ch->values)
    return ch->values->headers;
  return cfg.headers;
}

int
scripts_config_complete (void)
{
  if (cfg.cookie && cfg.cookie_script) {
    nbdkit_error ("cookie and cookie-script cannot be used together");
    return -1;
  }
  if (cfg.header_script_renew < 0 || cfg.cookie_script_renew < 0) {
    nbdkit_error ("%s-script-renew=%" PRIi64 ": must be seconds (0: never)",
                  cfg.header_script_renew < 0 ? "header" : "cookie",
                  cfg.header_script_renew < 0 ? cfg.header_script_renew
                                              : cfg.cookie_script_renew);
    return -1;
  }
  if (cfg.header_script_renew > 0 && cfg.header_script == NULL) {
    nbdkit_error ("header-script-renew needs header-script");
    return -1;
  }
  if (cfg.cookie_script_renew > 0 && cfg.cookie_script == NULL) {
    nbdkit_error ("cookie-script-renew needs cookie-script");
    return -1;
  }
  scripts_free ();
  header_script.text = cfg.header_script;
  header_script.renew = cfg.header_script_renew;
  cookie_script.text = cfg.cookie_script;
  cookie_script.renew = cfg.cookie_script_renew;
  return 0;
}

/* After every handle is gone. */
void
scripts_free (void)
{
  pthread_mutex_lock (&lock);
  while (live) {
    struct script_values *v = live;
    v->refs = 1;
    values_unref (v);
  }
  current = NULL;
  header_script.iteration = cookie_script.iteration = 0;
  header_script.ran = cookie_script.ran = false;
  pthread_mutex_unlock (&lock);
}
