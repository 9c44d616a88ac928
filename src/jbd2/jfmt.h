/* The jbd2 (ext4 journal) on-disk format, both directions: parsing and
 * updating the journal superblock, building a transaction's log blocks for
 * a writer, and the byte-level constants recovery (recover.c) reads.
 *
 * libext2fs 1.47 ships no journal header, so the format is defined here,
 * from the Linux sources (include/linux/jbd2.h, fs/jbd2/commit.c,
 * fs/jbd2/recovery.c, fs/jbd2/journal.c, fs/jbd2/revoke.c). Every on-disk
 * field is big-endian. Checksums are crc32c without the final inversion
 * (ext2fs_crc32c_le); v1 transaction checksums are crc32_be.
 *
 * The journal is an array of blocks of the file system's block size:
 * block 0 holds the 1024-byte journal superblock (jsb); blocks
 * [first, last) are the circular log; with FAST_COMMIT the blocks from
 * last + 1 to maxlen - 1 are the fast-commit area (block `last` itself is
 * used by neither, as in the kernel).
 *
 * Nothing here does I/O or takes locks; every function is pure over the
 * buffers it is given, and safe on hostile input (parsers bound-check). */
#ifndef UEXT4_JBD2_JFMT_H
#define UEXT4_JBD2_JFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define JFMT_MAGIC 0xC03B3998u

/* h_blocktype */
#define JFMT_DESCRIPTOR 1u
#define JFMT_COMMIT     2u
#define JFMT_SB_V1      3u
#define JFMT_SB_V2      4u
#define JFMT_REVOKE     5u

/* s_feature_compat */
#define JFMT_COMPAT_CHECKSUM 0x1u /* v1: crc32_be of the transaction in the commit */
/* s_feature_incompat */
#define JFMT_INCOMPAT_REVOKE       0x01u
#define JFMT_INCOMPAT_64BIT        0x02u
#define JFMT_INCOMPAT_ASYNC_COMMIT 0x04u
#define JFMT_INCOMPAT_CSUM_V2      0x08u
#define JFMT_INCOMPAT_CSUM_V3      0x10u
#define JFMT_INCOMPAT_FAST_COMMIT  0x20u
#define JFMT_KNOWN_INCOMPAT                                                                        \
    (JFMT_INCOMPAT_REVOKE | JFMT_INCOMPAT_64BIT | JFMT_INCOMPAT_ASYNC_COMMIT |                     \
     JFMT_INCOMPAT_CSUM_V2 | JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_FAST_COMMIT)
/* No ro_compat feature is defined: any bit set is unknown. */

/* Tag flags (the low 16 bits of t_flags). */
#define JFMT_FLAG_ESCAPE    0x1u /* first 4 bytes of the logged block were the magic */
#define JFMT_FLAG_SAME_UUID 0x2u /* no 16-byte UUID follows this tag */
#define JFMT_FLAG_DELETED   0x4u /* unused by jbd2; ignored */
#define JFMT_FLAG_LAST_TAG  0x8u

#define JFMT_SB_SIZE           1024u     /* the jsb is checksummed over this much */
#define JFMT_HEADER_SIZE       12u       /* h_magic, h_blocktype, h_sequence */
#define JFMT_REVOKE_HEADER     16u       /* header + r_count */
#define JFMT_TAIL_SIZE         4u        /* descriptor/revoke tail checksum (csum v2/v3) */
#define JFMT_MIN_LOG_BLOCKS    1024u     /* JBD2_MIN_JOURNAL_BLOCKS: shorter journals are refused */
#define JFMT_MAX_LOG_BLOCKS    10240000u /* JBD2_MAX_JOURNAL_BLOCKS: what e2fsprogs creates */
#define JFMT_DEFAULT_FC_BLOCKS 256u      /* s_num_fc_blks == 0 with FAST_COMMIT means this */
#define JFMT_CRC32C_CHKSUM     4u        /* s_checksum_type required with csum v2/v3 */
#define JFMT_CRC32_CHKSUM      1u        /* commit h_chksum_type with the v1 checksum */
#define JFMT_CRC32_CHKSUM_SIZE 4u

/* Journal superblock byte offsets. */
#define JFMT_SB_BLOCKSIZE     0x0C
#define JFMT_SB_MAXLEN        0x10
#define JFMT_SB_FIRST         0x14
#define JFMT_SB_SEQUENCE      0x18
#define JFMT_SB_START         0x1C
#define JFMT_SB_ERRNO         0x20
#define JFMT_SB_COMPAT        0x24
#define JFMT_SB_INCOMPAT      0x28
#define JFMT_SB_RO_COMPAT     0x2C
#define JFMT_SB_UUID          0x30
#define JFMT_SB_NR_USERS      0x40
#define JFMT_SB_CHECKSUM_TYPE 0x50
#define JFMT_SB_NUM_FC_BLKS   0x54
#define JFMT_SB_CHECKSUM      0xFC

/* Commit block byte offsets (struct commit_header). */
#define JFMT_CB_CHKSUM_TYPE 12
#define JFMT_CB_CHKSUM_SIZE 13
#define JFMT_CB_CHKSUM0     16 /* be32 h_chksum[8] */
#define JFMT_CB_COMMIT_SEC  48 /* be64 */
#define JFMT_CB_COMMIT_NSEC 56 /* be32 */
#define JFMT_CB_SIZE        60

/* Tag field offsets, valid for every tag size: the 16-byte v3 tag is
 * {blocknr, be32 flags, blocknr_high, be32 checksum}, the others
 * {blocknr, be16 checksum, be16 flags, [blocknr_high]}; both put the low
 * 16 flag bits at 6 and blocknr_high at 8. */
#define JFMT_TAG_BLOCKNR      0
#define JFMT_TAG_CSUM16       4
#define JFMT_TAG_FLAGS16      6
#define JFMT_TAG_BLOCKNR_HIGH 8
#define JFMT_TAG3_CSUM32      12

/* A loaded journal superblock, as jfmt_sb_parse() validated it. */
struct jfmt_journal {
    unsigned blocksize; /* s_blocksize, equal to the file system's */
    uint32_t maxlen;    /* s_maxlen: journal length in blocks, jsb included */
    uint32_t first;     /* s_first: first block of the log */
    uint32_t last;      /* one past the log's last block (maxlen minus the fc area) */
    uint32_t sequence;  /* s_sequence: first transaction expected in the log */
    uint32_t start;     /* s_start: log block where the log starts; 0 = empty */
    int32_t sb_errno;   /* s_errno: set when the kernel aborted the journal */
    unsigned version;   /* 1 or 2 (a v1 jsb has no features) */
    uint32_t compat, incompat, ro_compat;
    uint8_t uuid[16];
    uint32_t csum_seed;   /* crc32c(~0, uuid) with csum v2/v3, else 0 */
    unsigned tag_bytes;   /* size of one descriptor tag, UUID excluded */
    uint32_t num_fc_blks; /* fast-commit area size (0 without FAST_COMMIT) */
    bool has_64bit, csum_v1, csum_v2, csum_v3, async_commit, fast_commit;
};

static inline uint32_t jfmt_get_be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint16_t jfmt_get_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint64_t jfmt_get_be64(const void *p)
{
    return (uint64_t)jfmt_get_be32(p) << 32 | jfmt_get_be32((const uint8_t *)p + 4);
}

static inline void jfmt_put_be32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static inline void jfmt_put_be16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static inline void jfmt_put_be64(void *p, uint64_t v)
{
    jfmt_put_be32(p, (uint32_t)(v >> 32));
    jfmt_put_be32((uint8_t *)p + 4, (uint32_t)v);
}

/* Transaction IDs compare modulo 2^32, as jbd2's tid_gt()/tid_geq(). */
static inline bool jfmt_tid_gt(uint32_t x, uint32_t y)
{
    return (int32_t)(x - y) > 0;
}

static inline bool jfmt_csum_v23(const struct jfmt_journal *j)
{
    return j->csum_v2 || j->csum_v3;
}

/* crc32c as jbd2 computes it (no pre- or post-inversion beyond @crc). */
uint32_t jfmt_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- journal superblock ---- */

/* Validate the jsb at the start of @blk (at least JFMT_SB_SIZE bytes, the
 * journal's block 0) for a file system of @fs_blocksize and fill @j, as the
 * kernel's journal_load checks it: magic and v1/v2 type, s_blocksize,
 * s_maxlen >= 1024 (+ the fast-commit area), 0 < s_first < last, s_start 0
 * or inside the log, csum v2 and v3 not both, v1 not with v2/v3, checksum
 * type crc32c and the jsb checksum (v2/v3).
 * Returns 0, -EUCLEAN (corrupt: not a journal, bad geometry or checksum)
 * or -EOPNOTSUPP (an incompat or ro_compat feature we do not know), with
 * @why naming the cause. */
int jfmt_sb_parse(const void *blk, unsigned fs_blocksize, struct jfmt_journal *j, char *why,
                  size_t why_len);

/* Set s_sequence and s_start in the jsb @blk (other fields, s_errno
 * included, untouched) and recompute its checksum with csum v2/v3.
 * s_start 0 marks the journal empty (recovered / cleanly unmounted). */
void jfmt_sb_set_tail(void *blk, const struct jfmt_journal *j, uint32_t sequence, uint32_t start);

/* ---- building a transaction (the writer's side) ---- */

/* One block to log: its home (file system) block number and @blocksize
 * bytes of content. */
struct jfmt_block {
    uint64_t home;
    const void *data;
};

/* Receives each log block, in log order; returns 0 or -errno (which
 * jfmt_txn_emit() then returns). The block is only valid during the call. */
typedef int (*jfmt_emit_fn)(void *ctx, const void *block);

/* Tags one descriptor block holds (the kernel's packing, which keeps room
 * for a UUID: tags after the first carry SAME_UUID). */
unsigned jfmt_tags_per_descriptor(const struct jfmt_journal *j);
/* Block numbers one revoke block holds. */
unsigned jfmt_revokes_per_block(const struct jfmt_journal *j);

/* Log blocks a transaction of @nblocks logged blocks and @nrevokes revoked
 * block numbers occupies, its commit block included: what must be free in
 * the log before writing it. */
uint64_t jfmt_txn_log_blocks(const struct jfmt_journal *j, size_t nblocks, size_t nrevokes);

/* Emit transaction @seq: first the revoke block(s) holding @revoked (none
 * if @nrevokes is 0), then descriptor blocks, each followed by the blocks
 * it describes (escaped when they begin with the magic), with tag and tail
 * checksums per the journal's features. Exactly
 * jfmt_txn_log_blocks(j, n, nrevokes) - 1 blocks are emitted; the commit
 * block is the caller's (jfmt_commit_block), written after these are
 * durable. With the v1 checksum (COMPAT_CHECKSUM), *@v1_crc receives the
 * crc32_be the commit block must carry (it may be NULL otherwise).
 * Returns 0, -EINVAL (a home block beyond 32 bits without 64BIT), -ENOMEM
 * or the callback's error. */
int jfmt_txn_emit(const struct jfmt_journal *j, uint32_t seq, const struct jfmt_block *blocks,
                  size_t n, const uint64_t *revoked, size_t nrevokes, jfmt_emit_fn emit, void *ctx,
                  uint32_t *v1_crc);

/* Build transaction @seq's commit block into @out (@j->blocksize bytes)
 * with commit time @now: with csum v2/v3 it carries crc32c of itself, with
 * v1 the @v1_crc from jfmt_txn_emit (ignored otherwise). */
void jfmt_commit_block(const struct jfmt_journal *j, uint32_t seq, const struct timespec *now,
                       uint32_t v1_crc, void *out);

/* ---- checks shared with recovery ---- */

/* The tail checksum of a descriptor or revoke block is valid (always true
 * without csum v2/v3). */
bool jfmt_tail_csum_ok(const struct jfmt_journal *j, const void *blk);
/* The commit block's own checksum is valid (csum v2/v3; true otherwise). A
 * block whose checksum covers only struct commit_header (60 bytes, 64 with
 * the be64's alignment padding), the rest read as zeros, also passes, as
 * in the kernel (jbd2_commit_block_csum_verify_partial). */
bool jfmt_commit_csum_ok(const struct jfmt_journal *j, const void *blk);
/* The data block @data, logged in transaction @seq, matches the checksum
 * in its tag @tag (csum v2: low 16 bits, v3: 32 bits; true otherwise). */
bool jfmt_tag_csum_ok(const struct jfmt_journal *j, const void *tag, uint32_t seq,
                      const void *data);
/* The home block number of a tag (blocknr_high only with 64BIT). */
uint64_t jfmt_tag_blocknr(const struct jfmt_journal *j, const void *tag);
/* crc32_be as the v1 checksum uses it (ext2fs_crc32_be). */
uint32_t jfmt_crc32_be(uint32_t crc, const void *buf, size_t len);

#endif
