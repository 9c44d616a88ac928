/* uext4_inspect: an inode's storage, for tools and tests. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int uext4_inspect(struct uext4_fs *fs, uint32_t ino, struct uext4_inode_info *info)
{
    struct e2_run *runs = NULL;
    struct e2_attr a;
    unsigned n = 0;
    int ret;

    memset(info, 0, sizeof(*info));
    rwlock_rdlock(&fs->mount_lock);
    ret = e2_inode_get(fs->img, ino, &a);
    if (ret)
        goto out_unlock;
    info->ino = ino;
    info->mode = a.mode;
    info->nlink = a.nlink;
    info->flags = a.flags;
    info->size = a.size;
    info->blocks = a.blocks;
    info->is_inline = a.flags & E2_FL_INLINE_DATA;
    if (info->is_inline)
        ret = e2_inline_allocated(fs->img, ino, &info->inline_size);
    if (!ret && fs->inline_files && (S_ISREG(a.mode) || S_ISDIR(a.mode)))
        ret = e2_inline_capacity(fs->img, ino, &info->inline_capacity);
    if (!ret)
        ret = e2_inode_runs(fs->img, ino, &runs, &n, &info->xattr_block);
    if (ret)
        goto out_unlock;
    info->extents = calloc(n ? n : 1, sizeof(*info->extents));
    if (!info->extents) {
        ret = -ENOMEM;
        goto out_free;
    }
    for (unsigned i = 0; i < n; i++)
        info->extents[i] =
            (struct uext4_extent){runs[i].lblk, runs[i].pblk, runs[i].len, runs[i].unwritten};
    info->nextents = n;
out_free:
    free(runs);
out_unlock:
    rwlock_unlock(&fs->mount_lock);
    return FS_CHECK(fs, ino, ret);
}

void uext4_inode_info_free(struct uext4_inode_info *info)
{
    free(info->extents);
    info->extents = NULL;
    info->nextents = 0;
}

const char *uext4_inode_flag_name(uint32_t bit)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {0x00000010u, "immutable"}, {0x00000020u, "append"}, {0x00000080u, "noatime"},
        {0x00001000u, "index"},     {0x00040000u, "huge"},   {0x00080000u, "extents"},
        {0x00200000u, "ea_inode"},  {0x10000000u, "inline"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].bit == bit)
            return names[i].name;
    return NULL;
}

const char *uext4_inode_type_name(mode_t m)
{
    if (S_ISREG(m))
        return "file";
    if (S_ISDIR(m))
        return "dir";
    if (S_ISLNK(m))
        return "symlink";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "device";
    return S_ISFIFO(m) ? "fifo" : S_ISSOCK(m) ? "socket" : "unknown";
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int uext4_inspect_json(const struct uext4_inode_info *in, const char *path, const char *xattrs,
                       ssize_t xlen, char **out)
{
    bool first = true;
    size_t len;
    FILE *f;

    *out = NULL;
    f = open_memstream(out, &len);
    if (!f)
        return -ENOMEM;
    fputc('{', f);
    if (path) {
        fputs("\"path\": ", f);
        json_string(f, path);
        fputs(", ", f);
    }
    fprintf(f,
            "\"ino\": %" PRIu32 ", \"type\": \"%s\", \"mode\": %u, \"nlink\": %" PRIu32
            ", \"size\": %" PRIu64 ", \"blocks\": %" PRIu64 ", \"flags\": %" PRIu32
            ", \"flag_names\": [",
            in->ino, uext4_inode_type_name(in->mode), (unsigned)(in->mode & 07777), in->nlink,
            in->size, in->blocks, in->flags);
    for (unsigned i = 0; i < 32; i++) {
        const char *name = uext4_inode_flag_name(in->flags & (1u << i));

        if (!name)
            continue;
        fprintf(f, "%s\"%s\"", first ? "" : ", ", name);
        first = false;
    }
    fprintf(f,
            "], \"storage\": \"%s\", \"inline\": %s, \"inline_size\": %zu"
            ", \"inline_capacity\": %zu, \"xattr_block\": %" PRIu64 ", \"extents\": [",
            in->is_inline               ? "inline"
            : in->flags & E2_FL_EXTENTS ? "extents"
                                        : "block-map",
            in->is_inline ? "true" : "false", in->inline_size, in->inline_capacity,
            in->xattr_block);
    for (unsigned i = 0; i < in->nextents; i++)
        fprintf(f,
                "%s{\"lblk\": %" PRIu64 ", \"pblk\": %" PRIu64 ", \"len\": %" PRIu32
                ", \"unwritten\": %s}",
                i ? ", " : "", in->extents[i].lblk, in->extents[i].pblk, in->extents[i].len,
                in->extents[i].unwritten ? "true" : "false");
    fputs("], \"xattrs\": [", f);
    for (const char *p = xattrs; xlen > 0 && p < xattrs + xlen; p += strlen(p) + 1) {
        fputs(p == xattrs ? "" : ", ", f);
        json_string(f, p);
    }
    fputs("]}", f);
    if (fclose(f)) {
        free(*out);
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Reading UEXT4_INSPECT_XATTR needs what FIEMAP needs on ext4, an open for
 * reading, so that it tells a user nothing stat(2) and FIEMAP would not. */
static int inspect_access(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino)
{
    struct fs_cred fc;
    struct e2_attr a;
    int ret;

    fs_cred_from(fs, cr, &fc);
    rwlock_rdlock(&fs->mount_lock);
    ret = e2_inode_get(fs->img, ino, &a);
    if (!ret)
        ret = fs_permission(fs, &fc, ino, &a, R_OK);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

ssize_t fs_inspect_xattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                         void *value, size_t size)
{
    struct uext4_inode_info info;
    char *xl = NULL, *json = NULL;
    ssize_t xlen, ret;

    ret = inspect_access(fs, cr, ino);
    if (ret)
        return ret;
    ret = uext4_inspect(fs, ino, &info);
    if (ret)
        return ret;
    /* The names the caller may list: trusted.* only for root. */
    xlen = uext4_listxattr(fs, cr, ino, NULL, 0);
    if (xlen > 0) {
        xl = malloc((size_t)xlen);
        xlen = xl ? uext4_listxattr(fs, cr, ino, xl, (size_t)xlen) : -ENOMEM;
    }
    ret = xlen < 0 ? xlen : uext4_inspect_json(&info, NULL, xl, xlen, &json);
    if (!ret) {
        ret = (ssize_t)strlen(json);
        if (size && (size_t)ret > size)
            ret = -ERANGE;
        else if (size)
            memcpy(value, json, (size_t)ret);
    }
    free(json);
    free(xl);
    uext4_inode_info_free(&info);
    return ret;
}
