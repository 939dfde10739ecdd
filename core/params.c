/* params.c: typed parameters.
 *
 * Checks and converts key=value against the nbdkit_param array a
 * plugin or filter declares, applies defaults, and prints the
 * declarations for --help and --dump-plugin.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* From parse.c: the parsers without their own messages, so that the
 * one message logged here names the owner and the key.
 */
extern int parse_size_quiet (const char *str, int64_t *r, const char **why);
extern int parse_int64_quiet (const char *str, int64_t *r, const char **why);
extern int parse_bool_quiet (const char *str);
extern int read_password_as (const char *what, const char *value,
                             char **password);

/* Strings stored into a param's dest must outlive every use the plugin
 * makes of them.  Parameters are parsed outside any connection, so an
 * interned copy lives as long as the server, which frees it at the end.
 */
static int
store_string (const char *owner, const struct nbdkit_param *p,
              const char *value)
{
  const char *copy;

  if (p->dest == NULL)
    return 0;
  copy = nbdkit_strdup_intern (value);
  if (copy == NULL) {
    nbdkit_error ("%s: %s: could not keep the value: %m", owner, p->name);
    return -1;
  }
  *(const char **)p->dest = copy;
  return 0;
}

/* Whether VALUE is one of the "a|b|c" CHOICES, exactly. */
static bool
is_choice (const char *choices, const char *value)
{
  size_t n = strlen (value);
  const char *p = choices, *bar;

  for (;;) {
    bar = strchr (p, '|');
    if ((bar ? (size_t)(bar - p) : strlen (p)) == n
        && strncmp (p, value, n) == 0)
      return true;
    if (bar == NULL)
      return false;
    p = bar + 1;
  }
}

/* An existing file or directory, made absolute.  NULL on error. */
static char *
check_path (const char *owner, const struct nbdkit_param *p, const char *value)
{
  bool want_dir = p->type == NBDKIT_PARAM_DIRECTORY;
  struct stat st;
  char *path;

  if (stat (value, &st) == -1) {
    nbdkit_error ("%s: %s=%s: %m", owner, p->name, value);
    return NULL;
  }
  if (want_dir && !S_ISDIR (st.st_mode)) {
    errno = ENOTDIR;
    nbdkit_error ("%s: %s=%s: %m, expected a directory", owner, p->name, value);
    return NULL;
  }
  if (!want_dir && S_ISDIR (st.st_mode)) {
    errno = EISDIR;
    nbdkit_error ("%s: %s=%s: %m, expected a file", owner, p->name, value);
    return NULL;
  }
  path = realpath (value, NULL);
  if (path == NULL)
    nbdkit_error ("%s: %s=%s: %m", owner, p->name, value);
  return path;
}

/* Check VALUE against P, store it into P->dest and return its
 * malloc'd canonical text, or NULL having logged the error.
 */
static char *
convert (const char *owner, const struct nbdkit_param *p, const char *value)
{
  const char *why;
  char *canonical = NULL;
  int64_t i64;
  int b;

  switch (p->type) {
    case NBDKIT_PARAM_STRING:
    case NBDKIT_PARAM_LIST:
      if (p->type == NBDKIT_PARAM_STRING && store_string (owner, p, value))
        return NULL;
      canonical = strdup (value);
      break;

    case NBDKIT_PARAM_ENUM:
      if (p->choices == NULL || !is_choice (p->choices, value)) {
        nbdkit_error ("%s: %s=%s: expected one of %s", owner, p->name, value,
                      p->choices ? p->choices : "(no choices declared)");
        return NULL;
      }
      if (store_string (owner, p, value) == -1)
        return NULL;
      canonical = strdup (value);
      break;

    case NBDKIT_PARAM_BOOL:
      b = parse_bool_quiet (value);
      if (b == -1) {
        nbdkit_error ("%s: %s=%s: expected a boolean: "
                      "1, true, yes, on or 0, false, no, off",
                      owner, p->name, value);
        return NULL;
      }
      if (p->dest)
        *(bool *)p->dest = b;
      canonical = strdup (b ? "1" : "0");
      break;

    case NBDKIT_PARAM_INT:
    case NBDKIT_PARAM_SIZE:
      if (p->type == NBDKIT_PARAM_INT ? parse_int64_quiet (value, &i64, &why)
                                      : parse_size_quiet (value, &i64, &why)) {
        nbdkit_error ("%s: %s=%s: %s (the value %s)", owner, p->name, value,
                      p->type == NBDKIT_PARAM_INT
                          ? "expected an integer such as 42, -1 or 0x10"
                          : "expected a size such as 1G or 512K",
                      why);
        return NULL;
      }
      if (p->dest)
        *(int64_t *)p->dest = i64;
      if (asprintf (&canonical, "%" PRIi64, i64) == -1)
        canonical = NULL;
      break;

    case NBDKIT_PARAM_FILE:
    case NBDKIT_PARAM_DIRECTORY:
      canonical = check_path (owner, p, value);
      if (canonical == NULL)
        return NULL;
      if (store_string (owner, p, canonical) == -1) {
        free (canonical);
        return NULL;
      }
      return canonical;

    case NBDKIT_PARAM_PASSWORD: {
      char what[256];

      /* Messages name the key but never show the value. */
      snprintf (what, sizeof what, "%s: %s", owner, p->name);
      if (read_password_as (what, value, &canonical) == -1)
        return NULL;
      if (store_string (owner, p, canonical) == -1) {
        free (canonical);
        return NULL;
      }
      return canonical;
    }

    default:
      nbdkit_error ("%s: %s: unknown parameter type %d", owner, p->name,
                    (int)p->type);
      return NULL;
  }

  if (canonical == NULL)
    nbdkit_error ("%s: %s: out of memory: %m", owner, p->name);
  return canonical;
}

int
param_parse (const char *owner, const struct nbdkit_param *params,
             unsigned *seen, const char *key, const char *value,
             char **canonical)
{
  const struct nbdkit_param *p;
  size_t i;
  char *c;

  for (i = 0; params && params[i].name; i++)
    if (strcmp (params[i].name, key) == 0)
      break;
  if (params == NULL || params[i].name == NULL)
    return -2;
  p = &params[i];

  /* A key given again replaces the earlier value, as in nbdkit (a
   * list collects them all).
   */
  c = convert (owner, p, value);
  if (c == NULL)
    return -1;
  seen[i]++;
  if (canonical)
    *canonical = c;
  else
    free (c);
  return 0;
}

int
param_finish (const char *owner, const struct nbdkit_param *params,
              unsigned *seen,
              int (*apply) (void *opaque, const char *key,
                            const char *canonical),
              void *opaque)
{
  const struct nbdkit_param *p;
  size_t i;
  char *c;
  int r = 0;

  for (i = 0; params && params[i].name; i++) {
    p = &params[i];
    if (seen[i] > 0)
      continue;
    if (p->default_value) {
      c = convert (owner, p, p->default_value);
      if (c == NULL)
        return -1;
      if (apply && apply (opaque, p->name, c) == -1) {
        free (c);
        return -1;
      }
      free (c);
    } else if (p->flags & NBDKIT_PARAM_REQUIRED) {
      /* Report every missing key, not only the first. */
      nbdkit_error ("%s: missing required parameter '%s' "
                    "(see 'nbdkit %s --help')",
                    owner, p->name, owner);
      r = -1;
    }
  }
  return r;
}

/* How --help shows the value of P: "<SIZE>", "<a|b|c>", ... */
static void
print_placeholder (FILE *fp, const struct nbdkit_param *p, size_t *len)
{
  const char *s;

  switch (p->type) {
    case NBDKIT_PARAM_BOOL:
      s = "BOOL";
      break;
    case NBDKIT_PARAM_INT:
      s = "INT";
      break;
    case NBDKIT_PARAM_SIZE:
      s = "SIZE";
      break;
    case NBDKIT_PARAM_ENUM:
      s = p->choices ? p->choices : "?";
      break;
    case NBDKIT_PARAM_FILE:
      s = "FILE";
      break;
    case NBDKIT_PARAM_DIRECTORY:
      s = "DIR";
      break;
    case NBDKIT_PARAM_PASSWORD:
      s = "PASSWORD";
      break;
    case NBDKIT_PARAM_STRING:
    case NBDKIT_PARAM_LIST:
    default:
      s = "STRING";
      break;
  }
  fprintf (fp, "<%s>", s);
  *len += strlen (s) + 2;
}

/* The key column of --help is this wide, so that docs line up. */
#define HELP_KEY_WIDTH 21

void
param_help (FILE *fp, const struct nbdkit_param *params)
{
  const struct nbdkit_param *p;
  size_t len;

  for (p = params; p && p->name; p++) {
    fprintf (fp, "  %s=", p->name);
    len = strlen (p->name) + 1;
    print_placeholder (fp, p, &len);
    if ((p->flags & (NBDKIT_PARAM_REQUIRED | NBDKIT_PARAM_MULTIPLE))
        || p->type == NBDKIT_PARAM_LIST || (p->doc && *p->doc)
        || p->default_value)
      fprintf (fp, "%*s",
               len < HELP_KEY_WIDTH ? (int)(HELP_KEY_WIDTH - len) : 0, "");

    /* Then " (required) doc (default: X)", each part only if there. */
    if (p->flags & NBDKIT_PARAM_REQUIRED)
      fputs (" (required)", fp);
    if ((p->flags & NBDKIT_PARAM_MULTIPLE) || p->type == NBDKIT_PARAM_LIST)
      fputs (" (repeatable)", fp);
    if (p->doc && *p->doc)
      fprintf (fp, " %s", p->doc);
    if (p->default_value)
      fprintf (fp, " (default: %s)", p->default_value);
    fputc ('\n', fp);
  }
}

static const char *
type_name (enum nbdkit_param_type t)
{
  switch (t) {
    case NBDKIT_PARAM_STRING:
      return "string";
    case NBDKIT_PARAM_BOOL:
      return "bool";
    case NBDKIT_PARAM_INT:
      return "int";
    case NBDKIT_PARAM_SIZE:
      return "size";
    case NBDKIT_PARAM_ENUM:
      return "enum";
    case NBDKIT_PARAM_FILE:
      return "file";
    case NBDKIT_PARAM_DIRECTORY:
      return "directory";
    case NBDKIT_PARAM_PASSWORD:
      return "password";
    case NBDKIT_PARAM_LIST:
      return "list";
    default:
      return "unknown";
  }
}

/* One line per param: PREFIX_param_NAME=TYPE[,required][,multiple]
 * [,choices=a|b|c][,default=VALUE].  The default comes last so that it
 * may itself contain commas.  Without a PREFIX: param_NAME=...
 */
void
param_dump (FILE *fp, const char *prefix, const struct nbdkit_param *params)
{
  const struct nbdkit_param *p;
  bool has_prefix = prefix && *prefix;

  for (p = params; p && p->name; p++) {
    fprintf (fp, "%s%sparam_%s=%s", has_prefix ? prefix : "",
             has_prefix ? "_" : "", p->name, type_name (p->type));
    if (p->flags & NBDKIT_PARAM_REQUIRED)
      fputs (",required", fp);
    if ((p->flags & NBDKIT_PARAM_MULTIPLE) || p->type == NBDKIT_PARAM_LIST)
      fputs (",multiple", fp);
    if (p->type == NBDKIT_PARAM_ENUM && p->choices)
      fprintf (fp, ",choices=%s", p->choices);
    if (p->default_value)
      fprintf (fp, ",default=%s", p->default_value);
    fputc ('\n', fp);
  }
}

size_t
param_count (const struct nbdkit_param *params)
{
  size_t n = 0;

  while (params && params[n].name)
    n++;
  return n;
}
