/* format.h: the data plugin's language, evaluated into a sparse store.
 *
 * The language (see plugins/README.md, "data"): bytes, words
 * (le16:N ...), strings, offsets (@N @+N @-N @^N), groups ( ... ),
 * repeats (E*N), slices (E[N:M]), names (E -> \NAME, \NAME), files
 * (<FILE), scripts (<(SCRIPT)), variables ($VAR), and beyond nbdkit:
 * number expressions wherever a number goes (n, $n, (n*2+1)), and
 * raw:, base64: and data: before a variable or a file to say how its
 * contents are read.  format.c knows nothing of the plugin; tests
 * call data_eval directly.
 */

#ifndef DATA_FORMAT_H
#define DATA_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Where variables come from: LOOKUP returns the value of NAME, or
 * NULL if there is none.
 */
struct data_env {
  const char *(*lookup) (void *opaque, const char *name);
  void *opaque;
};

/* A failed evaluation: MSG is the whole message (with the text and a
 * caret under the place), SOURCE the text it is in ("data", "$VAR",
 * "file F") and OFFSET the position in that text.
 */
struct data_error {
  char msg[1024];
  char source[256];
  size_t offset;
};

/* Evaluate TEXT into OUT (empty on entry); *SIZE is its length.
 * Returns 0, or -1 with ERR filled in.
 */
extern int data_eval (const char *text, const struct data_env *env,
                      struct store *out, uint64_t *size,
                      struct data_error *err);

/* Decode base64 TEXT (whitespace ignored) into OUT at offset 0.
 * Returns the length, or -1 with *BAD the offset of the bad character.
 */
extern int64_t data_base64 (const char *text, size_t len, struct store *out,
                            size_t *bad);

#endif /* DATA_FORMAT_H */
