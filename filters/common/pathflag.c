/* pathflag.c: true, false, or true while a file exists (see
 * pathflag.h).
 */

#include <unistd.h>

#include <nbdkit-filter.h>

#include "pathflag.h"

int
path_flag_parse (struct path_flag *f, const char *param, const char *text)
{
  int r;

  f->path = NULL;
  if (text[0] == '/') {
    f->path = text;
    return 0;
  }
  r = nbdkit_parse_bool (text);
  if (r == -1) {
    nbdkit_error ("%s=%s: expected true, false or an absolute path", param,
                  text);
    return -1;
  }
  f->value = r;
  return 0;
}

bool
path_flag_get (const struct path_flag *f)
{
  if (f->path)
    return access (f->path, F_OK) == 0;
  return f->value;
}
