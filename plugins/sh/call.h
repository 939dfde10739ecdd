/* call.h: running one method of a shell-script plugin (sh and eval).
 *
 * Shared by the sh and eval plugins: call.c runs the command and maps
 * its exit code, methods.c turns the plugin callbacks into calls.  The
 * plugin (sh.c or eval.c) says which command runs a method.
 */

#ifndef SH_CALL_H
#define SH_CALL_H

#include <stdbool.h>
#include <stddef.h>

/* What a call ended with, after exit codes 4-8 have had their effect
 * (shutdown or disconnect) and errors have been logged.
 */
enum call_status {
  CALL_OK = 0,      /* exit 0, 4, 7 */
  CALL_ERROR = 1,   /* exit 1, 5, 6, 8, 9-255, signal: errno already set */
  CALL_MISSING = 2, /* exit 2, or the method is not defined at all */
  CALL_FALSE = 3,   /* exit 3 */
};

/* The highest exit code with a meaning of its own (--dump-plugin). */
#define CALL_MAX_KNOWN_STATUS 8

/* A buffer for a command's output.  With FIXED, DATA is the caller's
 * and holds at most CAP bytes; otherwise it grows up to LIMIT bytes.
 * Output past the end is read and dropped, and OVERFLOW is set.
 */
struct call_buf {
  char *data;
  size_t len, cap, limit;
  bool fixed, overflow;
};

/* Provided by the plugin: fill PREFIX (at most 4 words) with the words
 * of the command line that come before the method name, e.g. the
 * script's path.  Return how many, or 0 if METHOD is not defined (the
 * call then answers CALL_MISSING without running anything).
 */
extern int script_command (const char *method, const char **prefix);

/* Provided by the plugin: whether METHOD was given explicitly, so that
 * a missing can_* may be answered from it (eval).  sh cannot know.
 */
extern bool script_defined (const char *method);

/* The plugin's name for messages ("sh" script path or "eval"). */
extern const char *script_name (void);
/* Whether a script was given (--dump-plugin may come without one). */
extern bool have_script (void);

/* Run METHOD with ARGS (a NULL-terminated list, may be NULL), giving
 * it WDATA on stdin and collecting stdout in OUT (NULL: discarded).
 * Errors are logged with the method name and their errno is passed to
 * nbdkit_set_error and left in errno.  Text output in OUT is
 * NUL-terminated (unless FIXED).
 */
extern enum call_status call (const char *method, const char *const *args,
                              const void *wdata, size_t wlen,
                              struct call_buf *out);

/* call() collecting stdout as text, up to 16 MiB: *OUT is malloc'd,
 * NUL-terminated, with trailing newlines removed; NULL unless CALL_OK.
 */
extern enum call_status call_text (const char *method, const char *const *args,
                                   char **out);
/* The same, removing only one trailing newline (open's handle). */
extern enum call_status
call_text_verbatim (const char *method, const char *const *args, char **out);
/* The same, removing nothing (lists of lines, where empty lines count). */
extern enum call_status
call_text_raw (const char *method, const char *const *args, char **out);

/* The temporary directory ($tmpdir): created by tmpdir_create (and
 * set as $tmpdir in the scripts' environment), removed by tmpdir_remove.
 */
extern const char *tmpdir_create (void);
extern void tmpdir_remove (void);

/* Map an errno name (ENOSPC) to its value; 0 if unknown. */
extern int errno_from_name (const char *name, size_t len);

#endif /* SH_CALL_H */
