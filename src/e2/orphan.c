/* The orphan list: inodes whose last link is gone while they are still
 * open. ext4 chains them from s_last_orphan through i_dtime; an inode on
 * the list when the image is mounted again (the daemon was killed) is
 * freed then, as the kernel's ext4_orphan_cleanup() and e2fsck do. With a
 * journal the unlink and the list insertion commit together, so a crash
 * never leaves an unreferenced inode behind.
 *
 * The orphan file (compat orphan_file): the kernel records its orphans as
 * inode numbers in the blocks of the inode s_orphan_file_inum (each block
 * ends with a magic and, with metadata_csum, a checksum) and keeps
 * ro_compat orphan_present set while it is mounted read-write. A
 * read-write open releases what a crashed kernel left there, after the
 * list, as ext4_orphan_cleanup() does, then clears orphan_present.
 *
 * Our own orphans stay on the s_last_orphan list even when the image has
 * an orphan file: the kernel and e2fsck read both, the list costs one
 * inode write in the unlink's transaction, and an orphan file slot would
 * need a free-slot search and a checksummed block write per unlink for no
 * gain in a daemon whose writes are serialised by one lock anyway. Since
 * we never write an entry, orphan_present stays clear while we run: it
 * means "the orphan file may hold entries". */
#include "e2/e2_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_valid_orphan(ext2_filsys fs, ext2_ino_t ino)
{
    return ino >= EXT2_FIRST_INODE(fs->super) && ino <= fs->super->s_inodes_count;
}

/* The list's back links: for each inode on it, the inode whose i_dtime
 * names it (0: the superblock's s_last_orphan), so that taking an inode
 * off the list costs one inode read, not a walk from the head. ext4 keeps
 * the list doubly linked in memory (sbi->s_orphan) for the same reason:
 * every O_TMPFILE and every file unlinked while open is on it, and
 * thousands of them closed oldest first (fstests generic/531 opens 20,000
 * per process) made each close walk the whole list under the image lock.
 * Built by one walk when a removal below the head first needs it, kept
 * by every change of the list after that, dropped (and built again when
 * needed) whenever the list on disk is not what it says. An open
 * addressing table keyed by inode number (0 never is one). */
struct e2_orphan_links {
    uint32_t *ino, *prev;
    size_t cap, used; /* cap: a power of two */
};

static size_t links_slot(const struct e2_orphan_links *l, uint32_t ino)
{
    size_t i = (size_t)(ino * 0x9E3779B1u) & (l->cap - 1);

    while (l->ino[i] && l->ino[i] != ino)
        i = (i + 1) & (l->cap - 1);
    return i;
}

static int links_grow(struct e2_orphan_links *l)
{
    struct e2_orphan_links n = {.cap = l->cap ? l->cap * 2 : 64};

    n.ino = calloc(n.cap, sizeof(*n.ino));
    n.prev = calloc(n.cap, sizeof(*n.prev));
    if (!n.ino || !n.prev) {
        free(n.ino);
        free(n.prev);
        return -ENOMEM;
    }
    for (size_t i = 0; i < l->cap; i++) {
        if (l->ino[i]) {
            size_t j = links_slot(&n, l->ino[i]);
            n.ino[j] = l->ino[i];
            n.prev[j] = l->prev[i];
            n.used++;
        }
    }
    free(l->ino);
    free(l->prev);
    *l = n;
    return 0;
}

static int links_set(struct e2_orphan_links *l, uint32_t ino, uint32_t prev)
{
    size_t i;

    if ((l->used + 1) * 4 > l->cap * 3 && links_grow(l))
        return -ENOMEM;
    i = links_slot(l, ino);
    l->used += !l->ino[i];
    l->ino[i] = ino;
    l->prev[i] = prev;
    return 0;
}

/* Remove @ino, moving later entries of its probe run back into the gap
 * (no tombstones). */
static void links_del(struct e2_orphan_links *l, uint32_t ino)
{
    size_t i = links_slot(l, ino), j = i;

    if (!l->ino[i])
        return;
    l->ino[i] = 0;
    l->used--;
    for (;;) {
        size_t home;

        j = (j + 1) & (l->cap - 1);
        if (!l->ino[j])
            return;
        home = (size_t)(l->ino[j] * 0x9E3779B1u) & (l->cap - 1);
        /* Entry j may fill the gap at i unless its home lies in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            l->ino[i] = l->ino[j];
            l->prev[i] = l->prev[j];
            l->ino[j] = 0;
            i = j;
        }
    }
}

void e2_orphan_links_free(struct e2_image *img)
{
    if (img->orphan_links) {
        free(img->orphan_links->ino);
        free(img->orphan_links->prev);
        free(img->orphan_links);
        img->orphan_links = NULL;
    }
}

/* Walk the list once and record every back link. */
static int links_build_locked(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    struct e2_orphan_links *l = calloc(1, sizeof(*l));
    ext2_ino_t cur = fs->super->s_last_orphan, prev = 0;
    uint32_t steps = 0;
    int ret = l ? 0 : -ENOMEM;

    img->orphan_links = l;
    while (!ret && cur && is_valid_orphan(fs, cur) && steps++ < fs->super->s_inodes_count) {
        struct ext2_inode_large in;

        ret = links_set(l, cur, prev);
        if (!ret)
            ret = e2_read_inode_locked(img, cur, &in);
        if (ret)
            break;
        prev = cur;
        cur = in.i_dtime;
    }
    if (ret)
        e2_orphan_links_free(img);
    return ret;
}

/* @ino went off the list; @next (0: none) now follows @prev. */
static void links_unlinked(struct e2_image *img, uint32_t ino, uint32_t prev, uint32_t next)
{
    struct e2_orphan_links *l = img->orphan_links;

    if (!l)
        return;
    links_del(l, ino);
    if (next && links_set(l, next, prev))
        e2_orphan_links_free(img);
}

int e2_orphan_add(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    uint32_t head;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    head = img->fs->super->s_last_orphan;
    in.i_dtime = head;
    ret = e2_write_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    img->fs->super->s_last_orphan = ino;
    ext2fs_mark_super_dirty(img->fs);
    if (img->orphan_links &&
        (links_set(img->orphan_links, ino, 0) ||
         (is_valid_orphan(img->fs, head) && links_set(img->orphan_links, head, ino))))
        e2_orphan_links_free(img);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* Take @ino off the list by walking it from the head: without back links
 * (no memory for them), or where they disagree with the list. */
static int remove_by_walk_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in)
{
    ext2_filsys fs = img->fs;
    ext2_ino_t cur = fs->super->s_last_orphan;
    struct ext2_inode_large prev;
    uint32_t steps = 0;
    int ret;

    while (cur && is_valid_orphan(fs, cur) && steps++ < fs->super->s_inodes_count) {
        ret = e2_read_inode_locked(img, cur, &prev);
        if (ret)
            return ret;
        if (prev.i_dtime == ino) {
            prev.i_dtime = in->i_dtime;
            in->i_dtime = 0;
            return e2_write_inode_locked(img, cur, &prev);
        }
        cur = prev.i_dtime;
    }
    return 0; /* not on the list */
}

int e2_orphan_remove_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in)
{
    ext2_filsys fs = img->fs;
    uint32_t next = is_valid_orphan(fs, in->i_dtime) ? in->i_dtime : 0, p;
    struct ext2_inode_large prev;
    size_t slot;
    int ret;

    if (!fs->super->s_last_orphan)
        return 0;
    if (fs->super->s_last_orphan == ino) {
        fs->super->s_last_orphan = next;
        ext2fs_mark_super_dirty(fs);
        in->i_dtime = 0;
        links_unlinked(img, ino, 0, next);
        return 0;
    }
    if (!img->orphan_links) {
        ret = links_build_locked(img);
        if (ret)
            return ret == -ENOMEM ? remove_by_walk_locked(img, ino, in) : ret;
    }
    slot = links_slot(img->orphan_links, ino);
    if (!img->orphan_links->ino[slot])
        return 0; /* not on the list */
    p = img->orphan_links->prev[slot];
    ret = p ? e2_read_inode_locked(img, p, &prev) : 0;
    if (ret) {
        e2_orphan_links_free(img);
        return ret;
    }
    if (!p || prev.i_dtime != ino) {
        /* The links disagree with the list: the list is the truth. */
        e2_orphan_links_free(img);
        return remove_by_walk_locked(img, ino, in);
    }
    prev.i_dtime = in->i_dtime;
    in->i_dtime = 0;
    ret = e2_write_inode_locked(img, p, &prev);
    if (ret)
        e2_orphan_links_free(img);
    else
        links_unlinked(img, ino, p, next);
    return ret;
}

int e2_orphan_remove(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (!ret)
        ret = e2_orphan_remove_locked(img, ino, &in);
    if (!ret)
        ret = e2_write_inode_locked(img, ino, &in);
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_orphans_release(struct e2_image *img)
{
    int ret;

    e2_lock(img);
    img->closing = true;
    ret = img->read_only ? 0 : e2_orphan_cleanup_locked(img);
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* An orphan left by the last session must map no block of the system
 * zone (sysz.c): releasing it would mark, say, an inode table or the
 * journal free in the bitmap, for the next allocation to write over.
 * Checked before anything changes (the release takes the inode off the
 * list first). At open only: this session's own orphans were checked when
 * their last name went (e2_inode_may_free). */
static int orphan_blocks_ok_locked(struct e2_image *img, ext2_ino_t ino,
                                   struct ext2_inode_large *in)
{
    int ret;

    if (img->closing || (in->i_flags & EXT4_INLINE_DATA_FL) ||
        !ext2fs_inode_has_valid_blocks2(img->fs, (struct ext2_inode *)in))
        return 0;
    ret = e2_sysz_check_free_locked(img, ino, in, 0, ~0ULL);
    if (ret)
        log_err("'%s': orphan inode %u not released: %s", img->path, ino,
                ret == -EUCLEAN ? "its blocks lie (above)" : strerror(-ret));
    return ret;
}

/* Release orphan @ino: truncated past i_size if it still has links (ext4
 * lists inodes mid-truncate too), else freed; taken off the s_last_orphan
 * list either way. Counts frees in *@freed. */
static int release_one_locked(struct e2_image *img, ext2_ino_t ino, uint32_t *freed)
{
    ext2_filsys fs = img->fs;
    struct ext2_inode_large in;
    int ret;

    ret = e2_read_inode_locked(img, ino, &in);
    if (!ret)
        ret = orphan_blocks_ok_locked(img, ino, &in);
    if (ret)
        return ret;
    if (in.i_links_count) {
        uint64_t bs = fs->blocksize, keep = (EXT2_I_SIZE(&in) + bs - 1) / bs;

        ret = e2_orphan_remove_locked(img, ino, &in); /* the list's head: O(1) */
        if (!ret && !(in.i_flags & EXT4_INLINE_DATA_FL) &&
            ext2fs_inode_has_valid_blocks2(fs, (struct ext2_inode *)&in))
            ret = e2_punch_locked(img, ino, &in, keep, ~0ULL);
        if (!ret)
            ret = e2_write_inode_locked(img, ino, &in);
    } else {
        ret = e2_inode_free_locked(img, ino);
        (*freed)++;
    }
    /* Thousands of orphans at once (a mount after a crash, or a close
     * with many unlinked files open): commit as the log fills. */
    if (!ret && img->journal && e2_journal_wants_commit(img))
        ret = e2_journal_commit_locked(img);
    return ret;
}

int e2_orphan_cleanup_locked(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    uint32_t freed = 0, steps = 0;
    int ret = 0;

    while (fs->super->s_last_orphan && !ret) {
        ext2_ino_t ino = fs->super->s_last_orphan;

        /* A free inode is no orphan: its release would do nothing and
         * leave it at the head, once per inode of the file system. */
        if (!is_valid_orphan(fs, ino) || !ext2fs_test_inode_bitmap2(fs->inode_map, ino) ||
            steps++ > fs->super->s_inodes_count) {
            log_warn("'%s': orphan list damaged at inode %u; dropping the rest of it", img->path,
                     ino);
            fs->super->s_last_orphan = 0;
            ext2fs_mark_super_dirty(fs);
            e2_orphan_links_free(img);
            break;
        }
        ret = release_one_locked(img, ino, &freed);
    }
    if (freed && !img->closing)
        log_notice("'%s': freed %u orphan inode%s left by an unclean shutdown", img->path, freed,
                   freed == 1 ? "" : "s");
    return ret;
}

/* Inodes the superblock names for its own use, which no orphan file entry
 * may release even where they are ordinary inode numbers (a project quota
 * file is one; a lying superblock can name any). */
static bool is_sb_inode(ext2_filsys fs, ext2_ino_t ino)
{
    const struct ext2_super_block *sb = fs->super;

    return ino == sb->s_orphan_file_inum || ino == sb->s_journal_inum ||
           ino == sb->s_usr_quota_inum || ino == sb->s_grp_quota_inum ||
           ino == sb->s_prj_quota_inum;
}

/* Release the orphans listed in block @lblk (physical @pblk) of the
 * orphan file @of_ino (generation @gen) and zero their slots. */
static int orphan_file_block_locked(struct e2_image *img, ext2_ino_t of_ino, uint32_t gen,
                                    blk64_t lblk, blk64_t pblk, char *buf, uint32_t *freed)
{
    ext2_filsys fs = img->fs;
    struct ext4_orphan_block_tail *tail = ext2fs_orphan_block_tail(fs, buf);
    uint32_t *slot = (uint32_t *)buf;
    int per_block = ext2fs_inodes_per_orphan_block(fs);
    bool changed = false;
    int ret = 0;

    ret = e2_errno(io_channel_read_blk64(fs->io, pblk, 1, buf));
    if (ret)
        return ret;
    if (ext2fs_le32_to_cpu(tail->ob_magic) != EXT4_ORPHAN_BLOCK_MAGIC ||
        (ext2fs_has_feature_metadata_csum(fs->super) &&
         ext2fs_le32_to_cpu(tail->ob_checksum) !=
             ext2fs_do_orphan_file_block_csum(fs, of_ino, gen, pblk, buf))) {
        log_err("'%s': block %llu of the orphan file (inode %u) has a bad %s", img->path,
                (unsigned long long)lblk, of_ino,
                ext2fs_le32_to_cpu(tail->ob_magic) != EXT4_ORPHAN_BLOCK_MAGIC ? "magic"
                                                                              : "checksum");
        return -EUCLEAN;
    }
    for (int i = 0; i < per_block && !ret; i++) {
        ext2_ino_t ino = ext2fs_le32_to_cpu(slot[i]);

        if (!ino)
            continue;
        if (!is_valid_orphan(fs, ino) || ino == of_ino || is_sb_inode(fs, ino) ||
            !ext2fs_test_inode_bitmap2(fs->inode_map, ino))
            log_warn("'%s': orphan file entry %u names inode %u, which is reserved, the "
                     "superblock's own or not in use; dropped",
                     img->path, i, ino);
        else
            ret = release_one_locked(img, ino, freed);
        if (!ret) {
            slot[i] = 0;
            changed = true;
        }
    }
    if (changed && ext2fs_has_feature_metadata_csum(fs->super))
        tail->ob_checksum =
            ext2fs_cpu_to_le32(ext2fs_do_orphan_file_block_csum(fs, of_ino, gen, pblk, buf));
    if (changed && !ret)
        ret = e2_errno(io_channel_write_blk64(fs->io, pblk, 1, buf));
    return ret;
}

int e2_orphan_file_cleanup_locked(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    ext2_ino_t of_ino = fs->super->s_orphan_file_inum;
    struct ext2_inode_large of;
    uint32_t freed = 0;
    uint64_t nblocks;
    char *buf;
    int ret;

    if (!ext2fs_has_feature_orphan_file(fs->super))
        return 0;
    if (!of_ino || of_ino > fs->super->s_inodes_count)
        goto out_bad;
    ret = e2_read_inode_locked(img, of_ino, &of);
    if (ret)
        return ret;
    if (!LINUX_S_ISREG(of.i_mode))
        goto out_bad;
    nblocks = EXT2_I_SIZE(&of) / fs->blocksize;
    /* Its slots are zeroed in place: no block of it (nor of its extent
     * tree) may be outside the file system or in its system zone. */
    ret = nblocks ? e2_sysz_check_free_locked(img, of_ino, &of, 0, nblocks - 1) : 0;
    if (ret) {
        log_err("'%s': the orphan file (inode %u) is not used: %s", img->path, of_ino,
                ret == -EUCLEAN ? "its blocks lie (above)" : strerror(-ret));
        return ret;
    }
    buf = malloc(fs->blocksize);
    if (!buf)
        return -ENOMEM;
    for (blk64_t lblk = 0; lblk < nblocks && !ret; lblk++) {
        blk64_t pblk = 0;

        ret = e2_errno(
            ext2fs_bmap2(fs, of_ino, (struct ext2_inode *)&of, NULL, 0, lblk, NULL, &pblk));
        if (!ret && !pblk) {
            log_err("'%s': block %llu of the orphan file (inode %u) is a hole", img->path,
                    (unsigned long long)lblk, of_ino);
            ret = -EUCLEAN;
        }
        if (!ret)
            ret = orphan_file_block_locked(img, of_ino, of.i_generation, lblk, pblk, buf, &freed);
    }
    free(buf);
    if (!ret && ext2fs_has_feature_orphan_present(fs->super)) {
        ext2fs_clear_feature_orphan_present(fs->super);
        ext2fs_mark_super_dirty(fs);
    }
    if (freed)
        log_notice("'%s': freed %u orphan inode%s listed in the orphan file", img->path, freed,
                   freed == 1 ? "" : "s");
    return ret;
out_bad:
    log_err("'%s': the superblock names no valid orphan file (inode %u)", img->path, of_ino);
    return -EUCLEAN;
}
