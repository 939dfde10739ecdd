/* handover.c: a plugin that hands the server another plugin to serve
 * in its place (nbdkit_hand_over), as the cc plugin does with the
 * plugin it has just compiled.
 *
 * The request is only recorded while the plugin's config_complete
 * runs; afterwards layer_config_complete loads the new plugin, gives
 * it the parameters as if they had been typed, completes its
 * configuration and puts it in the chain in place of the old one,
 * which is then unloaded.  The new plugin may hand over in turn.
 */

#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct handover {
  char *plugin;
  size_t n;
  char **keys, **values;
};

static void
handover_free (struct handover *h)
{
  if (h == NULL)
    return;
  for (size_t i = 0; i < h->n; i++) {
    free (h->keys[i]);
    free (h->values[i]);
  }
  free (h->keys);
  free (h->values);
  free (h->plugin);
  free (h);
}

NBDKIT_EXTERN_C int
nbdkit_hand_over (const char *plugin, size_t n, const char *const *keys,
                  const char *const *values)
{
  struct server *s = thread_ctx ()->server;
  struct backend *b = s ? s->plugin : NULL;
  struct handover *h;

  if (b == NULL || !b->completing) {
    nbdkit_error ("nbdkit_hand_over: may only be called from a plugin's"
                  " config_complete");
    return -1;
  }
  if (b->handover) {
    nbdkit_error ("nbdkit_hand_over: called twice");
    return -1;
  }
  if (plugin == NULL || *plugin == '\0') {
    nbdkit_error ("nbdkit_hand_over: no plugin named");
    return -1;
  }
  h = calloc (1, sizeof *h);
  if (h == NULL)
    goto nomem;
  h->plugin = strdup (plugin);
  h->keys = calloc (n + 1, sizeof *h->keys);
  h->values = calloc (n + 1, sizeof *h->values);
  if (h->plugin == NULL || h->keys == NULL || h->values == NULL)
    goto nomem;
  for (; h->n < n; h->n++) {
    h->keys[h->n] = strdup (keys[h->n]);
    h->values[h->n] = strdup (values[h->n]);
    if (h->keys[h->n] == NULL || h->values[h->n] == NULL) {
      h->n++;
      goto nomem;
    }
  }
  b->handover = h;
  return 0;

nomem:
  nbdkit_error ("malloc: %m");
  handover_free (h);
  return -1;
}

/* Load and configure what OLD asked for; NULL on failure. */
static struct backend *
take_over (struct server *s, struct backend *old)
{
  struct handover *h = old->handover;
  struct backend *nb;

  nbdkit_debug ("%s: handing over to %s", old->name, h->plugin);
  thread_ctx_set (s, NULL, NULL);
  nb = plugin_load (s, h->plugin);
  if (nb == NULL) {
    log_error (s, "%s: the plugin it hands over to (%s) cannot be loaded",
               old->name, h->plugin);
    return NULL;
  }
  /* Messages about its parameters send the user to the command they
   * typed.
   */
  nb->given = old->given;
  s->plugin = nb;
  if (refresh_params (nb) == -1)
    goto err;
  thread_ctx_set (s, NULL, nb->name);
  nb->ops->load (nb);
  thread_ctx_set (s, NULL, NULL);
  for (size_t i = 0; i < h->n; i++)
    if (config_one (nb, h->keys[i], h->values[i]) == -1)
      goto err;
  if (nb->params
      && param_finish (nb->name, nb->params, nb->params_seen,
                       config_apply_default, nb)
             == -1)
    goto err;
  return nb;

err:
  s->plugin = old;
  backend_free (s, nb);
  return NULL;
}

int
layer_config_complete (struct backend **lp)
{
  struct backend *b = *lp;
  struct server *s = b->server;
  int r;

  for (int depth = 0;; depth++) {
    thread_ctx_set (s, NULL, b->name);
    b->completing = !b->is_filter;
    r = b->ops->config_complete (b);
    b->completing = false;
    thread_ctx_set (s, NULL, NULL);
    if (r == -1 || b->handover == NULL)
      break;
    if (depth == 8) {
      log_error (s, "%s: too many plugins handed over in a row", b->name);
      r = -1;
      break;
    }
    struct backend *nb = take_over (s, b);
    if (nb == NULL) {
      r = -1;
      break;
    }
    *lp = nb;
    handover_free (b->handover);
    b->handover = NULL;
    backend_free (s, b);
    b = nb;
  }
  if (b->handover) {
    handover_free (b->handover);
    b->handover = NULL;
  }
  return r;
}
