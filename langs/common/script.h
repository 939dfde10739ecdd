/* script.h: the script= rule, the same in every language host.
 *
 * A host's plugin has magic_config_key "script", so the first key it
 * gets (script=FILE or a bare FILE) names the script, which the host
 * loads at once.  Every key after that belongs to the script, as in
 * nbdkit: a later script=VALUE (or a later bare word, which the server
 * also gives as script=VALUE) reaches the script's config, under the
 * script's own magic_config_key when it declares one, else as
 * "script".  A host never refuses it itself; the script's declared
 * parameters (or its config) decide.
 */

#ifndef LANGS_SCRIPT_H
#define LANGS_SCRIPT_H

#include <string.h>

/* The key under which KEY, given after the script was loaded, goes to
 * the script whose magic_config_key is MAGIC (NULL: none).
 */
static inline const char *
script_key_after_load (const char *key, const char *magic)
{
  if (magic != NULL && strcmp (key, "script") == 0)
    return magic;
  return key;
}

#endif /* LANGS_SCRIPT_H */
