/* reload.h: SIGHUP asks a language host to reload its script.
 *
 * The server does not use SIGHUP (whose default would end it): a host
 * that can reload watches it once it serves (reload_watch, from
 * get_ready), and the next connection to open reloads (reload_wanted
 * tells whether one was asked for since the caller last looked: each
 * script of the host keeps its own count).  Hosts in one
 * process chain to each other's handlers.  Include it after the ABI
 * header.
 */

#ifndef LANGS_RELOAD_H
#define LANGS_RELOAD_H

#include <signal.h>
#include <string.h>

/* SIGHUPs received. */
static volatile sig_atomic_t reload_hup;
static struct sigaction reload_old;

static void
reload_on_sighup (int sig, siginfo_t *info, void *uc)
{
  reload_hup++;
  if (reload_old.sa_flags & SA_SIGINFO) {
    if (reload_old.sa_sigaction)
      reload_old.sa_sigaction (sig, info, uc);
  } else if (reload_old.sa_handler != SIG_DFL
             && reload_old.sa_handler != SIG_IGN)
    reload_old.sa_handler (sig);
}

static inline void
reload_watch (void)
{
  static int done;
  struct sigaction sa;

  if (done++)
    return;
  memset (&sa, 0, sizeof sa);
  sa.sa_sigaction = reload_on_sighup;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset (&sa.sa_mask);
  if (sigaction (SIGHUP, &sa, &reload_old) == -1)
    nbdkit_debug ("cannot watch SIGHUP: %m");
}

/* Whether a reload was asked for since *SEEN was updated (it is). */
static inline int
reload_wanted (int *seen)
{
  int n = reload_hup;

  if (n == *seen)
    return 0;
  *seen = n;
  return 1;
}

#endif /* LANGS_RELOAD_H */
