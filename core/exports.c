/* exports.c: the list a plugin fills in list_exports
 * (nbdkit_add_export, nbdkit_use_default_export).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "server.h"

#define MAX_EXPORTS 10000

struct nbdkit_exports {
  struct nbdkit_export *v;
  size_t n, alloc;
  int use_default;
};

NBDKIT_EXTERN_C struct nbdkit_exports *
nbdkit_exports_new (void)
{
  struct nbdkit_exports *x = calloc (1, sizeof *x);
  if (x == NULL)
    nbdkit_error ("calloc: %m");
  return x;
}

NBDKIT_EXTERN_C void
nbdkit_exports_free (struct nbdkit_exports *x)
{
  if (x == NULL)
    return;
  for (size_t i = 0; i < x->n; i++) {
    free (x->v[i].name);
    free (x->v[i].description);
  }
  free (x->v);
  free (x);
}

NBDKIT_EXTERN_C size_t
nbdkit_exports_count (const struct nbdkit_exports *x)
{
  return x->n;
}

NBDKIT_EXTERN_C struct nbdkit_export
nbdkit_get_export (const struct nbdkit_exports *x, size_t i)
{
  return x->v[i];
}

int
exports_use_default (const struct nbdkit_exports *x)
{
  return x->use_default;
}

NBDKIT_EXTERN_C int
nbdkit_add_export (struct nbdkit_exports *x, const char *name,
                   const char *description)
{
  if (name == NULL || strlen (name) > MAX_STRING) {
    nbdkit_error ("nbdkit_add_export: export name missing or longer than %d"
                  " bytes",
                  MAX_STRING);
    errno = EINVAL;
    return -1;
  }
  if (description && strlen (description) > MAX_STRING) {
    nbdkit_error ("nbdkit_add_export: description of '%s' longer than %d"
                  " bytes",
                  name, MAX_STRING);
    errno = EINVAL;
    return -1;
  }
  if (x->n >= MAX_EXPORTS) {
    nbdkit_error ("nbdkit_add_export: too many exports (at most %d)",
                  MAX_EXPORTS);
    errno = E2BIG;
    return -1;
  }
  if (x->n == x->alloc) {
    size_t na = x->alloc ? x->alloc * 2 : 8;
    struct nbdkit_export *nv = realloc (x->v, na * sizeof *nv);
    if (nv == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    x->v = nv;
    x->alloc = na;
  }
  x->v[x->n].name = strdup (name);
  x->v[x->n].description = description ? strdup (description) : NULL;
  if (x->v[x->n].name == NULL
      || (description && x->v[x->n].description == NULL)) {
    free (x->v[x->n].name);
    free (x->v[x->n].description);
    nbdkit_error ("strdup: %m");
    return -1;
  }
  x->n++;
  return 0;
}

NBDKIT_EXTERN_C int
nbdkit_use_default_export (struct nbdkit_exports *x)
{
  x->use_default = 1;
  return 0;
}

/* A list that asked for the default export gets its name now, from
 * layer B: a filter reading its layer's list sees the name, not a flag
 * it cannot read.
 */
int
exports_resolve_default (struct nbdkit_exports *x, struct backend *b,
                         int readonly, int is_tls)
{
  const char *name;

  if (!x->use_default)
    return 0;
  x->use_default = 0;
  name = exports_default (b, readonly, is_tls);
  return name ? nbdkit_add_export (x, name, NULL) : -1;
}

/* ---- the default export, cached per connection ---- */

struct default_export {
  struct default_export *next;
  struct backend *b;
  int readonly, is_tls;
  char *name;
};

const char *
exports_default (struct backend *b, int readonly, int is_tls)
{
  struct connection *c = thread_ctx ()->conn;
  struct default_export *d;
  const char *name;

  if (c == NULL)
    return b->ops->default_export (b, readonly, is_tls);
  for (d = c->default_exports; d; d = d->next)
    if (d->b == b && d->readonly == readonly && d->is_tls == is_tls)
      return d->name;
  name = b->ops->default_export (b, readonly, is_tls);
  if (name == NULL)
    return NULL;
  d = calloc (1, sizeof *d);
  if (d == NULL || (d->name = strdup (name)) == NULL) {
    free (d);
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  d->b = b;
  d->readonly = readonly;
  d->is_tls = is_tls;
  d->next = c->default_exports;
  c->default_exports = d;
  return d->name;
}

void
exports_default_forget (struct connection *c)
{
  while (c->default_exports) {
    struct default_export *d = c->default_exports;
    c->default_exports = d->next;
    free (d->name);
    free (d);
  }
}
