/* objects.c: the S3 plugin's objects and listings: object names, the
 * requests on them, and the pages of a bucket listing.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "config.h"
#include "s3.h"
#include "transfer.h"
#include "xml.h"

/* The name (and its escaped form for URLs) of object I, or of the one
 * object in single-object mode (I == UINT64_MAX).
 */
char *
object_name (uint64_t i)
{
  char *s;

  if (i == UINT64_MAX)
    return strdup (cfg.key);
  if (asprintf (&s, "%s/%016" PRIx64, cfg.key, i) == -1)
    return NULL;
  return s;
}

/* Append S to the URL being built, percent-encoding all but S3's
 * unreserved characters (and '/' if KEEP_SLASH), as SigV4 wants.
 */
char *
url_encode (const char *s, bool keep_slash)
{
  char *out = malloc (strlen (s) * 3 + 1), *p = out;

  if (out == NULL)
    return NULL;
  for (; *s; s++) {
    unsigned char c = *s;
    if (isalnum (c) || c == '-' || c == '_' || c == '.' || c == '~'
        || (c == '/' && keep_slash))
      *p++ = c;
    else
      p += sprintf (p, "%%%02X", c);
  }
  *p = '\0';
  return out;
}

/* Fill X for METHOD on the object named NAME (taken). */
int
set_object (struct xfer *x, enum xfer_method method, char *name)
{
  char *enc = name ? url_encode (name, true) : NULL;

  memset (x, 0, sizeof *x);
  x->method = method;
  if (enc == NULL
      || asprintf (&x->url, "%s/%s/%s", cfg.endpoint, cfg.bucket, enc) == -1
      || asprintf (&x->what, "object '%s' in bucket '%s'", name, cfg.bucket)
             == -1) {
    nbdkit_error ("S3: out of memory");
    free (enc);
    free (name);
    x->url = x->what = NULL;
    return -1;
  }
  free (enc);
  free (name);
  return 0;
}

void
clear_all (struct xfer *xs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    xfer_clear (&xs[i]);
  free (xs);
}

/* Whether X failed because the object does not exist (not because the
 * bucket does not: that is an error).
 */
bool
is_missing (const struct xfer *x)
{
  char code[64];

  if (x->curl_code != CURLE_OK || x->status != 404)
    return false;
  xfer_error_code (x, code, sizeof code);
  return strcmp (code, "NoSuchKey") == 0
         || (code[0] == '\0' && x->method == XFER_HEAD);
}

/* The request for one page of a listing of the bucket under PREFIX
 * after START_AFTER, continuing at TOKEN (NULL: the first page), at
 * most MAX_KEYS keys (0: the server's default).
 */
int
list_prepare (struct xfer *x, const char *prefix, const char *start_after,
              const char *token, unsigned max_keys)
{
  char *p = url_encode (prefix, false);
  char *sa = start_after ? url_encode (start_after, false) : NULL;
  char *tk = token ? url_encode (token, false) : NULL;
  char mk[32] = "";
  int r = -1;

  memset (x, 0, sizeof *x);
  x->method = XFER_GET;
  if (max_keys)
    snprintf (mk, sizeof mk, "&max-keys=%u", max_keys);
  /* SigV4 wants the query sorted by name: libcurl sends it as given. */
  if (p == NULL || (start_after && sa == NULL) || (token && tk == NULL)
      || asprintf (&x->url, "%s/%s?%s%s%slist-type=2%s&prefix=%s%s%s",
                   cfg.endpoint, cfg.bucket, tk ? "continuation-token=" : "",
                   tk ? tk : "", tk ? "&" : "", mk, p,
                   sa ? "&start-after=" : "", sa ? sa : "")
             == -1
      || asprintf (&x->what, "bucket '%s' (listing '%s')", cfg.bucket, prefix)
             == -1) {
    nbdkit_error ("S3: out of memory");
    xfer_clear (x);
    goto out;
  }
  r = 0;
out:
  free (p);
  free (sa);
  free (tk);
  return r;
}

/* The outcome of the listing X: its keys appended to *KEYS (*NKEYS of
 * them), *TOKEN the continuation (freed and replaced; NULL at the
 * end).  Returns 0 or an errno (logged).
 */
int
list_parse (const struct xfer *x, char **token, char ***keys, size_t *nkeys)
{
  if (!xfer_ok (x))
    return xfer_report (x);

  const char *pos = x->body ? x->body : "";
  char name[1100], truncated[16] = "";
  while (xml_next (&pos, "Key", name, sizeof name)) {
    char **k = realloc (*keys, (*nkeys + 1) * sizeof *k);
    if (k == NULL || (k[*nkeys] = strdup (name)) == NULL) {
      if (k)
        *keys = k;
      nbdkit_error ("S3: out of memory");
      return ENOMEM;
    }
    *keys = k;
    (*nkeys)++;
  }
  free (*token);
  *token = NULL;
  if (x->body)
    xml_text (x->body, "IsTruncated", truncated, sizeof truncated);
  if (strcmp (truncated, "true") == 0) {
    char next[1100];
    if (!xml_text (x->body, "NextContinuationToken", next, sizeof next)
        || (*token = strdup (next)) == NULL) {
      nbdkit_error ("S3: listing bucket '%s': truncated without a token",
                    cfg.bucket);
      return EIO;
    }
  }
  return 0;
}

void
free_keys (char **keys, size_t nkeys)
{
  for (size_t k = 0; k < nkeys; k++)
    free (keys[k]);
  free (keys);
}

/* One page of a listing, waiting (see list_prepare, list_parse). */
int
list_page (const char *prefix, const char *start_after, char **token,
           char ***keys, size_t *nkeys, unsigned max_keys)
{
  struct xfer x;
  int err;

  if (list_prepare (&x, prefix, start_after, *token, max_keys) == -1)
    return -1;
  if (xfer_run (&x, 1) == -1) {
    xfer_clear (&x);
    return -1;
  }
  err = list_parse (&x, token, keys, nkeys);
  xfer_clear (&x);
  if (err) {
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
}
