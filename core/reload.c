/* reload.c: SIGHUP (or --watch, watch.c) loads the code of every
 * layer that can reload (the language hosts: their scripts) again.
 * Connections opened afterwards use the new code; those already open
 * finish on the old one, which the layer keeps until they close.  A
 * layer whose new code fails to load says why and goes on serving the
 * old code.
 */

#include "internal.h"

void
server_reload (struct server *s)
{
  unsigned done = 0, failed = 0;

  for (struct backend *b = s->top; b; b = b->next) {
    if (b->ops->reload == NULL)
      continue;
    thread_ctx_set (s, NULL, b->name);
    int r = b->ops->reload (b);
    thread_ctx_set (s, NULL, NULL);
    if (r == -1) {
      log_error (s,
                 "%s: reload failed: the code loaded before goes on"
                 " serving",
                 b->name);
      failed++;
    } else if (r == 1) {
      log_debug (s, "%s: reloaded: new connections use the new code", b->name);
      done++;
    }
  }
  log_debug (s, "reload: %u layer(s) reloaded, %u failed", done, failed);
}
