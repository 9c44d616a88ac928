/* Opening, checking, locking and closing an image. */
#include "e2/iomgr.h"
#include "e2/imgfile.h"
#include "e2/e2_internal.h"
#include "e2/overlay.h"
#include "e2/jmap.h"
#include "e2/jdev.h"
#include "jbd2/recover.h"
#include "base/log.h"

#include <assert.h>
#include <e2p/e2p.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Features whose on-disk rules this daemon does not implement when writing.
 * Refused outright: we could not even read such an image correctly. */
static const uint32_t incompat_refused =
    EXT4_FEATURE_INCOMPAT_ENCRYPT | EXT3_FEATURE_INCOMPAT_JOURNAL_DEV |
    EXT4_FEATURE_INCOMPAT_DIRDATA | EXT2_FEATURE_INCOMPAT_COMPRESSION;
/* Implemented here (mmp.c), whatever the headers' CONFIG_MMP says. */
static const uint32_t incompat_ours = EXT4_FEATURE_INCOMPAT_MMP;
/* Readable, but writing would leave something e2fsck repairs (shared
 * blocks) or that is not ours to write. orphan_present is not here: a
 * read-write open releases the orphan file's inodes (orphan.c). */
static const uint32_t ro_compat_ro =
    EXT4_FEATURE_RO_COMPAT_SHARED_BLOCKS | EXT4_FEATURE_RO_COMPAT_READONLY |
    EXT4_FEATURE_RO_COMPAT_REPLICA | EXT4_FEATURE_RO_COMPAT_HAS_SNAPSHOT;

/* Name the first feature bit of @mask (E2P_FEATURE_* type @type). */
static const char *first_feature(int type, uint32_t mask)
{
    for (unsigned bit = 0; bit < 32; bit++) {
        if (mask & (1u << bit))
            return e2p_feature2string(type, 1u << bit);
    }
    return "?";
}

/* Refusals that depend only on the superblock. */
static int check_super(ext2_filsys fs, const char *path, bool *need_ro, char *why, size_t len)
{
    struct ext2_super_block *sb = fs->super;
    uint32_t bad;

    bad = sb->s_feature_incompat &
          (incompat_refused | ~(EXT2_LIB_FEATURE_INCOMPAT_SUPP | incompat_ours));
    bad &= ~EXT3_FEATURE_INCOMPAT_RECOVER;
    if (ext2fs_has_feature_journal_dev(sb)) {
        e2_say(why, len,
               "'%s' is an external journal device, not a file system: give it to the mount "
               "of its file system as -o journal_path=%s",
               path, path);
        return -EINVAL;
    }
    if (bad) {
        e2_say(why, len, "image '%s' uses the unsupported feature '%s'", path,
               first_feature(E2P_FEATURE_INCOMPAT, bad));
        return -EOPNOTSUPP;
    }
    /* casefold: names are compared in the superblock's encoding, which
     * libext2fs loaded at open if it knows it (utf8 12.1 only). */
    if (ext2fs_has_feature_casefold(sb) && !fs->encoding) {
        e2_say(why, len, "image '%s' uses the unknown filename encoding %u (casefold)", path,
               (unsigned)sb->s_encoding);
        return -EOPNOTSUPP;
    }
    if ((sb->s_feature_incompat & EXT3_FEATURE_INCOMPAT_RECOVER) &&
        !(sb->s_feature_compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL)) {
        e2_say(why, len, "image '%s' is corrupt: needs_recovery is set but it has no journal",
               path);
        return -EUCLEAN;
    }
    if (sb->s_state & EXT2_ERROR_FS) {
        e2_say(why, len, "image '%s' has errors recorded; run 'e2fsck -fy' on it first", path);
        return -EUCLEAN;
    }
    bad = sb->s_feature_ro_compat & (ro_compat_ro | ~EXT2_LIB_FEATURE_RO_COMPAT_SUPP);
    if (bad) {
        e2_say(why, len, "feature '%s' is not supported for writing; mounting read-only",
               first_feature(E2P_FEATURE_RO_INCOMPAT, bad));
        *need_ro = true;
    }
    /* orphan_present says the orphan file holds entries: without one,
     * nothing here knows where they are. */
    if (!*need_ro && ext2fs_has_feature_orphan_present(sb) && !ext2fs_has_feature_orphan_file(sb)) {
        e2_say(why, len, "image '%s' has orphan_present set but no orphan_file; mounting read-only",
               path);
        *need_ro = true;
    }
    return 0;
}

/* Inodes libext2fs keeps in memory. Enough for the few inodes each
 * operation reads again and again, and no more: libext2fs 1.47 finds an
 * inode by a linear scan of the whole cache on every inode read and write,
 * and with 1024 entries that scan cost more than the misses it saved (a
 * miss is a cached block and an inode checksum). */
#define E2_INODE_CACHE 64
/* Clean metadata blocks kept by iomgr.c (dirty ones are bounded by the
 * journal's size). */
#define E2_BLOCK_CACHE (16u << 20)

static pthread_once_t error_table_once = PTHREAD_ONCE_INIT;

static void register_error_table(void)
{
    initialize_ext2_error_table();
}

/* Layout fields libext2fs trusts when it sizes its bitmap buffers; a
 * damaged value there overflows them (seen with s_first_data_block). */
static int check_layout(ext2_filsys fs, const char *path, char *why, size_t len)
{
    struct ext2_super_block *sb = fs->super;
    blk64_t first = sb->s_log_block_size == 0 && EXT2FS_CLUSTER_RATIO(fs) == 1 ? 1 : 0;

    if (sb->s_first_data_block != first || first >= ext2fs_blocks_count(sb) ||
        sb->s_blocks_per_group == 0 || sb->s_inodes_per_group == 0 ||
        sb->s_blocks_per_group > EXT2_MAX_BLOCKS_PER_GROUP(sb) ||
        sb->s_inodes_per_group > EXT2_MAX_INODES_PER_GROUP(sb)) {
        e2_say(why, len, "image '%s' is corrupt: its superblock's group layout is inconsistent",
               path);
        return -EUCLEAN;
    }
    return 0;
}

/* The bytes of the image file the file system may use: from img->offset
 * to the end of the file, or sizelimit bytes of them if fewer (a loop
 * device's size). 0 (-EINVAL) when offset is at or past the end. */
static int window_bytes(const struct e2_image *img, uint64_t *avail, char *why, size_t len)
{
    uint64_t size;
    int ret = e2_imgfile_size(img->lock_fd, &size);

    if (ret) {
        e2_say(why, len, "cannot find the size of image '%s': %s", img->path, strerror(-ret));
        return ret;
    }
    if (img->offset >= size) {
        e2_say(why, len, "offset=%llu is at or past the end of image '%s' (%llu bytes)",
               (unsigned long long)img->offset, img->path, (unsigned long long)size);
        return -EINVAL;
    }
    *avail = size - img->offset;
    if (img->sizelimit && img->sizelimit < *avail)
        *avail = img->sizelimit;
    return 0;
}

/* The file system must lie within its window, as ext4 refuses a block
 * count larger than its device ("bad geometry"): past the end of the image
 * file every read would fail, past sizelimit another partition's bytes
 * would be written. */
static int check_fits(const struct e2_image *img, ext2_filsys fs, char *why, size_t len)
{
    uint64_t need = ext2fs_blocks_count(fs->super) * fs->blocksize, avail;
    int ret = window_bytes(img, &avail, why, len);

    if (ret || need <= avail)
        return ret;
    if (img->offset || img->sizelimit)
        e2_say(why, len,
               "the file system in '%s' (%llu bytes) does not fit in offset=%llu,sizelimit=%llu "
               "(%llu bytes there)",
               img->path, (unsigned long long)need, (unsigned long long)img->offset,
               (unsigned long long)img->sizelimit, (unsigned long long)avail);
    else
        e2_say(why, len, "image '%s' (%llu bytes) is shorter than its file system (%llu bytes)",
               img->path, (unsigned long long)avail, (unsigned long long)need);
    return -EINVAL;
}

/* The io options for the channel of @img: its window, and @replayed. */
static void io_options(const struct e2_image *img, const struct e2_overlay *replayed, char *buf,
                       size_t len)
{
    size_t n;

    e2_iom_window_opt(img->offset, img->sizelimit, buf, len);
    n = strlen(buf);
    if (replayed && n + 1 < len) {
        buf[n++] = '&';
        e2_iom_overlay_opt(replayed, buf + n, len - n);
    }
}

/* Why @img holds no file system where we looked: a whole disk image (its
 * partitions named with the options that mount one), or not ext2/3/4. */
static void not_a_file_system(const struct e2_image *img, errcode_t err, char *why, size_t len)
{
    char parts[600];

    if (!img->offset && err == EXT2_ET_BAD_MAGIC &&
        e2_parttab_describe(img->lock_fd, parts, sizeof(parts)) > 0)
        e2_say(why, len,
               "'%s' is a disk image with a partition table, not a file system: mount one "
               "partition with -o offset=BYTES,sizelimit=BYTES (%s)",
               img->path, parts);
    else
        e2_say(why, len, "'%s' is not a valid ext2/3/4 file system image%s: %s", img->path,
               img->offset ? " at that offset" : "", error_message(err));
}

/* Open the file system in @img's image file through our I/O manager;
 * with @replayed (a journal replayed in memory, read-only only) laid over
 * the file. */
static int open_fs(const struct e2_image *img, bool ro, const struct e2_overlay *replayed,
                   ext2_filsys *out, char *why, size_t len)
{
    /* SKIP_MMP: libext2fs would run e2fsck's MMP protocol; mmp.c runs the
     * kernel's. */
    int flags = EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP | (ro ? 0 : EXT2_FLAG_RW);
    const char *path = img->path;
    char io_opts[160], name[32];
    errcode_t err;

    pthread_once(&error_table_once, register_error_table);

    e2_imgfile_name(name, sizeof(name), img->lock_fd);
    io_options(img, replayed, io_opts, sizeof(io_opts));
    err = ext2fs_open2(name, io_opts, flags, 0, 0, e2_iom_manager, out);
    if (err == EXT2_ET_BAD_MAGIC || err == EXT2_ET_SB_CSUM_INVALID ||
        err == EXT2_ET_CORRUPT_SUPERBLOCK || err == EXT2_ET_UNEXPECTED_BLOCK_SIZE) {
        not_a_file_system(img, err, why, len);
        return -EINVAL;
    }
    if (err == EXT2_ET_SHORT_READ) {
        /* Its superblock or group descriptors lie past the window. */
        e2_say(why, len, "the file system in '%s' is cut short by %s", path,
               img->sizelimit ? "sizelimit=" : "the end of the image file");
        return -EINVAL;
    }
    if (err == EXT2_ET_UNSUPP_FEATURE || err == EXT2_ET_RO_UNSUPP_FEATURE) {
        e2_say(why, len, "image '%s' uses a feature this libext2fs cannot handle: %s", path,
               error_message(err));
        return -EOPNOTSUPP;
    }
    if (err) {
        int e = e2_errno(err);
        e2_say(why, len, "cannot open image '%s': %s", path,
               err < 4096 ? strerror(-e) : error_message(err));
        return e;
    }
    err = e2_iom_attach((*out)->io, (*out)->blocksize, E2_BLOCK_CACHE);
    if (err) {
        ext2fs_close_free(out);
        e2_say(why, len, "cannot open image '%s': %s", path, error_message(err));
        return e2_errno(err);
    }
    /* Backup superblocks and descriptors are left alone, as the kernel
     * leaves them (they would otherwise be rewritten at every commit). */
    if (!ro)
        (*out)->flags |= EXT2_FLAG_MASTER_SB_ONLY;
    /* The replayed image is the recovered one, whose superblock recovery
     * would clear the flag in; in memory only, as nothing is written. */
    if (replayed)
        ext2fs_clear_feature_journal_needs_recovery((*out)->super);
    return 0;
}

static bool needs_recovery(ext2_filsys fs)
{
    return ext2fs_has_feature_journal_needs_recovery(fs->super);
}

/* Where the journal of @fs (@img's) is: the blocks of its journal inode,
 * or of the external journal's file. *@map is malloc'd. */
static int journal_location(const struct e2_image *img, ext2_filsys fs, struct jbd2_dev *dev,
                            uint64_t **map, uint32_t *maplen, char *why, size_t len)
{
    if (!img->jdev)
        return e2_journal_map_load(fs, map, maplen, why, len);
    dev->external = true;
    dev->journal_fd = img->jdev->fd;
    *map = e2_jdev_map_dup(img->jdev);
    *maplen = img->jdev->maplen;
    return *map ? 0 : -ENOMEM;
}

/* The blocks a replay may write: those of the file system, and as the
 * kernel's replay bounded only by the device, the rest of the image's
 * window too. A transaction that grew the file system (resize.c) logs
 * blocks past the block count of the superblock on disk before it. */
static uint64_t replay_bound(const struct e2_image *img, ext2_filsys fs)
{
    uint64_t nblocks = ext2fs_blocks_count(fs->super), avail;

    if (!window_bytes(img, &avail, NULL, 0) && avail / fs->blocksize > nblocks)
        nblocks = avail / fs->blocksize;
    return nblocks;
}

/* Replay the journal of @img's file (open read-write) into the image;
 * *@fs is the image open read-only (closed on return). Then clear
 * needs_recovery. */
static int recover(const struct e2_image *img, ext2_filsys *fs, char *why, size_t len)
{
    struct jbd2_dev dev = {.fd = img->lock_fd, .base = img->offset};
    const char *path = img->path;
    struct jbd2_recover_stats st;
    unsigned bs = (*fs)->blocksize;
    uint64_t nblocks = replay_bound(img, *fs), *map = NULL;
    uint32_t maplen = 0;
    int ret;

    ret = journal_location(img, *fs, &dev, &map, &maplen, why, len);
    ext2fs_close_free(fs);
    if (ret)
        return ret;
    ret = jbd2_recover(&dev, bs, nblocks, map, maplen, &st, why, len);
    free(map);
    if (ret && why && len) {
        /* recover.c names the block and the cause; add the image. */
        char *cause = strdup(why);
        e2_say(why, len, "cannot replay the journal of '%s': %s", path,
               cause ? cause : strerror(-ret));
        free(cause);
    }
    if (ret)
        return ret;
    if (!st.was_empty)
        log_notice("'%s': journal recovered: %u transaction%s, %llu block%s replayed", path,
                   st.transactions, st.transactions == 1 ? "" : "s",
                   (unsigned long long)st.blocks_written, st.blocks_written == 1 ? "" : "s");
    ret = open_fs(img, false, NULL, fs, why, len);
    if (ret)
        return ret;
    ext2fs_clear_feature_journal_needs_recovery((*fs)->super);
    if (st.sb_errno) {
        /* The kernel aborted the journal: what it was doing is suspect.
         * s_errno comes from the image: any 32-bit value, INT_MIN too. */
        log_warn("'%s': the journal records an abort (errno %lld); marking the file system "
                 "as having errors",
                 path, -(long long)st.sb_errno);
        (*fs)->super->s_state |= EXT2_ERROR_FS;
    }
    ext2fs_mark_super_dirty(*fs);
    ret = e2_errno(ext2fs_close_free(fs));
    if (ret)
        e2_say(why, len, "cannot write the superblock of '%s' after recovery: %s", path,
               strerror(-ret));
    return ret;
}

/* jbd2_recover_to()'s sink for a read-only mount. */
static int put_overlay(void *ov, uint64_t blk, const void *data)
{
    return e2_overlay_put(ov, blk, data);
}

/* Replay the journal of the image open read-only in *@fs (closed on
 * return) into a new overlay *@out instead of the image: a read-only mount
 * serves the recovered state and leaves every byte of the image as it
 * was. */
static int recover_in_memory(const struct e2_image *img, ext2_filsys *fs, struct e2_overlay **out,
                             char *why, size_t len)
{
    /* Through the channel's own descriptor: the file already open. */
    struct jbd2_dev dev = {.fd = e2_iom_fd((*fs)->io), .base = e2_iom_base((*fs)->io)};
    const char *path = img->path;
    struct jbd2_recover_stats st;
    uint64_t nblocks = replay_bound(img, *fs), *map = NULL;
    struct e2_overlay *ov = e2_overlay_new((*fs)->blocksize);
    uint32_t maplen = 0;
    int ret;

    if (!ov) {
        ext2fs_close_free(fs);
        return -ENOMEM;
    }
    ret = journal_location(img, *fs, &dev, &map, &maplen, why, len);
    if (!ret)
        ret = jbd2_recover_to(&dev, (*fs)->blocksize, nblocks, map, maplen, put_overlay, ov, &st,
                              why, len);
    ext2fs_close_free(fs);
    free(map);
    if (ret) {
        e2_overlay_free(ov);
        return ret;
    }
    log_notice("'%s': journal recovered in memory (read-only: the image is not modified): "
               "%u transaction%s, %zu block%s",
               path, st.transactions, st.transactions == 1 ? "" : "s", e2_overlay_count(ov),
               e2_overlay_count(ov) == 1 ? "" : "s");
    if (st.sb_errno)
        log_warn("'%s': the journal records an abort (errno %lld); what the file system was "
                 "doing then is suspect",
                 path, -(long long)st.sb_errno);
    *out = ov;
    return 0;
}

/* Take the MMP block of an image that has one (once), before the first
 * write to the image; img->fs is open. */
static int take_mmp(struct e2_image *img, char *why, size_t len)
{
    if (img->mmp || !ext2fs_has_feature_mmp(img->fs->super))
        return 0;
    return e2_mmp_start(img, img->fs, &img->mmp, why, len);
}

/* Give the MMP block back (if held) after a failed or read-only open. */
static void release_mmp(struct e2_image *img)
{
    int ret = e2_mmp_stop(img->mmp);

    img->mmp = NULL;
    if (ret)
        log_err("'%s': releasing its MMP block failed: %s", img->path, strerror(-ret));
}

/* A read-write mount marks the file system as in use, as the kernel does:
 * without a journal not clean until close, so a crashed daemon's image
 * gets checked; with one, needing recovery, so the log gets replayed. */
static int mark_mounted(struct e2_image *img)
{
    struct ext2_super_block *sb = img->fs->super;
    int ret;

    if (ext2fs_has_feature_journal(sb))
        ext2fs_set_feature_journal_needs_recovery(sb);
    else
        sb->s_state &= ~EXT2_VALID_FS;
    sb->s_mnt_count++;
    sb->s_mtime = (uint32_t)time(NULL);
    ext2fs_mark_super_dirty(img->fs);
    ret = e2_errno(ext2fs_flush(img->fs));
    if (!ret)
        ret = e2_errno(e2_iom_sync(img->fs->io));
    return ret;
}

/* The journal loaded and checked, and the superblock marked mounted (in
 * this order: a journal refused leaves the image unchanged). */
static int mark_mounted_journal(struct e2_image *img, struct e2_journal **jn, char *why,
                                size_t why_len)
{
    int ret = 0;

    *jn = NULL;
    if (ext2fs_has_feature_journal(img->fs->super))
        ret = e2_journal_load(img, jn, why, why_len);
    if (ret)
        return ret;
    ret = mark_mounted(img);
    if (ret) {
        e2_say(why, why_len, "cannot write the superblock of '%s': %s", img->path, strerror(-ret));
        e2_journal_free(*jn);
        *jn = NULL;
    }
    return ret;
}

/* Journal on, then what the last session left on the orphan list and in
 * the orphan file (in this order, as the kernel). */
static int start_writing(struct e2_image *img, struct e2_journal *jn, char *why, size_t why_len)
{
    int ret;

    if (jn)
        e2_journal_start(img, jn);
    ret = e2_orphan_cleanup_locked(img);
    if (!ret)
        ret = e2_orphan_file_cleanup_locked(img);
    if (ret)
        e2_say(why, why_len, "cannot release the orphan inodes of '%s': %s", img->path,
               strerror(-ret));
    return ret;
}

/* An external journal (journal_dev), opened and checked before anything
 * is replayed, as the kernel loads it before recovery: journal_path=
 * names its file. Without one, only -o ro,noload mounts the image (as it
 * is, without its journal); journal_path= on an image whose journal is
 * not external is refused rather than ignored. */
static int open_external_journal(struct e2_image *img, const struct e2_open_opts *o, bool *need_ro,
                                 char *why, size_t len)
{
    struct ext2_super_block *sb = img->fs->super;
    char uuid[40];

    if (!e2_journal_is_external(sb)) {
        if (!o->journal_path)
            return 0;
        e2_say(why, len, "journal_path=%s is given, but '%s' %s", o->journal_path, img->path,
               ext2fs_has_feature_journal(sb) ? "keeps its journal inside it" : "has no journal");
        return -EINVAL;
    }
    if (o->journal_path)
        return e2_jdev_open(o->journal_path, !o->read_only, img->lock_fd, img->fs, &img->jdev, why,
                            len);
    snprintf(uuid, sizeof(uuid), "%s", e2p_uuid2str(sb->s_journal_uuid));
    if (o->norecovery) {
        e2_say(why, len,
               "the journal of '%s' is on another device and no journal_path= is given; with "
               "noload it is mounted read-only, without its journal",
               img->path);
        *need_ro = true;
        return 0;
    }
    e2_say(why, len,
           "the journal of '%s' is on another device (journal UUID %s): pass -o journal_path=FILE "
           "naming that device or a copy of it, or -o ro,noload to mount it read-only without "
           "its journal",
           img->path, uuid);
    return -EINVAL;
}

/* The image read-only first: its superblock decides whether we may
 * write. A journal that needs recovery is replayed (into the image, or in
 * memory for a read-only open) and the replayed superblock checked again.
 * *@need_ro says a feature or norecovery allows reading only (@why names
 * it). img->fs is left open, or NULL. */
static int check_and_recover(struct e2_image *img, const struct e2_open_opts *o, bool *need_ro,
                             char *why, size_t why_len)
{
    const char *path = img->path;
    uint64_t avail;
    /* Before the superblock is looked for: a clearer message. */
    int ret = window_bytes(img, &avail, why, why_len);

    for (int pass = 0; !ret; pass++) {
        ret = open_fs(img, true, img->replayed, &img->fs, why, why_len);
        if (ret)
            return ret;
        ret = check_layout(img->fs, path, why, why_len);
        if (!ret)
            ret = check_fits(img, img->fs, why, why_len);
        if (!ret)
            ret = check_super(img->fs, path, need_ro, why, why_len);
        if (!ret && !pass)
            ret = open_external_journal(img, o, need_ro, why, why_len);
        if (ret || !needs_recovery(img->fs) || o->norecovery || pass)
            break;
        if (o->read_only) {
            /* The next pass checks the replayed superblock. */
            ret = recover_in_memory(img, &img->fs, &img->replayed, why, why_len);
            if (ret)
                return ret;
            continue;
        }
        /* Replaying writes: the image must be ours first, as for the
         * kernel, which replays after taking the MMP block. */
        ret = take_mmp(img, why, why_len);
        if (ret)
            return ret;
        ret = recover(img, &img->fs, why, why_len);
        if (ret)
            return ret;
        *need_ro = false;
    }
    if (!ret && needs_recovery(img->fs)) {
        if (!o->norecovery) {
            e2_say(why, why_len, "image '%s' still needs recovery after replaying its journal",
                   path);
            ret = -EUCLEAN;
        } else if (!o->read_only) {
            /* norecovery: the image as it is, which only reading can use. */
            e2_say(why, why_len,
                   "image '%s' needs journal recovery; with norecovery it is mounted read-only "
                   "and shows the state before the journal's transactions",
                   path);
            *need_ro = true;
        }
    }
    return ret;
}

/* Read-only or read-write, as asked and as check_and_recover() allows;
 * a read-write open holds the MMP block, a read-only one leaves it alone,
 * as the kernel's does (if it was taken for a replay only, it is given
 * back here). */
static int choose_mode(struct e2_image *img, const struct e2_open_opts *o, bool need_ro,
                       bool *ro_forced, char *why, size_t why_len)
{
    if (need_ro && !o->read_only && !o->force_ro_ok)
        return -EROFS;
    img->read_only = o->read_only || need_ro;
    *ro_forced = need_ro && !o->read_only;
    if (!img->read_only)
        return take_mmp(img, why, why_len);
    release_mmp(img);
    return 0;
}

/* The superblock's free block and inode totals from the group
 * descriptors, as the kernel's mount computes them: the kernel updates
 * the totals in the superblock only when it writes it for another reason,
 * so after its crash (a journal replayed here) they are stale, and
 * freeing orphans from stale totals would leave them wrong. */
static void recount_free(ext2_filsys fs)
{
    uint64_t clusters = 0, inodes = 0;

    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        clusters += ext2fs_bg_free_blocks_count(fs, g);
        inodes += ext2fs_bg_free_inodes_count(fs, g);
    }
    if (ext2fs_free_blocks_count(fs->super) == EXT2FS_C2B(fs, clusters) &&
        fs->super->s_free_inodes_count == inodes)
        return;
    ext2fs_free_blocks_count_set(fs->super, EXT2FS_C2B(fs, clusters));
    fs->super->s_free_inodes_count = (uint32_t)inodes;
    if (fs->flags & EXT2_FLAG_RW)
        ext2fs_mark_super_dirty(fs);
}

/* The root directory as the kernel's mount gets it (ext4_iget of inode
 * 2): a root whose blocks lie refuses the open, since every path goes
 * through it. */
static int check_root(struct e2_image *img, char *why, size_t why_len)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, EXT2_ROOT_INO, &in);
    if (!ret)
        ret = e2_sysz_check_inode_locked(img, EXT2_ROOT_INO, &in);
    e2_unlock(img);
    if (ret)
        e2_say(why, why_len, "cannot use the root directory of '%s': %s", img->path,
               strerror(-ret));
    return ret;
}

/* The image opened again in its mode for use, in place of the read-only
 * handle the checks used, with an inode cache and its bitmaps. */
static int open_for_use(struct e2_image *img, char *why, size_t why_len)
{
    int ret;

    ext2fs_close_free(&img->fs);
    ret = open_fs(img, img->read_only, img->replayed, &img->fs, why, why_len);
    if (ret)
        return ret;
    /* libext2fs caches 4 inodes by default; every operation reads a few. */
    if (img->fs->icache) {
        ext2fs_free_inode_cache(img->fs->icache);
        img->fs->icache = NULL;
    }
    ext2fs_create_inode_cache(img->fs, E2_INODE_CACHE);
    ret = e2_errno(ext2fs_read_bitmaps(img->fs));
    if (ret) {
        e2_say(why, why_len, "cannot read the bitmaps of '%s': %s", img->path, strerror(-ret));
        return ret;
    }
    recount_free(img->fs);
    ret = e2_trim_start(img);
    if (ret) {
        e2_say(why, why_len, "cannot open '%s': %s", img->path, strerror(-ret));
        return ret;
    }
    ret = e2_sysz_build(img);
    if (ret) {
        e2_say(why, why_len, "cannot map the metadata blocks of '%s': %s", img->path,
               strerror(-ret));
        return ret;
    }
    if (!img->read_only) {
        ret = e2_sysz_check_bitmap(img, why, why_len);
        if (ret)
            return ret;
    }
    return check_root(img, why, why_len);
}

/* A read-write open: quota accounting started, the journal checked and
 * the superblock marked mounted, then writing started (start_writing: the
 * journal, the orphan list). */
static int go_read_write(struct e2_image *img, char *why, size_t why_len)
{
    struct e2_journal *jn;
    int ret = e2_quota_start(img, why, why_len);

    if (!ret)
        ret = mark_mounted_journal(img, &jn, why, why_len);
    if (ret)
        return ret;
    e2_lock(img);
    ret = start_writing(img, jn, why, why_len);
    e2_unlock(img);
    return ret;
}

/* @o's window, as a loop device takes it: no file offset is past
 * INT64_MAX (off_t), so a sizelimit reaching past offset + sizelimit =
 * INT64_MAX ends where the file ends, as no limit does (the OFD lock and
 * the I/O manager refuse a range past INT64_MAX). An offset past it is
 * past the end of any image. */
static int set_window(struct e2_image *img, const struct e2_open_opts *o, char *why, size_t len)
{
    if (o->offset > (uint64_t)INT64_MAX) {
        e2_say(why, len, "offset=%llu is past the end of image '%s'", (unsigned long long)o->offset,
               img->path);
        return -EINVAL;
    }
    img->offset = o->offset;
    img->sizelimit = o->sizelimit > (uint64_t)INT64_MAX - o->offset ? 0 : o->sizelimit;
    return 0;
}

/* A partition's window and lock, narrowed to the bytes of its file
 * system once its final superblock is known (after any replay, which may
 * have grown it): with offset= alone (mount -o loop,offset=N) the lock
 * would cover every later partition to the end of the file. uext4 never
 * resizes a file system, so nothing past them is ever needed. A whole
 * image file keeps its lock: its flock already says whole. */
static int narrow_window(struct e2_image *img, const struct e2_open_opts *o, char *why, size_t len)
{
    uint64_t need = ext2fs_blocks_count(img->fs->super) * img->fs->blocksize;
    int ret;

    if ((!img->offset && !img->sizelimit) || (img->sizelimit && need >= img->sizelimit))
        return 0;
    ret = e2_imgfile_narrow(
        img->lock_fd, &(struct e2_imgfile_claim){!o->read_only, img->offset, img->sizelimit}, need);
    if (ret) {
        e2_say(why, len, "cannot lock image '%s': %s", img->path, strerror(-ret));
        return ret;
    }
    img->sizelimit = need;
    return 0;
}

int e2_image_open(const char *path, const struct e2_open_opts *o, struct e2_image **out,
                  bool *ro_forced, char *why, size_t why_len)
{
    struct e2_image *img;
    bool need_ro = false;
    int ret;

    *ro_forced = false;
    if (e2_crc32c_check()) {
        e2_say(why, why_len, "cannot open '%s': this build computes wrong CRC-32C checksums", path);
        return -EIO;
    }
    img = calloc(1, sizeof(*img));
    if (!img)
        return -ENOMEM;
    mutex_init(&img->disk_lock, LC_DISK, 0);
    img->path = strdup(path);
    if (!img->path) {
        ret = -ENOMEM;
        goto out_free;
    }
    ret = set_window(img, o, why, why_len);
    if (ret)
        goto out_free;
    /* The one open of the image file: everything below reads and writes
     * through it. */
    ret = e2_imgfile_open(
        path, &(struct e2_imgfile_claim){!o->read_only, img->offset, img->sizelimit}, why, why_len);
    if (ret < 0)
        goto out_free;
    img->lock_fd = ret;

    ret = check_and_recover(img, o, &need_ro, why, why_len);
    if (!ret)
        ret = narrow_window(img, o, why, why_len);
    if (!ret)
        ret = choose_mode(img, o, need_ro, ro_forced, why, why_len);
    if (ret)
        goto out_close;
    ret = open_for_use(img, why, why_len);
    if (ret)
        goto out_close;
    if (!img->read_only) {
        ret = go_read_write(img, why, why_len);
        if (ret)
            goto out_stop; /* stops the journal if it was started */
    }
    *out = img;
    return 0;

out_stop:
    e2_lock(img);
    if (img->journal)
        e2_journal_stop_locked(img);
    e2_unlock(img);

out_close:
    e2_trim_stop(img);
    e2_quota_stop(img);
    e2_sysz_free(img);
    e2_orphan_links_free(img);
    if (img->fs)
        ext2fs_close_free(&img->fs);
    release_mmp(img);
    e2_jdev_close(img->jdev);
    close(img->lock_fd);
out_free:
    e2_overlay_free(img->replayed);
    free(img->partial);
    free(img->path);
    mutex_destroy(&img->disk_lock);
    free(img);
    return ret;
}

/* After a failed write of metadata, of the journal or a failed fdatasync
 * (iomgr.h's latch), nothing more is written: the cache holds changes that
 * can no longer reach the image in order, as when jbd2 aborts. The image
 * keeps what was last made durable: with a journal, the log the next
 * mount replays; without one, a superblock marked not clean. */
static bool has_failed_locked(struct e2_image *img)
{
    return e2_iom_failed(img->fs->io) != 0;
}

static void say_failed_locked(struct e2_image *img)
{
    int err = e2_errno(e2_iom_failed(img->fs->io));

    if (img->failure_said)
        return;
    img->failure_said = true;
    log_err("writing image '%s' failed: %s; it takes no more changes, and %s", img->path,
            strerror(-err),
            img->journal ? "its journal is replayed at the next mount"
                         : "it needs 'e2fsck -fy' before it is mounted again");
}

int e2_image_error(struct e2_image *img)
{
    /* Without the disk lock: every operation asks (fs_may_write). img->fs
     * is set for the image's whole life. */
    return e2_iom_failed(img->fs->io) ? -EIO : 0;
}

int e2_image_close(struct e2_image *img)
{
    int ret = 0, cret;

    e2_lock(img);
    if (!img->read_only && !has_failed_locked(img)) {
        struct ext2_super_block *sb = img->fs->super;

        sb->s_state |= EXT2_VALID_FS;
        sb->s_wtime = (uint32_t)time(NULL);
        ext2fs_mark_super_dirty(img->fs);
    }
    /* Also after errors=remount-ro: what was done before the error (and
     * the error record itself) is committed, as without a journal it
     * would be written back. */
    ret = e2_quota_flush_locked(img);
    cret = e2_journal_stop_locked(img);
    ret = ret ? ret : cret;
    e2_trim_stop(img);
    if (has_failed_locked(img)) {
        /* Nothing of the cache goes to the image now (the journal, if
         * any, stays in journaled mode: the I/O manager drops its dirty blocks). */
        img->fs->flags &= ~(EXT2_FLAG_DIRTY | EXT2_FLAG_BB_DIRTY | EXT2_FLAG_IB_DIRTY);
        ret = -EIO;
    }
    e2_quota_stop(img);
    e2_sysz_free(img);
    e2_orphan_links_free(img);
    cret = e2_errno(ext2fs_close_free(&img->fs));
    ret = ret ? ret : cret;
    e2_unlock(img);
    /* After the last write to the image. */
    cret = e2_mmp_stop(img->mmp);
    img->mmp = NULL;
    if (cret == -EBUSY)
        log_err("'%s' was taken over by another system while mounted: run 'e2fsck -f' on it "
                "once that system has released it",
                img->path);
    ret = ret ? ret : cret;
    if (ret)
        log_err("closing '%s': %s", img->path, strerror(-ret));
    e2_jdev_close(img->jdev);
    close(img->lock_fd);
    e2_overlay_free(img->replayed);
    mutex_destroy(&img->disk_lock);
    free(img->partial);
    free(img->path);
    free(img);
    return ret;
}

/* The state a close leaves, without closing: journal emptied and stopped,
 * the superblock clean, everything synced. */
static int make_final_locked(struct e2_image *img)
{
    struct ext2_super_block *sb = img->fs->super;
    int ret, fret;

    if (has_failed_locked(img))
        return -EIO; /* nothing more is written (has_failed_locked) */
    ret = e2_quota_flush_locked(img);
    if (!ret)
        ret = e2_journal_stop_locked(img);
    if (!ret)
        sb->s_state |= EXT2_VALID_FS;
    sb->s_wtime = (uint32_t)time(NULL);
    ext2fs_mark_super_dirty(img->fs);
    fret = e2_errno(ext2fs_flush(img->fs));
    if (!fret)
        fret = e2_errno(e2_iom_sync(img->fs->io));
    return ret ? ret : fret;
}

/* Read-only from here on even if the write-back fails: what is left is
 * what the next read-write mount recovers. */
static int go_read_only_locked(struct e2_image *img, char *why, size_t why_len)
{
    int ret;

    assert(mutex_is_held(&img->disk_lock));
    img->read_only = true;
    ret = make_final_locked(img);
    if (ret)
        e2_say(why, why_len, "cannot write back '%s' before going read-only: %s", img->path,
               strerror(-ret));
    return ret;
}

/* Why a read-only image cannot become writable, if it cannot. */
static int may_write_locked(struct e2_image *img, char *why, size_t why_len)
{
    assert(mutex_is_held(&img->disk_lock));
    if (!(img->fs->flags & EXT2_FLAG_RW)) {
        e2_say(why, why_len,
               "'%s' was mounted read-only; unmount it and mount it read-write to write to it",
               img->path);
        return -EROFS;
    }
    if (img->fs->super->s_state & EXT2_ERROR_FS) {
        e2_say(why, why_len, "'%s' has errors recorded; unmount it and run 'e2fsck -fy' on it",
               img->path);
        return -EUCLEAN;
    }
    if (has_failed_locked(img)) {
        e2_say(why, why_len, "writing '%s' failed before; unmount it and mount it again",
               img->path);
        return -EIO;
    }
    return 0;
}

static int go_writable_locked(struct e2_image *img, char *why, size_t why_len)
{
    struct e2_journal *jn;
    int ret = may_write_locked(img, why, why_len);

    if (ret)
        return ret;
    ret = mark_mounted_journal(img, &jn, why, why_len);
    if (ret)
        return ret;
    /* The journal only: the orphan list holds this session's files that
     * are unlinked but still open, which their last close frees. */
    if (jn)
        e2_journal_start(img, jn);
    img->read_only = false;
    return 0;
}

int e2_image_set_writable(struct e2_image *img, bool writable, char *why, size_t why_len)
{
    bool took_mmp = false;
    int ret = 0;

    /* Multiple-mount protection, as the kernel's remount: taken before the
     * image becomes writable (it may sleep: not under the disk lock; the
     * superblock fields it reads never change), released once it is
     * read-only again. */
    if (writable && img->read_only && (img->fs->flags & EXT2_FLAG_RW) && !img->mmp &&
        ext2fs_has_feature_mmp(img->fs->super)) {
        ret = take_mmp(img, why, why_len);
        if (ret)
            return ret;
        took_mmp = true;
    }
    e2_lock(img);
    if (writable != !img->read_only)
        ret = writable ? go_writable_locked(img, why, why_len)
                       : go_read_only_locked(img, why, why_len);
    e2_unlock(img);
    /* The MMP thread takes the disk lock: stopped only after it is free. */
    if ((!writable && img->mmp) || (ret && took_mmp))
        release_mmp(img);
    return ret;
}

int e2_image_sync(struct e2_image *img)
{
    int ret = 0;

    e2_lock(img);
    if (has_failed_locked(img)) {
        say_failed_locked(img);
        ret = -EIO;
        goto out_unlock;
    }
    if (img->journal) {
        ret = e2_journal_commit_locked(img);
        img->commit_asked = false;
        atomic_store(&img->commit_overdue, false);
    } else if (!img->read_only) {
        ret = e2_quota_flush_locked(img);
        if (!ret)
            ret = e2_errno(ext2fs_flush2(img->fs, 0));
        if (!ret)
            ret = e2_errno(io_channel_flush(img->fs->io));
    }
    if (has_failed_locked(img))
        say_failed_locked(img);
out_unlock:
    e2_unlock(img);
    return ret;
}

/* Read-only: no running journal; the log on disk is empty unless a
 * replay was kept in memory (norecovery-like mounts of a dirty log). */
static int checkpoint_read_only(const struct e2_image *img, unsigned how)
{
    if (how & E2_CHECKPOINT_DRY_RUN)
        return 0;
    if (img->replayed || (how & (E2_CHECKPOINT_DISCARD | E2_CHECKPOINT_ZEROOUT)))
        return -EROFS;
    return 0;
}

int e2_image_checkpoint(struct e2_image *img, unsigned how)
{
    int ret = 0;

    e2_lock(img);
    if (!ext2fs_has_feature_journal(img->fs->super)) {
        ret = -ENODEV;
    } else if (has_failed_locked(img)) {
        say_failed_locked(img);
        ret = -EIO;
    } else if (!img->journal) {
        ret = checkpoint_read_only(img, how);
    } else if (!(how & E2_CHECKPOINT_DRY_RUN)) {
        ret = e2_journal_flush_locked(img, how);
        img->commit_asked = false;
        atomic_store(&img->commit_overdue, false);
    }
    e2_unlock(img);
    return ret;
}

bool e2_commit_overdue(struct e2_image *img)
{
    return atomic_load(&img->commit_overdue);
}

void e2_set_commit_notify(struct e2_image *img, void (*fn)(void *arg), void *arg)
{
    e2_lock(img);
    img->commit_wanted = fn;
    img->commit_arg = arg;
    e2_unlock(img);
}

bool e2_has_journal(const struct e2_image *img)
{
    return img->journal != NULL;
}

const char *e2_library_version(void)
{
    const char *ver = NULL;

    ext2fs_get_library_version(&ver, NULL);
    return ver ? ver : "unknown";
}

bool e2_is_read_only(const struct e2_image *img)
{
    return img->read_only;
}

void e2_set_read_only(struct e2_image *img)
{
    img->read_only = true;
}

unsigned e2_block_size(const struct e2_image *img)
{
    return img->fs->blocksize;
}

bool e2_has_inline_data(const struct e2_image *img)
{
    return ext2fs_has_feature_inline_data(img->fs->super);
}

uint64_t e2_max_file_size(const struct e2_image *img, bool extents)
{
    uint64_t bs = img->fs->blocksize, k = bs / 4, blocks;

    if (extents)
        return ((1ULL << 32) - 1) * bs; /* logical block numbers are 32 bits */
    blocks = 12 + k + k * k + k * k * k;
    if (!ext2fs_has_feature_huge_file(img->fs->super) && blocks > ((1ULL << 32) - 1) / (bs / 512))
        blocks = ((1ULL << 32) - 1) / (bs / 512); /* i_blocks counts 512-byte sectors */
    return blocks * bs;
}

bool e2_has_verity(const struct e2_image *img)
{
    return ext2fs_has_feature_verity(img->fs->super);
}

bool e2_has_extents(const struct e2_image *img)
{
    return ext2fs_has_feature_extents(img->fs->super);
}

bool e2_has_project(const struct e2_image *img)
{
    return ext2fs_has_feature_project(img->fs->super);
}

uint64_t e2_blocks_count(const struct e2_image *img)
{
    return ext2fs_blocks_count(img->fs->super);
}

void e2_record_error(struct e2_image *img, uint32_t ino, const char *func, int line)
{
    struct ext2_super_block *sb;
    uint32_t now = (uint32_t)time(NULL);

    e2_lock(img);
    sb = img->fs->super;
    sb->s_state |= EXT2_ERROR_FS;
    sb->s_error_count++;
    if (!sb->s_first_error_time) {
        sb->s_first_error_time = now;
        sb->s_first_error_ino = ino;
        sb->s_first_error_line = (uint32_t)line;
        strncpy((char *)sb->s_first_error_func, func, sizeof(sb->s_first_error_func));
    }
    sb->s_last_error_time = now;
    sb->s_last_error_ino = ino;
    sb->s_last_error_line = (uint32_t)line;
    strncpy((char *)sb->s_last_error_func, func, sizeof(sb->s_last_error_func));
    if (!img->read_only)
        ext2fs_mark_super_dirty(img->fs);
    e2_unlock(img);
}

int e2_statfs(struct e2_image *img, struct e2_statfs *st)
{
    struct ext2_super_block *sb;
    uint64_t resv;

    e2_lock(img);
    sb = img->fs->super;
    st->bsize = img->fs->blocksize;
    st->blocks = ext2fs_blocks_count(sb);
    st->bfree = ext2fs_free_blocks_count(sb);
    resv = ext2fs_r_blocks_count(sb);
    st->bavail = st->bfree > resv ? st->bfree - resv : 0;
    st->files = sb->s_inodes_count;
    st->ffree = sb->s_free_inodes_count;
    st->namemax = EXT2_NAME_LEN;
    e2_unlock(img);
    return 0;
}
