/* signals.c: the process's signals.  SIGINT, SIGTERM and SIGQUIT stop
 * the server the nbdkit program runs; SIGHUP reloads its scripts; SIGPIPE is
 * ignored, as a client that goes away must not end the process.  Signals are
 * process-wide, so this is the one piece of global state in the core: an
 * embedded server (embed.c) installs no handlers and is stopped by its program.
 */

#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"

/* The quit pipe of the server the signals stop, or -1; and its
 * reload pipe, which SIGHUP writes.
 */
static _Atomic int signal_quit_fd = -1;
static _Atomic int signal_reload_fd = -1;

static void
poke (_Atomic int *which)
{
  char c = 1;
  int fd = atomic_load (which);
  if (fd >= 0 && write (fd, &c, 1) == -1) {
    /* The pipe is full: a wake-up is already pending. */
  }
}

static void
wake (void)
{
  poke (&signal_quit_fd);
}

/* Set once SIGINT, SIGTERM or SIGQUIT has arrived. */
static volatile sig_atomic_t quit_signalled;

static void
handle_quit_signal (int sig)
{
  quit_signalled = 1;
  wake ();
}

bool
signals_quit_received (void)
{
  return quit_signalled != 0;
}

static void
handle_reload_signal (int sig)
{
  poke (&signal_reload_fd);
}

void
signals_install (struct server *s)
{
  struct sigaction sa = { .sa_handler = handle_quit_signal };

  atomic_store (&signal_quit_fd, s->quit_pipe[1]);
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGQUIT, &sa, NULL);
  atomic_store (&signal_reload_fd, s->reload_pipe[1]);
  sa.sa_handler = handle_reload_signal;
  sigaction (SIGHUP, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
}

/* S is going away: a signal arriving from now on finds no pipe. */
void
signals_forget (struct server *s)
{
  int fd = s->quit_pipe[1];
  atomic_compare_exchange_strong (&signal_quit_fd, &fd, -1);
  fd = s->reload_pipe[1];
  atomic_compare_exchange_strong (&signal_reload_fd, &fd, -1);
}

/* nbdkit_shutdown from a thread the server did not start (a plugin's
 * or filter's own): it has no server to name, and the process has one.
 */
void
server_quit_from_anywhere (void)
{
  wake ();
}
