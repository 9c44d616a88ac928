/* Metadata through the image's jbd2 journal (ordered mode).
 *
 * The running transaction is the set of dirty blocks iomgr.c holds: every
 * metadata write libext2fs makes between two commits. A commit, with the
 * file system quiescent (the fs layer holds its mount lock for writing, we
 * hold the disk lock):
 *
 *   1. capture   ext2fs_flush writes the superblock, group descriptors and
 *                bitmaps into the transaction too.
 *   2. log       descriptor + block copies at the log head;      fdatasync
 *                (this also makes the file data written straight
 *                home durable before anything that exposes it)
 *   3. commit    commit block, journal superblock pointing at the
 *                transaction;                                     fdatasync
 *                -- the transaction is durable: fsync may return --
 *   4. checkpoint  every block written home, not synced: the next
 *                commit's step 2 sync orders it before the journal
 *                superblock moves past this transaction.
 *
 * So the log holds at most one transaction that matters: the one the
 * journal superblock points at, already (or being) checkpointed. Replaying
 * it again is harmless, and no revoke records are ever needed, because:
 *  - a block freed in a transaction is dropped from the transaction
 *    (e2_iom_forget) and stays reserved in the in-memory block bitmap until
 *    the transaction is durable, so it cannot be reused as file data while
 *    an older logged copy of it could still be replayed;
 *  - a new transaction is placed after the previous one in the circular
 *    log; if it would overwrite the transaction the superblock points at,
 *    the superblock is first marked empty (after a sync).
 *
 * An external journal (jdev.h) is the same log in a file of its own:
 * the syncs of steps 2 and 4's successor cover both files (e2_iom_sync),
 * step 3's and the emptied superblock's only the journal's
 * (e2_iom_sync_journal), what they depend on being durable by then.
 *
 * A transaction too large for the log (one operation dirtying more
 * metadata than the journal holds) is written without the journal's
 * protection: the superblock is first marked not clean on disk, so a crash
 * in the middle makes e2fsck check the file system. */
#include "e2/iomgr.h"
#include "e2/e2_internal.h"
#include "jbd2/jfmt.h"
#include "e2/jmap.h"
#include "e2/jdev.h"
#include "base/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct reserved {
    uint64_t blk, count;
};

struct e2_journal {
    struct jfmt_journal j;
    uint64_t *map; /* journal block -> fs block */
    uint32_t maplen;
    uint32_t area_first, area_end; /* the circular log: [first, end) */
    uint32_t head;                 /* where the next transaction starts */
    uint32_t seq;                  /* the next transaction's sequence */
    /* What the journal superblock on disk points at (start 0: empty). */
    uint32_t tail_start, tail_len;
    unsigned char *sb; /* the journal superblock block, as on disk */
    /* Blocks freed since the last commit: reserved until it is durable. */
    struct reserved *freed;
    size_t nfreed, capfreed;
    /* The blocks of the clusters in @freed, at least: what the free count
     * holds more than the bitmap has free (a cluster noted twice counts
     * twice, which only overstates it). */
    uint64_t held;
    bool reserving; /* the callbacks re-mark freed blocks */
    bool lending;   /* the quota files may take them (flush_quota) */
    void (*old_stats)(ext2_filsys, blk64_t, int);
    void (*old_range)(ext2_filsys, blk64_t, blk_t, int);
};

static uint32_t area_len(const struct e2_journal *jn)
{
    return jn->area_end - jn->area_first;
}

static uint32_t log_next(const struct e2_journal *jn, uint32_t pos)
{
    return pos + 1 == jn->area_end ? jn->area_first : pos + 1;
}

/* ---- freed blocks ---- */

/* Append a held run; false if there is no memory for it. */
static bool hold_append(struct e2_journal *jn, blk64_t blk, blk64_t count)
{
    if (jn->nfreed == jn->capfreed) {
        size_t cap = jn->capfreed ? jn->capfreed * 2 : 64;
        struct reserved *v = realloc(jn->freed, cap * sizeof(*v));

        if (!v)
            return false;
        jn->freed = v;
        jn->capfreed = cap;
    }
    jn->freed[jn->nfreed].blk = blk;
    jn->freed[jn->nfreed].count = count;
    jn->nfreed++;
    return true;
}

static void note_freed(ext2_filsys fs, blk64_t blk, blk64_t count)
{
    struct e2_image *img = fs->priv_data;
    struct e2_journal *jn = img ? img->journal : NULL;

    if (!jn || !jn->reserving)
        return;
    e2_iom_forget(fs->io, blk, count);
    if (jn->nfreed && jn->freed[jn->nfreed - 1].blk + jn->freed[jn->nfreed - 1].count == blk) {
        jn->freed[jn->nfreed - 1].count += count;
    } else if (!hold_append(jn, blk, count)) {
        /* Cannot remember it: it is simply free now. The window this
         * opens (reuse before the commit) is logged. */
        log_err("journal: out of memory reserving freed blocks");
        return;
    }
    if (count)
        jn->held +=
            (EXT2FS_B2C(fs, blk + count - 1) - EXT2FS_B2C(fs, blk) + 1) * EXT2FS_CLUSTER_RATIO(fs);
    ext2fs_mark_block_bitmap_range2(fs->block_map, blk, (unsigned)count);
}

blk64_t e2_journal_held_locked(const struct e2_image *img)
{
    assert(mutex_is_held(&img->disk_lock));
    return img->journal ? img->journal->held : 0;
}

bool e2_journal_holds_locked(const struct e2_image *img, blk64_t blk)
{
    const struct e2_journal *jn = img->journal;
    ext2_filsys fs = img->fs;
    blk64_t c = EXT2FS_B2C(fs, blk);

    assert(mutex_is_held(&img->disk_lock));
    for (size_t i = 0; jn && i < jn->nfreed; i++) {
        if (jn->freed[i].count && c >= EXT2FS_B2C(fs, jn->freed[i].blk) &&
            c <= EXT2FS_B2C(fs, jn->freed[i].blk + jn->freed[i].count - 1))
            return true;
    }
    return false;
}

/* A held block's cluster was taken while lent (flush_quota): no longer
 * held, so that the commit's release leaves it marked. @held stays an
 * upper bound. */
static void unhold(ext2_filsys fs, struct e2_journal *jn, blk64_t blk)
{
    blk64_t lo = blk & ~(blk64_t)EXT2FS_CLUSTER_MASK(fs), hi = lo + EXT2FS_CLUSTER_RATIO(fs);

    for (size_t i = 0; i < jn->nfreed; i++) {
        struct reserved *r = &jn->freed[i];
        blk64_t end = r->blk + r->count;

        if (!r->count || end <= lo || r->blk >= hi)
            continue;
        if (r->blk < lo && end > hi && !hold_append(jn, hi, end - hi))
            log_err("journal: out of memory reserving freed blocks");
        r = &jn->freed[i]; /* hold_append may have moved the array */
        if (r->blk < lo) {
            r->count = lo - r->blk;
        } else {
            r->count = end > hi ? end - hi : 0;
            r->blk = hi;
        }
    }
}

static void stats_cb(ext2_filsys fs, blk64_t blk, int inuse)
{
    struct e2_image *img = fs->priv_data;

    if (inuse < 0)
        note_freed(fs, blk, 1);
    else if (inuse > 0 && img && img->journal && img->journal->lending)
        unhold(fs, img->journal, blk);
    if (img && img->journal && img->journal->old_stats)
        img->journal->old_stats(fs, blk, inuse);
}

static void range_cb(ext2_filsys fs, blk64_t blk, blk_t num, int inuse)
{
    struct e2_image *img = fs->priv_data;

    if (inuse < 0)
        note_freed(fs, blk, num);
    else if (inuse > 0 && img && img->journal && img->journal->lending) {
        for (blk_t i = 0; i < num; i++)
            unhold(fs, img->journal, blk + i);
    }
    if (img && img->journal && img->journal->old_range)
        img->journal->old_range(fs, blk, num, inuse);
}

/* Free (in the in-memory bitmap) or re-reserve the blocks freed since the
 * last commit. */
static void reserved_set(ext2_filsys fs, struct e2_journal *jn, bool reserve)
{
    for (size_t i = 0; i < jn->nfreed; i++) {
        if (reserve)
            ext2fs_mark_block_bitmap_range2(fs->block_map, jn->freed[i].blk,
                                            (unsigned)jn->freed[i].count);
        else
            ext2fs_unmark_block_bitmap_range2(fs->block_map, jn->freed[i].blk,
                                              (unsigned)jn->freed[i].count);
    }
}

static void reserved_release(ext2_filsys fs, struct e2_journal *jn)
{
    struct e2_image *img = fs->priv_data;

    reserved_set(fs, jn, false);
    jn->nfreed = 0;
    jn->held = 0;
    /* Partly freed clusters (bigalloc) are safe to write home again. */
    if (img)
        img->npartial = 0;
}

/* ---- the log ---- */

static int write_jsb(struct e2_image *img, uint32_t seq, uint32_t start)
{
    struct e2_journal *jn = img->journal;

    jfmt_sb_set_tail(jn->sb, &jn->j, seq, start);
    return e2_errno(e2_iom_write_journal(img->fs->io, jn->map[0], jn->sb));
}

struct emit_ctx {
    struct e2_image *img;
    uint32_t pos;
    int err;
};

static int emit_block(void *arg, const void *block)
{
    struct emit_ctx *c = arg;
    struct e2_journal *jn = c->img->journal;

    c->err = e2_errno(e2_iom_write_journal(c->img->fs->io, jn->map[c->pos], block));
    c->pos = log_next(jn, c->pos);
    return c->err;
}

/* Does [a, a+alen) meet [b, b+blen) in the circular area? */
static bool overlaps(const struct e2_journal *jn, uint32_t a, uint32_t alen, uint32_t b,
                     uint32_t blen)
{
    uint32_t n = area_len(jn), da = a - jn->area_first, db = b - jn->area_first;
    uint32_t d = (db + n - da) % n; /* b's distance ahead of a */

    if (!alen || !blen)
        return false;
    return d < alen || (n - d) % n < blen;
}

/* Mark the log empty on disk (after making every checkpoint durable). */
static int log_reset(struct e2_image *img)
{
    struct e2_journal *jn = img->journal;
    int ret = e2_errno(e2_iom_sync(img->fs->io));

    if (!ret)
        ret = write_jsb(img, jn->seq, 0);
    if (!ret)
        ret = e2_errno(e2_iom_sync_journal(img->fs->io));
    if (!ret) {
        jn->tail_start = 0;
        jn->tail_len = 0;
    }
    return ret;
}

/* A transaction the log cannot hold: home without the journal, the
 * superblock on disk marked not clean meanwhile. */
static int commit_unjournaled(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    struct ext2_super_block sb;
    int ret;

    log_warn("journal: a transaction of %zu blocks does not fit the %u-block journal of '%s'; "
             "writing it unprotected (a crash now leaves the image to e2fsck)",
             e2_iom_dirty_count(fs->io), area_len(img->journal), img->path);
    ret = log_reset(img);
    if (ret)
        return ret;
    memcpy(&sb, fs->super, sizeof(sb));
    sb.s_state &= (uint16_t)~EXT2_VALID_FS;
    ext2fs_superblock_csum_set(fs, &sb);
    /* The superblock is 1024 bytes at byte 1024 whatever the block size. */
    {
        unsigned bs = fs->blocksize;
        uint64_t blk = 1024 / bs;
        unsigned char *b = malloc(bs);
        if (!b)
            return -ENOMEM;
        ret = e2_errno(e2_iom_read_raw(fs->io, blk, b));
        if (!ret) {
            memcpy(b + 1024 % bs, &sb, sizeof(sb));
            ret = e2_errno(e2_iom_write_data(fs->io, blk, 1, b));
        }
        free(b);
    }
    if (!ret)
        ret = e2_errno(e2_iom_sync(fs->io));
    if (!ret)
        ret = e2_errno(e2_iom_checkpoint(fs->io));
    if (!ret)
        ret = e2_errno(e2_iom_sync(fs->io));
    return ret;
}

static void put_block(void *ctx, size_t i, uint64_t blk, const void *data)
{
    struct jfmt_block *v = ctx;

    v[i].home = blk;
    v[i].data = data;
}

/* Step 1, capture: libext2fs's in-memory metadata into the transaction,
 * the bitmaps written showing this transaction's frees (the blocks they
 * free stay reserved in memory). *@n gets the transaction's size. */
static int capture(struct e2_image *img, size_t *n)
{
    ext2_filsys fs = img->fs;
    int ret;

    reserved_set(fs, img->journal, false);
    ret = e2_errno(ext2fs_flush2(fs, EXT2_FLAG_FLUSH_NO_SYNC));
    reserved_set(fs, img->journal, true);
    if (!ret)
        *n = e2_iom_dirty_count(fs->io);
    return ret;
}

/* An empty transaction: nothing to log, but this is a durability point
 * all the same: the transaction the log still points at must not be
 * replayed any more, or its copies of blocks that file data has since
 * overwritten in place (blocks libext2fs's file API logged) would come
 * back. Retiring it also syncs the data. */
static int commit_empty(struct e2_image *img)
{
    reserved_release(img->fs, img->journal);
    if (img->journal->tail_start)
        return log_reset(img);
    return e2_errno(e2_iom_sync(img->fs->io));
}

/* Step 2, log: the descriptor and copies of the @n blocks @v from the log
 * head, synced. *@end gets the log block after them (the commit block's
 * place), *@v1_crc the v1 transaction checksum. */
static int write_log(struct e2_image *img, const struct jfmt_block *v, size_t n, uint32_t *end,
                     uint32_t *v1_crc)
{
    struct e2_journal *jn = img->journal;
    struct emit_ctx ec = {.img = img, .pos = jn->head, .err = 0};
    int ret;

    ret = jfmt_txn_emit(&jn->j, jn->seq, v, n, NULL, 0, emit_block, &ec, v1_crc);
    if (!ret)
        ret = ec.err;
    if (!ret)
        ret = e2_errno(e2_iom_sync(img->fs->io));
    *end = ec.pos;
    return ret;
}

/* Step 3, commit: the commit block at log block @end and the journal
 * superblock pointing at the transaction, synced; the transaction (@need
 * log blocks from the head) is then durable and the log's tail, and the
 * head moves past it. @cblk is a block-sized buffer. */
static int write_commit(struct e2_image *img, uint32_t end, uint32_t need, uint32_t v1_crc,
                        unsigned char *cblk)
{
    struct e2_journal *jn = img->journal;
    struct timespec now;
    int ret;

    clock_gettime(CLOCK_REALTIME, &now);
    jfmt_commit_block(&jn->j, jn->seq, &now, v1_crc, cblk);
    ret = e2_errno(e2_iom_write_journal(img->fs->io, jn->map[end], cblk));
    if (!ret)
        ret = write_jsb(img, jn->seq, jn->head);
    /* The journal's file alone: step 2 made the log and the image durable. */
    if (!ret)
        ret = e2_errno(e2_iom_sync_journal(img->fs->io));
    if (ret)
        return ret;
    jn->tail_start = jn->head;
    jn->tail_len = need;
    jn->head = log_next(jn, end);
    jn->seq++;
    return 0;
}

/* The quota files grow at the flush before the commit, when an id first
 * gets an entry, and cannot at ENOSPC. On a full file system whose only
 * free blocks are held until this commit, that flush, and with it every
 * commit, would fail for good. So the blocks held are lent to it: the
 * quota files are metadata written through this transaction, which
 * replaces any older logged copy of a block they take, and nothing of it
 * reaches home before the commit. What they take is held no more. */
static int flush_quota(struct e2_image *img)
{
    struct e2_journal *jn = img->journal;
    int ret;

    reserved_set(img->fs, jn, false);
    jn->lending = true;
    ret = e2_quota_flush_locked(img);
    jn->lending = false;
    reserved_set(img->fs, jn, true);
    return ret;
}

int e2_journal_commit_locked(struct e2_image *img)
{
    struct e2_journal *jn = img->journal;
    ext2_filsys fs = img->fs;
    struct jfmt_block *v = NULL;
    unsigned char *cblk = NULL;
    uint32_t v1_crc = 0, need, end;
    uint64_t log_blocks;
    size_t n;
    int ret;

    /* The quota files commit with the changes they count. */
    ret = flush_quota(img);
    if (!ret)
        ret = capture(img, &n);
    if (ret)
        return ret;
    if (!n)
        return commit_empty(img);
    log_blocks = jfmt_txn_log_blocks(&jn->j, n, 0);
    if (log_blocks >= area_len(jn)) {
        ret = commit_unjournaled(img);
        if (!ret)
            reserved_release(fs, jn);
        return ret;
    }
    need = (uint32_t)log_blocks; /* below area_len: fits */
    if (jn->tail_start && overlaps(jn, jn->head, need, jn->tail_start, jn->tail_len)) {
        ret = log_reset(img);
        if (ret)
            return ret;
    }
    cblk = malloc(fs->blocksize);
    v = malloc(n * sizeof(*v));
    if (!cblk || !v) {
        ret = -ENOMEM;
        goto out_free;
    }
    ret = e2_errno(e2_iom_dirty_foreach(fs->io, put_block, v));
    if (!ret)
        ret = write_log(img, v, n, &end, &v1_crc);
    if (!ret)
        ret = write_commit(img, end, need, v1_crc, cblk);
    if (ret)
        goto out_free;
    /* Step 4, checkpoint: home, not synced (the next commit's log sync
     * orders it before the journal superblock moves past). */
    ret = e2_errno(e2_iom_checkpoint(fs->io));
    reserved_release(fs, jn);
out_free:
    free(cblk);
    free(v);
    if (ret)
        log_err("journal: commit to '%s' failed: %s", img->path, strerror(-ret));
    return ret;
}

/* ---- EXT4_IOC_CHECKPOINT ---- */

/* The physical run [@blk, @blk + @n) of the journal: zeros written over
 * it (@zeros, a block of them), or a hole punched in its file, as a loop
 * device turns a discard into one. */
static int erase_run(struct e2_image *img, uint64_t blk, uint64_t n, const void *zeros)
{
    ext2_filsys fs = img->fs;
    int fd = img->jdev ? img->jdev->fd : e2_iom_fd(fs->io);
    uint64_t base = img->jdev ? 0 : e2_iom_base(fs->io);

    for (uint64_t i = 0; zeros && i < n; i++) {
        int ret = e2_errno(e2_iom_write_journal(fs->io, blk + i, zeros));
        if (ret)
            return ret;
    }
    if (!zeros && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            (off_t)(base + blk * fs->blocksize), (off_t)(n * fs->blocksize)) < 0)
        return -errno;
    return 0;
}

/* What jbd2's __jbd2_journal_erase() erases: every block of the journal
 * but its superblock (from s_first to s_maxlen), by physical runs; then
 * the journal's file synced, as it issues a flush. */
static int erase_log(struct e2_image *img, bool zero)
{
    struct e2_journal *jn = img->journal;
    uint32_t end = jn->j.maxlen < jn->maplen ? jn->j.maxlen : jn->maplen;
    void *zeros = zero ? calloc(1, img->fs->blocksize) : NULL;
    int ret = 0;

    if (zero && !zeros)
        return -ENOMEM;
    for (uint32_t i = jn->j.first, k; !ret && i < end; i = k) {
        for (k = i + 1; k < end && jn->map[k] == jn->map[k - 1] + 1; k++)
            ;
        ret = erase_run(img, jn->map[i], k - i, zeros);
    }
    if (!ret)
        ret = e2_errno(e2_iom_sync_journal(img->fs->io));
    free(zeros);
    return ret;
}

int e2_journal_flush_locked(struct e2_image *img, unsigned how)
{
    int ret = e2_journal_commit_locked(img);

    /* log_reset() syncs every checkpointed block before it marks the log
     * empty; the erase comes after, so that a crash in the middle of it
     * leaves an empty log, never a superblock pointing at zeros. */
    if (!ret)
        ret = log_reset(img);
    if (!ret && (how & (E2_CHECKPOINT_DISCARD | E2_CHECKPOINT_ZEROOUT)))
        ret = erase_log(img, how & E2_CHECKPOINT_ZEROOUT);
    if (ret)
        log_err("journal: checkpoint of '%s' failed: %s", img->path, strerror(-ret));
    return ret;
}

bool e2_has_reserved_blocks(struct e2_image *img)
{
    bool ret;

    e2_lock(img);
    ret = img->journal && img->journal->nfreed;
    e2_unlock(img);
    return ret;
}

/* A quarter of the log, as jbd2 bounds its transactions. */
static bool wants_commit(const struct e2_journal *jn, size_t dirty)
{
    return dirty * 4 > area_len(jn);
}

/* Half the log: the commit thread was asked at a quarter and has not got
 * the mount lock since (namespace operations in a tight loop take it for
 * writing too, and a loaded machine may not run the thread). */
static bool commit_overdue(const struct e2_journal *jn, size_t dirty)
{
    return dirty * 2 > area_len(jn);
}

bool e2_journal_wants_commit(const struct e2_image *img)
{
    return img->journal && wants_commit(img->journal, e2_iom_dirty_count(img->fs->io));
}

void e2_step_end_locked(struct e2_image *img)
{
    size_t dirty;

    assert(mutex_is_held(&img->disk_lock));
    if (!img->journal)
        return;
    dirty = e2_iom_dirty_count(img->fs->io);
    if (!img->commit_asked && img->commit_wanted && wants_commit(img->journal, dirty)) {
        img->commit_asked = true;
        img->commit_wanted(img->commit_arg);
    }
    if (img->commit_asked && !atomic_load_explicit(&img->commit_overdue, memory_order_relaxed) &&
        commit_overdue(img->journal, dirty))
        atomic_store(&img->commit_overdue, true);
}

/* Tests only: UEXT4_TEST_LOG_BLOCKS=N uses just N blocks of the log, so
 * that ordinary operations outgrow it (commit_unjournaled). */
static void test_log_limit(struct e2_journal *jn)
{
    const char *s = UEXT4_TEST_HOOKS ? getenv("UEXT4_TEST_LOG_BLOCKS") : NULL;
    unsigned long n = s ? strtoul(s, NULL, 10) : 0;

    if (n >= 8 && n < jn->area_end - jn->area_first)
        jn->area_end = jn->area_first + (uint32_t)n;
}

/* The journal's block map (its inode's, or an external journal's, whose
 * file the I/O manager then writes) and its superblock, parsed. */
static int journal_read_sb(struct e2_image *img, struct e2_journal *jn, char *why, size_t why_len)
{
    ext2_filsys fs = img->fs;
    int ret = 0;

    if (img->jdev) {
        jn->map = e2_jdev_map_dup(img->jdev);
        jn->maplen = img->jdev->maplen;
        if (!jn->map)
            return -ENOMEM;
        e2_iom_set_journal_file(fs->io, img->jdev->fd);
    } else {
        ret = e2_journal_map_load(fs, &jn->map, &jn->maplen, why, why_len);
    }
    if (ret)
        return ret;
    jn->sb = malloc(fs->blocksize);
    if (!jn->sb)
        return -ENOMEM;
    ret = e2_errno(e2_iom_read_journal(fs->io, jn->map[0], jn->sb));
    if (!ret)
        ret = jfmt_sb_parse(jn->sb, fs->blocksize, &jn->j, why, why_len);
    return ret;
}

/* A journal we may write: empty, within its inode, every block in use. */
static int journal_check(struct e2_image *img, struct e2_journal *jn, char *why, size_t why_len)
{
    if (jn->j.maxlen > jn->maplen || jn->j.start) {
        /* Transactions with needs_recovery clear: the kernel would drop
         * them; e2fsck replays them. Neither is uext4's to choose. */
        snprintf(why, why_len, "the journal of '%s' %s; run 'e2fsck -fy' on it first", img->path,
                 jn->j.start ? "still holds transactions" : "is longer than its inode");
        return -EUCLEAN;
    }
    /* An external journal's blocks are no blocks of the file system. */
    for (uint32_t i = 0; i < jn->maplen && !img->jdev; i++) {
        if (!ext2fs_test_block_bitmap2(img->fs->block_map, jn->map[i])) {
            /* Free by the bitmap: it could be allocated to a file. */
            snprintf(why, why_len, "journal block %u of '%s' (block %llu) is marked free", i,
                     img->path, (unsigned long long)jn->map[i]);
            return -EUCLEAN;
        }
    }
    jn->area_first = jn->j.first;
    jn->area_end = jn->j.last;
    test_log_limit(jn);
    if (jn->area_end <= jn->area_first + 8) {
        snprintf(why, why_len, "the journal of '%s' is too small to use", img->path);
        return -EUCLEAN;
    }
    return 0;
}

int e2_journal_load(struct e2_image *img, struct e2_journal **out, char *why, size_t why_len)
{
    struct e2_journal *jn = calloc(1, sizeof(*jn));
    int ret;

    *out = NULL;
    if (!jn)
        return -ENOMEM;
    ret = journal_read_sb(img, jn, why, why_len);
    if (!ret)
        ret = journal_check(img, jn, why, why_len);
    if (ret) {
        e2_journal_free(jn);
        return ret;
    }
    *out = jn;
    return 0;
}

void e2_journal_free(struct e2_journal *jn)
{
    if (jn) {
        free(jn->sb);
        free(jn->map);
        free(jn);
    }
}

void e2_journal_start(struct e2_image *img, struct e2_journal *jn)
{
    ext2_filsys fs = img->fs;

    jn->head = jn->area_first;
    jn->seq = jn->j.sequence;
    jn->reserving = true;
    img->journal = jn;
    fs->priv_data = img;
    ext2fs_set_block_alloc_stats_callback(fs, stats_cb, &jn->old_stats);
    ext2fs_set_block_alloc_stats_range_callback(fs, range_cb, &jn->old_range);
    e2_iom_set_journaled(fs->io, true);
}

int e2_journal_stop_locked(struct e2_image *img)
{
    struct e2_journal *jn = img->journal;
    ext2_filsys fs = img->fs;
    int ret;

    if (!jn)
        return 0;
    if (e2_iom_failed(fs->io)) {
        /* An earlier write failed: leave the log as it is, for the next
         * mount to replay (image.c writes nothing more). */
        ret = -EIO;
    } else {
        ret = e2_journal_commit_locked(img);
        if (!ret) {
            /* Empty log, then no recovery needed: in that order, so that
             * a crash in between leaves nothing e2fsck would replay. */
            ret = log_reset(img);
        }
    }
    jn->reserving = false;
    reserved_release(fs, jn);
    /* After a failed commit (the quota files could not grow at ENOSPC),
     * stay journaled: the close then writes nothing home, where bitmaps
     * and inodes newer than the log, which still asks to be replayed,
     * would be mixed with it. The image keeps the last commit. */
    if (!ret)
        e2_iom_set_journaled(fs->io, false);
    ext2fs_set_block_alloc_stats_callback(fs, jn->old_stats, NULL);
    ext2fs_set_block_alloc_stats_range_callback(fs, jn->old_range, NULL);
    if (!ret)
        ext2fs_clear_feature_journal_needs_recovery(fs->super);
    ext2fs_mark_super_dirty(fs);
    img->journal = NULL;
    free(jn->freed);
    free(jn->sb);
    free(jn->map);
    free(jn);
    return ret;
}
