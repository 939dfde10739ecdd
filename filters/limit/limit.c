/* limit.c: refuse clients beyond limit=N connected at once (default
 * 1; 0 means no limit).
 *
 * A client is counted from the moment its export is opened until it is
 * closed, under one lock, so two clients racing for the last place
 * cannot both get it.  A client over the limit is refused when it asks
 * for the export (OPT_GO / NBD_OPT_EXPORT_NAME fails).  (Refusing it
 * earlier, at preconnect, needs the core to call preconnect at all.)
 */

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include <nbdkit-filter.h>

static int64_t limit = 1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t active;

static const struct nbdkit_param params[]
    = { { .name = "limit",
          .type = NBDKIT_PARAM_INT,
          .default_value = "1",
          .doc = "most clients connected at once (0: no limit)",
          .dest = &limit },
        { .name = NULL } };

static int
limit_config_complete (void)
{
  if (limit < 0) {
    nbdkit_error ("limit=%" PRId64 ": must be 0 or more", limit);
    return -1;
  }
  return 0;
}

static const char *
limit_config_help (void)
{
  return "limit=N  Most clients connected at once (default 1, 0: no limit).";
}

static int
full (void)
{
  return limit > 0 && active >= limit;
}

static void *
limit_open (nbdkit_context *ctx, int readonly, const char *exportname,
            int is_tls)
{
  static int token;
  void *h = &token;

  pthread_mutex_lock (&lock);
  if (full ())
    h = NULL;
  else
    active++;
  pthread_mutex_unlock (&lock);
  if (h == NULL)
    nbdkit_error ("limit exceeded: %" PRId64 " clients already connected",
                  limit);
  return h;
}

static void
limit_close (void *handle)
{
  pthread_mutex_lock (&lock);
  active--;
  pthread_mutex_unlock (&lock);
}

static struct nbdkit_filter filter = {
  .name = "limit",
  .longname = "nbdkit limit filter",
  .description = "limit the number of clients connected at once",
  .params = params,
  .config_help = limit_config_help,
  .config_complete = limit_config_complete,
  .open = limit_open,
  .close = limit_close,
};

NBDKIT_REGISTER_FILTER (filter)
