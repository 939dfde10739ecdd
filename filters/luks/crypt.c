/* crypt.c: the sector ciphers of LUKS, with GnuTLS: AES in XTS or CBC
 * mode, the IV of each sector being its number (plain, plain64,
 * plain64be) or that number encrypted with a hash of the key (essiv).
 */

#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "luks.h"

static gnutls_cipher_algorithm_t
aes_alg (const char *chain, size_t key_len)
{
  if (strcmp (chain, "xts") == 0) {
    if (key_len == 32)
      return GNUTLS_CIPHER_AES_128_XTS;
    if (key_len == 64)
      return GNUTLS_CIPHER_AES_256_XTS;
  } else if (strcmp (chain, "cbc") == 0) {
    if (key_len == 16)
      return GNUTLS_CIPHER_AES_128_CBC;
    if (key_len == 24)
      return GNUTLS_CIPHER_AES_192_CBC;
    if (key_len == 32)
      return GNUTLS_CIPHER_AES_256_CBC;
  }
  return GNUTLS_CIPHER_UNKNOWN;
}

int
luks_cipher_init (struct luks_cipher *c, const char *what, const char *cipher,
                  const char *mode, const unsigned char *key, size_t key_len)
{
  char chain[16], ivgen[48];
  const char *dash = strchr (mode, '-'), *colon;

  memset (c, 0, sizeof *c);
  if (strcmp (cipher, "aes") != 0) {
    nbdkit_error ("%s: cipher %s is not supported (only aes)", what, cipher);
    return -1;
  }
  if (dash == NULL || dash - mode >= (ptrdiff_t)sizeof chain
      || strlen (dash + 1) >= sizeof ivgen) {
    nbdkit_error ("%s: cipher mode %s is not supported", what, mode);
    return -1;
  }
  memcpy (chain, mode, dash - mode);
  chain[dash - mode] = '\0';
  strcpy (ivgen, dash + 1);
  if (key_len > LUKS_MAX_KEY
      || (c->alg = aes_alg (chain, key_len)) == GNUTLS_CIPHER_UNKNOWN) {
    nbdkit_error ("%s: cipher aes-%s with a %zu-bit key is not "
                  "supported (xts: 256 or 512 bits, cbc: 128, 192 or 256)",
                  what, mode, key_len * 8);
    return -1;
  }
  memcpy (c->key, key, key_len);
  c->key_len = key_len;

  colon = strchr (ivgen, ':');
  if (strcmp (ivgen, "plain") == 0)
    c->iv = IV_PLAIN;
  else if (strcmp (ivgen, "plain64") == 0)
    c->iv = IV_PLAIN64;
  else if (strcmp (ivgen, "plain64be") == 0)
    c->iv = IV_PLAIN64BE;
  else if (colon && colon - ivgen == 5 && strncmp (ivgen, "essiv", 5) == 0) {
    gnutls_digest_algorithm_t h = luks_hash (colon + 1);
    size_t n = h == GNUTLS_DIG_UNKNOWN ? 0 : gnutls_hash_get_len (h);
    gnutls_cipher_algorithm_t a = aes_alg ("cbc", n);

    if (a == GNUTLS_CIPHER_UNKNOWN) {
      nbdkit_error ("%s: ESSIV hash %s is not supported (its size must "
                    "be an AES key size, e.g. sha256)",
                    what, colon + 1);
      return -1;
    }
    if (gnutls_hash_fast (h, key, key_len, c->essiv_key) != 0) {
      nbdkit_error ("%s: hashing the ESSIV key failed", what);
      return -1;
    }
    c->essiv_key_len = n;
    c->essiv_alg = a;
    c->iv = IV_ESSIV;
  } else {
    nbdkit_error ("%s: IV generator %s is not supported (plain, "
                  "plain64, plain64be, essiv:HASH)",
                  what, ivgen);
    return -1;
  }
  return 0;
}

int
luks_cipher_run (const struct luks_cipher *c, bool encrypt, unsigned char *buf,
                 size_t len, uint64_t first, uint32_t sector_size)
{
  gnutls_cipher_hd_t h = NULL, essiv = NULL;
  gnutls_datum_t k = { (unsigned char *)c->key, c->key_len };
  static const unsigned char zero[16];
  unsigned char iv[16];
  int r = 0;

  if (gnutls_cipher_init (&h, c->alg, &k, NULL) != 0)
    return EIO;
  if (c->iv == IV_ESSIV) {
    gnutls_datum_t ek = { (unsigned char *)c->essiv_key, c->essiv_key_len };
    if (gnutls_cipher_init (&essiv, c->essiv_alg, &ek, NULL) != 0) {
      gnutls_cipher_deinit (h);
      return EIO;
    }
  }
  for (size_t off = 0; off < len && r == 0; off += sector_size) {
    uint64_t s = first + off / sector_size;

    memset (iv, 0, sizeof iv);
    switch (c->iv) {
      case IV_PLAIN:
        s &= 0xffffffff;
        /* fallthrough */
      case IV_PLAIN64:
      case IV_ESSIV:
        for (int i = 0; i < 8; i++)
          iv[i] = s >> (8 * i);
        break;
      case IV_PLAIN64BE:
        for (int i = 0; i < 8; i++)
          iv[15 - i] = s >> (8 * i);
        break;
    }
    /* ESSIV: the IV is the sector number encrypted, in ECB (one block
     * of CBC from a zero IV), with the hash of the key.
     */
    if (essiv) {
      gnutls_cipher_set_iv (essiv, (void *)zero, sizeof zero);
      if (gnutls_cipher_encrypt (essiv, iv, sizeof iv) != 0) {
        r = EIO;
        break;
      }
    }
    gnutls_cipher_set_iv (h, iv, sizeof iv);
    if ((encrypt ? gnutls_cipher_encrypt (h, buf + off, sector_size)
                 : gnutls_cipher_decrypt (h, buf + off, sector_size))
        != 0)
      r = EIO;
  }
  gnutls_cipher_deinit (h);
  if (essiv)
    gnutls_cipher_deinit (essiv);
  gnutls_memset (iv, 0, sizeof iv);
  return r;
}

void
luks_cipher_wipe (struct luks_cipher *c)
{
  gnutls_memset (c, 0, sizeof *c);
}
