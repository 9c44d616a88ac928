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

static int set_subtype(const struct opt_ctx *c)
{
    if (c->value[0] == '\0')
        return bad_value(c);
    c->o->subtype = c->value;
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
    {"fsname", true, set_fsname},
    {"subtype", true, set_subtype},
    {"defaults", false, set_ignored},
    {"auto", false, set_ignored},
    {"noauto", false, set_ignored},
    {"user", false, set_ignored},
    {"nouser", false, set_ignored},
    {"users", false, set_ignored},
    {"nofail", false, set_ignored},
    {"_netdev", false, set_ignored},
};

/* Kernel mount flags. @forward is what the FUSE mount is given, NULL where
 * the option asks for what a FUSE mount does anyway. libfuse mounts with
 * nosuid,nodev unless told "suid" / "dev" (and only root may say so).
 * libfuse 3.14 has no (no)diratime: such options are refused rather than
 * accepted and silently dropped. */
static const struct {
    const char *name;
    enum fe_kflag_group group;
    const char *forward;
} kflag_table[] = {
    {"suid", FE_KF_SUID, "suid"},        {"nosuid", FE_KF_SUID, "nosuid"},
    {"dev", FE_KF_DEV, "dev"},           {"nodev", FE_KF_DEV, "nodev"},
    {"exec", FE_KF_EXEC, NULL},          {"noexec", FE_KF_EXEC, "noexec"},
    {"atime", FE_KF_ATIME, NULL},        {"relatime", FE_KF_ATIME, NULL},
    {"noatime", FE_KF_ATIME, "noatime"}, {"async", FE_KF_SYNC, NULL},
    {"sync", FE_KF_SYNC, "sync"},        {"dirsync", FE_KF_DIRSYNC, "dirsync"},
};

void fe_opts_init(struct fe_mount_opts *o)
{
    memset(o, 0, sizeof(*o));
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
        /* The daemon, not the kernel, updates atime on a FUSE mount. */
        if (kflag_table[i].group == FE_KF_ATIME)
            o->core.noatime = strcmp(opt, "noatime") == 0;
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
    if (o->perm_check == FE_PERM_UNSET)
        o->perm_check = o->core.fakeroot ? FE_PERM_DAEMON : FE_PERM_KERNEL;
    return 0;
}
