/* models.h: the thread models by name and number, one table for every
 * language host.  Scripts may give a model as a name ("parallel",
 * "serialize-requests" or "serialize_requests"), as an API 3 number
 * (nbdkit.THREAD_MODEL_*), or as nbdkit's API 1 and 2 number (0 to 3,
 * in the order of the first four entries below).
 */

#ifndef LANGS_MODELS_H
#define LANGS_MODELS_H

#include <stddef.h>

/* Include <nbdkit-plugin.h> (or <nbdkit-filter.h>) first. */

static const struct host_model {
  const char *name;
  int model;
} host_models[] = {
  /* The first four in the order of their API 1 and 2 numbers. */
  { "serialize_connections", NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS },
  { "serialize_all_requests", NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS },
  { "serialize_requests", NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS },
  { "parallel", NBDKIT_THREAD_MODEL_PARALLEL },
  { "serialize_retirement", NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT },
};
#define HOST_N_MODELS (sizeof host_models / sizeof host_models[0])

/* The name of MODEL (an API 3 number), or "unknown". */
static inline const char *
host_model_name (int model)
{
  for (size_t i = 0; i < HOST_N_MODELS; i++)
    if (host_models[i].model == model)
      return host_models[i].name;
  return "unknown";
}

/* The model named S ('-' may stand for '_'), or -1. */
static inline int
host_model_by_name (const char *s)
{
  for (size_t i = 0; i < HOST_N_MODELS; i++) {
    const char *n = host_models[i].name;
    size_t k = 0;

    while (s[k] && n[k] && (s[k] == n[k] || (s[k] == '-' && n[k] == '_')))
      k++;
    if (s[k] == 0 && n[k] == 0)
      return host_models[i].model;
  }
  return -1;
}

/* The API 3 model of number M (an API 3 number or an API 1/2 0..3),
 * or -1.
 */
static inline int
host_model_by_number (long long m)
{
  if (m >= 0 && m <= 3)
    return host_models[m].model;
  for (size_t i = 0; i < HOST_N_MODELS; i++)
    if (host_models[i].model == m)
      return (int)m;
  return -1;
}

#endif /* LANGS_MODELS_H */
