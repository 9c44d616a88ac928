/* The jbd2 on-disk format: the journal superblock, building a transaction's
 * log blocks, and the checksum checks recovery shares (jfmt.h has the
 * layout). Written from the Linux jbd2 sources' description of the format;
 * the packing of tags and the order of blocks follow the kernel's commit
 * path so that a transaction we write looks like one the kernel writes. */
#include "jbd2/jfmt.h"
#include "jbd2/jbd2_internal.h"

#include <ext2fs/ext2fs.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jbd2_say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!why || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

uint32_t jfmt_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ext2fs_crc32c_le(crc, buf, len);
}

uint32_t jfmt_crc32_be(uint32_t crc, const void *buf, size_t len)
{
    return ext2fs_crc32_be(crc, buf, len);
}

/* ---- journal superblock ---- */

static uint32_t sb_csum(const uint8_t *sb)
{
    uint8_t copy[JFMT_SB_SIZE];

    memcpy(copy, sb, sizeof(copy));
    memset(copy + JFMT_SB_CHECKSUM, 0, 4);
    return jfmt_crc32c(~0u, copy, sizeof(copy));
}

/* journal_tag_bytes() of the kernel: the v3 tag is always 16 bytes; the
 * v2-or-none tag is 12, 2 more for the v2 checksum, 4 fewer without
 * blocknr_high. */
static unsigned tag_bytes(const struct jfmt_journal *j)
{
    unsigned sz = 12;

    if (j->csum_v3)
        return 16;
    if (j->csum_v2)
        sz += 2;
    return j->has_64bit ? sz : sz - 4;
}

static void parse_features(const uint8_t *b, struct jfmt_journal *j)
{
    /* A v1 superblock has no feature words: the kernel ignores them. */
    if (j->version >= 2) {
        j->compat = jfmt_get_be32(b + JFMT_SB_COMPAT);
        j->incompat = jfmt_get_be32(b + JFMT_SB_INCOMPAT);
        j->ro_compat = jfmt_get_be32(b + JFMT_SB_RO_COMPAT);
    }
    j->csum_v1 = j->compat & JFMT_COMPAT_CHECKSUM;
    j->has_64bit = j->incompat & JFMT_INCOMPAT_64BIT;
    j->async_commit = j->incompat & JFMT_INCOMPAT_ASYNC_COMMIT;
    j->csum_v2 = j->incompat & JFMT_INCOMPAT_CSUM_V2;
    j->csum_v3 = j->incompat & JFMT_INCOMPAT_CSUM_V3;
    j->fast_commit = j->incompat & JFMT_INCOMPAT_FAST_COMMIT;
}

static int check_geometry(const uint8_t *b, struct jfmt_journal *j, char *why, size_t len)
{
    uint64_t fc = 0;

    if (j->fast_commit) {
        fc = jfmt_get_be32(b + JFMT_SB_NUM_FC_BLKS);
        if (!fc)
            fc = JFMT_DEFAULT_FC_BLOCKS;
    }
    if ((uint64_t)j->maxlen < JFMT_MIN_LOG_BLOCKS + fc) {
        jbd2_say(why, len,
                 "journal too short: %u blocks, %llu of them fast-commit (at least %u needed)",
                 j->maxlen, (unsigned long long)fc, JFMT_MIN_LOG_BLOCKS);
        return -EUCLEAN;
    }
    j->num_fc_blks = (uint32_t)fc;
    j->last = j->maxlen - j->num_fc_blks;
    if (j->first == 0 || j->first >= j->last) {
        jbd2_say(why, len, "journal superblock has an invalid first log block %u (log ends at %u)",
                 j->first, j->last);
        return -EUCLEAN;
    }
    if (j->start && (j->start < j->first || j->start >= j->last)) {
        jbd2_say(why, len, "journal superblock's log start %u is outside the log [%u, %u)",
                 j->start, j->first, j->last);
        return -EUCLEAN;
    }
    return 0;
}

static int check_checksums(const uint8_t *b, struct jfmt_journal *j, char *why, size_t len)
{
    if (j->csum_v2 && j->csum_v3) {
        jbd2_say(why, len, "journal superblock claims both checksum v2 and v3");
        return -EUCLEAN;
    }
    if (j->csum_v1 && jfmt_csum_v23(j)) {
        jbd2_say(why, len, "journal superblock claims both checksum v1 and v2/v3");
        return -EUCLEAN;
    }
    if (!jfmt_csum_v23(j))
        return 0;
    if (b[JFMT_SB_CHECKSUM_TYPE] != JFMT_CRC32C_CHKSUM) {
        jbd2_say(why, len, "journal superblock has unknown checksum type %u",
                 b[JFMT_SB_CHECKSUM_TYPE]);
        return -EUCLEAN;
    }
    if (jfmt_get_be32(b + JFMT_SB_CHECKSUM) != sb_csum(b)) {
        jbd2_say(why, len, "journal superblock checksum does not match");
        return -EUCLEAN;
    }
    j->csum_seed = jfmt_crc32c(~0u, j->uuid, sizeof(j->uuid));
    return 0;
}

int jfmt_sb_parse(const void *blk, unsigned fs_blocksize, struct jfmt_journal *j, char *why,
                  size_t why_len)
{
    const uint8_t *b = blk;
    uint32_t type;
    int ret;

    memset(j, 0, sizeof(*j));
    type = jfmt_get_be32(b + 4);
    if (jfmt_get_be32(b) != JFMT_MAGIC || (type != JFMT_SB_V1 && type != JFMT_SB_V2)) {
        jbd2_say(why, why_len, "no journal superblock (bad magic or block type)");
        return -EUCLEAN;
    }
    j->version = type == JFMT_SB_V1 ? 1 : 2;
    j->blocksize = jfmt_get_be32(b + JFMT_SB_BLOCKSIZE);
    if (j->blocksize != fs_blocksize) {
        jbd2_say(why, why_len, "journal block size %u differs from the file system's %u",
                 j->blocksize, fs_blocksize);
        return -EUCLEAN;
    }
    j->maxlen = jfmt_get_be32(b + JFMT_SB_MAXLEN);
    j->first = jfmt_get_be32(b + JFMT_SB_FIRST);
    j->sequence = jfmt_get_be32(b + JFMT_SB_SEQUENCE);
    j->start = jfmt_get_be32(b + JFMT_SB_START);
    j->sb_errno = (int32_t)jfmt_get_be32(b + JFMT_SB_ERRNO);
    memcpy(j->uuid, b + JFMT_SB_UUID, sizeof(j->uuid));
    parse_features(b, j);
    if ((j->incompat & ~JFMT_KNOWN_INCOMPAT) || j->ro_compat) {
        jbd2_say(why, why_len, "journal uses unknown features (incompat %#x, ro_compat %#x)",
                 j->incompat & ~JFMT_KNOWN_INCOMPAT, j->ro_compat);
        return -EOPNOTSUPP;
    }
    ret = check_geometry(b, j, why, why_len);
    if (!ret)
        ret = check_checksums(b, j, why, why_len);
    if (ret)
        return ret;
    j->tag_bytes = tag_bytes(j);
    return 0;
}

void jfmt_sb_set_tail(void *blk, const struct jfmt_journal *j, uint32_t sequence, uint32_t start)
{
    uint8_t *b = blk;

    jfmt_put_be32(b + JFMT_SB_SEQUENCE, sequence);
    jfmt_put_be32(b + JFMT_SB_START, start);
    if (jfmt_csum_v23(j))
        jfmt_put_be32(b + JFMT_SB_CHECKSUM, sb_csum(b));
}

/* ---- checksums ---- */

static unsigned tail_size(const struct jfmt_journal *j)
{
    return jfmt_csum_v23(j) ? JFMT_TAIL_SIZE : 0;
}

/* crc32c(seed, block with its last 4 bytes read as zero). */
static uint32_t tail_csum(const struct jfmt_journal *j, const uint8_t *blk)
{
    static const uint8_t zero[JFMT_TAIL_SIZE];
    uint32_t crc = jfmt_crc32c(j->csum_seed, blk, j->blocksize - JFMT_TAIL_SIZE);

    return jfmt_crc32c(crc, zero, sizeof(zero));
}

bool jfmt_tail_csum_ok(const struct jfmt_journal *j, const void *blk)
{
    const uint8_t *b = blk;

    if (!jfmt_csum_v23(j))
        return true;
    return jfmt_get_be32(b + j->blocksize - JFMT_TAIL_SIZE) == tail_csum(j, b);
}

/* crc32c(seed, the first @covered bytes of @blk with h_chksum[0] zeroed,
 * followed by zeros up to the block size). */
static uint32_t commit_csum(const struct jfmt_journal *j, const uint8_t *blk, unsigned covered)
{
    static const uint8_t zero[256];
    uint8_t head[JFMT_CB_CHKSUM0 + 4];
    unsigned left = j->blocksize - covered;
    uint32_t crc;

    memcpy(head, blk, sizeof(head));
    memset(head + JFMT_CB_CHKSUM0, 0, 4);
    crc = jfmt_crc32c(j->csum_seed, head, sizeof(head));
    crc = jfmt_crc32c(crc, blk + sizeof(head), covered - sizeof(head));
    while (left) {
        unsigned n = left < sizeof(zero) ? left : (unsigned)sizeof(zero);

        crc = jfmt_crc32c(crc, zero, n);
        left -= n;
    }
    return crc;
}

bool jfmt_commit_csum_ok(const struct jfmt_journal *j, const void *blk)
{
    const uint8_t *b = blk;
    uint32_t want;

    if (!jfmt_csum_v23(j))
        return true;
    want = jfmt_get_be32(b + JFMT_CB_CHKSUM0);
    /* The kernel also accepts a commit block whose checksum covers only
     * struct commit_header, the rest read as zeros
     * (jbd2_commit_block_csum_verify_partial). That struct is 64 bytes
     * where a be64 is 8-aligned and 60 where it is not (i386). */
    return want == commit_csum(j, b, j->blocksize) || want == commit_csum(j, b, 64) ||
           want == commit_csum(j, b, JFMT_CB_SIZE);
}

static uint32_t data_csum(const struct jfmt_journal *j, uint32_t seq, const void *data)
{
    uint8_t be_seq[4];

    jfmt_put_be32(be_seq, seq);
    return jfmt_crc32c(jfmt_crc32c(j->csum_seed, be_seq, 4), data, j->blocksize);
}

bool jfmt_tag_csum_ok(const struct jfmt_journal *j, const void *tag, uint32_t seq, const void *data)
{
    const uint8_t *t = tag;

    if (j->csum_v3)
        return jfmt_get_be32(t + JFMT_TAG3_CSUM32) == data_csum(j, seq, data);
    if (j->csum_v2)
        return jfmt_get_be16(t + JFMT_TAG_CSUM16) == (uint16_t)data_csum(j, seq, data);
    return true;
}

uint64_t jfmt_tag_blocknr(const struct jfmt_journal *j, const void *tag)
{
    const uint8_t *t = tag;
    uint64_t blk = jfmt_get_be32(t + JFMT_TAG_BLOCKNR);

    if (j->has_64bit)
        blk |= (uint64_t)jfmt_get_be32(t + JFMT_TAG_BLOCKNR_HIGH) << 32;
    return blk;
}

/* ---- building a transaction ---- */

unsigned jfmt_tags_per_descriptor(const struct jfmt_journal *j)
{
    /* The kernel closes a descriptor once fewer than tag + 16 + tail
     * bytes are left after the tag just added, the first tag being
     * followed by the 16-byte UUID. Solving its loop gives
     * floor((bs - 12 - 16 - 16 - tail - tag) / tag) + 1 tags, which is the
     * expression below. */
    return (j->blocksize - JFMT_HEADER_SIZE - 32 - tail_size(j)) / j->tag_bytes;
}

unsigned jfmt_revokes_per_block(const struct jfmt_journal *j)
{
    return (j->blocksize - JFMT_REVOKE_HEADER - tail_size(j)) / (j->has_64bit ? 8 : 4);
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

uint64_t jfmt_txn_log_blocks(const struct jfmt_journal *j, size_t nblocks, size_t nrevokes)
{
    return div_up(nrevokes, jfmt_revokes_per_block(j)) +
           div_up(nblocks, jfmt_tags_per_descriptor(j)) + nblocks + 1;
}

static void put_header(uint8_t *b, uint32_t type, uint32_t seq)
{
    jfmt_put_be32(b, JFMT_MAGIC);
    jfmt_put_be32(b + 4, type);
    jfmt_put_be32(b + 8, seq);
}

static void set_tail_csum(const struct jfmt_journal *j, uint8_t *blk)
{
    if (jfmt_csum_v23(j))
        jfmt_put_be32(blk + j->blocksize - JFMT_TAIL_SIZE, tail_csum(j, blk));
}

static int emit_revokes(const struct jfmt_journal *j, uint32_t seq, const uint64_t *revoked,
                        size_t nrevokes, uint8_t *buf, jfmt_emit_fn emit, void *ctx)
{
    unsigned rec = j->has_64bit ? 8 : 4, per = jfmt_revokes_per_block(j);

    for (size_t i = 0; i < nrevokes; i += per) {
        size_t k = nrevokes - i < per ? nrevokes - i : per;
        unsigned off = JFMT_REVOKE_HEADER;
        int ret;

        memset(buf, 0, j->blocksize);
        put_header(buf, JFMT_REVOKE, seq);
        for (size_t r = 0; r < k; r++, off += rec) {
            if (rec == 8)
                jfmt_put_be64(buf + off, revoked[i + r]);
            else
                jfmt_put_be32(buf + off, (uint32_t)revoked[i + r]);
        }
        jfmt_put_be32(buf + JFMT_HEADER_SIZE, off); /* r_count: bytes used */
        set_tail_csum(j, buf);
        ret = emit(ctx, buf);
        if (ret)
            return ret;
    }
    return 0;
}

static bool needs_escape(const void *data)
{
    return jfmt_get_be32(data) == JFMT_MAGIC;
}

/* Fill descriptor @desc for blocks[0..k) of transaction @seq. */
static void build_descriptor(const struct jfmt_journal *j, uint32_t seq,
                             const struct jfmt_block *blocks, size_t k, uint8_t *desc,
                             uint8_t *scratch)
{
    uint8_t *tag = desc + JFMT_HEADER_SIZE;

    memset(desc, 0, j->blocksize);
    put_header(desc, JFMT_DESCRIPTOR, seq);
    for (size_t i = 0; i < k; i++) {
        const void *logged = blocks[i].data;
        uint16_t flags = 0;

        if (needs_escape(logged)) {
            /* The checksum covers the block as logged, i.e. escaped. */
            memcpy(scratch, logged, j->blocksize);
            memset(scratch, 0, 4);
            logged = scratch;
            flags |= JFMT_FLAG_ESCAPE;
        }
        if (i > 0)
            flags |= JFMT_FLAG_SAME_UUID;
        if (i == k - 1)
            flags |= JFMT_FLAG_LAST_TAG;
        jfmt_put_be32(tag + JFMT_TAG_BLOCKNR, (uint32_t)blocks[i].home);
        if (j->has_64bit)
            jfmt_put_be32(tag + JFMT_TAG_BLOCKNR_HIGH, (uint32_t)(blocks[i].home >> 32));
        jfmt_put_be16(tag + JFMT_TAG_FLAGS16, flags);
        if (j->csum_v3)
            jfmt_put_be32(tag + JFMT_TAG3_CSUM32, data_csum(j, seq, logged));
        else if (j->csum_v2)
            jfmt_put_be16(tag + JFMT_TAG_CSUM16, (uint16_t)data_csum(j, seq, logged));
        tag += j->tag_bytes;
        if (i == 0) {
            memcpy(tag, j->uuid, sizeof(j->uuid));
            tag += sizeof(j->uuid);
        }
    }
    set_tail_csum(j, desc);
}

/* Emit a data block as logged (escaped if needed), folding it into the v1
 * checksum. */
static int emit_data(const struct jfmt_journal *j, const void *data, uint8_t *scratch,
                     uint32_t *crc, jfmt_emit_fn emit, void *ctx)
{
    const void *logged = data;

    if (needs_escape(data)) {
        memcpy(scratch, data, j->blocksize);
        memset(scratch, 0, 4);
        logged = scratch;
    }
    if (j->csum_v1)
        *crc = jfmt_crc32_be(*crc, logged, j->blocksize);
    return emit(ctx, logged);
}

int jfmt_txn_emit(const struct jfmt_journal *j, uint32_t seq, const struct jfmt_block *blocks,
                  size_t n, const uint64_t *revoked, size_t nrevokes, jfmt_emit_fn emit, void *ctx,
                  uint32_t *v1_crc)
{
    unsigned per = jfmt_tags_per_descriptor(j);
    uint32_t crc = ~0u; /* the v1 running checksum, as the kernel seeds it */
    uint8_t *desc, *scratch;
    int ret = 0;

    for (size_t i = 0; i < n; i++) {
        if (!j->has_64bit && blocks[i].home >> 32)
            return -EINVAL;
    }
    for (size_t i = 0; i < nrevokes; i++) {
        if (!j->has_64bit && revoked[i] >> 32)
            return -EINVAL;
    }
    desc = malloc(2 * (size_t)j->blocksize);
    if (!desc)
        return -ENOMEM;
    scratch = desc + j->blocksize;
    ret = emit_revokes(j, seq, revoked, nrevokes, desc, emit, ctx);
    for (size_t i = 0; !ret && i < n; i += per) {
        size_t k = n - i < per ? n - i : per;

        build_descriptor(j, seq, blocks + i, k, desc, scratch);
        if (j->csum_v1)
            crc = jfmt_crc32_be(crc, desc, j->blocksize);
        ret = emit(ctx, desc);
        for (size_t b = 0; !ret && b < k; b++)
            ret = emit_data(j, blocks[i + b].data, scratch, &crc, emit, ctx);
    }
    free(desc);
    if (v1_crc)
        *v1_crc = crc;
    return ret;
}

void jfmt_commit_block(const struct jfmt_journal *j, uint32_t seq, const struct timespec *now,
                       uint32_t v1_crc, void *out)
{
    uint8_t *b = out;

    memset(b, 0, j->blocksize);
    put_header(b, JFMT_COMMIT, seq);
    jfmt_put_be64(b + JFMT_CB_COMMIT_SEC, (uint64_t)now->tv_sec);
    jfmt_put_be32(b + JFMT_CB_COMMIT_NSEC, (uint32_t)now->tv_nsec);
    if (j->csum_v1) {
        b[JFMT_CB_CHKSUM_TYPE] = JFMT_CRC32_CHKSUM;
        b[JFMT_CB_CHKSUM_SIZE] = JFMT_CRC32_CHKSUM_SIZE;
        jfmt_put_be32(b + JFMT_CB_CHKSUM0, v1_crc);
    } else if (jfmt_csum_v23(j)) {
        /* type and size stay 0: the checksum covers the whole block */
        jfmt_put_be32(b + JFMT_CB_CHKSUM0, commit_csum(j, b, j->blocksize));
    }
}
