/* NBD wire protocol constants and on-the-wire structures.
 *
 * Names follow the NBD protocol document (NetworkBlockDevice/nbd,
 * doc/proto.md).  Every multi-byte field is sent in network byte order
 * (big-endian): convert with htobe16/32/64 and be16/32/64toh.  The
 * structs are packed, so never take the address of a field or cast a
 * buffer to a struct pointer without checking alignment; copy them with
 * memcpy instead.
 *
 * Extended headers (NBD_OPT_EXTENDED_HEADERS and related items) come
 * from the 64-bit extension that was merged into proto.md in 2023: see
 * its "Extended headers" and "Block status" sections.
 */
#ifndef NBDKIT_PROTOCOL_H
#define NBDKIT_PROTOCOL_H

#include <stdint.h>

/* ------------------------------------------------------------------ */
/* General limits                                                       */
/* ------------------------------------------------------------------ */

/* Conventions: strings are UTF-8 with no NUL byte and no terminator.
 * They SHOULD be <= 256 bytes and MUST be <= 4096. */
#define NBD_MAX_STRING 4096

/* Newstyle: the IANA port. */
#define NBD_DEFAULT_PORT 10809

/* Block size constraints: the defaults when nothing is advertised. */
#define NBD_DEFAULT_MIN_BLOCK 1
#define NBD_DEFAULT_PREF_BLOCK 4096
#define NBD_DEFAULT_MAX_BLOCK UINT32_C (0xffffffff) /* or export size */
/* A portable client caps READ/WRITE at 32 MiB.  A length below this
 * SHOULD NOT count as a denial of service. */
#define NBD_PORTABLE_MAX_PAYLOAD (UINT32_C (1) << 25)
/* An advertised minimum block size MUST be a power of 2 and <= 64 KiB. */
#define NBD_MAX_MIN_BLOCK (UINT32_C (1) << 16)
/* With NBD_CMD_FLAG_DF, reads of up to 64 KiB MUST be unfragmented. */
#define NBD_DF_MIN_UNFRAGMENTED 65536
/* Newer spec text: at most 2^20 descriptors per block status chunk
 * (SHOULD NOT exceed). */
#define NBD_MAX_BLOCK_STATUS_DESC (UINT32_C (1) << 20)

/* ------------------------------------------------------------------ */
/* Magics                                                               */
/* ------------------------------------------------------------------ */

#define NBD_MAGIC UINT64_C (0x4e42444d41474943)       /* "NBDMAGIC" */
#define NBD_INIT_PASSWD NBD_MAGIC                     /* alias */
#define NBD_CLISERV_MAGIC UINT64_C (0x00420281861253) /* oldstyle */
#define NBD_IHAVEOPT UINT64_C (0x49484156454F5054)    /* "IHAVEOPT" */
#define NBD_OPTS_MAGIC NBD_IHAVEOPT                   /* alias */
#define NBD_REP_MAGIC UINT64_C (0x3e889045565a9)      /* option reply */

#define NBD_REQUEST_MAGIC UINT32_C (0x25609513)
#define NBD_EXTENDED_REQUEST_MAGIC UINT32_C (0x21e41c71)
#define NBD_SIMPLE_REPLY_MAGIC UINT32_C (0x67446698)
#define NBD_REPLY_MAGIC NBD_SIMPLE_REPLY_MAGIC /* old name */
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C (0x668e33ef)
#define NBD_EXTENDED_REPLY_MAGIC UINT32_C (0x6e8a278c)

/* Reserved magics: never used on the wire. */
#define NBD_OLD_REQUEST_MAGIC UINT32_C (0x12560953) /* pre Linux 2.1.116 */
#define NBD_OLD_REPLY_MAGIC UINT32_C (0x96744668)   /* pre Linux 2.1.116 */
#define NBD_TRANSLOG_MAGIC UINT32_C (0x25609514)    /* nbd-server log */

/* ------------------------------------------------------------------ */
/* Handshake flags (16 bits, server -> client after IHAVEOPT)           */
/* ------------------------------------------------------------------ */

#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)

/* Client flags (32 bits, client -> server).  The server MUST drop the
 * connection if any unknown flag is set, or one it did not advertise. */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)

/* ------------------------------------------------------------------ */
/* Transmission flags (16 bits, per export)                             */
/* ------------------------------------------------------------------ */

#define NBD_FLAG_HAS_FLAGS (1u << 0) /* MUST always be set */
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7) /* needs SR or EH negotiated */
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_RESIZE (1u << 9) /* experimental RESIZE ext */
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11) /* 0 unless SEND_WRITE_ZEROES */
#define NBD_FLAG_BLOCK_STATUS_PAYLOAD (1u << 12) /* only with ext headers */

/* ------------------------------------------------------------------ */
/* Option types (NBD_OPT_*)                                             */
/* ------------------------------------------------------------------ */

#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT 2
#define NBD_OPT_LIST 3
#define NBD_OPT_PEEK_EXPORT 4 /* withdrawn, not in use */
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_INFO 6
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10
#define NBD_OPT_EXTENDED_HEADERS 11

/* ------------------------------------------------------------------ */
/* Option reply types (NBD_REP_*); errors have bit 31 set               */
/* ------------------------------------------------------------------ */

#define NBD_REP_ERR_BIT UINT32_C (0x80000000)
#define NBD_REP_ERR(v) (NBD_REP_ERR_BIT | (uint32_t)(v))
#define NBD_REP_IS_ERR(v) (((v)&NBD_REP_ERR_BIT) != 0)

#define NBD_REP_ACK UINT32_C (1)
#define NBD_REP_SERVER UINT32_C (2)
#define NBD_REP_INFO UINT32_C (3)
#define NBD_REP_META_CONTEXT UINT32_C (4)

#define NBD_REP_ERR_UNSUP NBD_REP_ERR (1)
#define NBD_REP_ERR_POLICY NBD_REP_ERR (2)
#define NBD_REP_ERR_INVALID NBD_REP_ERR (3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR (4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR (5)
#define NBD_REP_ERR_UNKNOWN NBD_REP_ERR (6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR (7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR (8)
#define NBD_REP_ERR_TOO_BIG NBD_REP_ERR (9)
#define NBD_REP_ERR_EXT_HEADER_REQD NBD_REP_ERR (10)

/* ------------------------------------------------------------------ */
/* Info types (NBD_INFO_*), in NBD_REP_INFO and OPT_INFO/GO requests    */
/* ------------------------------------------------------------------ */

#define NBD_INFO_EXPORT 0      /* mandatory before ACK; length 12 */
#define NBD_INFO_NAME 1        /* length >= 2 */
#define NBD_INFO_DESCRIPTION 2 /* length >= 2 */
#define NBD_INFO_BLOCK_SIZE 3  /* length 14 */

/* ------------------------------------------------------------------ */
/* Commands (NBD_CMD_*)                                                 */
/* ------------------------------------------------------------------ */

#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_DISC 2 /* no reply */
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_CMD_CACHE 5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7
#define NBD_CMD_RESIZE 8 /* experimental RESIZE ext */

/* Command flags (16 bits, client -> server). */
#define NBD_CMD_FLAG_FUA (1u << 0)         /* any cmd, if SEND_FUA */
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)     /* WRITE_ZEROES */
#define NBD_CMD_FLAG_DF (1u << 2)          /* READ, if SEND_DF */
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)     /* BLOCK_STATUS */
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)   /* WRITE_ZEROES, if SEND_FAST_ZERO */
#define NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5) /* ext headers only */

/* ------------------------------------------------------------------ */
/* Structured and extended reply flags and chunk types                  */
/* ------------------------------------------------------------------ */

#define NBD_REPLY_FLAG_DONE (1u << 0)

#define NBD_REPLY_TYPE_ERR_BIT (1u << 15)
#define NBD_REPLY_TYPE_ERR(v) (NBD_REPLY_TYPE_ERR_BIT | (v))
#define NBD_REPLY_TYPE_IS_ERR(v) (((v)&NBD_REPLY_TYPE_ERR_BIT) != 0)

#define NBD_REPLY_TYPE_NONE 0             /* length 0, MUST have DONE */
#define NBD_REPLY_TYPE_OFFSET_DATA 1      /* u64 offset + data */
#define NBD_REPLY_TYPE_OFFSET_HOLE 2      /* u64 offset + u32 size */
#define NBD_REPLY_TYPE_BLOCK_STATUS 5     /* u32 id + n * 8-byte desc */
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6 /* u32 id + u32 count + n * 16 */
#define NBD_REPLY_TYPE_ERROR NBD_REPLY_TYPE_ERR (1)
#define NBD_REPLY_TYPE_ERROR_OFFSET NBD_REPLY_TYPE_ERR (2)

/* ------------------------------------------------------------------ */
/* Error values (the error field of replies and error chunks)           */
/* ------------------------------------------------------------------ */

#define NBD_SUCCESS 0
#define NBD_EPERM 1
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP 95
#define NBD_ESHUTDOWN 108

/* ------------------------------------------------------------------ */
/* Metadata contexts                                                    */
/* ------------------------------------------------------------------ */

#define NBD_META_NS_BASE "base:"
#define NBD_META_BASE_ALLOCATION "base:allocation"

/* base:allocation status flags */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* ------------------------------------------------------------------ */
/* Handshake structures                                                 */
/* ------------------------------------------------------------------ */

/* Oldstyle greeting: server -> client, 152 bytes.  Not supported by
 * the reference server since 3.10. */
struct nbd_old_handshake {
  uint64_t nbdmagic; /* NBD_MAGIC */
  uint64_t version;  /* NBD_CLISERV_MAGIC */
  uint64_t exportsize;
  uint32_t flags; /* handshake flags (16) + transmission (16) */
  uint8_t zeroes[124];
} __attribute__ ((packed));

/* Newstyle greeting: server -> client, 18 bytes.  The client answers
 * with a 32-bit client flags field. */
struct nbd_new_handshake {
  uint64_t nbdmagic; /* NBD_MAGIC */
  uint64_t version;  /* NBD_IHAVEOPT */
  uint16_t gflags;   /* NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES */
} __attribute__ ((packed));

/* Option header: client -> server, 16 bytes, then optlen bytes of data. */
struct nbd_option {
  uint64_t version; /* NBD_IHAVEOPT */
  uint32_t option;  /* NBD_OPT_* */
  uint32_t optlen;  /* length of data that follows */
} __attribute__ ((packed));

/* Option reply header: server -> client, 20 bytes, then replylen bytes. */
struct nbd_fixed_new_option_reply {
  uint64_t magic;  /* NBD_REP_MAGIC */
  uint32_t option; /* the option being replied to */
  uint32_t reply;  /* NBD_REP_* */
  uint32_t replylen;
} __attribute__ ((packed));

/* Reply to NBD_OPT_EXPORT_NAME (no option reply header).  134 bytes, or
 * only the first 10 when both sides set NO_ZEROES. */
struct nbd_export_name_reply {
  uint64_t exportsize;
  uint16_t eflags;     /* transmission flags */
  uint8_t zeroes[124]; /* omitted if NBD_FLAG_C_NO_ZEROES */
} __attribute__ ((packed));
#define NBD_EXPORT_NAME_REPLY_SHORT 10 /* size without the zeroes */

/* NBD_REP_INFO payload for NBD_INFO_EXPORT (replylen 12). */
struct nbd_info_export {
  uint16_t info; /* NBD_INFO_EXPORT */
  uint64_t exportsize;
  uint16_t eflags;
} __attribute__ ((packed));

/* NBD_REP_INFO payload for NBD_INFO_BLOCK_SIZE (replylen 14). */
struct nbd_info_block_size {
  uint16_t info; /* NBD_INFO_BLOCK_SIZE */
  uint32_t minimum;
  uint32_t preferred;
  uint32_t maximum;
} __attribute__ ((packed));

/* NBD_REP_META_CONTEXT payload head; the context name follows. */
struct nbd_meta_context_reply {
  uint32_t context_id; /* 0 for LIST (client ignores it) */
} __attribute__ ((packed));

/* ------------------------------------------------------------------ */
/* Transmission structures                                              */
/* ------------------------------------------------------------------ */

/* Compact request: client -> server, 28 bytes.  For NBD_CMD_WRITE,
 * count bytes of data follow. */
struct nbd_request {
  uint32_t magic;  /* NBD_REQUEST_MAGIC */
  uint16_t flags;  /* NBD_CMD_FLAG_* */
  uint16_t type;   /* NBD_CMD_* */
  uint64_t cookie; /* opaque; older docs call it "handle" */
  uint64_t offset;
  uint32_t count; /* length */
} __attribute__ ((packed));

/* Extended request: client -> server, 32 bytes.  Only used after
 * NBD_OPT_EXTENDED_HEADERS.  count is a payload length when
 * NBD_CMD_FLAG_PAYLOAD_LEN is set (count bytes follow), and an effect
 * length otherwise (no payload). */
struct nbd_request_ext {
  uint32_t magic; /* NBD_EXTENDED_REQUEST_MAGIC */
  uint16_t flags; /* NBD_CMD_FLAG_* */
  uint16_t type;  /* NBD_CMD_* */
  uint64_t cookie;
  uint64_t offset;
  uint64_t count; /* payload or effect length */
} __attribute__ ((packed));

/* Simple reply: server -> client, 16 bytes.  For a successful
 * NBD_CMD_READ, the data follows. */
struct nbd_simple_reply {
  uint32_t magic; /* NBD_SIMPLE_REPLY_MAGIC */
  uint32_t error; /* NBD_SUCCESS or NBD_E* */
  uint64_t cookie;
} __attribute__ ((packed));

/* Structured reply chunk header: server -> client, 20 bytes, then
 * length bytes of payload. */
struct nbd_structured_reply {
  uint32_t magic; /* NBD_STRUCTURED_REPLY_MAGIC */
  uint16_t flags; /* NBD_REPLY_FLAG_* */
  uint16_t type;  /* NBD_REPLY_TYPE_* */
  uint64_t cookie;
  uint32_t length; /* payload length */
} __attribute__ ((packed));

/* Extended reply chunk header: server -> client, 32 bytes.  Used for
 * ALL replies once extended headers are negotiated. */
struct nbd_extended_reply {
  uint32_t magic; /* NBD_EXTENDED_REPLY_MAGIC */
  uint16_t flags; /* NBD_REPLY_FLAG_* */
  uint16_t type;  /* NBD_REPLY_TYPE_* */
  uint64_t cookie;
  uint64_t offset; /* MUST equal the request's offset */
  uint64_t length; /* payload length */
} __attribute__ ((packed));

/* Chunk payloads ---------------------------------------------------- */

/* NBD_REPLY_TYPE_OFFSET_DATA payload head (length >= 9); data follows.
 * The payload keeps its own absolute offset, even with ext headers. */
struct nbd_chunk_offset_data {
  uint64_t offset;
} __attribute__ ((packed));

/* NBD_REPLY_TYPE_OFFSET_HOLE payload (length exactly 12). */
struct nbd_chunk_offset_hole {
  uint64_t offset;
  uint32_t length; /* hole size, nonzero */
} __attribute__ ((packed));

/* Error chunk head (NBD_REPLY_TYPE_ERROR: length >= 6).  Then msglen
 * bytes of message; NBD_REPLY_TYPE_ERROR_OFFSET adds a u64 offset
 * (length >= 14). */
struct nbd_chunk_error {
  uint32_t error;  /* NBD_E*, nonzero */
  uint16_t msglen; /* <= 4096 */
} __attribute__ ((packed));

/* NBD_REPLY_TYPE_BLOCK_STATUS payload head; descriptors follow. */
struct nbd_chunk_block_status {
  uint32_t context_id;
} __attribute__ ((packed));

/* NBD_REPLY_TYPE_BLOCK_STATUS_EXT payload head; descriptors follow. */
struct nbd_chunk_block_status_ext {
  uint32_t context_id;
  uint32_t count; /* number of descriptors, nonzero */
} __attribute__ ((packed));

/* 32-bit block status descriptor (8 bytes). */
struct nbd_block_descriptor {
  uint32_t length;       /* extent length, nonzero */
  uint32_t status_flags; /* e.g. NBD_STATE_* */
} __attribute__ ((packed));

/* 64-bit block status descriptor (16 bytes).  For 32-bit contexts such as
 * base:allocation the high 32 bits of status_flags are zero, which
 * matches an earlier draft's "u32 padding + u32 status" on the wire. */
struct nbd_block_descriptor_ext {
  uint64_t length; /* extent length, nonzero */
  uint64_t status_flags;
} __attribute__ ((packed));

/* ------------------------------------------------------------------ */
/* Size checks                                                          */
/* ------------------------------------------------------------------ */

_Static_assert(sizeof (struct nbd_old_handshake) == 152, "old handshake");
_Static_assert(sizeof (struct nbd_new_handshake) == 18, "new handshake");
_Static_assert(sizeof (struct nbd_option) == 16, "option header");
_Static_assert(sizeof (struct nbd_fixed_new_option_reply) == 20,
               "option reply header");
_Static_assert(sizeof (struct nbd_export_name_reply) == 134,
               "export name reply");
_Static_assert(sizeof (struct nbd_info_export) == 12, "info export");
_Static_assert(sizeof (struct nbd_info_block_size) == 14, "info block size");
_Static_assert(sizeof (struct nbd_meta_context_reply) == 4, "meta context");
_Static_assert(sizeof (struct nbd_request) == 28, "compact request");
_Static_assert(sizeof (struct nbd_request_ext) == 32, "extended request");
_Static_assert(sizeof (struct nbd_simple_reply) == 16, "simple reply");
_Static_assert(sizeof (struct nbd_structured_reply) == 20, "structured reply");
_Static_assert(sizeof (struct nbd_extended_reply) == 32, "extended reply");
_Static_assert(sizeof (struct nbd_chunk_offset_data) == 8, "offset data");
_Static_assert(sizeof (struct nbd_chunk_offset_hole) == 12, "offset hole");
_Static_assert(sizeof (struct nbd_chunk_error) == 6, "error chunk");
_Static_assert(sizeof (struct nbd_chunk_block_status) == 4, "bs head");
_Static_assert(sizeof (struct nbd_chunk_block_status_ext) == 8, "bs ext head");
_Static_assert(sizeof (struct nbd_block_descriptor) == 8, "descriptor");
_Static_assert(sizeof (struct nbd_block_descriptor_ext) == 16,
               "extended descriptor");

#endif /* NBDKIT_PROTOCOL_H */
