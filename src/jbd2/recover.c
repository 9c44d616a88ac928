/* Journal recovery (recover.h has the contract).
 *
 * The kernel (fs/jbd2/recovery.c) reads the log three times: a scan that
 * finds its end and checks checksums, a pass collecting revoke records, and
 * a replay pass. We read it once: the scan records every tag and revoke
 * record it meets, in log order, and remembers how many of each belong to
 * committed transactions; everything after that prefix is dropped. Then:
 *
 *   scan_log()        tags[] and revokes[] of the committed prefix, end tid
 *   check_homes()     every home block inside the fs and outside the journal
 *   check_fast_commit()  refuse if the fc area holds the next transaction
 *   replay()          per home block, newest to oldest version: skip revoked,
 *                     verify the tag checksum, write the newest valid one
 *   fdatasync, then mark the jsb empty, fdatasync
 *
 * The end-of-log rules are the kernel's, including its checksum cases:
 * a descriptor or revoke block with a bad tail checksum is fatal if the
 * next commit block is not older than the previous one (corruption), else
 * the end of the log (stale blocks of an older log); a commit block with a
 * bad checksum ends the log, fatally unless async_commit; a data block with
 * a bad tag checksum is skipped and recovery reports failure. One
 * deliberate difference: with async_commit the kernel moves the end of the
 * log forward past a second bad commit block, replaying the first bad
 * transaction; we keep the end at the first. */
#include "jbd2/recover.h"
#include "jbd2/jbd2_internal.h"
#include "jbd2/jfmt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A logged block: its home, where it is in the log, and its tag (for the
 * checksum and flags). */
struct tag_rec {
    uint64_t home;
    uint32_t logblk;
    uint32_t seq;
    uint8_t tag[16];
};

struct revoke_rec {
    uint64_t blk;
    uint32_t seq;
};

#define REVS_COMPACT_MIN 65536

struct scan {
    const struct jfmt_journal *j;
    const struct jbd2_dev *dev;
    jbd2_put_fn put; /* hand recovered blocks to this instead of the image, if set */
    void *put_ctx;
    const uint64_t *map;
    uint64_t fs_blocks;
    uint8_t *blk;  /* the block being parsed */
    uint8_t *data; /* a logged data block (v1 checksum, replay) */

    struct tag_rec *tags;
    size_t ntags, tags_cap, tags_committed;
    struct revoke_rec *revs;
    size_t nrevs, revs_cap, revs_committed;
    size_t revs_limit;                           /* compact past this many */
    uint64_t rev_records, rev_records_committed; /* before merging */

    uint32_t pos;    /* next log block to read */
    uint64_t walked; /* log blocks consumed so far */
    uint32_t seq;    /* transaction expected next */
    uint32_t committed;
    uint64_t last_commit_time;
    bool need_check_commit_time; /* a descriptor/revoke checksum failed */
    uint32_t v1_crc;
    bool end_fixed; /* a bad commit fixed the end (async_commit) */
    uint32_t end_seq;
    bool failed_commit; /* a bad commit without async_commit */
};

static int read_block(int fd, uint64_t base, unsigned bs, uint64_t blk, void *buf)
{
    ssize_t n = pread(fd, buf, bs, (off_t)(base + blk * bs));

    if (n < 0)
        return -errno;
    return n == (ssize_t)bs ? 0 : -EIO;
}

/* Block @blk of the journal's blocks: the file system's, or an external
 * journal's own file. */
static int read_journal_block(const struct jbd2_dev *dev, unsigned bs, uint64_t blk, void *buf)
{
    if (dev->external)
        return read_block(dev->journal_fd, 0, bs, blk, buf);
    return read_block(dev->fd, dev->base, bs, blk, buf);
}

/* A short write goes on, so that what stopped it (ENOSPC, EIO, EDQUOT)
 * is the error reported. */
static int write_block(int fd, uint64_t base, unsigned bs, uint64_t blk, const void *buf)
{
    const char *p = buf;
    off_t off = (off_t)(base + blk * bs);

    for (size_t left = bs; left;) {
        ssize_t n = pwrite(fd, p, left, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        off += n;
        left -= (size_t)n;
    }
    return 0;
}

/* A recovered block goes home: into the image, or into memory. */
static int write_home(struct scan *s, uint64_t blk, const void *buf)
{
    if (s->put)
        return s->put(s->put_ctx, blk, buf);
    return write_block(s->dev->fd, s->dev->base, s->j->blocksize, blk, buf);
}

static int read_log(struct scan *s, uint32_t logblk, void *buf, char *why, size_t len)
{
    uint64_t phys = s->map[logblk];
    int ret;

    if (!s->dev->external && phys >= s->fs_blocks) {
        jbd2_say(why, len, "journal block %u maps to block %llu, outside the file system", logblk,
                 (unsigned long long)phys);
        return -EUCLEAN;
    }
    ret = read_journal_block(s->dev, s->j->blocksize, phys, buf);
    if (ret)
        jbd2_say(why, len, "cannot read journal block %u (block %llu): %s", logblk,
                 (unsigned long long)phys, strerror(-ret));
    return ret;
}

static void advance(struct scan *s)
{
    if (++s->pos >= s->j->last)
        s->pos = s->j->first;
    s->walked++;
}

static int grow(void **arr, size_t *cap, size_t want, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 256;
    void *p;

    if (want <= *cap)
        return 0;
    p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Record the tags of the descriptor in s->blk, consuming its data blocks;
 * with the v1 checksum, fold the descriptor and data into s->v1_crc. */
static int scan_descriptor(struct scan *s, char *why, size_t len)
{
    const struct jfmt_journal *j = s->j;
    unsigned limit = j->blocksize - (jfmt_csum_v23(j) ? JFMT_TAIL_SIZE : 0);
    bool v1 = j->csum_v1 && !s->end_fixed;
    unsigned off = JFMT_HEADER_SIZE;
    int ret;

    if (!jfmt_tail_csum_ok(j, s->blk))
        s->need_check_commit_time = true;
    if (v1)
        s->v1_crc = jfmt_crc32_be(s->v1_crc, s->blk, j->blocksize);
    while (off + j->tag_bytes <= limit) {
        const uint8_t *t = s->blk + off;
        uint16_t flags = jfmt_get_be16(t + JFMT_TAG_FLAGS16);
        struct tag_rec *r;

        ret = grow((void **)&s->tags, &s->tags_cap, s->ntags + 1, sizeof(*s->tags));
        if (ret)
            return ret;
        r = &s->tags[s->ntags++];
        r->home = jfmt_tag_blocknr(j, t);
        r->logblk = s->pos;
        r->seq = s->seq;
        memset(r->tag, 0, sizeof(r->tag));
        memcpy(r->tag, t, j->tag_bytes);
        if (v1) {
            ret = read_log(s, s->pos, s->data, why, len);
            if (ret)
                return ret;
            s->v1_crc = jfmt_crc32_be(s->v1_crc, s->data, j->blocksize);
        }
        advance(s);
        off += j->tag_bytes;
        if (!(flags & JFMT_FLAG_SAME_UUID))
            off += 16;
        if (flags & JFMT_FLAG_LAST_TAG)
            break;
    }
    return 0;
}

static int cmp_revoke(const void *a, const void *b)
{
    const struct revoke_rec *x = a, *y = b;

    return x->blk < y->blk ? -1 : x->blk > y->blk;
}

/* Sort revokes by block, one record per block keeping the newest tid. */
static size_t merge_revokes(struct revoke_rec *revs, size_t n)
{
    size_t out = 0;

    if (!n)
        return 0; /* revs may be NULL */
    qsort(revs, n, sizeof(*revs), cmp_revoke);
    for (size_t i = 0; i < n; i++) {
        if (out && revs[out - 1].blk == revs[i].blk) {
            if (jfmt_tid_gt(revs[i].seq, revs[out - 1].seq))
                revs[out - 1].seq = revs[i].seq;
        } else {
            revs[out++] = revs[i];
        }
    }
    return out;
}

/* A log can repeat the same revoke records in block after block; merge
 * duplicates whenever the array has doubled, each part on its own (the
 * committed records, and those of transactions not known to commit), so
 * memory follows the number of distinct blocks revoked, as in the kernel's
 * revoke table. */
static void compact_revokes(struct scan *s)
{
    size_t c = merge_revokes(s->revs, s->revs_committed);
    size_t u = merge_revokes(s->revs + s->revs_committed, s->nrevs - s->revs_committed);

    memmove(s->revs + c, s->revs + s->revs_committed, u * sizeof(*s->revs));
    s->revs_committed = c;
    s->nrevs = c + u;
    s->revs_limit = s->nrevs * 2 > REVS_COMPACT_MIN ? s->nrevs * 2 : REVS_COMPACT_MIN;
}

static int scan_revoke(struct scan *s, char *why, size_t len)
{
    const struct jfmt_journal *j = s->j;
    unsigned rec = j->has_64bit ? 8 : 4;
    uint32_t count = jfmt_get_be32(s->blk + JFMT_HEADER_SIZE);
    int ret;

    if (!jfmt_tail_csum_ok(j, s->blk))
        s->need_check_commit_time = true;
    if (count > j->blocksize - (jfmt_csum_v23(j) ? JFMT_TAIL_SIZE : 0)) {
        jbd2_say(why, len, "revoke block of transaction %u has r_count %u beyond its block", s->seq,
                 count);
        return -EUCLEAN;
    }
    for (uint32_t off = JFMT_REVOKE_HEADER; off + rec <= count; off += rec) {
        struct revoke_rec *r;

        ret = grow((void **)&s->revs, &s->revs_cap, s->nrevs + 1, sizeof(*s->revs));
        if (ret)
            return ret;
        r = &s->revs[s->nrevs++];
        r->blk = rec == 8 ? jfmt_get_be64(s->blk + off) : jfmt_get_be32(s->blk + off);
        r->seq = s->seq;
        s->rev_records++;
    }
    if (s->nrevs > s->revs_limit)
        compact_revokes(s);
    return 0;
}

enum commit_verdict { COMMIT_OK, COMMIT_BAD, COMMIT_STALE };

/* Judge the commit block in s->blk (kernel: do_one_pass, JBD2_COMMIT_BLOCK
 * in PASS_SCAN). Returns the verdict, or -EUCLEAN for a transaction whose
 * descriptor or revoke block failed its checksum while its commit is
 * current. */
static int judge_commit(struct scan *s, char *why, size_t len)
{
    const struct jfmt_journal *j = s->j;
    uint64_t when = jfmt_get_be64(s->blk + JFMT_CB_COMMIT_SEC);
    bool ok;

    if (s->need_check_commit_time) {
        /* A commit no older than the previous one belongs to this log:
         * the bad checksum is corruption. An older one is a stale block
         * of a previous use of the journal: the log ends here. */
        if (when >= s->last_commit_time) {
            jbd2_say(why, len, "journal transaction %u has a block with a bad checksum", s->seq);
            return -EUCLEAN;
        }
        return COMMIT_STALE;
    }
    if (j->csum_v1) {
        uint32_t found = jfmt_get_be32(s->blk + JFMT_CB_CHKSUM0);
        uint8_t type = s->blk[JFMT_CB_CHKSUM_TYPE], size = s->blk[JFMT_CB_CHKSUM_SIZE];

        if (s->end_fixed) {
            /* The kernel: a commit after a bad one fails recovery. */
            s->failed_commit = true;
            return COMMIT_STALE;
        }
        ok = (found == s->v1_crc && type == JFMT_CRC32_CHKSUM && size == JFMT_CRC32_CHKSUM_SIZE) ||
             (type == 0 && size == 0 && found == 0);
        if (ok)
            s->v1_crc = ~0u;
    } else {
        ok = jfmt_commit_csum_ok(j, s->blk);
    }
    if (ok) {
        s->last_commit_time = when;
        return COMMIT_OK;
    }
    if (when < s->last_commit_time)
        return COMMIT_STALE;
    return COMMIT_BAD;
}

/* Scan the log; on return s->tags_committed / revs_committed delimit the
 * committed transactions and s->end_seq is the first tid not replayed. */
static int scan_log(struct scan *s, char *why, size_t len)
{
    const struct jfmt_journal *j = s->j;
    uint64_t loglen = j->last - j->first;
    int ret;

    s->pos = j->start;
    s->seq = j->sequence;
    s->v1_crc = ~0u;
    /* A real log is never longer than the log area: past it we would be
     * reading the blocks of this log again. */
    while (s->walked < loglen) {
        uint32_t type;

        ret = read_log(s, s->pos, s->blk, why, len);
        if (ret)
            return ret;
        advance(s);
        if (jfmt_get_be32(s->blk) != JFMT_MAGIC || jfmt_get_be32(s->blk + 8) != s->seq)
            break;
        type = jfmt_get_be32(s->blk + 4);
        if (type == JFMT_DESCRIPTOR) {
            ret = scan_descriptor(s, why, len);
        } else if (type == JFMT_REVOKE) {
            ret = scan_revoke(s, why, len);
        } else if (type == JFMT_COMMIT) {
            ret = judge_commit(s, why, len);
            if (ret < 0)
                return ret;
            if (ret == COMMIT_STALE)
                break;
            if (ret == COMMIT_BAD && !s->end_fixed) {
                s->end_fixed = true;
                s->end_seq = s->seq;
                if (!j->async_commit) {
                    s->failed_commit = true;
                    break;
                }
            }
            if (ret == COMMIT_OK && !s->end_fixed) {
                s->tags_committed = s->ntags;
                s->revs_committed = s->nrevs;
                s->rev_records_committed = s->rev_records;
                s->committed++;
            }
            s->seq++;
            ret = 0;
        } else {
            break;
        }
        if (ret)
            return ret;
    }
    if (!s->end_fixed)
        s->end_seq = s->seq;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Every home block of the committed transactions must be inside the file
 * system and not one of the journal's own blocks (which no transaction
 * logs; writing one would corrupt the log we are reading). An external
 * journal has no block in the file system. */
static int check_homes(struct scan *s, uint32_t map_len, char *why, size_t len)
{
    uint64_t *sorted = NULL;
    int ret = 0;

    if (s->dev->external)
        map_len = 0; /* nothing of the file system to keep clear */
    else if (!(sorted = malloc((size_t)map_len * sizeof(*sorted))))
        return -ENOMEM;
    if (map_len) {
        memcpy(sorted, s->map, (size_t)map_len * sizeof(*sorted));
        qsort(sorted, map_len, sizeof(*sorted), cmp_u64);
    }
    for (size_t i = 0; i < s->tags_committed && !ret; i++) {
        const struct tag_rec *t = &s->tags[i];

        if (t->home >= s->fs_blocks) {
            jbd2_say(why, len,
                     "journal transaction %u logs block %llu, beyond the file system's %llu blocks",
                     t->seq, (unsigned long long)t->home, (unsigned long long)s->fs_blocks);
            ret = -EUCLEAN;
        } else if (map_len && bsearch(&t->home, sorted, map_len, sizeof(*sorted), cmp_u64)) {
            jbd2_say(why, len,
                     "journal transaction %u logs block %llu, a block of the journal itself",
                     t->seq, (unsigned long long)t->home);
            ret = -EUCLEAN;
        }
    }
    free(sorted);
    return ret;
}

/* The fast-commit area (from journal block last + 1) holds a fast commit
 * to replay if it starts with a HEAD tag (ext4 fast_commit.h: le16 tag 9,
 * le16 length, le32 features, le32 tid) of the transaction after the last
 * full commit, which is what ext4's replay scan accepts first. We cannot
 * replay fast commits, so refuse rather than lose them. */
static int check_fast_commit(struct scan *s, char *why, size_t len)
{
    const struct jfmt_journal *j = s->j;
    const uint8_t *b = s->blk;
    int ret;

    if (!j->fast_commit || j->last + 1 >= j->maxlen)
        return 0;
    ret = read_log(s, j->last + 1, s->blk, why, len);
    if (ret)
        return ret;
    if ((b[0] | b[1] << 8) == 9 && (b[2] | b[3] << 8) >= 8 &&
        (uint32_t)(b[8] | b[9] << 8 | b[10] << 16 | (uint32_t)b[11] << 24) == s->end_seq) {
        jbd2_say(why, len,
                 "journal holds fast commits of transaction %u; replaying fast commits is not "
                 "supported (mount it with Linux or run e2fsck to recover it)",
                 s->end_seq);
        return -EOPNOTSUPP;
    }
    return 0;
}

/* A revoke record of transaction R cancels the block in transactions up to
 * and including R (jbd2_journal_test_revoke); @revs is sorted by block and
 * holds, per block, the newest revoking transaction. */
static bool is_revoked(const struct revoke_rec *revs, size_t n, const struct tag_rec *t)
{
    struct revoke_rec key = {.blk = t->home};
    const struct revoke_rec *r = n ? bsearch(&key, revs, n, sizeof(*revs), cmp_revoke) : NULL;

    return r && !jfmt_tid_gt(t->seq, r->seq);
}

/* A replay candidate: tags[idx] writes home block @home. */
struct replay_ref {
    uint64_t home;
    size_t idx;
};

/* By home block, newest version (largest log index) first. */
static int cmp_ref(const void *a, const void *b)
{
    const struct replay_ref *x = a, *y = b;

    if (x->home != y->home)
        return x->home < y->home ? -1 : 1;
    return x->idx < y->idx ? 1 : x->idx > y->idx ? -1 : 0;
}

static int replay(struct scan *s, struct jbd2_recover_stats *st, char *why, size_t len)
{
    const struct jfmt_journal *j = s->j;
    size_t n = s->tags_committed, nrevs = merge_revokes(s->revs, s->revs_committed);
    struct replay_ref *order = malloc((n ? n : 1) * sizeof(*order));
    uint64_t written_home = 0;
    bool any_written = false;
    int ret = 0;

    if (!order)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = (struct replay_ref){.home = s->tags[i].home, .idx = i};
    /* Home order makes the writes sequential; within a block, the newest
     * valid version wins, which is what replaying every version in log
     * order leaves behind. Every version is still read and verified, as
     * the kernel reports a bad checksum even on a superseded version. */
    qsort(order, n, sizeof(*order), cmp_ref);
    for (size_t k = 0; k < n && !ret; k++) {
        const struct tag_rec *t = &s->tags[order[k].idx];

        if (is_revoked(s->revs, nrevs, t)) {
            st->revoked++;
            continue;
        }
        ret = read_log(s, t->logblk, s->data, why, len);
        if (ret)
            break;
        if (!jfmt_tag_csum_ok(j, t->tag, t->seq, s->data)) {
            if (!st->csum_errors)
                jbd2_say(why, len,
                         "journal block %u (transaction %u, block %llu) has a bad checksum; "
                         "that block was not replayed",
                         t->logblk, t->seq, (unsigned long long)t->home);
            st->csum_errors++;
            continue;
        }
        if (any_written && written_home == t->home)
            continue; /* an older version of a block already written */
        if (jfmt_get_be16(t->tag + JFMT_TAG_FLAGS16) & JFMT_FLAG_ESCAPE)
            jfmt_put_be32(s->data, JFMT_MAGIC);
        ret = write_home(s, t->home, s->data);
        if (ret) {
            jbd2_say(why, len, "cannot write block %llu: %s", (unsigned long long)t->home,
                     strerror(-ret));
            break;
        }
        written_home = t->home;
        any_written = true;
        st->blocks_written++;
    }
    free(order);
    return ret;
}

static int sync_file(const struct scan *s, int fd, const char *what, char *why, size_t len)
{
    int err;

    if (s->put || fdatasync(fd) == 0)
        return 0;
    err = errno; /* before jbd2_say, which may change it */
    jbd2_say(why, len, "cannot sync the %s: %s", what, strerror(err));
    return -err;
}

static int sync_image(const struct scan *s, char *why, size_t len)
{
    return sync_file(s, s->dev->fd, "image", why, len);
}

/* The emptied journal superblock @jsb goes to the journal, after the
 * blocks replayed are durable (finish). In memory, an external journal's
 * is dropped: its file is no block of the file system the overlay serves. */
static int write_jsb(struct scan *s, const uint8_t *jsb, char *why, size_t len)
{
    int ret = 0;

    if (!s->dev->external)
        ret = write_home(s, s->map[0], jsb);
    else if (!s->put)
        ret = write_block(s->dev->journal_fd, 0, s->j->blocksize, s->map[0], jsb);
    if (ret) {
        jbd2_say(why, len, "cannot write the journal superblock: %s", strerror(-ret));
        return ret;
    }
    if (s->dev->external)
        return sync_file(s, s->dev->journal_fd, "external journal", why, len);
    return sync_image(s, why, len);
}

static int load_jsb(const struct jbd2_dev *dev, unsigned bs, uint64_t fs_blocks,
                    const uint64_t *map, uint32_t map_len, uint8_t *jsb, struct jfmt_journal *j,
                    char *why, size_t len)
{
    int ret;

    if (!map_len || (!dev->external && map[0] >= fs_blocks)) {
        jbd2_say(why, len, "the journal has no blocks inside the file system");
        return -EUCLEAN;
    }
    ret = read_journal_block(dev, bs, map[0], jsb);
    if (ret) {
        jbd2_say(why, len, "cannot read the journal superblock (block %llu): %s",
                 (unsigned long long)map[0], strerror(-ret));
        return ret;
    }
    ret = jfmt_sb_parse(jsb, bs, j, why, len);
    if (ret)
        return ret;
    if (j->maxlen > map_len) {
        jbd2_say(why, len, "journal superblock says %u blocks but the journal has only %u",
                 j->maxlen, map_len);
        return -EUCLEAN;
    }
    return 0;
}

static int finish(struct scan *s, uint8_t *jsb, struct jbd2_recover_stats *st, char *why,
                  size_t len)
{
    int ret = sync_image(s, why, len);

    if (ret)
        return ret;
    if (s->failed_commit) {
        jbd2_say(why, len,
                 "journal transaction %u is corrupt (bad commit block checksum); the %u "
                 "transactions before it were replayed",
                 s->end_seq, s->committed);
        return -EUCLEAN;
    }
    if (st->csum_errors)
        return -EUCLEAN; /* why was set by replay() */
    /* Restart the log one tid past the first one not replayed: blocks of
     * that (uncommitted) transaction may still lie in the log, and a new
     * transaction reusing its tid could be mistaken for it. */
    st->next_seq = s->end_seq + 1;
    jfmt_sb_set_tail(jsb, s->j, st->next_seq, 0);
    return write_jsb(s, jsb, why, len);
}

static int recover(const struct jbd2_dev *dev, jbd2_put_fn put, void *put_ctx,
                   unsigned fs_blocksize, uint64_t fs_blocks, const uint64_t *map, uint32_t map_len,
                   struct jbd2_recover_stats *st, char *why, size_t why_len)
{
    struct jfmt_journal j;
    struct scan s = {.j = &j,
                     .dev = dev,
                     .put = put,
                     .put_ctx = put_ctx,
                     .map = map,
                     .fs_blocks = fs_blocks,
                     .revs_limit = REVS_COMPACT_MIN};
    uint8_t *jsb = NULL;
    int ret;

    memset(st, 0, sizeof(*st));
    if (fs_blocksize < JFMT_SB_SIZE || fs_blocksize > 65536 ||
        (fs_blocksize & (fs_blocksize - 1))) {
        jbd2_say(why, why_len, "invalid block size %u", fs_blocksize);
        return -EINVAL;
    }
    /* the jsb, the block being parsed, a data block */
    jsb = malloc(3 * (size_t)fs_blocksize);
    if (!jsb)
        return -ENOMEM;
    ret = load_jsb(dev, fs_blocksize, fs_blocks, map, map_len, jsb, &j, why, why_len);
    if (ret)
        goto out_free;
    st->sb_errno = j.sb_errno;
    st->first_seq = j.sequence;
    if (!j.start) {
        st->was_empty = true;
        st->next_seq = j.sequence;
        goto out_free;
    }
    s.blk = jsb + fs_blocksize;
    s.data = jsb + 2 * (size_t)fs_blocksize;
    ret = scan_log(&s, why, why_len);
    if (!ret)
        ret = check_homes(&s, map_len, why, why_len);
    if (!ret)
        ret = check_fast_commit(&s, why, why_len);
    if (ret)
        goto out_free_scan;
    st->transactions = s.committed;
    st->last_seq = s.end_seq - 1;
    st->tags = s.tags_committed;
    st->revoke_records = s.rev_records_committed;
    ret = replay(&s, st, why, why_len);
    if (!ret)
        ret = finish(&s, jsb, st, why, why_len);
out_free_scan:
    free(s.tags);
    free(s.revs);
out_free:
    free(jsb);
    return ret;
}

int jbd2_recover(const struct jbd2_dev *dev, unsigned fs_blocksize, uint64_t fs_blocks,
                 const uint64_t *map, uint32_t map_len, struct jbd2_recover_stats *st, char *why,
                 size_t why_len)
{
    return recover(dev, NULL, NULL, fs_blocksize, fs_blocks, map, map_len, st, why, why_len);
}

int jbd2_recover_to(const struct jbd2_dev *dev, unsigned fs_blocksize, uint64_t fs_blocks,
                    const uint64_t *map, uint32_t map_len, jbd2_put_fn put, void *put_ctx,
                    struct jbd2_recover_stats *st, char *why, size_t why_len)
{
    return recover(dev, put, put_ctx, fs_blocksize, fs_blocks, map, map_len, st, why, why_len);
}
