/* luks.h: what the parts of the luks filter share: the cipher of a
 * LUKS key slot area or data segment (crypt.c), the hashes and key
 * derivation (kdf.c), and the unlocked volume that header.c builds
 * from a LUKS1 or LUKS2 header.
 */

#ifndef LUKS_H
#define LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/crypto.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#define LUKS_MAX_KEY 128 /* bytes of a master or slot key */

/* How sectors are encrypted: "aes" with "xts-plain64",
 * "cbc-essiv:sha256", "cbc-plain64", "cbc-plain", "xts-plain" ... and
 * the key.  The IV of a sector is its number, counted from the start
 * of the area (plus the segment's iv_tweak for LUKS2).
 */
enum luks_iv { IV_PLAIN, IV_PLAIN64, IV_PLAIN64BE, IV_ESSIV };

struct luks_cipher {
  gnutls_cipher_algorithm_t alg;
  enum luks_iv iv;
  unsigned char key[LUKS_MAX_KEY];
  size_t key_len;
  gnutls_cipher_algorithm_t essiv_alg; /* AES-CBC of the hashed key */
  unsigned char essiv_key[64];
  size_t essiv_key_len;
};

/* Parses CIPHER ("aes") and MODE ("xts-plain64") for a key of KEY_LEN
 * bytes; WHAT names the area in messages.  -1 with an error logged
 * if unsupported.
 */
extern int luks_cipher_init (struct luks_cipher *c, const char *what,
                             const char *cipher, const char *mode,
                             const unsigned char *key, size_t key_len);
/* Encrypts or decrypts LEN bytes (a multiple of SECTOR_SIZE) in place,
 * the first being sector FIRST.  Returns 0 or an errno.
 */
extern int luks_cipher_run (const struct luks_cipher *c, bool encrypt,
                            unsigned char *buf, size_t len, uint64_t first,
                            uint32_t sector_size);
extern void luks_cipher_wipe (struct luks_cipher *c);

/* A hash by its LUKS name ("sha256"): GNUTLS_DIG_UNKNOWN if unknown. */
extern gnutls_digest_algorithm_t luks_hash (const char *name);
extern int luks_pbkdf2 (gnutls_digest_algorithm_t hash, const void *pass,
                        size_t pass_len, const void *salt, size_t salt_len,
                        unsigned iterations, void *out, size_t out_len);
/* Argon2i (ID false) or Argon2id: -1 with an error logged if it fails
 * or the filter was built without libargon2.
 */
extern int luks_argon2 (bool id, const void *pass, size_t pass_len,
                        const void *salt, size_t salt_len, uint32_t time,
                        uint32_t memory_kib, uint32_t threads, void *out,
                        size_t out_len);
/* The anti-forensic merge: STRIPES blocks of LEN bytes into OUT. */
extern int luks_af_merge (gnutls_digest_algorithm_t hash,
                          const unsigned char *src, size_t len,
                          unsigned stripes, unsigned char *out);

/* An unlocked volume: where the encrypted payload is and its cipher. */
struct luks_volume {
  int version;             /* 1 or 2 */
  uint64_t payload_offset; /* bytes into the disk */
  uint64_t payload_size;   /* bytes, a multiple of sector_size */
  uint32_t sector_size;    /* of encryption: 512 for LUKS1 */
  uint64_t iv_tweak;       /* added to sector numbers (LUKS2) */
  bool allow_discards;     /* LUKS2 persistent flag */
  struct luks_cipher cipher;
};

/* Reads the header through NEXT, finds the key slot PASS opens and
 * fills V.  -1 with an error logged (naming the key slots tried).
 */
extern int luks_unlock (nbdkit_next *next, const unsigned char *pass,
                        size_t pass_len, struct luks_volume *v);

#endif /* LUKS_H */
