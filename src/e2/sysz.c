/* The system zone: the blocks no file may map (superblock copies, group
 * descriptors and reserved GDT blocks, bitmaps, inode tables, the
 * journal), kept per image as a bitmap built at open, and the check of
 * every block a file's mapping hands out for I/O or for freeing against
 * it. An image that lies would otherwise have a file's data read from and
 * written over metadata, and its unlink mark the inode table free for the
 * next allocation; the kernel refuses such an inode too (EFSCORRUPTED).
 * The journal's blocks are the journal inode's own: it is exempt.
 *
 * Where: extio.c and mapio.c check each run they map and the tree or
 * indirect blocks on its way; data.c block-mapped reads, fallocate and
 * partial-block zeroing; punch.c and inode.c every block freed; shift.c
 * the range a collapse or insert moves and its tree path; xattr.c,
 * inode.c and inline.c the xattr block (inline data lives in xattrs);
 * e2_readlink a slow symlink's block; dir.c (e2_dir_check) a whole
 * directory, once per in-memory inode before the fs layer uses its
 * blocks; a lookup (e2_inode_load) what the inode itself names, as the
 * kernel's ext4_iget; orphan.c and quota.c whole files at open. */
#include "e2/e2_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <ext2fs/ext3_extents.h>

/* Those of the @n blocks from @blk that lie inside the file system. */
static void mark_range(ext2_filsys fs, ext2fs_block_bitmap bm, blk64_t blk, blk64_t n)
{
    blk64_t end = ext2fs_blocks_count(fs->super);

    if (blk < fs->super->s_first_data_block || blk >= end)
        return;
    ext2fs_mark_block_bitmap_range2(bm, blk, (unsigned)(n < end - blk ? n : end - blk));
}

/* A run of the journal's blocks, handed to a journal_walk callback: true
 * stops the walk. */
typedef bool journal_run_fn(ext2_filsys fs, blk64_t blk, blk64_t n, void *priv);

struct journal_walk {
    journal_run_fn *fn;
    void *priv;
    bool stopped;
};

static int journal_block(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk,
                         int ref_offset, void *priv)
{
    struct journal_walk *w = priv;

    (void)blockcnt, (void)ref_blk, (void)ref_offset;
    w->stopped = w->fn(fs, *blocknr, 1, w->priv);
    return w->stopped ? BLOCK_ABORT : 0;
}

/* The journal inode's blocks, its tree or indirect blocks too: by extent
 * (a 1 GiB log is a few extents but 262144 blocks), else block by block.
 * Damage is jmap.c's to report: what is readable is walked. Returns
 * whether @fn stopped the walk. */
static bool walk_journal(ext2_filsys fs, journal_run_fn *fn, void *priv)
{
    ext2_ino_t jino = fs->super->s_journal_inum;
    struct journal_walk w = {.fn = fn, .priv = priv};
    struct ext2_inode in;
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err;

    if (!ext2fs_has_feature_journal(fs->super) || !jino || ext2fs_read_inode(fs, jino, &in))
        return false;
    if (!(in.i_flags & EXT4_EXTENTS_FL)) {
        ext2fs_block_iterate3(fs, jino, BLOCK_FLAG_READ_ONLY, NULL, journal_block, &w);
        return w.stopped;
    }
    if (ext2fs_extent_open2(fs, jino, &in, &h))
        return false;
    for (err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e); !err && !w.stopped;
         err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e))
        w.stopped = fn(fs, e.e_pblk, (e.e_flags & EXT2_EXTENT_FLAGS_LEAF) ? e.e_len : 1, priv);
    ext2fs_extent_free(h);
    return w.stopped;
}

static bool mark_run(ext2_filsys fs, blk64_t blk, blk64_t n, void *bm)
{
    mark_range(fs, bm, blk, n);
    return false;
}

static bool run_holds(ext2_filsys fs, blk64_t blk, blk64_t n, void *want)
{
    (void)fs;
    return *(blk64_t *)want >= blk && *(blk64_t *)want - blk < n;
}

int e2_sysz_build(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    int type = fs->default_bitmap_type, ret;

    /* As ranges: the metadata is a few runs per flex group. A bit per
     * block made a 64 GiB image's open take 4.9 MiB more and 3.5 -> 24 ms;
     * ranges cost nothing measurable, and a test is a lookup in a tree of
     * a few hundred runs, its last hit cached. */
    fs->default_bitmap_type = EXT2FS_BMAP64_RBTREE;
    ret = e2_metadata_map(fs, &img->sysz);
    fs->default_bitmap_type = type;
    if (ret)
        return ret;
    /* The journal's blocks, for every other inode. */
    walk_journal(fs, mark_run, img->sysz);
    return 0;
}

void e2_sysz_free(struct e2_image *img)
{
    if (img->sysz)
        ext2fs_free_block_bitmap(img->sysz);
    img->sysz = NULL;
}

/* What block @blk of the system zone holds, in @buf, for the log line. */
static void say_what(struct e2_image *img, blk64_t blk, char *buf, size_t len)
{
    ext2_filsys fs = img->fs;

    if (blk < fs->super->s_first_data_block || blk >= ext2fs_blocks_count(fs->super)) {
        snprintf(buf, len, "no block of the file system (past its end)");
        return;
    }
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        blk64_t it = ext2fs_inode_table_loc(fs, g);
        const char *what = blk == ext2fs_block_bitmap_loc(fs, g)                ? "the block bitmap"
                           : blk == ext2fs_inode_bitmap_loc(fs, g)              ? "the inode bitmap"
                           : blk >= it && blk < it + fs->inode_blocks_per_group ? "the inode table"
                                                                                : NULL;
        if (what) {
            snprintf(buf, len, "%s of group %u", what, g);
            return;
        }
    }
    /* Neither: a superblock copy or descriptors, or the journal. */
    snprintf(buf, len, "%s (group %u)",
             walk_journal(fs, run_holds, &blk) ? "the journal"
                                               : "a superblock copy or group descriptors",
             ext2fs_group_of_blk2(fs, blk));
}

int e2_sysz_check_bitmap(struct e2_image *img, char *why, size_t why_len)
{
    ext2_filsys fs = img->fs;
    blk64_t end = ext2fs_blocks_count(fs->super) - 1, a, b, free_blk;
    char what[96];

    /* Each run of the zone, and the first block of it the bitmap calls
     * free: a run ends at the zone's next zero bit or the last block. */
    for (blk64_t start = fs->super->s_first_data_block; start <= end; start = b + 1) {
        if (ext2fs_find_first_set_block_bitmap2(img->sysz, start, end, &a))
            return 0;
        if (ext2fs_find_first_zero_block_bitmap2(img->sysz, a, end, &b))
            b = end + 1;
        b--;
        if (!ext2fs_find_first_zero_block_bitmap2(fs->block_map, a, b, &free_blk)) {
            say_what(img, free_blk, what, sizeof(what));
            e2_say(why, why_len,
                   "'%s': the block bitmap of group %u marks block %llu free, which holds %s "
                   "(e2fsck -f repairs it): %s",
                   img->path, ext2fs_group_of_blk2(fs, free_blk), (unsigned long long)free_blk,
                   what, strerror(EUCLEAN));
            return -EUCLEAN;
        }
    }
    return 0;
}

int e2_sysz_refuse_locked(struct e2_image *img, uint32_t ino, blk64_t blk, blk64_t n)
{
    blk64_t end = ext2fs_blocks_count(img->fs->super), bad = blk;
    char what[96];

    /* The first offending block of the run. */
    for (blk64_t i = 0; i < n; i++) {
        bad = blk + i;
        if (bad < img->fs->super->s_first_data_block || bad >= end ||
            ext2fs_test_block_bitmap2(img->sysz, bad))
            break;
    }
    say_what(img, bad, what, sizeof(what));
    log_corrupt("'%s': inode %u maps block %llu, which holds %s", img->path, ino,
                (unsigned long long)bad, what);
    return -EUCLEAN;
}

/* Block-mapped: the indirect blocks named in the inode. */
static int check_ind_locked(struct e2_image *img, uint32_t ino, const struct ext2_inode_large *in)
{
    for (int i = EXT2_IND_BLOCK; i <= EXT2_TIND_BLOCK; i++) {
        int ret = in->i_block[i] ? e2_sysz_check_locked(img, ino, in->i_block[i], 1) : 0;
        if (ret)
            return ret;
    }
    return 0;
}

/* Entry @i of indirect block @blk (checked by the caller) in *@next. */
static int ind_entry(ext2_filsys fs, blk64_t blk, blk64_t i, blk64_t *next, uint32_t *buf)
{
    int ret = e2_errno(io_channel_read_blk64(fs->io, blk, 1, buf));

    *next = ret ? 0 : ext2fs_le32_to_cpu(buf[i]);
    return ret;
}

/* Block-mapped: the indirect blocks below the inode's own on the way to
 * @lblk (the single indirect block under the double one, and the double
 * and single ones under the triple one), which ext2fs_bmap2 reads and an
 * allocation writes into. */
static int check_ind_path_locked(struct e2_image *img, uint32_t ino,
                                 const struct ext2_inode_large *in, blk64_t lblk)
{
    ext2_filsys fs = img->fs;
    blk64_t apb = fs->blocksize / 4, b = lblk, blk, idx[2];
    uint32_t *buf;
    int n, ret = 0;

    if (b < EXT2_NDIR_BLOCKS + apb)
        return 0; /* direct, or under the single indirect block */
    b -= EXT2_NDIR_BLOCKS + apb;
    if (b < apb * apb) {
        blk = in->i_block[EXT2_DIND_BLOCK];
        idx[0] = b / apb;
        n = 1;
    } else {
        b -= apb * apb;
        blk = in->i_block[EXT2_TIND_BLOCK];
        idx[0] = b / (apb * apb);
        idx[1] = b / apb % apb;
        n = 2;
    }
    if (!blk)
        return 0;
    buf = malloc(fs->blocksize);
    if (!buf)
        return -ENOMEM;
    for (int i = 0; i < n && blk && !ret; i++) {
        ret = ind_entry(fs, blk, idx[i], &blk, buf);
        if (!ret && blk)
            ret = e2_sysz_check_locked(img, ino, blk, 1);
    }
    free(buf);
    return ret;
}

/* Whether logical block @b starts a new single indirect block below a
 * double or triple one (or is the first of a range): its path is checked. */
static bool starts_ind(const struct e2_image *img, blk64_t b, blk64_t first)
{
    blk64_t apb = img->fs->blocksize / 4;

    return b == first || (b >= EXT2_NDIR_BLOCKS + apb && (b - EXT2_NDIR_BLOCKS - apb) % apb == 0);
}

int e2_sysz_check_read_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t first, blk64_t last)
{
    int ret;

    if (in->i_flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL))
        return 0; /* extio.c checks each extent it maps */
    ret = check_ind_locked(img, ino, in);
    for (blk64_t b = first; !ret && b <= last; b++) {
        blk64_t pblk = 0;
        if (starts_ind(img, b, first))
            ret = check_ind_path_locked(img, ino, in, b);
        if (!ret)
            ret = e2_errno(
                ext2fs_bmap2(img->fs, ino, (struct ext2_inode *)in, NULL, 0, b, NULL, &pblk));
        if (!ret && pblk)
            ret = e2_sysz_check_locked(img, ino, pblk, 1);
    }
    return ret;
}

/* The extent tree: index entries (tree blocks) wherever they are, leaf
 * extents where they overlap [@first, @last]. */
static int check_extents_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                                blk64_t first, blk64_t last)
{
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
    int ret = 0;

    if (err)
        return e2_errno(err);
    err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
    while (!err && !ret) {
        if (!(e.e_flags & EXT2_EXTENT_FLAGS_LEAF))
            ret = e2_sysz_check_locked(img, ino, e.e_pblk, 1);
        else if (e.e_len && e.e_lblk <= last && e.e_lblk + e.e_len > first)
            ret = e2_sysz_check_locked(img, ino, e.e_pblk, e.e_len);
        err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
    }
    ext2fs_extent_free(h);
    if (ret)
        return ret;
    return err == EXT2_ET_EXTENT_NO_NEXT || err == EXT2_ET_NO_CURRENT_NODE ? 0 : e2_errno(err);
}

int e2_sysz_check_path_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t lblk)
{
    const struct ext3_extent_header *eh = (const void *)in->i_block;
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err;
    int ret = 0;

    if (in->i_flags & EXT4_INLINE_DATA_FL)
        return 0;
    if (!(in->i_flags & EXT4_EXTENTS_FL)) {
        ret = check_ind_locked(img, ino, in);
        return ret ? ret : check_ind_path_locked(img, ino, in, lblk);
    }
    if (ext2fs_le16_to_cpu(eh->eh_depth) == 0)
        return 0; /* no tree blocks */
    err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
    if (err)
        return e2_errno(err);
    /* From the root's entry down to the one naming the leaf. */
    for (int level = ext2fs_le16_to_cpu(eh->eh_depth); level >= 1 && !ret; level--) {
        err = ext2fs_extent_goto2(h, level, lblk);
        /* Past the last entry (an append) or before the first, the handle
         * rests on the entry nearest @lblk: the node a write would use. */
        if (!err || err == EXT2_ET_EXTENT_NOT_FOUND)
            err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &e);
        if (err)
            break; /* a damaged node: libext2fs says so when it is used */
        if (!(e.e_flags & EXT2_EXTENT_FLAGS_LEAF))
            ret = e2_sysz_check_locked(img, ino, e.e_pblk, 1);
    }
    ext2fs_extent_free(h);
    return ret;
}

struct ind_walk {
    struct e2_image *img;
    uint32_t ino;
    blk64_t first, last;
    int ret;
};

static int ind_walk_block(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk,
                          int ref_offset, void *priv)
{
    struct ind_walk *w = priv;

    (void)fs, (void)ref_blk, (void)ref_offset;
    /* Indirect blocks (negative counts) wherever they are. */
    if (blockcnt >= 0 && ((blk64_t)blockcnt < w->first || (blk64_t)blockcnt > w->last))
        return 0;
    w->ret = e2_sysz_check_locked(w->img, w->ino, *blocknr, 1);
    return w->ret ? BLOCK_ABORT : 0;
}

int e2_sysz_check_free_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t first, blk64_t last)
{
    struct ind_walk w = {.img = img, .ino = ino, .first = first, .last = last};
    errcode_t err;

    if (in->i_flags & EXT4_INLINE_DATA_FL)
        return 0;
    if (in->i_flags & EXT4_EXTENTS_FL)
        return check_extents_locked(img, ino, in, first, last);
    w.ret = check_ind_locked(img, ino, in);
    if (w.ret)
        return w.ret;
    err = ext2fs_block_iterate3(img->fs, ino, BLOCK_FLAG_READ_ONLY, NULL, ind_walk_block, &w);
    return w.ret ? w.ret : e2_errno(err);
}

int e2_sysz_check_handle_locked(struct e2_image *img, uint32_t ino, ext2_extent_handle_t h)
{
    struct ext2_extent_info info;
    struct ext2fs_extent e;
    int ret = 0;

    if (ext2fs_extent_get_info(h, &info))
        return 0;
    /* Up from the node the handle rests on: each parent's current entry
     * names the block below it. Memory only: the path is cached. */
    for (int level = info.curr_level; level > 0 && !ret; level--) {
        if (ext2fs_extent_get(h, EXT2_EXTENT_UP, &e))
            break;
        ret = e2_sysz_check_locked(img, ino, e.e_pblk, 1);
    }
    return ret;
}

/* Extent files: the tree path to @first, then the entries met walking on
 * to @last: index entries (tree blocks) and the extents overlapping
 * [@first, @last]. */
static int check_extent_range_locked(struct e2_image *img, uint32_t ino,
                                     struct ext2_inode_large *in, blk64_t first, blk64_t last)
{
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
    int ret;

    if (err)
        return e2_errno(err);
    ext2fs_extent_goto(h, first);
    ret = e2_sysz_check_handle_locked(img, ino, h);
    /* A hole at @first leaves the handle on the extent nearest it. */
    err = ext2fs_extent_goto(h, first);
    if (err == EXT2_ET_EXTENT_NOT_FOUND)
        err = 0;
    if (!err)
        err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &e);
    while (!err && !ret && e.e_lblk <= last) {
        if (!(e.e_flags & EXT2_EXTENT_FLAGS_LEAF))
            ret = e2_sysz_check_locked(img, ino, e.e_pblk, 1);
        else if (e.e_len && e.e_lblk + e.e_len > first)
            ret = e2_sysz_check_locked(img, ino, e.e_pblk, e.e_len);
        err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
    }
    ext2fs_extent_free(h);
    if (ret)
        return ret;
    return !err || err == EXT2_ET_EXTENT_NO_NEXT || err == EXT2_ET_NO_CURRENT_NODE ? 0
                                                                                   : e2_errno(err);
}

int e2_sysz_check_range_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                               blk64_t first, blk64_t last)
{
    if (in->i_flags & EXT4_INLINE_DATA_FL)
        return 0;
    if (in->i_flags & EXT4_EXTENTS_FL)
        return check_extent_range_locked(img, ino, in, first, last);
    return e2_sysz_check_read_locked(img, ino, in, first, last);
}

int e2_sysz_check_acl_locked(struct e2_image *img, uint32_t ino, const struct ext2_inode_large *in)
{
    blk64_t blk = ext2fs_file_acl_block(img->fs, (const struct ext2_inode *)in);

    return blk ? e2_sysz_check_locked(img, ino, blk, 1) : 0;
}

/* The extents or index entries of the tree root in i_block. A header
 * libext2fs would refuse is left to it: the tree is unusable anyway. */
static int check_root_locked(struct e2_image *img, uint32_t ino, const struct ext2_inode_large *in)
{
    const struct ext3_extent_header *eh = (const void *)in->i_block;
    const struct ext3_extent *x = (const void *)(eh + 1);
    const struct ext3_extent_idx *ix = (const void *)(eh + 1);
    unsigned n = ext2fs_le16_to_cpu(eh->eh_entries), max = ext2fs_le16_to_cpu(eh->eh_max);
    int ret = 0;

    if (ext2fs_le16_to_cpu(eh->eh_magic) != EXT3_EXT_MAGIC || n > max ||
        max > (sizeof(in->i_block) - sizeof(*eh)) / sizeof(*x))
        return 0;
    for (unsigned i = 0; i < n && !ret; i++) {
        blk64_t len;
        if (eh->eh_depth) {
            ret = e2_sysz_check_locked(img, ino,
                                       ext2fs_le32_to_cpu(ix[i].ei_leaf) |
                                           (blk64_t)ext2fs_le16_to_cpu(ix[i].ei_leaf_hi) << 32,
                                       1);
            continue;
        }
        /* Past EXT_INIT_MAX_LEN: an unwritten extent of len - 32768. */
        len = ext2fs_le16_to_cpu(x[i].ee_len);
        len = len > EXT_INIT_MAX_LEN ? len - EXT_INIT_MAX_LEN : len;
        if (len)
            ret = e2_sysz_check_locked(img, ino,
                                       ext2fs_le32_to_cpu(x[i].ee_start) |
                                           (blk64_t)ext2fs_le16_to_cpu(x[i].ee_start_hi) << 32,
                                       len);
    }
    return ret;
}

int e2_sysz_check_inode_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in)
{
    int ret = e2_sysz_check_acl_locked(img, ino, in);

    if (ret || (in->i_flags & EXT4_INLINE_DATA_FL))
        return ret;
    /* Those with blocks behind i_block (a fast symlink holds its target,
     * a device its number). */
    if (!LINUX_S_ISREG(in->i_mode) && !LINUX_S_ISDIR(in->i_mode) &&
        !(LINUX_S_ISLNK(in->i_mode) && !ext2fs_is_fast_symlink((struct ext2_inode *)in)))
        return 0;
    if (in->i_flags & EXT4_EXTENTS_FL)
        return check_root_locked(img, ino, in);
    for (int i = 0; i < EXT2_N_BLOCKS && !ret; i++)
        ret = in->i_block[i] ? e2_sysz_check_locked(img, ino, in->i_block[i], 1) : 0;
    return ret;
}
