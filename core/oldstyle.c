/* oldstyle.c: the oldstyle handshake (-o), from before export names
 * and options existed: the server speaks first and alone, announcing
 * the default export's size and flags, and transmission follows at
 * once.  No export names, no TLS, no structured replies.
 */

#include <endian.h>
#include <string.h>

#include "internal.h"
#include "protocol.h"

int
handshake_oldstyle (struct connection *c)
{
  struct nbd_old_handshake h;

  /* The export is the plugin's default one (the empty name). */
  if (handshake_finish_export (c, "") == -1)
    return -1;
  memset (&h, 0, sizeof h);
  h.nbdmagic = htobe64 (NBD_MAGIC);
  h.version = htobe64 (NBD_CLISERV_MAGIC);
  h.exportsize = htobe64 (c->exportsize);
  /* The 32-bit field: handshake flags (none) high, transmission low. */
  h.flags = htobe32 ((uint32_t)c->eflags);
  if (conn_send (c, &h, sizeof h) == -1) {
    log_debug (c->server, "client went away during the oldstyle greeting");
    return -1;
  }
  return 0;
}
