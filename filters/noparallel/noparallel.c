/* noparallel.c: ask the server for a more serializing thread model.
 *
 *   serialize=requests      one request at a time per connection (default)
 *   serialize=all-requests  one request at a time in the whole server
 *   serialize=connections   one client at a time; multi-conn not offered
 *
 * The server runs with the most serializing model of all layers, so
 * answering thread_model is all it takes.
 */

#include <string.h>

#include <nbdkit-filter.h>

static const char *serialize = "requests";

static const struct nbdkit_param params[]
    = { { .name = "serialize",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "requests",
          .choices = "requests|all-requests|connections",
          .doc = "how much to serialize",
          .dest = &serialize },
        { .name = NULL } };

static const char *
noparallel_config_help (void)
{
  return "serialize=requests|all-requests|connections  How much to"
         " serialize (default requests).";
}

static int
noparallel_thread_model (void)
{
  if (strcmp (serialize, "connections") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS;
  if (strcmp (serialize, "all-requests") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
  return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

static int
noparallel_can_multi_conn (nbdkit_next *next, void *handle)
{
  if (strcmp (serialize, "connections") == 0)
    return 0;
  return nbdkit_next_can_multi_conn (next);
}

static struct nbdkit_filter filter = {
  .name = "noparallel",
  .longname = "nbdkit noparallel filter",
  .description = "serialize requests or connections",
  .params = params,
  .config_help = noparallel_config_help,
  .thread_model = noparallel_thread_model,
  .can_multi_conn = noparallel_can_multi_conn,
};

NBDKIT_REGISTER_FILTER (filter)
