/* Inodes: reading and changing fields, creating and freeing inodes. */
#include "e2/e2_internal.h"
#include "e2/iomgr.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <ext2fs/ext3_extents.h>

/* The inode table blocks of @group that hold inodes in use: all of them,
 * or with group descriptor checksums those before the unused tail the
 * descriptor records (none in a group whose table was never initialised).
 * 0 for a table that does not lie inside the file system. */
static uint64_t itable_used_blocks(ext2_filsys fs, dgrp_t group)
{
    uint64_t table = ext2fs_inode_table_loc(fs, group);
    uint64_t ipg = fs->super->s_inodes_per_group, used = ipg;
    uint64_t isz = EXT2_INODE_SIZE(fs->super), bs = fs->blocksize;

    if (table <= fs->super->s_first_data_block ||
        table + fs->inode_blocks_per_group > ext2fs_blocks_count(fs->super))
        return 0;
    if (ext2fs_has_group_desc_csum(fs)) {
        if (ext2fs_bg_flags_test(fs, group, EXT2_BG_INODE_UNINIT) ||
            ext2fs_bg_itable_unused(fs, group) > ipg)
            return 0;
        used = ipg - ext2fs_bg_itable_unused(fs, group);
    }
    used = (used * isz + bs - 1) / bs;
    return used < fs->inode_blocks_per_group ? used : fs->inode_blocks_per_group;
}

/* Before the first read of an inode table block: that block and its
 * neighbours in an aligned window of E2_IOM_READAHEAD_MAX, in one read
 * (a cold directory listed or walked reads its inodes in a row; ext4
 * reads ahead as much, inode_readahead_blks). Never past the used part
 * of the group's table. */
static void itable_readahead(ext2_filsys fs, ext2_ino_t ino)
{
    dgrp_t group = (ino - 1) / fs->super->s_inodes_per_group;
    uint64_t index = (ino - 1) % fs->super->s_inodes_per_group;
    uint64_t off = index * EXT2_INODE_SIZE(fs->super) / fs->blocksize;
    uint64_t table = ext2fs_inode_table_loc(fs, group), used;
    uint64_t first = off - off % E2_IOM_READAHEAD_MAX, n = E2_IOM_READAHEAD_MAX;

    /* Most reads find the block cached: that is checked first. */
    if (e2_iom_is_cached(fs->io, table + off))
        return;
    used = itable_used_blocks(fs, group);
    if (off >= used)
        return;
    if (first + n > used)
        n = used - first;
    e2_iom_readahead(fs->io, table + first, (unsigned)n);
}

int e2_read_inode_locked(struct e2_image *img, ext2_ino_t ino, struct ext2_inode_large *inode)
{
    if (ino < 1 || ino > img->fs->super->s_inodes_count)
        return -EUCLEAN;
    itable_readahead(img->fs, ino);
    memset(inode, 0, sizeof(*inode));
    return e2_errno(
        ext2fs_read_inode_full(img->fs, ino, (struct ext2_inode *)inode, sizeof(*inode)));
}

int e2_read_inode_for_change_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in)
{
    assert(mutex_is_held(&img->disk_lock));
    if (img->read_only)
        return -EROFS;
    return e2_read_inode_locked(img, ino, in);
}

int e2_write_inode_locked(struct e2_image *img, ext2_ino_t ino, struct ext2_inode_large *inode)
{
    errcode_t err;

    if (img->read_only)
        return -EROFS;
    e2_quota_whole_inode(img, true, false);
    err = ext2fs_write_inode_full(img->fs, ino, (struct ext2_inode *)inode, sizeof(*inode));
    e2_quota_whole_inode(img, false, false);
    return e2_errno(err);
}

/* Whether the in-inode extra space covers a field ending at @field_end. */
bool e2_inode_has_extra(const struct ext2_inode_large *in, size_t field_end)
{
    return (size_t)EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize >= field_end;
}

#define EXTRA_HAS(in, field)                                                                       \
    e2_inode_has_extra((in), offsetof(struct ext2_inode_large, field) + sizeof((in)->field))

void e2_time_encode(const struct timespec *ts, uint32_t *secs, uint32_t *extra)
{
    int64_t s = ts->tv_sec;

    *secs = (uint32_t)s;
    /* Bits 0-1 extend the signed 32-bit seconds to 34 bits; 2-31 hold ns. */
    *extra = (uint32_t)(((s - (int32_t)(uint32_t)s) >> 32) & EXT4_EPOCH_MASK) |
             ((uint32_t)ts->tv_nsec << 2);
}

void e2_time_decode(uint32_t secs, uint32_t extra, bool has_extra, struct timespec *ts)
{
    ts->tv_sec = (int32_t)secs;
    ts->tv_nsec = 0;
    if (!has_extra)
        return;
    ts->tv_sec += (int64_t)(extra & EXT4_EPOCH_MASK) << 32;
    ts->tv_nsec = extra >> 2;
    if (ts->tv_nsec > 999999999)
        ts->tv_nsec = 999999999; /* corrupt; keep the value valid for stat */
}

static dev_t decode_rdev(const struct ext2_inode_large *in)
{
    if (in->i_block[0]) {
        uint32_t old = in->i_block[0];
        return makedev((old >> 8) & 0xff, old & 0xff);
    }
    uint32_t nw = in->i_block[1];
    return makedev((nw & 0xfff00) >> 8, (nw & 0xff) | ((nw >> 12) & 0xfff00));
}

static void encode_rdev(struct ext2_inode_large *in, dev_t rdev)
{
    unsigned maj = major(rdev), min = minor(rdev);

    if (maj < 256 && min < 256) {
        in->i_block[0] = (maj << 8) | min;
        in->i_block[1] = 0;
    } else {
        in->i_block[0] = 0;
        in->i_block[1] = (min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12);
        in->i_block[2] = 0;
    }
}

void e2_inode_to_attr(struct e2_image *img, const struct ext2_inode_large *in, struct e2_attr *a)
{
    a->mode = in->i_mode;
    a->uid = inode_uid(*in);
    a->gid = inode_gid(*in);
    a->nlink = in->i_links_count;
    a->size = EXT2_I_SIZE(in);
    a->blocks = ext2fs_get_stat_i_blocks(img->fs, (struct ext2_inode *)in);
    e2_time_decode(in->i_atime, in->i_atime_extra, EXTRA_HAS(in, i_atime_extra), &a->atime);
    e2_time_decode(in->i_mtime, in->i_mtime_extra, EXTRA_HAS(in, i_mtime_extra), &a->mtime);
    e2_time_decode(in->i_ctime, in->i_ctime_extra, EXTRA_HAS(in, i_ctime_extra), &a->ctime);
    /* ext4_getattr(): a birth time wherever i_crtime fits, its
     * nanoseconds only where i_crtime_extra does too. */
    a->has_crtime = EXTRA_HAS(in, i_crtime);
    if (a->has_crtime)
        e2_time_decode(in->i_crtime, in->i_crtime_extra, EXTRA_HAS(in, i_crtime_extra), &a->crtime);
    else
        a->crtime = (struct timespec){0, 0};
    a->rdev = (S_ISCHR(in->i_mode) || S_ISBLK(in->i_mode)) ? decode_rdev(in) : 0;
    a->flags = in->i_flags;
    a->generation = in->i_generation;
    a->projid = EXTRA_HAS(in, i_projid) ? in->i_projid : 0;
}

static void set_time(struct ext2_inode_large *in, const struct timespec *ts, uint32_t *secs,
                     uint32_t *extra, bool has_extra)
{
    uint32_t e;

    e2_time_encode(ts, secs, &e);
    if (has_extra)
        *extra = e;
}

void e2_attr_to_inode(const struct e2_attr *a, unsigned fields, struct ext2_inode_large *in)
{
    if (fields & E2_A_MODE)
        in->i_mode = (uint16_t)a->mode;
    if (fields & E2_A_UID) {
        in->i_uid = (uint16_t)a->uid;
        ext2fs_set_i_uid_high(*in, a->uid >> 16);
    }
    if (fields & E2_A_GID) {
        in->i_gid = (uint16_t)a->gid;
        ext2fs_set_i_gid_high(*in, a->gid >> 16);
    }
    if (fields & E2_A_NLINK)
        in->i_links_count = (uint16_t)a->nlink;
    if (fields & E2_A_SIZE) {
        in->i_size = (uint32_t)a->size;
        in->i_size_high = (uint32_t)(a->size >> 32);
    }
    if (fields & E2_A_ATIME)
        set_time(in, &a->atime, &in->i_atime, &in->i_atime_extra, EXTRA_HAS(in, i_atime_extra));
    if (fields & E2_A_MTIME)
        set_time(in, &a->mtime, &in->i_mtime, &in->i_mtime_extra, EXTRA_HAS(in, i_mtime_extra));
    if (fields & E2_A_CTIME)
        set_time(in, &a->ctime, &in->i_ctime, &in->i_ctime_extra, EXTRA_HAS(in, i_ctime_extra));
    if (fields & E2_A_FLAGS)
        in->i_flags = a->flags;
    if ((fields & E2_A_PROJID) && EXTRA_HAS(in, i_projid))
        in->i_projid = a->projid;
}

int e2_inode_get(struct e2_image *img, uint32_t ino, struct e2_attr *a)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (!ret)
        e2_inode_to_attr(img, &in, a);
    e2_unlock(img);
    return ret;
}

int e2_inode_load(struct e2_image *img, uint32_t ino, struct e2_attr *a)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (!ret)
        ret = e2_sysz_check_inode_locked(img, ino, &in);
    if (!ret)
        e2_inode_to_attr(img, &in, a);
    e2_unlock(img);
    return ret;
}

bool e2_inode_in_use(struct e2_image *img, uint32_t ino)
{
    bool used;

    e2_lock(img);
    used = (ino == EXT2_ROOT_INO ||
            (ino >= EXT2_FIRST_INO(img->fs->super) && ino <= img->fs->super->s_inodes_count)) &&
           ext2fs_test_inode_bitmap2(img->fs->inode_map, ino);
    e2_unlock(img);
    return used;
}

int e2_inode_set(struct e2_image *img, uint32_t ino, const struct e2_attr *a, unsigned fields)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    if ((fields & E2_A_PROJID) && !EXTRA_HAS(&in, i_projid)) {
        ret = -EOVERFLOW; /* as ext4 when it cannot make room for it */
        goto out_unlock;
    }
    e2_attr_to_inode(a, fields, &in);
    ret = e2_write_inode_locked(img, ino, &in);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* ext4_inc_count() / ext4_dec_count() on the link count of @in. */
static void dir_nlink_move(struct ext2_inode_large *in, int nlink_delta)
{
    unsigned n = in->i_links_count;

    if (nlink_delta > 0 && n != 1)
        in->i_links_count = (uint16_t)(n + 1 >= E2_LINK_MAX ? 1 : n + 1);
    else if (nlink_delta < 0 && n > 2)
        in->i_links_count = (uint16_t)(n - 1);
}

int e2_inode_touch_dir(struct e2_image *img, uint32_t dir, const struct timespec *now,
                       int nlink_delta)
{
    struct e2_attr a = {.mtime = *now, .ctime = *now};
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, dir, &in);
    if (ret)
        goto out_unlock;
    e2_attr_to_inode(&a, E2_A_MTIME | E2_A_CTIME, &in);
    dir_nlink_move(&in, nlink_delta);
    ret = e2_write_inode_locked(img, dir, &in);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* A new inode's i_generation: unpredictable across mounts, distinct in a
 * row, as the kernel's get_random_u32(). One getrandom(2) per image, then
 * splitmix64 steps: a system call per create cost more than the rest of
 * setting up the inode. */
uint32_t e2_next_generation_locked(struct e2_image *img)
{
    uint64_t z;

    assert(mutex_is_held(&img->disk_lock));
    if (!img->gen_seeded) {
        if (getrandom(&img->gen_state, sizeof(img->gen_state), 0) != sizeof(img->gen_state)) {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            img->gen_state = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        }
        img->gen_seeded = true;
    }
    z = img->gen_state += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* Fill a fresh in-memory inode from @a: the fields every new inode shares. */
uint16_t e2_want_extra_isize(const struct e2_image *img)
{
    unsigned isize = EXT2_INODE_SIZE(img->fs->super);
    unsigned want = img->fs->super->s_want_extra_isize;
    unsigned maxx = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;

    if (isize <= EXT2_GOOD_OLD_INODE_SIZE)
        return 0;
    if (!want || want > maxx)
        want = maxx;
    if (want > isize - EXT2_GOOD_OLD_INODE_SIZE)
        want = isize - EXT2_GOOD_OLD_INODE_SIZE;
    return (uint16_t)want;
}

static void init_new_inode(struct e2_image *img, const struct e2_attr *a,
                           struct ext2_inode_large *in)
{
    memset(in, 0, sizeof(*in));
    in->i_extra_isize = e2_want_extra_isize(img);
    e2_attr_to_inode(a,
                     E2_A_MODE | E2_A_UID | E2_A_GID | E2_A_ATIME | E2_A_MTIME | E2_A_CTIME |
                         (ext2fs_has_feature_project(img->fs->super) ? E2_A_PROJID : 0),
                     in);
    if (EXTRA_HAS(in, i_crtime))
        set_time(in, &a->ctime, &in->i_crtime, &in->i_crtime_extra, EXTRA_HAS(in, i_crtime_extra));
    in->i_generation = e2_next_generation_locked(img);
}

static void init_extent_header(struct ext2_inode_large *in)
{
    struct ext3_extent_header *eh = (struct ext3_extent_header *)in->i_block;

    memset(in->i_block, 0, sizeof(in->i_block));
    eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
    eh->eh_max =
        ext2fs_cpu_to_le16((sizeof(in->i_block) - sizeof(*eh)) / sizeof(struct ext3_extent));
    in->i_flags |= EXT4_EXTENTS_FL;
}

/* Write a brand-new inode, zeroing its whole on-disk slot so no stale
 * in-inode xattrs of a former owner survive. */
static int write_new_inode_locked(struct e2_image *img, ext2_ino_t ino, struct ext2_inode_large *in)
{
    unsigned isize = EXT2_INODE_SIZE(img->fs->super);
    size_t len = isize > sizeof(*in) ? isize : sizeof(*in);
    /* Inodes of up to 1 KiB (mke2fs's largest default is 256 bytes) on
     * the stack: a calloc and free per create otherwise. */
    char local[1024], *buf = len <= sizeof(local) ? local : malloc(len);
    errcode_t err;

    if (!buf)
        return -ENOMEM;
    memset(buf, 0, len);
    memcpy(buf, in, sizeof(*in));
    e2_quota_whole_inode(img, true, true);
    err = ext2fs_write_inode_full(img->fs, ino, (struct ext2_inode *)buf, isize);
    e2_quota_whole_inode(img, false, false);
    if (buf != local)
        free(buf);
    return e2_errno(err);
}

static int alloc_inode_locked(struct e2_image *img, ext2_ino_t dir, mode_t mode, ext2_ino_t *ino)
{
    errcode_t err;

    if (img->read_only)
        return -EROFS;
    err = ext2fs_new_inode(img->fs, dir, (int)mode, NULL, ino);
    if (err)
        return e2_errno(err);
    ext2fs_inode_alloc_stats2(img->fs, *ino, +1, S_ISDIR(mode));
    return 0;
}

/* Undo a create that failed after its inode was written: the slot gets no
 * links and a deletion time before its bit is cleared, as a deleted inode
 * has. e2fsck takes an inode with links for one in use whatever the bitmap
 * says, so a bare bit clear left a directory or symlink nobody named. A
 * failed write here is latched by the I/O manager, which then refuses every
 * later change; nothing more to undo. */
static void discard_new_inode_locked(struct e2_image *img, ext2_ino_t ino,
                                     struct ext2_inode_large *in)
{
    in->i_links_count = 0;
    in->i_dtime = (uint32_t)time(NULL);
    (void)e2_write_inode_locked(img, ino, in);
    ext2fs_inode_alloc_stats2(img->fs, ino, -1, LINUX_S_ISDIR(in->i_mode));
}

int e2_inode_new(struct e2_image *img, uint32_t dir, const struct e2_attr *a, uint32_t *ino,
                 struct e2_attr *made)
{
    struct ext2_inode_large in;
    ext2_ino_t n;
    int ret;

    e2_lock(img);
    ret = alloc_inode_locked(img, dir, a->mode, &n);
    if (ret)
        goto out_unlock;
    init_new_inode(img, a, &in);
    in.i_links_count = 1;
    if (S_ISCHR(a->mode) || S_ISBLK(a->mode))
        encode_rdev(&in, a->rdev);
    else if (S_ISREG(a->mode) && ext2fs_has_feature_extents(img->fs->super))
        init_extent_header(&in);
    ret = write_new_inode_locked(img, n, &in);
    if (ret) {
        ext2fs_inode_alloc_stats2(img->fs, n, -1, 0);
        goto out_unlock;
    }
    *ino = n;
    if (made)
        e2_inode_to_attr(img, &in, made);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

static int new_block_dir_locked(struct e2_image *img, ext2_ino_t ino, ext2_ino_t parent,
                                struct ext2_inode_large *in)
{
    ext2_filsys fs = img->fs;
    blk64_t blk = 0;
    char *block = NULL;
    errcode_t err;

    err = ext2fs_new_block2(fs, ext2fs_find_inode_goal(fs, ino, (struct ext2_inode *)in, 0), NULL,
                            &blk);
    if (err)
        return e2_errno(err);
    err = ext2fs_new_dir_block(fs, ino, parent, &block);
    if (err)
        return e2_errno(err);
    err = ext2fs_write_dir_block4(fs, blk, block, 0, ino);
    ext2fs_free_mem(&block);
    if (err)
        return e2_errno(err);
    ext2fs_block_alloc_stats2(fs, blk, +1);
    if (ext2fs_has_feature_extents(fs->super))
        init_extent_header(in);
    in->i_size = fs->blocksize;
    err = ext2fs_iblk_add_blocks(fs, (struct ext2_inode *)in, 1);
    if (!err)
        err = ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, BMAP_SET, 0, NULL, &blk);
    if (err) {
        ext2fs_block_alloc_stats2(fs, blk, -1);
        return e2_errno(err);
    }
    return 0;
}

int e2_inode_new_dir(struct e2_image *img, uint32_t parent, const struct e2_attr *a, uint32_t *ino)
{
    struct ext2_inode_large in;
    ext2_ino_t n;
    int ret;

    e2_lock(img);
    ret = alloc_inode_locked(img, parent, a->mode, &n);
    if (ret)
        goto out_unlock;
    init_new_inode(img, a, &in);
    in.i_links_count = 2;
    if (ext2fs_has_feature_inline_data(img->fs->super) &&
        EXT2_INODE_SIZE(img->fs->super) > EXT2_GOOD_OLD_INODE_SIZE) {
        in.i_flags |= EXT4_INLINE_DATA_FL;
        in.i_size = EXT4_MIN_INLINE_DATA_SIZE;
        ret = e2_errno(ext2fs_new_dir_inline_data(img->fs, n, parent, in.i_block));
        if (!ret)
            ret = write_new_inode_locked(img, n, &in);
        if (!ret)
            ret = e2_errno(ext2fs_inline_data_init(img->fs, n));
    } else {
        ret = write_new_inode_locked(img, n, &in);
        if (!ret)
            ret = new_block_dir_locked(img, n, parent, &in);
        if (!ret)
            ret = e2_write_inode_locked(img, n, &in);
    }
    if (ret) {
        /* Written or not, the slot is made a deleted inode's. */
        discard_new_inode_locked(img, n, &in);
        goto out_unlock;
    }
    *ino = n;
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_inode_new_symlink(struct e2_image *img, uint32_t dir, const struct e2_attr *a,
                         const char *target, uint32_t *ino)
{
    size_t len = strlen(target);
    struct ext2_inode_large in;
    ext2_file_t file;
    ext2_ino_t n;
    unsigned written;
    int ret;

    if (len >= img->fs->blocksize)
        return -ENAMETOOLONG;
    e2_lock(img);
    ret = alloc_inode_locked(img, dir, a->mode, &n);
    if (ret)
        goto out_unlock;
    init_new_inode(img, a, &in);
    in.i_links_count = 1;
    /* The kernel keeps a target of up to 59 bytes (plus NUL) in i_block. */
    if (len < sizeof(in.i_block)) {
        memcpy(in.i_block, target, len);
        in.i_size = (uint32_t)len;
        ret = write_new_inode_locked(img, n, &in);
        goto out_check;
    }
    if (ext2fs_has_feature_extents(img->fs->super))
        init_extent_header(&in);
    ret = write_new_inode_locked(img, n, &in);
    if (ret)
        goto out_check;
    ret = e2_errno(ext2fs_file_open(img->fs, n, EXT2_FILE_WRITE, &file));
    if (ret)
        goto out_check;
    ret = e2_errno(ext2fs_file_write(file, target, (unsigned)len, &written));
    if (!ret && written != len)
        ret = -ENOSPC;
    {
        int cret = e2_errno(ext2fs_file_close(file));
        if (!ret)
            ret = cret;
    }
out_check:
    if (ret) {
        struct ext2_inode_large tmp;
        if (!e2_read_inode_locked(img, n, &tmp)) {
            ext2fs_punch(img->fs, n, (struct ext2_inode *)&tmp, NULL, 0, ~0ULL);
            in = tmp;
        }
        discard_new_inode_locked(img, n, &in);
        goto out_unlock;
    }
    *ino = n;
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* Drop the inode's reference to its xattr block, freeing the block when no
 * other inode shares it. */
static int release_xattr_block_locked(struct e2_image *img, ext2_ino_t ino,
                                      struct ext2_inode_large *in)
{
    blk64_t blk = ext2fs_file_acl_block(img->fs, (struct ext2_inode *)in);
    __u32 count = 0;
    errcode_t err;

    if (!blk)
        return 0;
    err = ext2fs_adjust_ea_refcount3(img->fs, blk, NULL, -1, &count, ino);
    if (err)
        return e2_errno(err);
    if (count == 0)
        ext2fs_block_alloc_stats2(img->fs, blk, -1);
    ext2fs_file_acl_block_set(img->fs, (struct ext2_inode *)in, 0);
    return 0;
}

int e2_inode_free_locked(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    if (img->read_only)
        return -EROFS;
    /* Already freed (by the orphan list's release at close): nothing. */
    if (!ext2fs_test_inode_bitmap2(img->fs->inode_map, ino))
        return 0;
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        return ret;
    /* Before anything changes: the xattr block's reference count is
     * written and the block freed last (the blocks are checked by
     * e2_punch_locked before it frees any). */
    ret = e2_sysz_check_acl_locked(img, ino, &in);
    if (ret)
        return ret;
    ret = e2_orphan_remove_locked(img, ino, &in);
    if (ret)
        return ret;
    if (!(in.i_flags & EXT4_INLINE_DATA_FL) &&
        ext2fs_inode_has_valid_blocks2(img->fs, (struct ext2_inode *)&in)) {
        ret = e2_punch_locked(img, ino, &in, 0, ~0ULL);
        if (ret)
            return ret;
    }
    ret = e2_ea_inodes_release_locked(img, ino);
    if (ret)
        return ret;
    ret = release_xattr_block_locked(img, ino, &in);
    if (ret)
        return ret;
    in.i_links_count = 0;
    in.i_dtime = (uint32_t)time(NULL);
    ret = e2_write_inode_locked(img, ino, &in);
    if (ret)
        return ret;
    ext2fs_inode_alloc_stats2(img->fs, ino, -1, LINUX_S_ISDIR(in.i_mode));
    return 0;
}

int e2_inode_may_free(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (!ret)
        ret = e2_sysz_check_acl_locked(img, ino, &in);
    if (!ret && ext2fs_inode_has_valid_blocks2(img->fs, (struct ext2_inode *)&in))
        ret = e2_sysz_check_free_locked(img, ino, &in, 0, ~0ULL);
    e2_unlock(img);
    return ret;
}

int e2_inode_free(struct e2_image *img, uint32_t ino)
{
    int ret;

    e2_lock(img);
    ret = e2_inode_free_locked(img, ino);
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* The @len bytes of symlink @ino's target (inode @in, its blocks checked):
 * inline, in i_block (fast), or in its block (slow). */
static int read_target_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              char *buf, unsigned len)
{
    ext2_file_t file;
    unsigned got = 0;
    int ret;

    if (in->i_flags & EXT4_INLINE_DATA_FL) {
        char tmp[EXT4_MIN_INLINE_DATA_SIZE * 64];
        size_t isz = sizeof(tmp);
        ret = e2_errno(ext2fs_inline_data_size(img->fs, ino, &isz));
        if (!ret && isz > sizeof(tmp))
            ret = -EUCLEAN;
        if (!ret)
            ret =
                e2_errno(ext2fs_inline_data_get(img->fs, ino, (struct ext2_inode *)in, tmp, NULL));
        if (!ret)
            memcpy(buf, tmp, len);
        return ret;
    }
    if (ext2fs_is_fast_symlink((struct ext2_inode *)in)) {
        memcpy(buf, in->i_block, len);
        return 0;
    }
    ret = e2_errno(ext2fs_file_open2(img->fs, ino, (struct ext2_inode *)in, 0, &file));
    if (ret)
        return ret;
    ret = e2_errno(ext2fs_file_read(file, buf, len, &got));
    ext2fs_file_close(file);
    return !ret && got != len ? -EUCLEAN : ret;
}

int e2_readlink(struct e2_image *img, uint32_t ino, char *buf, size_t size)
{
    struct ext2_inode_large in;
    uint64_t len;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    len = EXT2_I_SIZE(&in);
    if (!LINUX_S_ISLNK(in.i_mode)) {
        ret = -EINVAL;
        goto out_unlock;
    }
    if (len >= img->fs->blocksize || len == 0) {
        ret = -EUCLEAN;
        goto out_unlock;
    }
    if (len > size) {
        ret = -ERANGE;
        goto out_unlock;
    }
    /* A slow symlink's block, or the xattr block an inline one's
     * system.data may be read from (sysz.c). */
    if (in.i_flags & EXT4_INLINE_DATA_FL)
        ret = e2_sysz_check_acl_locked(img, ino, &in);
    else if (!ext2fs_is_fast_symlink((struct ext2_inode *)&in))
        ret = e2_sysz_check_range_locked(img, ino, &in, 0, 0);
    if (!ret)
        ret = read_target_locked(img, ino, &in, buf, (unsigned)len);
    if (!ret)
        ret = (int)len;
out_unlock:
    e2_unlock(img);
    return ret;
}
