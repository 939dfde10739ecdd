/* kdf.c: from passphrase to key: the hashes LUKS names, PBKDF2
 * (GnuTLS), Argon2i/Argon2id (libargon2, when built with it), and the
 * anti-forensic merge that turns a key slot's stripes into its key.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#ifdef HAVE_ARGON2
#include <argon2.h>
#endif

#include "luks.h"

gnutls_digest_algorithm_t
luks_hash (const char *name)
{
  static const struct {
    const char *name;
    gnutls_digest_algorithm_t alg;
  } hashes[] = {
    { "sha1", GNUTLS_DIG_SHA1 },         { "sha224", GNUTLS_DIG_SHA224 },
    { "sha256", GNUTLS_DIG_SHA256 },     { "sha384", GNUTLS_DIG_SHA384 },
    { "sha512", GNUTLS_DIG_SHA512 },     { "ripemd160", GNUTLS_DIG_RMD160 },
    { "sha3-256", GNUTLS_DIG_SHA3_256 }, { "sha3-512", GNUTLS_DIG_SHA3_512 },
  };

  for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++)
    if (strcasecmp (name, hashes[i].name) == 0)
      return hashes[i].alg;
  return GNUTLS_DIG_UNKNOWN;
}

int
luks_pbkdf2 (gnutls_digest_algorithm_t hash, const void *pass, size_t pass_len,
             const void *salt, size_t salt_len, unsigned iterations, void *out,
             size_t out_len)
{
  gnutls_datum_t k = { (unsigned char *)pass, pass_len };
  gnutls_datum_t s = { (unsigned char *)salt, salt_len };
  int r;

  /* GnuTLS numbers each hash the same as its HMAC. */
  r = gnutls_pbkdf2 ((gnutls_mac_algorithm_t)hash, &k, &s, iterations, out,
                     out_len);
  if (r != 0) {
    nbdkit_error ("PBKDF2 failed: %s", gnutls_strerror (r));
    return -1;
  }
  return 0;
}

int
luks_argon2 (bool id, const void *pass, size_t pass_len, const void *salt,
             size_t salt_len, uint32_t time, uint32_t memory_kib,
             uint32_t threads, void *out, size_t out_len)
{
#ifdef HAVE_ARGON2
  int r = argon2_hash (time, memory_kib, threads, pass, pass_len, salt,
                       salt_len, out, out_len, NULL, 0,
                       id ? Argon2_id : Argon2_i, ARGON2_VERSION_13);
  if (r != ARGON2_OK) {
    nbdkit_error ("%s failed: %s", id ? "argon2id" : "argon2i",
                  argon2_error_message (r));
    return -1;
  }
  return 0;
#else
  nbdkit_error ("%s key slots are not supported: the filter was built "
                "without libargon2",
                id ? "argon2id" : "argon2i");
  return -1;
#endif
}

/* Each digest-sized block of D becomes hash (block index || block). */
static int
diffuse (gnutls_digest_algorithm_t hash, unsigned char *d, size_t len)
{
  size_t ds = gnutls_hash_get_len (hash);
  unsigned char out[64];
  gnutls_hash_hd_t h;

  for (uint32_t i = 0; (size_t)i * ds < len; i++) {
    unsigned char be[4] = { i >> 24, i >> 16, i >> 8, i };
    size_t n = len - i * ds < ds ? len - i * ds : ds;

    if (gnutls_hash_init (&h, hash) != 0)
      return -1;
    gnutls_hash (h, be, 4);
    gnutls_hash (h, d + i * ds, n);
    gnutls_hash_deinit (h, out);
    memcpy (d + i * ds, out, n);
  }
  gnutls_memset (out, 0, sizeof out);
  return 0;
}

int
luks_af_merge (gnutls_digest_algorithm_t hash, const unsigned char *src,
               size_t len, unsigned stripes, unsigned char *out)
{
  unsigned char *d = calloc (1, len);

  if (d == NULL || stripes == 0 || gnutls_hash_get_len (hash) > 64) {
    free (d);
    return -1;
  }
  for (unsigned s = 0; s + 1 < stripes; s++) {
    for (size_t i = 0; i < len; i++)
      d[i] ^= src[s * len + i];
    if (diffuse (hash, d, len) == -1) {
      free (d);
      return -1;
    }
  }
  for (size_t i = 0; i < len; i++)
    out[i] = d[i] ^ src[(size_t)(stripes - 1) * len + i];
  gnutls_memset (d, 0, len);
  free (d);
  return 0;
}
