/* captive.c: captive mode, --run CMD: the command runs with the
 * server's address in its environment ($uri, $nbd, $unixsocket, $port,
 * $exportname, $tls), and the server stops when it exits, with its
 * status.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* The thread waiting for the --run command cannot be joined: after a
 * signal (or nbdkit_server_stop) the server stops while the command may
 * run on.  When the server stops on its own (exitwhen, exitlast,
 * nbdkit_shutdown), it waits for the command instead, as the command's
 * status is the server's and the command must not outlive it.  So it and the
 * server share this record, freed by whichever lets go last, and the
 * thread reaches the server only through cap->s under cap->lock.  The
 * server sets cap->s to NULL (captive_detach) before it tears anything
 * down: from then on the thread cannot touch the server, and before
 * then the server waits for it to finish any use of it.
 */
struct captive {
  pthread_mutex_t lock;
  struct server *s; /* NULL once the server has let go */
  pid_t pid;
  int refs;            /* 2 while both hold it */
  bool done;           /* the command has exited */
  pthread_cond_t cond; /* signalled when done is set */
};

static void
captive_unref (struct captive *cap)
{
  bool last;

  pthread_mutex_lock (&cap->lock);
  last = --cap->refs == 0;
  pthread_mutex_unlock (&cap->lock);
  if (last) {
    pthread_cond_destroy (&cap->cond);
    pthread_mutex_destroy (&cap->lock);
    free (cap);
  }
}

/* Wait for the --run command, then stop the server with its status. */
static void *
captive_wait (void *arg)
{
  struct captive *cap = arg;
  int status;

  while (waitpid (cap->pid, &status, 0) == -1 && errno == EINTR)
    ;
  pthread_mutex_lock (&cap->lock);
  struct server *s = cap->s;
  if (s) {
    if (WIFEXITED (status))
      s->exit_status = WEXITSTATUS (status);
    else if (WIFSIGNALED (status)) {
      log_error (s, "--run command was killed by signal %d", WTERMSIG (status));
      s->exit_status = 128 + WTERMSIG (status);
    } else
      s->exit_status = 1;
    server_request_quit (s);
  }
  cap->done = true;
  pthread_cond_broadcast (&cap->cond);
  pthread_mutex_unlock (&cap->lock);
  captive_unref (cap);
  return NULL;
}

void
captive_detach (struct server *s)
{
  struct captive *cap = s->captive;

  if (cap == NULL)
    return;
  pthread_mutex_lock (&cap->lock);
  if (!signals_quit_received () && !atomic_load (&s->stop_asked)) {
    while (!cap->done)
      pthread_cond_wait (&cap->cond, &cap->lock);
  }
  cap->s = NULL;
  pthread_mutex_unlock (&cap->lock);
  s->captive = NULL;
  captive_unref (cap);
}

int
captive_start (struct server *s)
{
  pid_t pid;
  /* $nbd is the URI too, as in nbdkit since URIs became the norm. */
  char *uri = server_uri (s), *nbd = server_uri (s);
  char port[16];
  pthread_t t;
  struct captive *cap;

  pid = fork ();
  if (pid == -1) {
    log_error (s, "fork: %m");
    free (uri);
    free (nbd);
    return -1;
  }
  if (pid == 0) {
    if (uri)
      setenv ("uri", uri, 1);
    if (nbd)
      setenv ("nbd", nbd, 1);
    setenv ("exportname", s->opt.exportname ? s->opt.exportname : "", 1);
    if (s->socket_path) {
      setenv ("unixsocket", s->socket_path, 1);
      setenv ("port", "", 1);
    } else {
      snprintf (port, sizeof port, "%d", s->bound_port);
      setenv ("port", port, 1);
      setenv ("unixsocket", "", 1);
    }
    /* $tls is the --tls level (1 on, 2 require), unset without TLS. */
    if (s->opt.tls) {
      snprintf (port, sizeof port, "%d", s->opt.tls);
      setenv ("tls", port, 1);
    } else
      unsetenv ("tls");
    /* The command must not inherit the server's listening sockets. */
    for (int i = 0; i < s->nlisten_fds; i++)
      close (s->listen_fds[i]);
    signal (SIGPIPE, SIG_DFL);
    execl ("/bin/sh", "sh", "-c", s->opt.run, (char *)NULL);
    _exit (127);
  }
  free (uri);
  free (nbd);
  cap = malloc (sizeof *cap);
  if (cap == NULL)
    return -1;
  pthread_mutex_init (&cap->lock, NULL);
  pthread_cond_init (&cap->cond, NULL);
  cap->done = false;
  cap->s = s;
  cap->pid = pid;
  cap->refs = 2;
  if (pthread_create (&t, NULL, captive_wait, cap) != 0) {
    pthread_cond_destroy (&cap->cond);
    pthread_mutex_destroy (&cap->lock);
    free (cap);
    return -1;
  }
  pthread_detach (t);
  s->captive = cap;
  return 0;
}
