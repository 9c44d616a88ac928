/* Parsing of the uext4 `-o` option list. */
#include "frontend/mount_opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int opt_error(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int opt_error(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A decimal number and nothing else: no sign, no blanks, no overflow. */
static bool parse_u32(const char *s, const char **end, uint32_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return false;
        p++;
    }
    *end = p;
    *out = (uint32_t)v;
    return p != s;
}

/* Bytes: decimal digits, at most INT64_MAX (an off_t). */
static bool parse_bytes(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *out = v;
    return p != s && *p == '\0';
}

static bool ranges_overlap(uint32_t a, uint32_t b, uint32_t count_a, uint32_t count_b)
{
    return (uint64_t)a < (uint64_t)b + count_b && (uint64_t)b < (uint64_t)a + count_a;
}

/* IMAGE:LOCAL[:COUNT]. (uid_t)-1 means "no id" to the kernel, so a range
 * may not reach it. */
static bool parse_idmap(const char *s, struct uext4_idmap *out)
{
    const char *p;

    if (!parse_u32(s, &p, &out->image) || *p != ':')
        return false;
    if (!parse_u32(p + 1, &p, &out->local))
        return false;
    out->count = 1;
    if (*p == ':' && !parse_u32(p + 1, &p, &out->count))
        return false;
    if (*p != '\0' || out->count == 0)
        return false;
    if ((uint64_t)out->image + out->count > UINT32_MAX ||
        (uint64_t)out->local + out->count > UINT32_MAX)
        return false;
    return true;
}

static bool idmap_overlaps(const struct uext4_idmap *have, unsigned n, const struct uext4_idmap *m)
{
    for (unsigned i = 0; i < n; i++) {
        if (ranges_overlap(have[i].image, m->image, have[i].count, m->count) ||
            ranges_overlap(have[i].local, m->local, have[i].count, m->count))
            return true;
    }
    return false;
}

static int set_idmap(const char *name, const char *value, struct uext4_idmap *map, unsigned *n,
                     char *err, size_t err_len)
{
    if (*n == UEXT4_MAX_IDMAP)
        return opt_error(err, err_len, "too many %s ranges (at most %u): '%s'", name,
                         UEXT4_MAX_IDMAP, value);
    if (!parse_idmap(value, &map[*n]))
        return opt_error(err, err_len, "bad value for %s: '%s'", name, value);
    /* Shared ids on either side would make the mapping ambiguous. */
    if (idmap_overlaps(map, *n, &map[*n]))
        return opt_error(err, err_len, "bad value for %s: '%s' overlaps an earlier range", name,
                         value);
    (*n)++;
    return 0;
}

/* ---- the options with a value ---- */

struct opt_ctx {
    struct fe_mount_opts *o;
    const char *name;
    const char *value; /* NULL for a flag */
    char *err;
    size_t err_len;
};

static int bad_value(const struct opt_ctx *c)
{
    return opt_error(c->err, c->err_len, "bad value for %s: '%s'", c->name, c->value);
}

static int set_uidmap(const struct opt_ctx *c)
{
    return set_idmap(c->name, c->value, c->o->core.uidmap, &c->o->core.nuidmap, c->err, c->err_len);
}

static int set_gidmap(const struct opt_ctx *c)
{
    return set_idmap(c->name, c->value, c->o->core.gidmap, &c->o->core.ngidmap, c->err, c->err_len);
}

static int set_errors(const struct opt_ctx *c)
{
    static const struct {
        const char *name;
        enum uext4_errors val;
    } vals[] = {
        {"continue", UEXT4_ERRORS_CONTINUE},
        {"remount-ro", UEXT4_ERRORS_REMOUNT_RO},
        {"panic", UEXT4_ERRORS_PANIC},
    };

    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        if (strcmp(c->value, vals[i].name) == 0) {
            c->o->core.errors = vals[i].val;
            return 0;
        }
    }
    return bad_value(c);
}

static int set_inline_mmap(const struct opt_ctx *c)
{
    if (strcmp(c->value, "keep") == 0)
        c->o->core.inline_mmap = UEXT4_INLINE_MMAP_KEEP;
    else if (strcmp(c->value, "convert") == 0)
        c->o->core.inline_mmap = UEXT4_INLINE_MMAP_CONVERT;
    else
        return bad_value(c);
    return 0;
}

/* mount(8)'s loop options: the file system is a partition of a disk image
 * (losetup --offset, --sizelimit). */
static int set_offset(const struct opt_ctx *c)
{
    return parse_bytes(c->value, &c->o->core.offset) ? 0 : bad_value(c);
}

static int set_sizelimit(const struct opt_ctx *c)
{
    return parse_bytes(c->value, &c->o->core.sizelimit) ? 0 : bad_value(c);
}

static int set_commit(const struct opt_ctx *c)
{
    const char *end;
    uint32_t secs;

    if (!parse_u32(c->value, &end, &secs) || *end != '\0')
        return bad_value(c);
    c->o->core.commit_seconds = secs;
    return 0;
}

/* More threads than this buy nothing: the core serialises its image
 * access (design.md), and each idle thread costs a stack. */
#define MAX_THREADS_LIMIT 256

static int set_max_threads(const struct opt_ctx *c)
{
    const char *end;
    uint32_t n;

    if (!parse_u32(c->value, &end, &n) || *end != '\0' || n == 0 || n > MAX_THREADS_LIMIT)
        return bad_value(c);
    c->o->max_threads = n;
    return 0;
}

static int set_fsname(const struct opt_ctx *c)
{
    if (c->value[0] == '\0')
        return bad_value(c);
    c->o->fsname = c->value;
    return 0;
}

/* mount(8) passes "subtype=" empty for a type given as plain "fuse": the
 * default then applies. */
static int set_record(const struct opt_ctx *c)
{
    if (c->value[0] == '\0')
        return bad_value(c);
    c->o->record = c->value;
    return 0;
}

static int set_journal_path(const struct opt_ctx *c)
{
    if (c->value[0] == '\0')
        return bad_value(c);
    c->o->core.journal_path = c->value;
    return 0;
}

/* ext4 finds the device by its number; uext4 serves files, and a number
 * names no file (a copy of the device least of all). */
static int set_journal_dev(const struct opt_ctx *c)
{
    return opt_error(c->err, c->err_len,
                     "journal_dev=%s: uext4 opens an external journal by its file name: use "
                     "-o journal_path=FILE",
                     c->value);
}

static int set_subtype(const struct opt_ctx *c)
{
    c->o->subtype = c->value[0] ? c->value : NULL;
    return 0;
}

/* ---- the flags ---- */

static int set_ro(const struct opt_ctx *c)
{
    c->o->core.read_only = true;
    return 0;
}

static int set_rw(const struct opt_ctx *c)
{
    c->o->core.read_only = false;
    return 0;
}

static int set_norecovery(const struct opt_ctx *c)
{
    c->o->core.norecovery = true;
    return 0;
}

static int set_fakeroot(const struct opt_ctx *c)
{
    c->o->core.fakeroot = true;
    return 0;
}

static int set_allow_other(const struct opt_ctx *c)
{
    c->o->allow_other = true;
    return 0;
}

static int set_default_permissions(const struct opt_ctx *c)
{
    c->o->perm_check = FE_PERM_KERNEL;
    return 0;
}

static int set_no_default_permissions(const struct opt_ctx *c)
{
    c->o->perm_check = FE_PERM_DAEMON;
    return 0;
}

static int set_writeback_cache(const struct opt_ctx *c)
{
    c->o->writeback_cache = true;
    return 0;
}

static int set_io_uring(const struct opt_ctx *c)
{
    c->o->io_uring = true;
    return 0;
}

static int set_no_io_uring(const struct opt_ctx *c)
{
    c->o->io_uring = false;
    return 0;
}

static int set_splice_write(const struct opt_ctx *c)
{
    c->o->no_splice_write = false;
    return 0;
}

static int set_no_splice_write(const struct opt_ctx *c)
{
    c->o->no_splice_write = true;
    return 0;
}

static int set_early_write(const struct opt_ctx *c)
{
    c->o->no_early_write = false;
    return 0;
}

static int set_no_early_write(const struct opt_ctx *c)
{
    c->o->no_early_write = true;
    return 0;
}

static int set_grpid(const struct opt_ctx *c)
{
    c->o->core.grpid = true;
    return 0;
}

static int set_nogrpid(const struct opt_ctx *c)
{
    c->o->core.grpid = false;
    return 0;
}

static int set_nodiratime(const struct opt_ctx *c)
{
    c->o->core.nodiratime = true;
    return 0;
}

static int set_diratime(const struct opt_ctx *c)
{
    c->o->core.nodiratime = false;
    return 0;
}

/* fstab's options for mount(8) itself, meaningless to the file system. */
static int set_ignored(const struct opt_ctx *c)
{
    return 0;
}

static const struct {
    const char *name;
    bool has_value;
    int (*set)(const struct opt_ctx *c);
} options_table[] = {
    {"ro", false, set_ro},
    {"rw", false, set_rw},
    {"fakeroot", false, set_fakeroot},
    {"norecovery", false, set_norecovery},
    {"noload", false, set_norecovery},
    {"uidmap", true, set_uidmap},
    {"gidmap", true, set_gidmap},
    {"allow_other", false, set_allow_other},
    {"default_permissions", false, set_default_permissions},
    {"no_default_permissions", false, set_no_default_permissions},
    {"writeback_cache", false, set_writeback_cache},
    {"errors", true, set_errors},
    {"inline_mmap", true, set_inline_mmap},
    {"commit", true, set_commit},
    {"max_threads", true, set_max_threads},
    {"io_uring", false, set_io_uring},
    {"no_io_uring", false, set_no_io_uring},
    {"splice_write", false, set_splice_write},
    {"no_splice_write", false, set_no_splice_write},
    {"early_write", false, set_early_write},
    {"no_early_write", false, set_no_early_write},
    {"fsname", true, set_fsname},
    {"subtype", true, set_subtype},
    {"record", true, set_record},
    {"offset", true, set_offset},
    {"sizelimit", true, set_sizelimit},
    {"journal_path", true, set_journal_path},
    {"journal_dev", true, set_journal_dev},
    /* mount(8)'s "set up a loop device": uext4 serves the file itself. */
    {"loop", false, set_ignored},
    {"defaults", false, set_ignored},
    {"auto", false, set_ignored},
    {"noauto", false, set_ignored},
    {"user", false, set_ignored},
    {"nouser", false, set_ignored},
    {"users", false, set_ignored},
    {"nofail", false, set_ignored},
    {"_netdev", false, set_ignored},
    {"owner", false, set_ignored},
    {"group", false, set_ignored},
    {"comment", true, set_ignored},
    {"helper", true, set_ignored},
    {"uhelper", true, set_ignored},
    {"nodiratime", false, set_nodiratime},
    {"diratime", false, set_diratime},
    /* ext4: new files take the group of their directory (grpid), or of
     * their creator unless the directory is setgid. */
    {"grpid", false, set_grpid},
    {"bsdgroups", false, set_grpid},
    {"nogrpid", false, set_nogrpid},
    {"sysvgroups", false, set_nogrpid},
};

/* Options of the kernel's ext4 and of mount(8) that change nothing on a
 * uext4 mount: accepted, so that fstab lines and test suites written for
 * ext4 work, and logged once at mount with @why. @value says whether they
 * take a value, as ext4 says, and ext4's check of the value is kept (a
 * number where it wants one). */
enum noted_value {
    NV_NONE,    /* a flag */
    NV_NUM,     /* =N, required */
    NV_OPT_NUM, /* a flag, or =N */
    NV_STR,     /* =anything, required */
    NV_DATA,    /* =journal|ordered|writeback */
    NV_DAX,     /* a flag, or =always|never|inode */
    NV_DATA_ERR /* =abort|ignore */
};

#define WHY_JOURNAL  "uext4 journals metadata and writes data in place (data=ordered)"
#define WHY_ALLOC    "uext4 allocates with libext2fs and has no delayed allocation"
#define WHY_QUOTA    "the quota feature alone decides: usage kept, hard limits enforced"
#define WHY_SECURITY "no security module labels FUSE files through the mount"
#define WHY_KERNEL   "a kernel ext4 tuning with no counterpart in uext4"
#define WHY_DEBUG    "an ext4 debugging aid with no counterpart in uext4"
#define WHY_IVERSION "uext4 does not count inode versions"
#define WHY_LAZY     "timestamps reach the image at the next commit in any case"

static const struct {
    const char *name;
    enum noted_value value;
    const char *why;
} noted_table[] = {
    /* generic kernel flags with nothing to do on a FUSE mount */
    {"lazytime", NV_NONE, WHY_LAZY},
    {"nolazytime", NV_NONE, WHY_LAZY},
    {"iversion", NV_NONE, WHY_IVERSION},
    {"noiversion", NV_NONE, WHY_IVERSION},
    {"i_version", NV_NONE, WHY_IVERSION},
    {"mand", NV_NONE, "Linux no longer supports mandatory locks"},
    {"nomand", NV_NONE, "Linux no longer supports mandatory locks"},
    {"silent", NV_NONE, "uext4 logs as usual"},
    {"loud", NV_NONE, "uext4 logs as usual"},
    {"context", NV_STR, WHY_SECURITY},
    {"fscontext", NV_STR, WHY_SECURITY},
    {"defcontext", NV_STR, WHY_SECURITY},
    {"rootcontext", NV_STR, WHY_SECURITY},
    /* ext4 */
    {"data", NV_DATA, WHY_JOURNAL},
    {"data_err", NV_DATA_ERR, WHY_JOURNAL},
    {"journal_checksum", NV_NONE, "uext4 writes the checksums the journal's features ask for"},
    {"nojournal_checksum", NV_NONE, "uext4 writes the checksums the journal's features ask for"},
    {"journal_async_commit", NV_NONE, WHY_JOURNAL},
    {"journal_ioprio", NV_NUM, WHY_KERNEL},
    {"barrier", NV_OPT_NUM, "uext4 always orders its writes with fsync of the image"},
    {"nobarrier", NV_NONE, "uext4 always orders its writes with fsync of the image"},
    {"min_batch_time", NV_NUM, "uext4 commits every commit= seconds"},
    {"max_batch_time", NV_NUM, "uext4 commits every commit= seconds"},
    {"discard", NV_NONE, "uext4 does not discard blocks as they are freed"},
    {"nodiscard", NV_NONE, "uext4 does not discard blocks as they are freed"},
    {"delalloc", NV_NONE, WHY_ALLOC},
    {"nodelalloc", NV_NONE, WHY_ALLOC},
    {"auto_da_alloc", NV_OPT_NUM, WHY_ALLOC},
    {"noauto_da_alloc", NV_NONE, WHY_ALLOC},
    {"stripe", NV_NUM, WHY_ALLOC},
    {"oldalloc", NV_NONE, WHY_ALLOC},
    {"orlov", NV_NONE, WHY_ALLOC},
    {"mb_optimize_scan", NV_NUM, WHY_ALLOC},
    {"inode_readahead_blks", NV_NUM, WHY_KERNEL},
    {"init_itable", NV_OPT_NUM, "uext4 initialises an inode table when it first uses it"},
    {"noinit_itable", NV_NONE, "uext4 initialises an inode table when it first uses it"},
    {"block_validity", NV_NONE, "uext4 always checks block numbers against the metadata"},
    {"noblock_validity", NV_NONE, "uext4 always checks block numbers against the metadata"},
    {"dioread_lock", NV_NONE, WHY_KERNEL},
    {"dioread_nolock", NV_NONE, WHY_KERNEL},
    {"nodioread_nolock", NV_NONE, WHY_KERNEL},
    {"dax", NV_DAX, "an image file cannot be mapped as persistent memory"},
    {"acl", NV_NONE, "POSIX ACLs are always enforced"},
    {"noacl", NV_NONE, "POSIX ACLs are always enforced"},
    {"user_xattr", NV_NONE, "user.* attributes are always allowed (ext4 ignores nouser_xattr)"},
    {"nouser_xattr", NV_NONE, "user.* attributes are always allowed (ext4 ignores nouser_xattr)"},
    {"resuid", NV_NUM, "uext4 does not keep the reserved blocks for one user"},
    {"resgid", NV_NUM, "uext4 does not keep the reserved blocks for one group"},
    {"sb", NV_NUM, "uext4 opens the primary superblock (repair with e2fsck -b)"},
    {"nouid32", NV_NONE, "uext4 always stores 32-bit ids"},
    {"bsddf", NV_NONE, "statfs reports as ext4's default (bsddf)"},
    {"minixdf", NV_NONE, "statfs reports as ext4's default (bsddf)"},
    {"quota", NV_NONE, WHY_QUOTA},
    {"noquota", NV_NONE, WHY_QUOTA},
    {"usrquota", NV_NONE, WHY_QUOTA},
    {"grpquota", NV_NONE, WHY_QUOTA},
    {"prjquota", NV_NONE, WHY_QUOTA},
    {"usrjquota", NV_STR, WHY_QUOTA},
    {"grpjquota", NV_STR, WHY_QUOTA},
    {"jqfmt", NV_STR, WHY_QUOTA},
    {"max_dir_size_kb", NV_NUM, WHY_KERNEL},
    {"inlinecrypt", NV_NONE, WHY_KERNEL},
    {"nombcache", NV_NONE, WHY_KERNEL},
    {"no_mbcache", NV_NONE, WHY_KERNEL},
    {"prefetch_block_bitmaps", NV_NONE, WHY_KERNEL},
    {"no_prefetch_block_bitmaps", NV_NONE, WHY_KERNEL},
    {"warn_on_error", NV_NONE, WHY_DEBUG},
    {"nowarn_on_error", NV_NONE, WHY_DEBUG},
    {"debug", NV_NONE, WHY_DEBUG},
    {"abort", NV_NONE, WHY_DEBUG},
    {"bh", NV_NONE, WHY_KERNEL},
    {"nobh", NV_NONE, WHY_KERNEL},
    {"debug_want_extra_isize", NV_NUM, WHY_DEBUG},
};

/* Kernel mount flags. @forward is what the FUSE mount is given, NULL where
 * the option asks for what a FUSE mount does anyway. libfuse mounts with
 * nosuid,nodev unless told "suid" / "dev" (and only root may say so).
 * The atime options are not forwarded (but noatime, which libfuse knows):
 * FUSE inodes are S_NOATIME, the kernel leaves atime to the daemon. */
static const struct {
    const char *name;
    enum fe_kflag_group group;
    const char *forward;
} kflag_table[] = {
    {"suid", FE_KF_SUID, "suid"},
    {"nosuid", FE_KF_SUID, "nosuid"},
    {"dev", FE_KF_DEV, "dev"},
    {"nodev", FE_KF_DEV, "nodev"},
    {"exec", FE_KF_EXEC, NULL},
    {"noexec", FE_KF_EXEC, "noexec"},
    {"atime", FE_KF_ATIME, NULL},
    {"relatime", FE_KF_ATIME, NULL},
    {"norelatime", FE_KF_ATIME, NULL},
    {"nostrictatime", FE_KF_ATIME, NULL},
    {"strictatime", FE_KF_ATIME, NULL},
    {"noatime", FE_KF_ATIME, "noatime"},
    {"async", FE_KF_SYNC, NULL},
    {"sync", FE_KF_SYNC, "sync"},
    {"dirsync", FE_KF_DIRSYNC, "dirsync"},
};

static bool is_one_of(const char *v, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(v, *list) == 0)
            return true;
    }
    return false;
}

static bool noted_value_ok(const char *v, enum noted_value kind)
{
    static const char *const data[] = {"journal", "ordered", "writeback", NULL};
    static const char *const data_err[] = {"abort", "ignore", NULL};
    static const char *const dax[] = {"always", "never", "inode", NULL};
    const char *end;
    uint32_t n;

    switch (kind) {
    case NV_NONE:
        return !v;
    case NV_NUM:
        return v && parse_u32(v, &end, &n) && *end == '\0';
    case NV_OPT_NUM:
        return !v || (parse_u32(v, &end, &n) && *end == '\0');
    case NV_STR:
        return v != NULL;
    case NV_DATA:
        return v && is_one_of(v, data);
    case NV_DATA_ERR:
        return v && is_one_of(v, data_err);
    case NV_DAX:
        return !v || is_one_of(v, dax);
    }
    return false;
}

/* Record a noted option, once per name, for the daemon to log. */
static int set_noted(const struct opt_ctx *c, enum noted_value kind, const char *why)
{
    struct fe_mount_opts *o = c->o;

    if (!noted_value_ok(c->value, kind)) {
        if (kind == NV_NONE)
            return opt_error(c->err, c->err_len, "mount option '%s' takes no value", c->name);
        if (!c->value)
            return opt_error(c->err, c->err_len, "mount option '%s' needs a value", c->name);
        return bad_value(c);
    }
    for (unsigned i = 0; i < o->nnoted; i++) {
        if (strcmp(o->noted[i].name, c->name) == 0)
            return 0;
    }
    /* More distinct ones than fit are still accepted, only not logged. */
    if (o->nnoted < FE_MAX_NOTED) {
        o->noted[o->nnoted].name = c->name;
        o->noted[o->nnoted].why = why;
        o->nnoted++;
    }
    return 0;
}

void fe_opts_init(struct fe_mount_opts *o)
{
    memset(o, 0, sizeof(*o));
    /* As uext4_options_init() would (the library, not linked by the unit
     * test of this file): uext4_open() checks the size. */
    o->core.size = sizeof(o->core);
    o->core.errors = UEXT4_ERRORS_DEFAULT;
    o->core.inline_mmap = UEXT4_INLINE_MMAP_KEEP;
}

static int parse_one(struct fe_mount_opts *o, char *opt, char *err, size_t err_len)
{
    char *eq = strchr(opt, '=');
    struct opt_ctx c = {.o = o, .name = opt, .err = err, .err_len = err_len};

    if (eq) {
        *eq = '\0';
        c.value = eq + 1;
    }
    for (size_t i = 0; i < ARRAY_LEN(kflag_table); i++) {
        if (strcmp(opt, kflag_table[i].name) != 0)
            continue;
        if (c.value)
            return opt_error(err, err_len, "mount option '%s' takes no value", opt);
        o->kflag[kflag_table[i].group] = kflag_table[i].forward;
        /* The daemon, not the kernel, updates atime on a FUSE mount. As on
         * ext4, norelatime and nostrictatime leave the default, relatime. */
        if (kflag_table[i].group == FE_KF_ATIME) {
            o->core.noatime = strcmp(opt, "noatime") == 0;
            o->core.strictatime = strcmp(opt, "strictatime") == 0;
        }
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(options_table); i++) {
        if (strcmp(opt, options_table[i].name) != 0)
            continue;
        if (options_table[i].has_value && !c.value)
            return opt_error(err, err_len, "mount option '%s' needs a value", opt);
        if (!options_table[i].has_value && c.value)
            return opt_error(err, err_len, "mount option '%s' takes no value", opt);
        return options_table[i].set(&c);
    }
    /* mount(8) keeps x-* (and the older X-*) for userspace tools. */
    if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "X-", 2) == 0)
        return 0;
    for (size_t i = 0; i < ARRAY_LEN(noted_table); i++) {
        if (strcmp(opt, noted_table[i].name) == 0)
            return set_noted(&c, noted_table[i].value, noted_table[i].why);
    }
    return opt_error(err, err_len, "unknown mount option '%s'", opt);
}

int fe_opts_parse(struct fe_mount_opts *o, char *list, char *err, size_t err_len)
{
    char *save = NULL;
    int rc;

    /* strtok_r skips empty items, so "ro,,noatime" is accepted as mount(8)
     * accepts it. */
    for (char *opt = strtok_r(list, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        rc = parse_one(o, opt, err, err_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int fe_opts_finish(struct fe_mount_opts *o, char *err, size_t err_len)
{
    if (o->core.fakeroot && o->perm_check == FE_PERM_KERNEL)
        return opt_error(err, err_len,
                         "mount options 'fakeroot' and 'default_permissions' contradict each "
                         "other: the kernel would refuse what fakeroot allows");
    /* fakeroot makes every caller root in the image; with allow_other that
     * is every local user, not only the one who mounted it. */
    if (o->core.fakeroot && o->allow_other)
        return opt_error(err, err_len,
                         "mount options 'fakeroot' and 'allow_other' together would make every "
                         "local user root inside the image; use one or the other");
    if (o->perm_check == FE_PERM_UNSET)
        o->perm_check = o->core.fakeroot ? FE_PERM_DAEMON : FE_PERM_KERNEL;
    return 0;
}
