/* exitwhen.c: exit gracefully when an outside event happens.
 *
 *   exit-when-file-created=FILE   exit-when-file-deleted=FILE
 *   exit-when-pipe-closed=FD      exit-when-process-exits=PID
 *   exit-when-script=CMD          (exit status 88 means: the event)
 *   exit-when-poll=SECS           how often to look (default 60)
 *
 * Each may be given several times; any one event is enough.  Once it
 * happened, new clients are refused and the server exits as soon as no
 * client is connected.  Events are checked when a client connects or
 * disconnects and every exit-when-poll seconds in a thread of our own.
 * That thread stops the server with nbdkit_shutdown, which works from
 * any thread (not with SIGTERM: a signal means the server was stopped
 * from outside, and then it does not wait for its --run command).
 */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nbdkit-filter.h>

enum kind { FILE_CREATED, FILE_DELETED, PIPE_CLOSED, PROCESS_EXITS, SCRIPT };

struct event {
  enum kind kind;
  char *str; /* file name or script */
  int num;   /* fd or pid */
};

static struct event *events;
static size_t nevents;
static int64_t poll_secs = 60;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static bool triggered, stopping, poller_started;
static int64_t active;
static pthread_t poller;

static const struct nbdkit_param params[]
    = { { .name = "exit-when-file-created",
          .type = NBDKIT_PARAM_LIST,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "exit when FILE appears" },
        { .name = "exit-when-file-deleted",
          .type = NBDKIT_PARAM_LIST,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "exit when FILE disappears" },
        { .name = "exit-when-pipe-closed",
          .type = NBDKIT_PARAM_LIST,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "exit when the writer of the pipe read on FD closes it" },
        { .name = "exit-when-process-exits",
          .type = NBDKIT_PARAM_LIST,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "exit when process PID exits" },
        { .name = "exit-when-script",
          .type = NBDKIT_PARAM_LIST,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "exit when CMD exits with status 88" },
        { .name = "exit-when-poll",
          .type = NBDKIT_PARAM_INT,
          .default_value = "60",
          .doc = "seconds between checks while idle",
          .dest = &poll_secs },
        { .name = NULL } };

static const char *
exitwhen_config_help (void)
{
  return "exit-when-file-created=FILE  Exit when FILE is created.\n"
         "exit-when-file-deleted=FILE  Exit when FILE is deleted.\n"
         "exit-when-pipe-closed=FD     Exit when the pipe on FD is closed.\n"
         "exit-when-process-exits=PID  Exit when process PID exits.\n"
         "exit-when-script=CMD         Exit when CMD exits with status 88.\n"
         "exit-when-poll=SECS          Seconds between checks (default 60).";
}

static int
exitwhen_config (const char *key, const char *value)
{
  struct event ev = { 0 };
  struct event *ne;

  if (strcmp (key, "exit-when-poll") == 0)
    return 0;
  if (strcmp (key, "exit-when-file-created") == 0
      || strcmp (key, "exit-when-file-deleted") == 0) {
    ev.kind = strcmp (key, "exit-when-file-created") == 0 ? FILE_CREATED
                                                          : FILE_DELETED;
    /* The server may chdir when it goes into the background. */
    ev.str = nbdkit_absolute_path (value);
    if (ev.str == NULL)
      return -1;
  } else if (strcmp (key, "exit-when-pipe-closed") == 0
             || strcmp (key, "exit-when-process-exits") == 0) {
    ev.kind = strcmp (key, "exit-when-pipe-closed") == 0 ? PIPE_CLOSED
                                                         : PROCESS_EXITS;
    if (nbdkit_parse_int (key, value, &ev.num) == -1)
      return -1;
    if (ev.num < 0 || (ev.kind == PROCESS_EXITS && ev.num == 0)) {
      nbdkit_error ("%s=%s: expected a %s", key, value,
                    ev.kind == PIPE_CLOSED ? "file descriptor" : "process ID");
      return -1;
    }
  } else {
    ev.kind = SCRIPT;
    if ((ev.str = strdup (value)) == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
  }
  ne = realloc (events, (nevents + 1) * sizeof *ne);
  if (ne == NULL) {
    nbdkit_error ("realloc: %m");
    free (ev.str);
    return -1;
  }
  events = ne;
  events[nevents++] = ev;
  return 0;
}

static int
exitwhen_config_complete (void)
{
  if (poll_secs < 1) {
    nbdkit_error ("exit-when-poll=%" PRId64 ": must be 1 or more", poll_secs);
    return -1;
  }
  return 0;
}

static bool
happened (struct event *ev)
{
  struct stat st;
  struct pollfd pfd;
  int status;

  switch (ev->kind) {
    case FILE_CREATED:
      return stat (ev->str, &st) == 0;
    case FILE_DELETED:
      return stat (ev->str, &st) == -1 && errno == ENOENT;
    case PIPE_CLOSED:
      pfd.fd = ev->num;
      pfd.events = POLLIN;
      pfd.revents = 0;
      if (poll (&pfd, 1, 0) == -1)
        return false;
      return (pfd.revents & (POLLHUP | POLLNVAL | POLLERR)) != 0;
    case PROCESS_EXITS:
      return kill (ev->num, 0) == -1 && errno == ESRCH;
    case SCRIPT:
      status = system (ev->str);
      if (status == -1 || !WIFEXITED (status)) {
        nbdkit_error ("exit-when-script: %s: could not run or was killed",
                      ev->str);
        return false;
      }
      if (WEXITSTATUS (status) == 88)
        return true;
      if (WEXITSTATUS (status) != 0)
        nbdkit_error ("exit-when-script: %s: exit status %d", ev->str,
                      WEXITSTATUS (status));
      return false;
  }
  return false;
}

/* Look at every event once.  LOCK held. */
static bool
check_events (void)
{
  for (size_t i = 0; !triggered && i < nevents; i++)
    if (happened (&events[i])) {
      nbdkit_debug ("exitwhen: event %zu happened", i);
      triggered = true;
    }
  return triggered;
}

static void *
poller_main (void *arg)
{
  struct timespec ts;

  pthread_mutex_lock (&lock);
  while (!stopping) {
    if (check_events () && active == 0) {
      nbdkit_debug ("exitwhen: exiting");
      nbdkit_shutdown ();
      break;
    }
    clock_gettime (CLOCK_MONOTONIC, &ts);
    ts.tv_sec += poll_secs;
    while (!stopping && pthread_cond_timedwait (&cond, &lock, &ts) == 0)
      ;
  }
  pthread_mutex_unlock (&lock);
  return NULL;
}

static int
exitwhen_after_fork (nbdkit_backend *next)
{
  pthread_condattr_t attr;

  if (nevents == 0)
    return 0;
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&cond, &attr);
  pthread_condattr_destroy (&attr);
  if (pthread_create (&poller, NULL, poller_main, NULL) != 0) {
    nbdkit_error ("exitwhen: cannot start the polling thread");
    return -1;
  }
  poller_started = true;
  return 0;
}

static void
exitwhen_unload (void)
{
  if (poller_started) {
    pthread_mutex_lock (&lock);
    stopping = true;
    pthread_cond_signal (&cond);
    pthread_mutex_unlock (&lock);
    pthread_join (poller, NULL);
  }
  for (size_t i = 0; i < nevents; i++)
    free (events[i].str);
  free (events);
}

static void *
exitwhen_open (nbdkit_context *ctx, int readonly, const char *exportname,
               int is_tls)
{
  static int token;
  bool refuse;

  pthread_mutex_lock (&lock);
  refuse = check_events ();
  if (!refuse)
    active++;
  pthread_mutex_unlock (&lock);
  if (refuse) {
    nbdkit_error ("exitwhen: exit event happened: refusing new clients");
    return NULL;
  }
  return &token;
}

static void
exitwhen_close (void *handle)
{
  bool now;

  pthread_mutex_lock (&lock);
  now = --active == 0 && check_events ();
  pthread_mutex_unlock (&lock);
  if (now) {
    nbdkit_debug ("exitwhen: last client gone after the event: exiting");
    nbdkit_shutdown ();
  }
}

static struct nbdkit_filter filter = {
  .name = "exitwhen",
  .longname = "nbdkit exitwhen filter",
  .description = "exit gracefully when an outside event happens",
  .params = params,
  .config = exitwhen_config,
  .config_complete = exitwhen_config_complete,
  .config_help = exitwhen_config_help,
  .after_fork = exitwhen_after_fork,
  .unload = exitwhen_unload,
  .open = exitwhen_open,
  .close = exitwhen_close,
};

NBDKIT_REGISTER_FILTER (filter)
