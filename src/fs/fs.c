/* Opening and closing a mount of an image; whole-file-system operations. */
#include "fs/fs_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *uext4_version(void)
{
    return UEXT4_VERSION;
}

const char *uext4_ext2fs_version(void)
{
    return e2_library_version();
}

int uext4_open(const char *image, const struct uext4_options *opts, struct uext4_fs **out,
               char *why, size_t why_len)
{
    static const struct uext4_options defaults;
    struct e2_open_opts eo;
    struct uext4_fs *fs;
    bool ro_forced = false;
    int ret;

    if (why && why_len)
        why[0] = '\0';
    if (!opts)
        opts = &defaults;
    fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    fs->opts = *opts;
    eo.read_only = opts->read_only;
    eo.norecovery = opts->norecovery;
    eo.force_ro_ok = true;
    ret = e2_image_open(image, &eo, &fs->img, &ro_forced, why, why_len);
    if (ret)
        goto out_free;
    if (ro_forced)
        log_warn("%s", why);
    ret = fs_icache_init(fs);
    if (ret)
        goto out_close;
    ret = fs_pcache_create(fs);
    if (ret)
        goto out_icache;
    rwlock_init(&fs->mount_lock, LC_MOUNT);
    fs->inline_files = e2_has_inline_data(fs->img);
    if (!e2_is_read_only(fs->img)) {
        ret = fs_commit_start(fs, opts->commit_seconds ? opts->commit_seconds : 5);
        if (ret)
            goto out_pcache;
    }
    *out = fs;
    return 0;

out_pcache:
    rwlock_destroy(&fs->mount_lock);
    pc_destroy(fs->pc);
out_icache:
    fs_icache_destroy(fs);
out_close:
    e2_image_close(fs->img);
out_free:
    free(fs);
    return ret;
}

int uext4_close(struct uext4_fs *fs)
{
    int ret, cret;

    fs_commit_stop(fs);
    ret = fs_writeback_all(fs);
    rwlock_wrlock(&fs->mount_lock);
    cret = fs_icache_destroy(fs);
    ret = ret ? ret : cret;
    rwlock_unlock(&fs->mount_lock);
    cret = fs->free_err; /* not reported by a fsync or sync yet */
    ret = ret ? ret : cret;
    cret = e2_image_close(fs->img);
    pc_destroy(fs->pc);
    rwlock_destroy(&fs->mount_lock);
    free(fs);
    return ret ? ret : cret;
}

int uext4_sync(struct uext4_fs *fs)
{
    int ret = fs_writeback_all(fs), fret;

    if (!ret)
        ret = fs_commit_now(fs);
    fret = fs_take_free_error(fs);
    return ret ? ret : fret;
}

int fs_commit_now(struct uext4_fs *fs)
{
    int ret;

    if (e2_is_read_only(fs->img))
        return 0;
    /* No operation is half done while the mount lock is held for writing:
     * the commit sees only whole operations (a jbd2 transaction's handles
     * all stopped). */
    rwlock_wrlock(&fs->mount_lock);
    ret = e2_image_sync(fs->img);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

int uext4_remount(struct uext4_fs *fs, bool read_only, char *why, size_t why_len)
{
    int ret = 0;

    if (why && why_len)
        why[0] = '\0';
    /* Dirty emulated pages first, while writes are still allowed. */
    if (read_only && !e2_is_read_only(fs->img))
        ret = fs_writeback_all(fs);
    if (ret) {
        snprintf(why, why_len, "writing back dirty pages failed: %s", strerror(-ret));
        return ret;
    }
    /* No operation is half done while the mount lock is held for writing:
     * each one checked the mode once, at its start (fs_may_write). */
    rwlock_wrlock(&fs->mount_lock);
    ret = e2_image_set_writable(fs->img, !read_only, why, why_len);
    rwlock_unlock(&fs->mount_lock);
    if (!ret)
        log_info("remounted %s", read_only ? "read-only" : "read-write");
    return ret;
}

bool uext4_is_read_only(const struct uext4_fs *fs)
{
    return e2_is_read_only(fs->img);
}

bool uext4_open_needs_check(const struct uext4_fs *fs)
{
    return e2_has_verity(fs->img);
}

unsigned uext4_block_size(const struct uext4_fs *fs)
{
    return e2_block_size(fs->img);
}

int uext4_statfs(struct uext4_fs *fs, struct statvfs *sv)
{
    struct e2_statfs st;
    int ret = e2_statfs(fs->img, &st);

    if (ret)
        return ret;
    memset(sv, 0, sizeof(*sv));
    sv->f_bsize = st.bsize;
    sv->f_frsize = st.bsize;
    sv->f_blocks = st.blocks;
    sv->f_bfree = st.bfree;
    sv->f_bavail = st.bavail;
    sv->f_files = st.files;
    sv->f_ffree = st.ffree;
    sv->f_favail = st.ffree;
    sv->f_namemax = st.namemax;
    sv->f_flag = e2_is_read_only(fs->img) ? ST_RDONLY : 0;
    return 0;
}
