/* Expectations: what an `expect PATH WHAT ...` line observes, rendered as
 * text so that a failure and a backend diff read the same way. The caller
 * (run.c) has made the checkpoint a storage check needs. */
#include "scenario/scn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INLINE_FL  0x10000000u
#define EXTENTS_FL 0x00080000u

static const char *storage_kind(const struct uext4_inode_info *info)
{
    if (info->flags & INLINE_FL)
        return "inline";
    return info->flags & EXTENTS_FL ? "extents" : "block-map";
}

static void flags_want(const struct scn_step *st, char *out, size_t len)
{
    if (st->flags_exact) {
        snprintf(out, len, "flags 0x%x", st->flags_set);
        return;
    }
    snprintf(out, len, "flags with 0x%x set and 0x%x clear", st->flags_set, st->flags_clear);
}

static bool check_storage(struct scn_run *r, const struct scn_step *st, char *got, size_t glen,
                          char *want, size_t wlen)
{
    struct uext4_inode_info info;
    uint64_t v = 0;
    bool pass;
    int ret = r->be->inspect(r, st->path, &info);

    if (ret) {
        snprintf(want, wlen, "an inode to inspect");
        snprintf(got, glen, "%s", scn_errno_name(ret));
        return false;
    }
    switch (st->what) {
    case SCN_W_INLINE:
    case SCN_W_EXTENTS:
        snprintf(want, wlen, "%s", st->what == SCN_W_INLINE ? "inline" : "extents");
        snprintf(got, glen, "%s", storage_kind(&info));
        uext4_inode_info_free(&info);
        return !strcmp(want, got);
    case SCN_W_FLAGS:
        flags_want(st, want, wlen);
        snprintf(got, glen, "flags 0x%x", info.flags);
        pass = st->flags_exact ? info.flags == st->flags_set
                               : (info.flags & st->flags_set) == st->flags_set &&
                                     !(info.flags & st->flags_clear);
        uext4_inode_info_free(&info);
        return pass;
    case SCN_W_DISK_SIZE:
        v = info.size;
        break;
    case SCN_W_INLINE_SIZE:
        v = info.inline_size;
        break;
    case SCN_W_CAPACITY:
        v = info.inline_capacity;
        break;
    case SCN_W_BLOCKS:
        v = info.blocks;
        break;
    default:
        v = info.nextents;
    }
    uext4_inode_info_free(&info);
    snprintf(want, wlen, "%" PRId64, st->value);
    snprintf(got, glen, "%" PRIu64, v);
    return v == (uint64_t)st->value;
}

/* The whole file, read through the backend. */
static int read_all(struct scn_run *r, const char *path, unsigned char **buf, size_t *len)
{
    struct stat sb;
    ssize_t n;
    int ret = r->be->stat(r, path, &sb);

    if (ret)
        return ret;
    *buf = malloc((size_t)sb.st_size + 1);
    if (!*buf)
        return -ENOMEM;
    n = r->be->read(r, path, *buf, (size_t)sb.st_size, 0);
    if (n < 0) {
        free(*buf);
        return (int)n;
    }
    *len = (size_t)n;
    return 0;
}

/* "got" for bytes: the first difference, which is what one needs to see. */
static void bytes_got(const unsigned char *b, size_t len, const struct scn_data *want, char *got,
                      size_t glen)
{
    char d[160];
    size_t i = 0;

    while (i < len && i < want->len && b[i] == want->bytes[i])
        i++;
    if (i == len && i == want->len) {
        scn_describe(b, len, got, glen);
        return;
    }
    scn_describe(b + i, len - i < 24 ? len - i : 24, d, sizeof(d));
    snprintf(got, glen, "%zu bytes, first difference at offset %zu: %s", len, i, d);
}

static bool check_names(const struct scn_step *st, char *list, ssize_t n, char *got, size_t glen,
                        char *want, size_t wlen, bool user_only)
{
    char *names[256];
    unsigned count = 0;
    size_t o = 0;
    bool pass;

    for (char *p = list; list && p < list + n && count < 256; p += strlen(p) + 1)
        if (!user_only || strncmp(p, "system.", 7))
            names[count++] = p;
    for (unsigned i = 1; i < count; i++)
        for (unsigned j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];

            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    pass = count == st->nnames;
    got[0] = want[0] = '\0';
    for (unsigned i = 0; i < count; i++) {
        pass = pass && !strcmp(names[i], st->names[i]);
        o += (size_t)snprintf(got + o, o < glen ? glen - o : 0, "%s%s", i ? "," : "", names[i]);
    }
    o = 0;
    for (unsigned i = 0; i < st->nnames; i++)
        o +=
            (size_t)snprintf(want + o, o < wlen ? wlen - o : 0, "%s%s", i ? "," : "", st->names[i]);
    if (!count)
        snprintf(got, glen, "-");
    if (!st->nnames)
        snprintf(want, wlen, "-");
    return pass;
}

static bool check_content(struct scn_run *r, const struct scn_step *st, char *got, size_t glen,
                          char *want, size_t wlen)
{
    unsigned char *b = NULL;
    size_t len = 0;
    bool pass = false;
    int ret = read_all(r, st->path, &b, &len);

    if (ret) {
        snprintf(want, wlen, "content");
        snprintf(got, glen, "%s", scn_errno_name(ret));
        return false;
    }
    if (st->what == SCN_W_CONTENT) {
        scn_describe(st->data.bytes, st->data.len, want, wlen);
        pass = len == st->data.len && !memcmp(b, st->data.bytes, len);
        bytes_got(b, len, &st->data, got, glen);
    } else {
        snprintf(want, wlen, "one of %u alternatives", st->nalts);
        for (unsigned i = 0; i < st->nalts && !pass; i++)
            pass = len == st->alts[i].len && !memcmp(b, st->alts[i].bytes, len);
        scn_describe(b, len, got, glen);
    }
    free(b);
    return pass;
}

static bool check_xattr(struct scn_run *r, const struct scn_step *st, char *got, size_t glen,
                        char *want, size_t wlen)
{
    unsigned char buf[65536];
    ssize_t n = r->be->getxattr(r, st->path, st->name, buf, sizeof(buf));

    if (st->what == SCN_W_NO_XATTR) {
        snprintf(want, wlen, "no %s (ENODATA)", st->name);
        snprintf(got, glen, "%s", n >= 0 ? "present" : scn_errno_name((int)n));
        return n == -ENODATA;
    }
    scn_describe(st->data.bytes, st->data.len, want, wlen);
    if (n < 0) {
        snprintf(got, glen, "%s", scn_errno_name((int)n));
        return false;
    }
    scn_describe(buf, (size_t)n, got, glen);
    return (size_t)n == st->data.len && !memcmp(buf, st->data.bytes, (size_t)n);
}

static const char *type_name(mode_t m)
{
    if (S_ISREG(m))
        return "file";
    if (S_ISDIR(m))
        return "dir";
    return S_ISLNK(m) ? "symlink" : "other";
}

static bool check_stat(struct scn_run *r, const struct scn_step *st, char *got, size_t glen,
                       char *want, size_t wlen)
{
    struct stat sb;
    int ret;

    /* Existence is about the name: an open file of an unlinked name still
     * answers fstat. */
    if (st->what == SCN_W_EXISTS || st->what == SCN_W_MISSING) {
        ret = r->be->lookup(r, st->path);
        snprintf(want, wlen, "%s", st->what == SCN_W_EXISTS ? "exists" : "missing");
        snprintf(got, glen, "%s",
                 !ret             ? "exists"
                 : ret == -ENOENT ? "missing"
                                  : scn_errno_name(ret));
        return !strcmp(want, got);
    }
    ret = r->be->stat(r, st->path, &sb);
    if (ret) {
        snprintf(want, wlen, "a file to stat");
        snprintf(got, glen, "%s", scn_errno_name(ret));
        return false;
    }
    if (st->what == SCN_W_TYPE) {
        snprintf(want, wlen, "%s", st->name);
        snprintf(got, glen, "%s", type_name(sb.st_mode));
        return !strcmp(want, got);
    }
    snprintf(want, wlen, "%" PRId64, st->value);
    if (st->what == SCN_W_SIZE) {
        snprintf(got, glen, "%lld", (long long)sb.st_size);
        return sb.st_size == st->value;
    }
    if (st->what == SCN_W_MODE) {
        snprintf(want, wlen, "0%" PRIo64, st->value);
        snprintf(got, glen, "0%o", (unsigned)(sb.st_mode & 07777));
        return (int64_t)(sb.st_mode & 07777) == st->value;
    }
    if (st->what == SCN_W_UID || st->what == SCN_W_GID || st->what == SCN_W_MTIME) {
        int64_t v = st->what == SCN_W_UID   ? (int64_t)sb.st_uid
                    : st->what == SCN_W_GID ? (int64_t)sb.st_gid
                                            : (int64_t)sb.st_mtim.tv_sec;

        snprintf(got, glen, "%" PRId64, v);
        return v == st->value;
    }
    snprintf(got, glen, "%lu", (unsigned long)sb.st_nlink);
    return (int64_t)sb.st_nlink == st->value;
}

/* FNV-1a, 64 bits: a digest that names a content in a line of text. */
static uint64_t fnv1a(const unsigned char *b, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static bool check_digest(struct scn_run *r, const struct scn_step *st, char *got, size_t glen,
                         char *want, size_t wlen)
{
    unsigned char *b = NULL;
    size_t len = 0;
    int ret = read_all(r, st->path, &b, &len);

    snprintf(want, wlen, "%s", st->name);
    if (ret) {
        snprintf(got, glen, "%s", scn_errno_name(ret));
        return false;
    }
    snprintf(got, glen, "%zu:%016" PRIx64, len, fnv1a(b, len));
    free(b);
    return !strcmp(got, want);
}

static bool check_statfs(struct scn_run *r, const struct scn_step *st, char *got, size_t glen,
                         char *want, size_t wlen)
{
    static const char *const cmp[] = {"", ">=", "<="};
    struct statvfs sv;
    uint64_t v;
    int ret = r->be->statfs(r, &sv);

    snprintf(want, wlen, "%s %s%" PRId64, st->name, cmp[st->mode], st->value);
    if (ret) {
        snprintf(got, glen, "%s", scn_errno_name(ret));
        return false;
    }
    /* blocks in f_frsize units, as df counts them */
    v = !strcmp(st->name, "blocks")   ? sv.f_blocks
        : !strcmp(st->name, "bfree")  ? sv.f_bfree
        : !strcmp(st->name, "bavail") ? sv.f_bavail
        : !strcmp(st->name, "files")  ? sv.f_files
                                      : sv.f_ffree;
    snprintf(got, glen, "%s %" PRIu64, st->name, v);
    if (st->mode == SCN_CMP_GE)
        return v >= (uint64_t)st->value;
    if (st->mode == SCN_CMP_LE)
        return v <= (uint64_t)st->value;
    return v == (uint64_t)st->value;
}

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? -1 : 1;
    return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

/* newer, mtime-changed, mtime-same: the outcome is the relation, so that a
 * backend diff never shows clock readings. */
static bool check_times(struct scn_run *r, const struct scn_step *st, char *got, size_t glen,
                        char *want, size_t wlen)
{
    struct timespec other;
    struct stat a, b;
    unsigned i;
    int c, ret = r->be->stat(r, st->path, &a);

    if (!ret && st->what == SCN_W_NEWER)
        ret = r->be->stat(r, st->path2, &b);
    if (st->what == SCN_W_NEWER)
        snprintf(want, wlen, "mtime newer than %s's", st->path2);
    else
        snprintf(want, wlen, "mtime %s since the stamp",
                 st->what == SCN_W_MTIME_SAME ? "unchanged" : "changed");
    if (ret) {
        snprintf(got, glen, "%s", scn_errno_name(ret));
        return false;
    }
    if (st->what == SCN_W_NEWER) {
        other = b.st_mtim;
    } else {
        for (i = 0; i < r->nstamps && strcmp(r->stamp_path[i], st->path); i++)
            ;
        if (i == r->nstamps) {
            snprintf(got, glen, "no 'stamp %s' step before", st->path);
            return false;
        }
        other = r->stamp_mtime[i];
    }
    c = ts_cmp(&a.st_mtim, &other);
    if (st->what == SCN_W_NEWER) {
        snprintf(got, glen, "%s", c > 0 ? "newer" : c == 0 ? "the same mtime" : "older");
        return c > 0;
    }
    snprintf(got, glen, "%s", c > 0 ? "changed" : c == 0 ? "unchanged" : "went back");
    return st->what == SCN_W_MTIME_SAME ? c == 0 : c > 0;
}

bool scn_is_storage_check(const struct scn_step *st)
{
    return st->op == SCN_EXPECT && st->what <= SCN_W_NEXTENTS;
}

bool scn_check(struct scn_run *r, const struct scn_step *st, char *got, size_t glen, char *want,
               size_t wlen)
{
    char *list = NULL;
    ssize_t n;
    bool pass;

    if (scn_is_storage_check(st))
        return check_storage(r, st, got, glen, want, wlen);
    switch (st->what) {
    case SCN_W_CONTENT:
    case SCN_W_CONTENT_ONE_OF:
        return check_content(r, st, got, glen, want, wlen);
    case SCN_W_DIGEST:
        return check_digest(r, st, got, glen, want, wlen);
    case SCN_W_STATFS:
        return check_statfs(r, st, got, glen, want, wlen);
    case SCN_W_NEWER:
    case SCN_W_MTIME_CHANGED:
    case SCN_W_MTIME_SAME:
        return check_times(r, st, got, glen, want, wlen);
    case SCN_W_XATTR:
    case SCN_W_NO_XATTR:
        return check_xattr(r, st, got, glen, want, wlen);
    case SCN_W_XATTRS:
    case SCN_W_ENTRIES:
        if (st->what == SCN_W_ENTRIES) {
            n = r->be->entries(r, st->path, &list);
        } else {
            list = malloc(65536);
            n = list ? r->be->listxattr(r, st->path, list, 65536) : -ENOMEM;
        }
        if (n < 0) {
            snprintf(want, wlen, "names");
            snprintf(got, glen, "%s", scn_errno_name((int)n));
            free(list);
            return false;
        }
        /* system.* names (ACLs, system.data) depend on the file system's
         * own bookkeeping; `xattrs` is about what the scenario set. */
        pass = check_names(st, list, n, got, glen, want, wlen, st->what == SCN_W_XATTRS);
        free(list);
        return pass;
    case SCN_W_DIRTY_PAGES: {
        int d = r->be->dirty_pages(r, st->path);

        snprintf(want, wlen, "%" PRId64, st->value);
        if (d == -EOPNOTSUPP) {
            /* Only the page-cache emulation can count; elsewhere it is
             * not observable and the check is vacuous. */
            snprintf(got, glen, "n/a");
            snprintf(want, wlen, "n/a");
            return true;
        }
        snprintf(got, glen, "%d", d);
        return d == st->value;
    }
    default:
        return check_stat(r, st, got, glen, want, wlen);
    }
}
