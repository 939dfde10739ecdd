/* xml.c: element text out of S3's XML answers (see xml.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

/* Decode the entities of [S, E) into OUT. */
static void
unescape (const char *s, const char *e, char *out, size_t len)
{
  static const struct {
    const char *name;
    char c;
  } ents[] = { { "&amp;", '&' },
               { "&lt;", '<' },
               { "&gt;", '>' },
               { "&quot;", '"' },
               { "&apos;", '\'' } };
  size_t n = 0;

  while (s < e && n + 1 < len) {
    if (*s == '&') {
      size_t i;
      for (i = 0; i < sizeof ents / sizeof ents[0]; i++) {
        size_t l = strlen (ents[i].name);
        if ((size_t)(e - s) >= l && strncmp (s, ents[i].name, l) == 0) {
          out[n++] = ents[i].c;
          s += l;
          break;
        }
      }
      if (i < sizeof ents / sizeof ents[0])
        continue;
      if (s + 2 < e && s[1] == '#') {
        char *end;
        long v
            = s[2] == 'x' ? strtol (s + 3, &end, 16) : strtol (s + 2, &end, 10);
        if (end < e && *end == ';' && v > 0 && v < 128) {
          out[n++] = (char)v;
          s = end + 1;
          continue;
        }
      }
    }
    out[n++] = *s++;
  }
  out[n] = '\0';
}

bool
xml_next (const char **pos, const char *tag, char *out, size_t len)
{
  char open[64], close[64];
  const char *s, *e;

  snprintf (open, sizeof open, "<%s>", tag);
  snprintf (close, sizeof close, "</%s>", tag);
  s = strstr (*pos, open);
  if (s == NULL)
    return false;
  s += strlen (open);
  e = strstr (s, close);
  if (e == NULL)
    return false;
  unescape (s, e, out, len);
  *pos = e + strlen (close);
  return true;
}

bool
xml_text (const char *doc, const char *tag, char *out, size_t len)
{
  const char *p = doc;
  return xml_next (&p, tag, out, len);
}
