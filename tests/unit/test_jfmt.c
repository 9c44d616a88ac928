/* The jbd2 format (jfmt.c) and recovery (recover.c, jmap.c): transactions
 * built with our writer for every feature combination, laid into a scratch
 * journal with a scrambled block map, replayed and checked byte for byte;
 * then the kernel's checksum, revoke and end-of-log rules one case at a
 * time, malformed superblocks, and a fixed-seed fuzz of the log.
 *
 * The scratch "image" is a memfd: home blocks [0, HOMES), then the journal,
 * whose block i lives at image block HOMES + (i * 7919) % JLEN. */
#include "jbd2/jfmt.h"
#include "e2/jmap.h"
#include "jbd2/recover.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ext2fs/ext2fs.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOMES 64u
#define JLEN  1100u
#define MAXT  1024u /* positions recorded per transaction */

static const uint8_t uuid[16] = {0x5d, 0x1c, 0x6e, 0x0a, 0x7b, 0x2f, 0x4c, 0x3d,
                                 0x9e, 0x8f, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f};

struct jt {
    int fd;
    uint64_t base; /* where block 0 is in the file (jt_base) */
    unsigned bs;
    uint64_t fs_blocks;
    uint64_t map[JLEN];
    struct jfmt_journal j;
    uint8_t jsb[4096];
    uint32_t pos;         /* next log block to write */
    uint32_t trace[MAXT]; /* log positions of the last transaction's blocks */
    unsigned ntrace;
    uint64_t commit_time; /* of the next commit block */
    uint8_t buf[2][4096];
    char why[256];
};

/* ---- building scratch journals ---- */

static void fill_block(uint8_t *b, unsigned bs, uint64_t home, unsigned version)
{
    for (unsigned i = 0; i < bs; i++)
        b[i] = (uint8_t)(home * 31 + version * 7 + i / 3 + (i % 5) * version);
    b[0] = (uint8_t)version;
}

/* The scratch file system's place in its file, for the next jt_init():
 * behind jt_base bytes of SENTINEL (a partition of a disk image). */
static uint64_t jt_base;
#define SENTINEL 0xA5

static int pwrite_blk(struct jt *t, uint64_t blk, const void *buf)
{
    off_t off = (off_t)(t->base + blk * t->bs);

    return pwrite(t->fd, buf, t->bs, off) == (ssize_t)t->bs ? 0 : -EIO;
}

static void pread_blk(struct jt *t, uint64_t blk, void *buf)
{
    if (pread(t->fd, buf, t->bs, (off_t)(t->base + blk * t->bs)) != (ssize_t)t->bs)
        memset(buf, 0xEE, t->bs);
}

static void make_jsb(struct jt *t, uint32_t compat, uint32_t incompat, uint32_t maxlen,
                     uint32_t seq, uint32_t start, uint32_t nfc)
{
    uint8_t *b = t->jsb;

    memset(b, 0, sizeof(t->jsb));
    jfmt_put_be32(b, JFMT_MAGIC);
    jfmt_put_be32(b + 4, JFMT_SB_V2);
    jfmt_put_be32(b + JFMT_SB_BLOCKSIZE, t->bs);
    jfmt_put_be32(b + JFMT_SB_MAXLEN, maxlen);
    jfmt_put_be32(b + JFMT_SB_FIRST, 1);
    jfmt_put_be32(b + JFMT_SB_SEQUENCE, seq);
    jfmt_put_be32(b + JFMT_SB_START, start);
    jfmt_put_be32(b + JFMT_SB_COMPAT, compat);
    jfmt_put_be32(b + JFMT_SB_INCOMPAT, incompat);
    memcpy(b + JFMT_SB_UUID, uuid, 16);
    jfmt_put_be32(b + JFMT_SB_NR_USERS, 1);
    jfmt_put_be32(b + JFMT_SB_NUM_FC_BLKS, nfc);
    if (incompat & (JFMT_INCOMPAT_CSUM_V2 | JFMT_INCOMPAT_CSUM_V3)) {
        b[JFMT_SB_CHECKSUM_TYPE] = JFMT_CRC32C_CHKSUM;
        jfmt_put_be32(b + JFMT_SB_CHECKSUM, 0);
        jfmt_put_be32(b + JFMT_SB_CHECKSUM, ext2fs_crc32c_le(~0u, b, JFMT_SB_SIZE));
    }
}

static int write_jsb(struct jt *t)
{
    return pwrite_blk(t, t->map[0], t->jsb);
}

/* A scratch image with journal features @compat/@incompat whose log starts
 * @back blocks before its end with transaction @seq (back 0: log empty). */
static int jt_init(struct jt *t, unsigned bs, uint32_t compat, uint32_t incompat, uint32_t seq,
                   uint32_t back, uint32_t nfc)
{
    uint8_t b[4096];
    uint32_t last;

    memset(t, 0, sizeof(*t));
    t->bs = bs;
    t->base = jt_base;
    t->fs_blocks = HOMES + JLEN;
    t->fd = memfd_create("jfmt", 0);
    if (t->fd < 0 || ftruncate(t->fd, (off_t)(t->base + t->fs_blocks * bs)))
        return -errno;
    for (uint64_t off = 0; off < t->base; off++) {
        if (pwrite(t->fd, (uint8_t[]){SENTINEL}, 1, (off_t)off) != 1)
            return -EIO;
    }
    for (uint32_t i = 0; i < JLEN; i++)
        t->map[i] = HOMES + (uint64_t)i * 7919 % JLEN;
    for (uint64_t h = 0; h < HOMES; h++) {
        fill_block(b, bs, h, 0);
        if (pwrite_blk(t, h, b))
            return -EIO;
    }
    last = JLEN - ((incompat & JFMT_INCOMPAT_FAST_COMMIT) ? (nfc ? nfc : 256) : 0);
    t->pos = back ? last - back : 1;
    make_jsb(t, compat, incompat, JLEN, seq, back ? t->pos : 0, nfc);
    t->commit_time = 1000;
    if (write_jsb(t))
        return -EIO;
    return jfmt_sb_parse(t->jsb, bs, &t->j, t->why, sizeof(t->why));
}

static int emit_cb(void *ctx, const void *block)
{
    struct jt *t = ctx;

    if (t->ntrace < MAXT)
        t->trace[t->ntrace++] = t->pos;
    if (pwrite_blk(t, t->map[t->pos], block))
        return -EIO;
    if (++t->pos >= t->j.last)
        t->pos = t->j.first;
    return 0;
}

/* Write transaction @seq: blocks @homes[i] at @versions[i], revoking
 * @revokes; with a commit block unless !@commit. */
static int jt_txn(struct jt *t, uint32_t seq, const uint64_t *homes, const unsigned *versions,
                  size_t n, const uint64_t *revokes, size_t nr, bool commit)
{
    struct jfmt_block *v = calloc(n ? n : 1, sizeof(*v));
    uint8_t *data = malloc((n ? n : 1) * (size_t)t->bs);
    struct timespec now = {.tv_sec = (time_t)t->commit_time, .tv_nsec = 5};
    uint32_t crc = 0;
    int ret;

    if (!v || !data)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        fill_block(data + i * t->bs, t->bs, homes[i], versions[i]);
        if (versions[i] % 13 == 0) /* a block that looks like a journal block */
            jfmt_put_be32(data + i * t->bs, JFMT_MAGIC);
        v[i] = (struct jfmt_block){.home = homes[i], .data = data + i * t->bs};
    }
    t->ntrace = 0;
    ret = jfmt_txn_emit(&t->j, seq, v, n, revokes, nr, emit_cb, t, &crc);
    if (!ret && t->ntrace + 1 != jfmt_txn_log_blocks(&t->j, n, nr))
        ret = -EPROTO;
    if (!ret && commit) {
        jfmt_commit_block(&t->j, seq, &now, crc, t->buf[0]);
        ret = emit_cb(t, t->buf[0]);
    }
    t->commit_time += 10;
    free(v);
    free(data);
    return ret;
}

/* Does home block @h hold (home @h, @version)? (A version that is a
 * multiple of 13 was written with the magic in front.) */
static bool home_is(struct jt *t, uint64_t h, unsigned version)
{
    fill_block(t->buf[0], t->bs, h, version);
    if (version && version % 13 == 0)
        jfmt_put_be32(t->buf[0], JFMT_MAGIC);
    pread_blk(t, h, t->buf[1]);
    return memcmp(t->buf[0], t->buf[1], t->bs) == 0;
}

static void flip(struct jt *t, uint32_t logblk, unsigned off)
{
    pread_blk(t, t->map[logblk], t->buf[0]);
    t->buf[0][off % t->bs] ^= 0x5a;
    pwrite_blk(t, t->map[logblk], t->buf[0]);
}

static int recover(struct jt *t, struct jbd2_recover_stats *st)
{
    struct jbd2_dev dev = {.fd = t->fd, .base = t->base};

    return jbd2_recover(&dev, t->bs, t->fs_blocks, t->map, JLEN, st, t->why, sizeof(t->why));
}

static uint32_t jsb_field(struct jt *t, unsigned off)
{
    pread_blk(t, t->map[0], t->buf[0]);
    return jfmt_get_be32(t->buf[0] + off);
}

/* A checksum of the whole scratch image, to prove nothing was written. */
static uint32_t image_sum(struct jt *t)
{
    uint32_t crc = 0;

    for (uint64_t b = 0; b < t->fs_blocks; b++) {
        pread_blk(t, b, t->buf[1]);
        crc = ext2fs_crc32c_le(crc, t->buf[1], t->bs);
    }
    return crc;
}

/* ---- the round trip, per feature combination ---- */

struct feat_row {
    const char *name;
    uint32_t compat, incompat;
};

static const struct feat_row feats[] = {
    {"none_32bit", 0, 0},
    {"64bit", 0, JFMT_INCOMPAT_64BIT},
    {"csum_v1", JFMT_COMPAT_CHECKSUM, 0},
    {"csum_v1_64bit", JFMT_COMPAT_CHECKSUM, JFMT_INCOMPAT_64BIT},
    {"csum_v2", 0, JFMT_INCOMPAT_CSUM_V2},
    {"csum_v2_64bit", 0, JFMT_INCOMPAT_CSUM_V2 | JFMT_INCOMPAT_64BIT},
    {"csum_v3", 0, JFMT_INCOMPAT_CSUM_V3},
    {"csum_v3_64bit", 0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_64BIT},
    {"csum_v3_async", 0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_ASYNC_COMMIT},
};

/* T1: more than a descriptor of tags over homes 0..59 (several versions of
 * each, escaped ones among them); T2: homes 0..9 again, revoking 5, 6, 7
 * and 60; T3: homes 6 and 61 (escaped); T4: never committed. Sequence
 * numbers wrap past 2^32, the log wraps past its end. */
static int roundtrip(const struct feat_row *r, unsigned bs)
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint64_t homes[1024], rev[4] = {5, 6, 7, 60};
    unsigned vers[1024], n1, t1_last[HOMES] = {0};
    unsigned t1_revoked = 0;
    const uint32_t s = 0xfffffffeu;
    int ret = 0;

    CHECK_EQ(jt_init(&t, bs, r->compat, r->incompat | JFMT_INCOMPAT_REVOKE, s, 3, 0), 0);
    n1 = jfmt_tags_per_descriptor(&t.j) + 5;
    CHECK(n1 <= 1024);
    for (unsigned i = 0; i < n1; i++) {
        homes[i] = i % 60;
        vers[i] = i + 1;
        t1_last[i % 60] = i + 1;
        t1_revoked += homes[i] >= 5 && homes[i] <= 7;
    }
    CHECK_EQ(jt_txn(&t, s, homes, vers, n1, NULL, 0, true), 0);
    for (unsigned i = 0; i < 10; i++) {
        homes[i] = i;
        vers[i] = 1000 + i;
    }
    CHECK_EQ(jt_txn(&t, s + 1, homes, vers, 10, rev, 4, true), 0);
    CHECK_EQ(jt_txn(&t, s + 2, (uint64_t[]){6, 61}, (unsigned[]){3000, 3003}, 2, NULL, 0, true), 0);
    /* Format: T3 is [descriptor, data 6, data 61 escaped, commit]. */
    pread_blk(&t, t.map[t.trace[0]], t.buf[1]);
    CHECK_EQ(jfmt_get_be32(t.buf[1] + 4), JFMT_DESCRIPTOR);
    CHECK_EQ(jfmt_get_be32(t.buf[1] + 12), 6); /* first tag: blocknr, UUID follows */
    CHECK(memcmp(t.buf[1] + 12 + t.j.tag_bytes, uuid, 16) == 0);
    CHECK_EQ(jfmt_get_be16(t.buf[1] + 12 + t.j.tag_bytes + 16 + JFMT_TAG_FLAGS16),
             JFMT_FLAG_ESCAPE | JFMT_FLAG_SAME_UUID | JFMT_FLAG_LAST_TAG);
    pread_blk(&t, t.map[t.trace[2]], t.buf[1]);
    CHECK_EQ(jfmt_get_be32(t.buf[1]), 0); /* escaped in the log */
    CHECK_EQ(jt_txn(&t, s + 3, (uint64_t[]){62, 63, 1}, (unsigned[]){4000, 4001, 4002}, 3, NULL, 0,
                    false),
             0);

    ret = recover(&t, &st);
    if (ret)
        fprintf(stderr, "  %s/%u: %s\n", r->name, bs, t.why);
    CHECK_EQ(ret, 0);
    CHECK_EQ(st.transactions, 3);
    CHECK_EQ(st.last_seq, s + 2);
    CHECK_EQ(st.next_seq, s + 4); /* last committed + 2 */
    CHECK_EQ(st.tags, n1 + 12);
    CHECK_EQ(st.revoke_records, 4);
    CHECK_EQ(st.revoked, t1_revoked + 3);
    CHECK_EQ(st.blocks_written, 59); /* 0..59 except 5, 7; and 61 */
    for (unsigned h = 0; h < HOMES; h++) {
        unsigned want = h < 5 || h == 8 || h == 9 ? 1000 + h
                        : h == 5 || h == 7        ? 0
                        : h == 6                  ? 3000
                        : h < 60                  ? t1_last[h]
                        : h == 61                 ? 3003
                                                  : 0;
        if (!home_is(&t, h, want)) {
            fprintf(stderr, "  %s/%u: home %u is not version %u\n", r->name, bs, h, want);
            return 1;
        }
    }
    CHECK_EQ(jsb_field(&t, JFMT_SB_START), 0);
    CHECK_EQ(jsb_field(&t, JFMT_SB_SEQUENCE), s + 4);
    pread_blk(&t, t.map[0], t.buf[1]);
    CHECK_EQ(jfmt_sb_parse(t.buf[1], bs, &t.j, t.why, sizeof(t.why)), 0); /* checksum valid */
    CHECK_EQ(recover(&t, &st), 0);
    CHECK(st.was_empty);
    for (uint64_t off = 0; off < t.base; off++) {
        uint8_t c = 0;
        CHECK(pread(t.fd, &c, 1, (off_t)off) == 1 && c == SENTINEL);
    }
    close(t.fd);
    return 0;
}

/* The same round trips with the file system 3,000 bytes into its file
 * (not a multiple of any block size): homes and log are found there, and
 * the bytes before it are never written. */
static int test_roundtrip_at_offset(void)
{
    int ret = 0;

    jt_base = 3000;
    for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]) && !ret; i++)
        ret = roundtrip(&feats[i], 1024) || roundtrip(&feats[i], 4096);
    jt_base = 0;
    return ret;
}

static int test_roundtrip(void)
{
    for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
        if (roundtrip(&feats[i], 1024) || roundtrip(&feats[i], 4096)) {
            fprintf(stderr, "  row %s failed\n", feats[i].name);
            return 1;
        }
    }
    return 0;
}

static int test_log_blocks_count(void)
{
    struct jt t;

    for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
        CHECK_EQ(jt_init(&t, 1024, feats[i].compat, feats[i].incompat, 1, 0, 0), 0);
        for (unsigned n = 0; n < 700; n += 97) {
            uint64_t *homes = calloc(n + 1, sizeof(*homes)), rev[300] = {0};
            unsigned *vers = calloc(n + 1, sizeof(*vers));

            CHECK(homes && vers);
            for (unsigned k = 0; k < n; k++)
                homes[k] = k % HOMES, vers[k] = k + 1;
            /* jt_txn checks emitted + commit == jfmt_txn_log_blocks */
            CHECK_EQ(jt_txn(&t, 1, homes, vers, n, rev, n % 300, true), 0);
            free(homes);
            free(vers);
        }
        if (!t.j.has_64bit) /* a block number needing blocknr_high */
            CHECK_EQ(jt_txn(&t, 2, (uint64_t[]){1ull << 32}, (unsigned[]){1}, 1, NULL, 0, true),
                     -EINVAL);
        close(t.fd);
    }
    return 0;
}

/* ---- the kernel's rules, one case each ---- */

static int test_uncommitted_not_replayed(void)
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint32_t before;

    CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_CSUM_V3, 7, 10, 0), 0);
    CHECK_EQ(jt_txn(&t, 7, (uint64_t[]){1, 2}, (unsigned[]){1, 2}, 2, NULL, 0, false), 0);
    before = image_sum(&t);
    CHECK_EQ(recover(&t, &st), 0);
    CHECK_EQ(st.transactions, 0);
    CHECK(home_is(&t, 1, 0) && home_is(&t, 2, 0));
    CHECK_EQ(jsb_field(&t, JFMT_SB_SEQUENCE), 8);
    CHECK_EQ(jsb_field(&t, JFMT_SB_START), 0);
    CHECK(image_sum(&t) != before); /* only the jsb changed */
    close(t.fd);
    return 0;
}

/* The scratch journal moved out to a file of its own, as an external
 * journal (journal_dev) is: journal block i at block i of *@jfd, the jsb
 * at block 0; its blocks in the image are overwritten with 0xEE, so a
 * recovery that read or wrote them there would show. */
static int jt_externalise(struct jt *t, int *jfd, uint64_t *map)
{
    uint8_t junk[4096];

    memset(junk, 0xEE, sizeof(junk));
    *jfd = memfd_create("jfmt-ext", 0);
    if (*jfd < 0 || ftruncate(*jfd, (off_t)JLEN * t->bs))
        return -errno;
    for (uint32_t i = 0; i < JLEN; i++) {
        map[i] = i;
        pread_blk(t, t->map[i], t->buf[0]);
        if (pwrite(*jfd, t->buf[0], t->bs, (off_t)i * t->bs) != (ssize_t)t->bs ||
            pwrite_blk(t, t->map[i], junk))
            return -EIO;
    }
    return 0;
}

/* Counts what an in-memory replay hands over, and any jbd2 superblock. */
static int put_count(void *ctx, uint64_t blk, const void *data)
{
    unsigned *n = ctx;

    (void)blk;
    n[0]++;
    n[1] += jfmt_get_be32(data) == JFMT_MAGIC;
    return 0;
}

/* An external journal: the log read from its own file, homes written to the
 * image, the emptied jsb written to the journal's file (not to the image);
 * in memory the same homes, and no jsb handed over as a block of the
 * file system. */
static int test_external_journal(void)
{
    static uint64_t map[JLEN];
    struct jt t;
    struct jbd2_recover_stats st;
    struct jbd2_dev dev = {.external = true};
    unsigned n[2] = {0, 0};
    int jfd = -1;
    uint32_t image_before;

    CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_CSUM_V3, 7, 10, 0), 0);
    CHECK_EQ(jt_txn(&t, 7, (uint64_t[]){1, 2}, (unsigned[]){1, 2}, 2, NULL, 0, true), 0);
    CHECK_EQ(jt_txn(&t, 8, (uint64_t[]){2, 3}, (unsigned[]){4, 5}, 2, NULL, 0, true), 0);
    CHECK_EQ(jt_externalise(&t, &jfd, map), 0);
    dev.fd = t.fd;
    dev.base = t.base;
    dev.journal_fd = jfd;
    image_before = image_sum(&t);
    CHECK_EQ(jbd2_recover_to(&dev, t.bs, t.fs_blocks, map, JLEN, put_count, n, &st, t.why,
                             sizeof(t.why)),
             0);
    CHECK(n[0] == 3 && n[1] == 0 && st.transactions == 2);
    CHECK_EQ(image_sum(&t), image_before);
    CHECK_EQ(jbd2_recover(&dev, t.bs, t.fs_blocks, map, JLEN, &st, t.why, sizeof(t.why)), 0);
    CHECK(home_is(&t, 1, 1) && home_is(&t, 2, 4) && home_is(&t, 3, 5));
    pread_blk(&t, t.map[0], t.buf[1]);
    CHECK_EQ(t.buf[1][0], 0xEE); /* the image's old jsb block untouched */
    CHECK_EQ(pread(jfd, t.buf[0], t.bs, 0), (ssize_t)t.bs);
    CHECK_EQ(jfmt_get_be32(t.buf[0] + JFMT_SB_START), 0);
    CHECK_EQ(jfmt_get_be32(t.buf[0] + JFMT_SB_SEQUENCE), 10);
    close(jfd);
    close(t.fd);
    return 0;
}

/* A data block failing its tag checksum is skipped, every other block is
 * replayed (an older valid version of it too), recovery fails and the
 * journal stays dirty: what the kernel does. */
static int tag_csum_case(uint32_t incompat)
{
    struct jt t;
    struct jbd2_recover_stats st;

    CHECK_EQ(jt_init(&t, 1024, 0, incompat, 40, 20, 0), 0);
    CHECK_EQ(jt_txn(&t, 40, (uint64_t[]){1, 2, 3}, (unsigned[]){1, 2, 3}, 3, NULL, 0, true), 0);
    CHECK_EQ(jt_txn(&t, 41, (uint64_t[]){2, 3, 4}, (unsigned[]){20, 30, 40}, 3, NULL, 0, true), 0);
    flip(&t, t.trace[1], 100); /* T2's version of home 2 */
    CHECK_EQ(recover(&t, &st), -EUCLEAN);
    CHECK(strstr(t.why, "bad checksum") != NULL);
    CHECK_EQ(st.csum_errors, 1);
    CHECK(home_is(&t, 1, 1) && home_is(&t, 2, 2) && home_is(&t, 3, 30) && home_is(&t, 4, 40));
    CHECK(jsb_field(&t, JFMT_SB_START) != 0);
    CHECK_EQ(recover(&t, &st), -EUCLEAN); /* the same again */
    close(t.fd);
    return 0;
}

static int test_tag_csum_bad(void)
{
    return tag_csum_case(JFMT_INCOMPAT_CSUM_V2) || tag_csum_case(JFMT_INCOMPAT_CSUM_V3) ||
           tag_csum_case(JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_64BIT);
}

/* T2's commit block is bad: sync commit fails after replaying T1; async
 * commit ends the log there; a bad commit older than T1's is a stale block. */
static int commit_case(uint32_t compat, uint32_t incompat, bool older, int want_ret)
{
    struct jt t;
    struct jbd2_recover_stats st;

    CHECK_EQ(jt_init(&t, 4096, compat, incompat, 90, 30, 0), 0);
    CHECK_EQ(jt_txn(&t, 90, (uint64_t[]){1}, (unsigned[]){1}, 1, NULL, 0, true), 0);
    if (older)
        t.commit_time = 5;
    CHECK_EQ(jt_txn(&t, 91, (uint64_t[]){1, 2}, (unsigned[]){10, 20}, 2, NULL, 0, true), 0);
    if (compat & JFMT_COMPAT_CHECKSUM)
        flip(&t, t.trace[2], 7); /* a data block: the transaction crc no longer matches */
    else
        flip(&t, t.trace[3], JFMT_CB_COMMIT_NSEC);
    CHECK_EQ(recover(&t, &st), want_ret);
    CHECK_EQ(st.transactions, 1);
    CHECK(home_is(&t, 1, 1) && home_is(&t, 2, 0));
    CHECK_EQ(jsb_field(&t, JFMT_SB_START) == 0, want_ret == 0);
    if (!want_ret)
        CHECK_EQ(jsb_field(&t, JFMT_SB_SEQUENCE), 92);
    close(t.fd);
    return 0;
}

static int test_commit_csum_bad(void)
{
    return commit_case(0, JFMT_INCOMPAT_CSUM_V3, false, -EUCLEAN) ||
           commit_case(0, JFMT_INCOMPAT_CSUM_V2, false, -EUCLEAN) ||
           commit_case(0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_ASYNC_COMMIT, false, 0) ||
           commit_case(0, JFMT_INCOMPAT_CSUM_V3, true, 0) ||
           commit_case(JFMT_COMPAT_CHECKSUM, 0, false, -EUCLEAN) ||
           commit_case(JFMT_COMPAT_CHECKSUM, JFMT_INCOMPAT_ASYNC_COMMIT, false, 0);
}

/* A descriptor (or revoke block) with a bad tail checksum followed by a
 * current commit is corruption: nothing is written. Followed by an older
 * commit, it is a stale block: the log ends before it. */
static int descriptor_case(bool revoke_block, bool older, int want_ret)
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint32_t before;

    CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_REVOKE, 5, 40, 0), 0);
    CHECK_EQ(jt_txn(&t, 5, (uint64_t[]){1}, (unsigned[]){1}, 1, NULL, 0, true), 0);
    if (older)
        t.commit_time = 1;
    CHECK_EQ(
        jt_txn(&t, 6, (uint64_t[]){2}, (unsigned[]){2}, 1, (uint64_t[]){9}, revoke_block, true), 0);
    flip(&t, t.trace[0], 500);
    before = image_sum(&t);
    CHECK_EQ(recover(&t, &st), want_ret);
    if (want_ret) {
        CHECK(image_sum(&t) == before);
    } else {
        CHECK_EQ(st.transactions, 1);
        CHECK(home_is(&t, 1, 1) && home_is(&t, 2, 0));
    }
    close(t.fd);
    return 0;
}

static int test_descriptor_csum_bad(void)
{
    return descriptor_case(false, false, -EUCLEAN) || descriptor_case(false, true, 0) ||
           descriptor_case(true, false, -EUCLEAN) || descriptor_case(true, true, 0);
}

/* 75000 revoke records of 53 blocks in one transaction: recovery merges
 * the duplicates as it goes (the records still count) and the rule holds
 * for records seen before a merge. */
static int test_revoke_many(void)
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint64_t *rev = malloc(75000 * sizeof(*rev));

    CHECK(rev);
    for (unsigned i = 0; i < 75000; i++)
        rev[i] = i < 3 ? i + 1 : 100 + i % 50; /* 1, 2, 3 only before the merge */
    CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_64BIT | JFMT_INCOMPAT_REVOKE, 9, 30, 0), 0);
    CHECK_EQ(jt_txn(&t, 9, (uint64_t[]){1, 2, 3, 60}, (unsigned[]){1, 2, 3, 4}, 4, NULL, 0, true),
             0);
    CHECK_EQ(jt_txn(&t, 10, NULL, NULL, 0, rev, 75000, true), 0);
    CHECK_EQ(jt_txn(&t, 11, (uint64_t[]){2}, (unsigned[]){20}, 1, NULL, 0, true), 0);
    free(rev);
    CHECK_EQ(recover(&t, &st), 0);
    CHECK_EQ(st.revoke_records, 75000);
    CHECK_EQ(st.revoked, 3);
    CHECK(home_is(&t, 1, 0) && home_is(&t, 2, 20) && home_is(&t, 3, 0) && home_is(&t, 60, 4));
    close(t.fd);
    return 0;
}

/* Corrupt input that must fail without writing anything. */
static int refuse_case(const char *name, int want, void (*mutate)(struct jt *t))
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint32_t before;
    int ret;

    CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_64BIT | JFMT_INCOMPAT_REVOKE, 3, 50, 0), 0);
    mutate(&t);
    before = image_sum(&t);
    ret = recover(&t, &st);
    if (ret != want) {
        fprintf(stderr, "  %s: got %d (%s), want %d\n", name, ret, t.why, want);
        return 1;
    }
    CHECK(image_sum(&t) == before);
    close(t.fd);
    return 0;
}

static void home_beyond_fs(struct jt *t)
{
    jt_txn(t, 3, (uint64_t[]){1, HOMES + JLEN + 5}, (unsigned[]){1, 2}, 2, NULL, 0, true);
}

static void home_in_journal(struct jt *t)
{
    jt_txn(t, 3, (uint64_t[]){t->map[10]}, (unsigned[]){1}, 1, NULL, 0, true);
}

static void home_above_2_32(struct jt *t)
{
    jt_txn(t, 3, (uint64_t[]){(1ull << 32) | 1}, (unsigned[]){1}, 1, NULL, 0, true);
}

static void rcount_too_big(struct jt *t)
{
    uint8_t b[1024] = {0};

    jt_txn(t, 3, (uint64_t[]){1}, (unsigned[]){1}, 1, (uint64_t[]){2}, 1, true);
    jfmt_put_be32(b, JFMT_MAGIC);
    jfmt_put_be32(b + 4, JFMT_REVOKE);
    jfmt_put_be32(b + 8, 4);
    jfmt_put_be32(b + 12, 1028);
    pwrite_blk(t, t->map[t->pos], b);
}

static void maxlen_beyond_map(struct jt *t)
{
    jfmt_put_be32(t->jsb + JFMT_SB_MAXLEN, JLEN + 1);
    write_jsb(t);
}

static void unknown_incompat(struct jt *t)
{
    jfmt_put_be32(t->jsb + JFMT_SB_INCOMPAT, 0x100);
    write_jsb(t);
}

static void unknown_ro_compat(struct jt *t)
{
    jfmt_put_be32(t->jsb + JFMT_SB_RO_COMPAT, 1);
    write_jsb(t);
}

static int test_refusals(void)
{
    return refuse_case("home_beyond_fs", -EUCLEAN, home_beyond_fs) ||
           refuse_case("home_in_journal", -EUCLEAN, home_in_journal) ||
           refuse_case("home_above_2_32", -EUCLEAN, home_above_2_32) ||
           refuse_case("rcount_too_big", -EUCLEAN, rcount_too_big) ||
           refuse_case("maxlen_beyond_map", -EUCLEAN, maxlen_beyond_map) ||
           refuse_case("unknown_incompat", -EOPNOTSUPP, unknown_incompat) ||
           refuse_case("unknown_ro_compat", -EOPNOTSUPP, unknown_ro_compat);
}

struct sb_row {
    const char *name;
    unsigned off;
    uint32_t value;
    int want;
};

static const struct sb_row sb_rows[] = {
    {"good", 0, 0, 0},
    {"bad_magic", 0, 0x12345678, -EUCLEAN},
    {"descriptor_type", 4, JFMT_DESCRIPTOR, -EUCLEAN},
    {"blocksize_differs", JFMT_SB_BLOCKSIZE, 4096, -EUCLEAN},
    {"maxlen_too_small", JFMT_SB_MAXLEN, 1023, -EUCLEAN},
    {"first_zero", JFMT_SB_FIRST, 0, -EUCLEAN},
    {"first_past_end", JFMT_SB_FIRST, JLEN, -EUCLEAN},
    {"start_past_end", JFMT_SB_START, JLEN, -EUCLEAN},
    {"v2_and_v3", JFMT_SB_INCOMPAT, JFMT_INCOMPAT_CSUM_V2 | JFMT_INCOMPAT_CSUM_V3, -EUCLEAN},
    {"unknown_incompat", JFMT_SB_INCOMPAT, JFMT_INCOMPAT_CSUM_V3 | 0x80, -EOPNOTSUPP},
    {"fc_too_big", JFMT_SB_NUM_FC_BLKS, 0xffffff00u, -EUCLEAN},
    {"bad_checksum", JFMT_SB_CHECKSUM, 0x1234, -EUCLEAN},
    {"checksum_type", JFMT_SB_CHECKSUM_TYPE, 0x01000000, -EUCLEAN},
};

static int test_sb_parse_rows(void)
{
    struct jt t;
    struct jfmt_journal j;

    for (size_t i = 0; i < sizeof(sb_rows) / sizeof(sb_rows[0]); i++) {
        const struct sb_row *r = &sb_rows[i];
        int ret;

        CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_FAST_COMMIT, 1, 0, 10),
                 0);
        close(t.fd);
        if (r->off || r->value)
            jfmt_put_be32(t.jsb + r->off, r->value);
        if (r->off != JFMT_SB_CHECKSUM && r->off != 0 && r->off != 4) {
            jfmt_put_be32(t.jsb + JFMT_SB_CHECKSUM, 0);
            jfmt_put_be32(t.jsb + JFMT_SB_CHECKSUM, ext2fs_crc32c_le(~0u, t.jsb, 1024));
        }
        ret = jfmt_sb_parse(t.jsb, 1024, &j, t.why, sizeof(t.why));
        if (ret != r->want) {
            fprintf(stderr, "  row %s: got %d (%s), want %d\n", r->name, ret, t.why, r->want);
            return 1;
        }
    }
    /* v1 and v3 together, and a v1 superblock whose feature words are junk */
    CHECK_EQ(jt_init(&t, 1024, JFMT_COMPAT_CHECKSUM, JFMT_INCOMPAT_CSUM_V3, 1, 0, 0), -EUCLEAN);
    close(t.fd);
    jfmt_put_be32(t.jsb + 4, JFMT_SB_V1);
    jfmt_put_be32(t.jsb + JFMT_SB_INCOMPAT, 0xffffffffu);
    CHECK_EQ(jfmt_sb_parse(t.jsb, 1024, &j, t.why, sizeof(t.why)), 0);
    CHECK(j.version == 1 && j.incompat == 0 && j.tag_bytes == 8);
    return 0;
}

/* The fast-commit area (s_num_fc_blks, 256 when 0) is outside the log; a
 * fast commit of the next transaction is refused. */
static int test_fast_commit(void)
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint8_t fc[1024] = {9, 0, 8, 0};
    uint32_t before;

    /* 1100 blocks cannot hold 1024 log blocks and the default 256 */
    CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_FAST_COMMIT, 20, 0, 0),
             -EUCLEAN);
    close(t.fd);
    CHECK_EQ(jt_init(&t, 1024, 0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_FAST_COMMIT, 20, 2, 50), 0);
    CHECK_EQ(t.j.num_fc_blks, 50);
    CHECK_EQ(t.j.last, JLEN - 50);
    CHECK_EQ(jt_txn(&t, 20, (uint64_t[]){1, 2, 3}, (unsigned[]){1, 2, 3}, 3, NULL, 0, true), 0);
    CHECK_EQ(t.trace[3], 2);           /* wrapped at the start of the fc area */
    jfmt_put_be32(fc + 8, 0x15000000); /* le32 tid 21: the next transaction */
    pwrite_blk(&t, t.map[t.j.last + 1], fc);
    before = image_sum(&t);
    CHECK_EQ(recover(&t, &st), -EOPNOTSUPP);
    CHECK(strstr(t.why, "fast commit") != NULL);
    CHECK(image_sum(&t) == before);
    jfmt_put_be32(fc + 8, 0x14000000); /* tid 20: stale */
    pwrite_blk(&t, t.map[t.j.last + 1], fc);
    CHECK_EQ(recover(&t, &st), 0);
    CHECK(home_is(&t, 1, 1) && home_is(&t, 3, 3));
    close(t.fd);
    return 0;
}

/* A log made only of descriptors of one transaction, all the way round
 * (each one's data block is the next descriptor): recovery must stop after
 * one lap. */
static int test_endless_log(void)
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint8_t d[1024] = {0};

    CHECK_EQ(jt_init(&t, 1024, 0, 0, 77, 500, 0), 0);
    jfmt_put_be32(d, JFMT_MAGIC);
    jfmt_put_be32(d + 4, JFMT_DESCRIPTOR);
    jfmt_put_be32(d + 8, 77);
    jfmt_put_be32(d + 12, 3);
    jfmt_put_be16(d + 12 + JFMT_TAG_FLAGS16, JFMT_FLAG_LAST_TAG);
    for (unsigned k = 1; k < JLEN; k++)
        CHECK_EQ(pwrite_blk(&t, t.map[k], d), 0);
    CHECK_EQ(recover(&t, &st), 0);
    CHECK_EQ(st.transactions, 0);
    CHECK(home_is(&t, 3, 0));
    close(t.fd);
    return 0;
}

/* ---- fuzz ---- */

static uint32_t rnd(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*state >> 33);
}

/* Flip bytes of the jsb and of the log's control blocks; recovery must
 * return cleanly and never grow the image. */
static int fuzz_row(uint32_t compat, uint32_t incompat, uint64_t seed, unsigned iters)
{
    struct jt t;
    struct jbd2_recover_stats st;
    uint32_t ctl[64];
    unsigned nctl = 0;
    uint8_t *pristine;
    size_t size;
    struct stat sb;

    CHECK_EQ(jt_init(&t, 1024, compat, incompat | JFMT_INCOMPAT_REVOKE, 1000, 8, 0), 0);
    ctl[nctl++] = 0; /* the jsb */
    for (uint32_t s = 1000; s < 1003; s++) {
        CHECK_EQ(jt_txn(&t, s, (uint64_t[]){s % 7, 9, 10}, (unsigned[]){s, s + 1, 26}, 3,
                        (uint64_t[]){9, s % 3}, 2, true),
                 0);
        for (unsigned k = 0; k < t.ntrace; k++)
            ctl[nctl++] = t.trace[k];
    }
    size = t.fs_blocks * t.bs;
    pristine = malloc(size);
    CHECK(pristine && pread(t.fd, pristine, size, 0) == (ssize_t)size);
    for (unsigned it = 0; it < iters; it++) {
        uint32_t blk = ctl[rnd(&seed) % nctl];
        unsigned nflips = 1 + rnd(&seed) % 4;

        CHECK(pwrite(t.fd, pristine, size, 0) == (ssize_t)size);
        pread_blk(&t, t.map[blk], t.buf[0]);
        for (unsigned f = 0; f < nflips; f++) {
            /* mostly the header and first tags, where the structure is */
            unsigned off = rnd(&seed) % 4 ? rnd(&seed) % 96 : rnd(&seed) % t.bs;
            t.buf[0][off] = (uint8_t)rnd(&seed);
        }
        pwrite_blk(&t, t.map[blk], t.buf[0]);
        (void)recover(&t, &st);
        CHECK(fstat(t.fd, &sb) == 0 && (size_t)sb.st_size == size);
    }
    free(pristine);
    close(t.fd);
    return 0;
}

static int test_fuzz(void)
{
    return fuzz_row(0, JFMT_INCOMPAT_CSUM_V3 | JFMT_INCOMPAT_64BIT, 1, 150) ||
           fuzz_row(0, 0, 2, 100) || fuzz_row(JFMT_COMPAT_CHECKSUM, 0, 3, 50) ||
           fuzz_row(0, JFMT_INCOMPAT_CSUM_V2, 4, 50);
}

/* ---- the map from a real image ---- */

static int test_map_real_image(void)
{
    char dir[] = "/tmp/uext4-jfmt-XXXXXX", path[64], cmd[256], why[256];
    ext2_filsys fs;
    uint64_t *map = NULL;
    uint32_t len = 0, save;
    uint8_t b[1024];
    struct jbd2_recover_stats st;
    int fd;

    CHECK(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/t.img", dir);
    snprintf(cmd, sizeof(cmd), "mke2fs -q -F -t ext4 -b 1024 -J size=2 %s 8M >/dev/null 2>&1",
             path);
    CHECK_EQ(system(cmd), 0);
    CHECK_EQ(ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
    CHECK_EQ(e2_journal_map_load(fs, &map, &len, why, sizeof(why)), 0);
    CHECK_EQ(len, 2048);
    fd = open(path, O_RDWR);
    CHECK(fd >= 0 && pread(fd, b, 1024, (off_t)(map[0] * 1024)) == 1024);
    CHECK_EQ(jfmt_get_be32(b), JFMT_MAGIC);
    CHECK_EQ(jfmt_get_be32(b + JFMT_SB_MAXLEN), 2048);
    CHECK_EQ(jbd2_recover(&(struct jbd2_dev){.fd = fd}, 1024, ext2fs_blocks_count(fs->super), map,
                          len, &st, why, sizeof(why)),
             0);
    CHECK(st.was_empty);
    close(fd);
    free(map);
    /* external journal, and no journal at all (superblock in memory only) */
    save = fs->super->s_journal_inum;
    fs->super->s_journal_inum = 0;
    fs->super->s_journal_uuid[3] = 1;
    CHECK_EQ(e2_journal_map_load(fs, &map, &len, why, sizeof(why)), -EOPNOTSUPP);
    CHECK(strstr(why, "external") != NULL);
    fs->super->s_journal_inum = save;
    ext2fs_clear_feature_journal(fs->super);
    CHECK_EQ(e2_journal_map_load(fs, &map, &len, why, sizeof(why)), -ENOENT);
    ext2fs_set_feature_journal_dev(fs->super);
    CHECK_EQ(e2_journal_map_load(fs, &map, &len, why, sizeof(why)), -EOPNOTSUPP);
    fs->flags &= ~EXT2_FLAG_DIRTY;
    ext2fs_close_free(&fs);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    return 0;
}

int main(void)
{
    static const struct test_case tests[] = {
        {"jfmt_roundtrip_every_feature", test_roundtrip},
        {"jfmt_roundtrip_at_offset", test_roundtrip_at_offset},
        {"jfmt_log_blocks_count", test_log_blocks_count},
        {"jfmt_sb_parse_rows", test_sb_parse_rows},
        {"recover_uncommitted_not_replayed", test_uncommitted_not_replayed},
        {"recover_external_journal", test_external_journal},
        {"recover_tag_csum_bad", test_tag_csum_bad},
        {"recover_commit_csum_bad", test_commit_csum_bad},
        {"recover_descriptor_csum_bad", test_descriptor_csum_bad},
        {"recover_revoke_many", test_revoke_many},
        {"recover_refusals", test_refusals},
        {"recover_fast_commit", test_fast_commit},
        {"recover_endless_log", test_endless_log},
        {"recover_fuzz", test_fuzz},
        {"jmap_real_image", test_map_real_image},
    };

    initialize_ext2_error_table();
    return run_tests(tests, sizeof(tests) / sizeof(tests[0]));
}
