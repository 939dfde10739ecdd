/* call.c: run one method of a script plugin and interpret its exit.
 *
 * The command is started with fork and execv, its arguments passed as
 * argv (no shell sees them, so nothing is injected).  stdin, stdout
 * and stderr are pipes served by one poll loop, so a script that
 * writes a lot before reading its input, or fills stderr, does not
 * deadlock us.  stderr is kept up to STDERR_LIMIT bytes, the rest is
 * read and dropped.  SIGPIPE from a script that exits without reading
 * its input is blocked in the calling thread and consumed, so it
 * never reaches the server whatever its signal disposition.
 *
 * Exit codes (documented in plugins/sh/README.md, as nbdkit >= 1.34):
 * 0 ok, 1 error (stderr: "ERRNO message"), 2 missing, 3 false,
 * 4/5 shut the server down then ok/error, 6 hard disconnect (error),
 * 7/8 soft disconnect then ok/error, anything else an error.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "call.h"

#define STDERR_LIMIT 65536
#define TEXT_LIMIT (16 * 1024 * 1024)
#define MAX_ARGV 16

static char *tmpdir;
static char *tmpdir_var; /* "tmpdir=DIR" */

/* The server's environment with tmpdir=DIR instead of any tmpdir the
 * user set (a new array of the same strings); NULL on error.
 */
static char **
script_env (void)
{
  size_t n = 0, k = 0;
  char **envp;

  for (char **e = environ; *e; e++)
    n++;
  envp = malloc ((n + 2) * sizeof *envp);
  if (envp == NULL)
    return NULL;
  for (char **e = environ; *e; e++)
    if (strncmp (*e, "tmpdir=", 7) != 0)
      envp[k++] = *e;
  if (tmpdir_var)
    envp[k++] = tmpdir_var;
  envp[k] = NULL;
  return envp;
}

static const struct {
  const char *name;
  int err;
} errnos[] = {
  { "EPERM", EPERM },
  { "ENOENT", ENOENT },
  { "ESRCH", ESRCH },
  { "EINTR", EINTR },
  { "EIO", EIO },
  { "ENXIO", ENXIO },
  { "E2BIG", E2BIG },
  { "EBADF", EBADF },
  { "EAGAIN", EAGAIN },
  { "EWOULDBLOCK", EWOULDBLOCK },
  { "ENOMEM", ENOMEM },
  { "EACCES", EACCES },
  { "EFAULT", EFAULT },
  { "EBUSY", EBUSY },
  { "EEXIST", EEXIST },
  { "EXDEV", EXDEV },
  { "ENODEV", ENODEV },
  { "ENOTDIR", ENOTDIR },
  { "EISDIR", EISDIR },
  { "EINVAL", EINVAL },
  { "ENFILE", ENFILE },
  { "EMFILE", EMFILE },
  { "ENOTTY", ENOTTY },
  { "EFBIG", EFBIG },
  { "ENOSPC", ENOSPC },
  { "ESPIPE", ESPIPE },
  { "EROFS", EROFS },
  { "EPIPE", EPIPE },
  { "ERANGE", ERANGE },
  { "ENOSYS", ENOSYS },
  { "ENOTSUP", ENOTSUP },
  { "EOPNOTSUPP", EOPNOTSUPP },
  { "EOVERFLOW", EOVERFLOW },
  { "ESHUTDOWN", ESHUTDOWN },
  { "ETIMEDOUT", ETIMEDOUT },
  { "ECONNRESET", ECONNRESET },
  { "ENOTCONN", ENOTCONN },
  { "EDQUOT", EDQUOT },
  { "ENOMEDIUM", ENOMEDIUM },
  { "EMEDIUMTYPE", EMEDIUMTYPE },
  { "ECANCELED", ECANCELED },
};

int
errno_from_name (const char *name, size_t len)
{
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
    if (strlen (errnos[i].name) == len
        && memcmp (errnos[i].name, name, len) == 0)
      return errnos[i].err;
  return 0;
}

/* Append N bytes to B, dropping what does not fit. */
static void
buf_append (struct call_buf *b, const char *p, size_t n)
{
  if (!b->fixed && b->len + n + 1 > b->cap && b->cap < b->limit + 1) {
    size_t want = b->cap ? b->cap * 2 : 4096;
    while (want < b->len + n + 1)
      want *= 2;
    if (want > b->limit + 1)
      want = b->limit + 1;
    char *d = realloc (b->data, want);
    if (d) {
      b->data = d;
      b->cap = want;
    }
  }
  /* Growing buffers keep one byte for the terminating NUL. */
  size_t room = b->fixed ? b->cap - b->len
                         : (b->cap > b->len ? b->cap - b->len - 1 : 0);
  if (n > room) {
    b->overflow = true;
    n = room;
  }
  if (n) {
    memcpy (b->data + b->len, p, n);
    b->len += n;
  }
  if (!b->fixed && b->data)
    b->data[b->len] = '\0';
}

/* Read what is there on FD into B (NULL: drop it).  0 on EOF. */
static int
drain (int fd, struct call_buf *b)
{
  char tmp[65536];
  ssize_t r;

  if (b && b->fixed && b->cap - b->len >= sizeof tmp / 2) {
    r = read (fd, b->data + b->len, b->cap - b->len);
    if (r > 0)
      b->len += r;
  } else {
    r = read (fd, tmp, sizeof tmp);
    if (r > 0 && b)
      buf_append (b, tmp, r);
  }
  if (r == -1 && (errno == EINTR || errno == EAGAIN))
    return 1;
  return r > 0;
}

/* In the child: make FD become TARGET, open across exec. */
static void
move_fd (int fd, int target)
{
  if (fd == target)
    fcntl (fd, F_SETFD, 0);
  else
    dup2 (fd, target);
}

static const char exec_failed[] = "EIO cannot execute the script\n";

/* Run ARGV; return the wait status, or -1 if it could not start. */
static int
run (const char *const *argv, const void *wdata, size_t wlen,
     struct call_buf *out, struct call_buf *err)
{
  int in[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 };
  sigset_t pipe_set, old_set, pending;
  int status = -1, saved;
  bool pipe_was_pending;
  pid_t pid;

  if (pipe2 (in, O_CLOEXEC) == -1 || pipe2 (o, O_CLOEXEC) == -1
      || pipe2 (e, O_CLOEXEC) == -1) {
    nbdkit_error ("%s: pipe: %m", script_name ());
    goto close_all;
  }

  sigemptyset (&pipe_set);
  sigaddset (&pipe_set, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &pipe_set, &old_set);
  sigpending (&pending);
  pipe_was_pending = sigismember (&pending, SIGPIPE);

  /* $tmpdir is in the script's environment only, never the server's:
   * it must not leak into --run or other children.
   */
  char **envp = script_env ();
  if (envp == NULL) {
    pthread_sigmask (SIG_SETMASK, &old_set, NULL);
    nbdkit_error ("%s: malloc: %m", script_name ());
    goto close_all;
  }
  pid = fork ();
  if (pid == -1) {
    saved = errno;
    free (envp);
    pthread_sigmask (SIG_SETMASK, &old_set, NULL);
    errno = saved;
    nbdkit_error ("%s: fork: %m", script_name ());
    goto close_all;
  }
  if (pid == 0) {
    /* Only async-signal-safe calls from here: we may have threads. */
    sigset_t none;
    move_fd (in[0], 0);
    move_fd (o[1], 1);
    move_fd (e[1], 2);
    /* Descriptors the server inherited stay open, as in nbdkit; all of
     * the server's own are close-on-exec.
     */
    signal (SIGPIPE, SIG_DFL);
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    execve (argv[0], (char **)argv, envp);
    /* A script without "#!" runs under /bin/sh, as execvp would. */
    if (errno == ENOEXEC) {
      const char *sh_argv[MAX_ARGV + 2] = { "/bin/sh" };
      for (int i = 0; argv[i] && i < MAX_ARGV; i++)
        sh_argv[i + 1] = argv[i];
      execve ("/bin/sh", (char **)sh_argv, envp);
    }
    if (write (2, exec_failed, sizeof exec_failed - 1) == -1)
      _exit (126);
    _exit (126);
  }

  free (envp);
  close (in[0]);
  close (o[1]);
  close (e[1]);
  in[0] = o[1] = e[1] = -1;
  fcntl (in[1], F_SETFL, O_NONBLOCK);
  if (wlen == 0) {
    close (in[1]);
    in[1] = -1;
  }

  const char *w = wdata;
  while (o[0] >= 0 || e[0] >= 0) {
    struct pollfd pfd[3] = {
      { .fd = o[0], .events = POLLIN },
      { .fd = e[0], .events = POLLIN },
      { .fd = in[1], .events = POLLOUT },
    };
    if (poll (pfd, 3, -1) == -1) {
      if (errno == EINTR)
        continue;
      nbdkit_error ("%s: poll: %m", script_name ());
      break;
    }
    if (pfd[2].revents) {
      ssize_t r = write (in[1], w, wlen);
      if (r > 0) {
        w += r;
        wlen -= r;
      }
      /* EPIPE: the script did not want (all of) its input. */
      if (wlen == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
        close (in[1]);
        in[1] = -1;
      }
    }
    if (pfd[0].revents && !drain (o[0], out)) {
      close (o[0]);
      o[0] = -1;
    }
    if (pfd[1].revents && !drain (e[0], err)) {
      close (e[0]);
      e[0] = -1;
    }
  }
  if (in[1] >= 0) {
    close (in[1]);
    in[1] = -1;
  }

  while (waitpid (pid, &status, 0) == -1) {
    if (errno != EINTR) {
      nbdkit_error ("%s: waitpid: %m", script_name ());
      status = -1;
      break;
    }
  }

  /* Consume a SIGPIPE we caused, then let signals through again. */
  sigpending (&pending);
  if (!pipe_was_pending && sigismember (&pending, SIGPIPE)) {
    struct timespec zero = { 0, 0 };
    sigtimedwait (&pipe_set, NULL, &zero);
  }
  pthread_sigmask (SIG_SETMASK, &old_set, NULL);

close_all:
  saved = errno;
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close (in[i]);
    if (o[i] >= 0)
      close (o[i]);
    if (e[i] >= 0)
      close (e[i]);
  }
  errno = saved;
  return status;
}

/* Log a failed METHOD from what it said on stderr, "ERRNO message",
 * and set its errno: if it named none, EIO, or ESHUTDOWN for the exit
 * codes that also shut the server down or end the connection (5, 8).
 */
static void
script_error (const char *method, const char *text, size_t len, int code)
{
  const int unnamed = code == 5 || code == 8 ? ESHUTDOWN : EIO;
  size_t i = 0, j;
  int err;

  while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n'))
    i++;
  /* The name in either case (nbdkit accepts "eperm" too), letters
   * and digits (E2BIG).
   */
  char name[32] = "";
  for (j = i; j < len && j - i < sizeof name - 1
              && ((text[j] >= 'A' && text[j] <= 'Z')
                  || (text[j] >= 'a' && text[j] <= 'z')
                  || (text[j] >= '0' && text[j] <= '9'));
       j++)
    name[j - i]
        = text[j] >= 'a' && text[j] <= 'z' ? text[j] - 'a' + 'A' : text[j];
  err = errno_from_name (name, j - i);
  bool err_flat = false;
  /* An errno the NBD protocol cannot carry reaches the client as EIO,
   * as with nbdkit's sh plugin (the server would send EINVAL).
   */
  switch (err) {
    case 0:
    case EPERM:
    case EIO:
    case ENOMEM:
    case EINVAL:
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case EROFS:
    case EOVERFLOW:
    case ENOTSUP:
#if ENOTSUP != EOPNOTSUPP
    case EOPNOTSUPP:
#endif
    case ESHUTDOWN:
      break;
    default:
      err_flat = true;
  }
  if (err
      && (j == len || text[j] == ' ' || text[j] == '\t' || text[j] == '\n'
          || text[j] == ':')) {
    i = j;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == ':'))
      i++;
  } else
    err = unnamed;
  if (err_flat)
    err = EIO;
  /* Trailing newlines do not belong in the message. */
  while (len > i && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    len--;
  if (len > i)
    nbdkit_error ("%s: %s: %.*s", script_name (), method, (int)(len - i),
                  text + i);
  else if (code >= 0)
    nbdkit_error ("%s: %s: script failed (exit code %d, %s)", script_name (),
                  method, code,
                  err == EIO         ? "EIO"
                  : err == ESHUTDOWN ? "ESHUTDOWN"
                                     : "errno given on stderr");
  else
    nbdkit_error ("%s: %s: script failed", script_name (), method);
  nbdkit_set_error (err);
  errno = err;
}

enum call_status
call (const char *method, const char *const *args, const void *wdata,
      size_t wlen, struct call_buf *out)
{
  const char *argv[MAX_ARGV + 1];
  struct call_buf err = { .limit = STDERR_LIMIT };
  enum call_status ret;
  int n, status, code;

  n = script_command (method, argv);
  if (n == 0)
    return CALL_MISSING;
  argv[n++] = method;
  for (size_t i = 0; args && args[i] && n < MAX_ARGV; i++)
    argv[n++] = args[i];
  argv[n] = NULL;

  nbdkit_debug ("%s: calling %s", script_name (), method);
  status = run (argv, wdata, wlen, out, &err);
  if (status == -1) {
    nbdkit_set_error (EIO);
    free (err.data);
    errno = EIO;
    return CALL_ERROR;
  }
  if (WIFSIGNALED (status)) {
    nbdkit_error ("%s: %s: script was killed by signal %d", script_name (),
                  method, WTERMSIG (status));
    nbdkit_set_error (EIO);
    free (err.data);
    errno = EIO;
    return CALL_ERROR;
  }
  code = WEXITSTATUS (status);
  switch (code) {
    case 0:
      ret = CALL_OK;
      break;
    case 2:
      ret = CALL_MISSING;
      break;
    case 3:
      ret = CALL_FALSE;
      break;
    case 4:
      nbdkit_debug ("%s: %s: exit 4, shutting the server down", script_name (),
                    method);
      nbdkit_shutdown ();
      ret = CALL_OK;
      break;
    case 5:
      nbdkit_shutdown ();
      ret = CALL_ERROR;
      break;
    case 6:
      /* The client gets no reply: what the script said does not matter. */
      nbdkit_debug ("%s: %s: exit 6, dropping the client", script_name (),
                    method);
      nbdkit_disconnect (1);
      nbdkit_set_error (ESHUTDOWN);
      free (err.data);
      errno = ESHUTDOWN;
      return CALL_ERROR;
    case 7:
      nbdkit_disconnect (0);
      ret = CALL_OK;
      break;
    case 8:
      nbdkit_disconnect (0);
      ret = CALL_ERROR;
      break;
    default:
      ret = CALL_ERROR;
  }
  if (ret == CALL_ERROR)
    script_error (method, err.data ? err.data : "", err.len, code);
  free (err.data);
  return ret;
}

/* STRIP 2: remove every trailing newline; 1: exactly one, so that a
 * handle that itself ends in a newline survives (nbdkit's rule); 0:
 * none, for output read as lines where an empty last line counts.
 */
static enum call_status
text (const char *method, const char *const *args, char **out, int strip)
{
  struct call_buf b = { .limit = TEXT_LIMIT };
  enum call_status r = call (method, args, NULL, 0, &b);

  if (r != CALL_OK) {
    free (b.data);
    *out = NULL;
    return r;
  }
  if (b.data == NULL) {
    b.data = strdup ("");
    if (b.data == NULL) {
      nbdkit_error ("strdup: %m");
      nbdkit_set_error (ENOMEM);
      return CALL_ERROR;
    }
  }
  if (strip == 1) {
    if (b.len > 0 && b.data[b.len - 1] == '\n')
      b.data[--b.len] = '\0';
  } else if (strip == 2)
    while (b.len > 0
           && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
      b.data[--b.len] = '\0';
  if (b.overflow) {
    nbdkit_error ("%s: %s: output longer than %d bytes", script_name (), method,
                  TEXT_LIMIT);
    nbdkit_set_error (EIO);
    free (b.data);
    *out = NULL;
    return CALL_ERROR;
  }
  *out = b.data;
  return CALL_OK;
}

enum call_status
call_text (const char *method, const char *const *args, char **out)
{
  return text (method, args, out, 2);
}

enum call_status
call_text_verbatim (const char *method, const char *const *args, char **out)
{
  return text (method, args, out, 1);
}

enum call_status
call_text_lines (const char *method, const char *const *args, char **out)
{
  return text (method, args, out, 0);
}

const char *
tmpdir_create (void)
{
  const char *t = getenv ("TMPDIR");
  char *tmpl;

  if (tmpdir)
    return tmpdir;
  if (asprintf (&tmpl, "%s/nbdkitshXXXXXX", t && *t ? t : "/tmp") == -1) {
    nbdkit_error ("asprintf: %m");
    return NULL;
  }
  if (mkdtemp (tmpl) == NULL) {
    nbdkit_error ("mkdtemp: %s: %m", tmpl);
    free (tmpl);
    return NULL;
  }
  tmpdir = tmpl;
  if (asprintf (&tmpdir_var, "tmpdir=%s", tmpdir) == -1)
    tmpdir_var = NULL;
  return tmpdir;
}

static int
remove_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  remove (path);
  return 0;
}

void
tmpdir_remove (void)
{
  if (tmpdir == NULL)
    return;
  nftw (tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  free (tmpdir);
  free (tmpdir_var);
  tmpdir = tmpdir_var = NULL;
}
