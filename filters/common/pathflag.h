/* pathflag.h: a parameter that is true, false, or an absolute /PATH
 * meaning "true while PATH exists", so that a running server can be
 * switched by creating or removing a file (cache-on-read=,
 * cow-on-read=).
 */

#ifndef FILTERS_COMMON_PATHFLAG_H
#define FILTERS_COMMON_PATHFLAG_H

#include <stdbool.h>

struct path_flag {
  bool value;       /* without a path */
  const char *path; /* NULL, or the file whose existence is the value */
};

/* Parse TEXT, the value of parameter PARAM.  Logs and returns -1 if it
 * is neither a boolean nor an absolute path.
 */
extern int path_flag_parse (struct path_flag *f, const char *param,
                            const char *text);
/* The value now. */
extern bool path_flag_get (const struct path_flag *f);

#endif /* FILTERS_COMMON_PATHFLAG_H */
