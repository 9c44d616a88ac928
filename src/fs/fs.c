/* Opening and closing a mount of an image; whole-file-system operations. */
#include "fs/fs_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
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

static void set_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    if (!why || !why_len)
        return;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* The level numbers are the same; log.h's stay internal. */
_Static_assert((int)UEXT4_LOG_ERR == (int)LOG_LVL_ERR &&
                   (int)UEXT4_LOG_WARNING == (int)LOG_LVL_WARN &&
                   (int)UEXT4_LOG_NOTICE == (int)LOG_LVL_NOTICE &&
                   (int)UEXT4_LOG_INFO == (int)LOG_LVL_INFO &&
                   (int)UEXT4_LOG_DEBUG == (int)LOG_LVL_DEBUG,
               "uext4_log_level and log_level differ");

/* The embedding program's function; set with the same contract as
 * log_set_func() (no other thread logging). */
static uext4_log_func user_log_func;

static void log_to_user(enum log_level lvl, const char *line, void *data)
{
    user_log_func((enum uext4_log_level)lvl, line, data);
}

void uext4_set_log_func(uext4_log_func func, void *data, enum uext4_log_level max)
{
    if (max > UEXT4_LOG_DEBUG)
        max = UEXT4_LOG_DEBUG;
    user_log_func = func;
    log_set_func(func ? log_to_user : NULL, data, (enum log_level)max);
}

/* The size of struct uext4_options in its first layout (soname 1): up to
 * and including gidmap. Fields added later go after gidmap, and a caller's
 * @size that stops before them leaves them at their defaults. */
#define OPTIONS_SIZE_1                                                                             \
    (offsetof(struct uext4_options, gidmap) + sizeof(((struct uext4_options *)0)->gidmap))

void uext4_options_init(struct uext4_options *opts, size_t size)
{
    struct uext4_options defaults = {.size = sizeof(defaults)};

    /* The defaults are all zero today; a field whose default is not goes
     * into @defaults above, and a caller's shorter @size cuts it off. */
    memset(opts, 0, size);
    memcpy(opts, &defaults, size < sizeof(defaults) ? size : sizeof(defaults));
    if (size >= sizeof(opts->size))
        opts->size = size;
}

/* Copy the caller's @opts (of its own size) into @dst (ours), with the
 * defaults for fields it does not know. */
static int options_copy(struct uext4_options *dst, const struct uext4_options *opts, char *why,
                        size_t why_len)
{
    const unsigned char *tail = (const unsigned char *)opts + sizeof(*dst);
    size_t i;

    uext4_options_init(dst, sizeof(*dst));
    if (!opts)
        return 0;
    if (opts->size == 0) {
        /* Zero-initialised and never set: written against the first
         * layout's fields (`= {.read_only = true}`), which is all it gets. */
        memcpy(dst, opts, OPTIONS_SIZE_1);
        dst->size = sizeof(*dst);
        return 0;
    }
    if (opts->size < OPTIONS_SIZE_1) {
        set_why(why, why_len,
                "struct uext4_options.size is %zu (at least %zu): set it up with "
                "uext4_options_init()",
                opts->size, (size_t)OPTIONS_SIZE_1);
        return -EINVAL;
    }
    /* Options of a newer uext4.h: refused if set, as they would be ignored. */
    for (i = 0; i + sizeof(*dst) < opts->size; i++) {
        if (tail[i]) {
            set_why(why, why_len,
                    "struct uext4_options sets an option at byte %zu that this library (uext4 "
                    "%s) does not know",
                    sizeof(*dst) + i, UEXT4_VERSION);
            return -EINVAL;
        }
    }
    memcpy(dst, opts, opts->size < sizeof(*dst) ? opts->size : sizeof(*dst));
    dst->size = sizeof(*dst);
    return 0;
}

/* The resolution of the coarse clock (file.c, times_unseen); 0 if the
 * system cannot tell, which never lets a write leave the times. */
static int64_t coarse_tick_ns(void)
{
    struct timespec res;

    if (clock_getres(CLOCK_REALTIME_COARSE, &res) || res.tv_sec)
        return 0;
    return res.tv_nsec;
}

int uext4_open(const char *image, const struct uext4_options *user_opts, struct uext4_fs **out,
               char *why, size_t why_len)
{
    struct e2_open_opts eo;
    struct uext4_fs *fs;
    const struct uext4_options *opts;
    bool ro_forced = false;
    int ret;

    if (why && why_len)
        why[0] = '\0';
    fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    ret = options_copy(&fs->opts, user_opts, why, why_len);
    if (ret)
        goto out_free;
    opts = &fs->opts;
    eo.read_only = opts->read_only;
    eo.norecovery = opts->norecovery;
    eo.force_ro_ok = true;
    eo.offset = opts->offset;
    eo.sizelimit = opts->sizelimit;
    eo.journal_path = opts->journal_path;
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
    fs->tick_ns = coarse_tick_ns();
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
    cret = fs->free_err ? fs->free_err : fs->write_err; /* not reported by a fsync or sync yet */
    ret = ret ? ret : cret;
    cret = e2_image_close(fs->img);
    pc_destroy(fs->pc);
    rwlock_destroy(&fs->mount_lock);
    free(fs);
    return ret ? ret : cret;
}

int uext4_sync(struct uext4_fs *fs)
{
    int ret = fs_writeback_all(fs), fret, wret;

    if (!ret)
        ret = fs_commit_now(fs);
    fret = fs_take_free_error(fs);
    wret = fs_take_write_error(fs);
    return ret ? ret : fret ? fret : wret;
}

int fs_commit_now(struct uext4_fs *fs)
{
    int ret;

    if (e2_is_read_only(fs->img))
        return e2_image_error(fs->img);
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

bool uext4_has_casefold(const struct uext4_fs *fs)
{
    return e2_has_casefold(fs->img);
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
