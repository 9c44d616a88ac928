/* Storage checks on a live mount: the daemon's UEXT4_INSPECT_XATTR.
 *
 * The mount backend reads an inode's storage with getxattr(2) instead of
 * unmounting (a checkpoint), so a check keeps every open file, mapping and
 * dirty page where it was. The value is the JSON object uext4-inspect
 * --json prints; this file turns it back into a uext4_inode_info. */
#include "scenario/scn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

/* The value of member @key in @json (a number, true or false), searched
 * from @from; -EPROTO if the daemon's answer has no such member. */
static int json_u64(const char *json, const char *key, uint64_t *v)
{
    char pat[64];
    const char *p;
    char *end;

    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    p = strstr(json, pat);
    if (!p)
        return -EPROTO;
    p += strlen(pat);
    if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
        *v = *p == 't';
        return 0;
    }
    errno = 0;
    *v = strtoull(p, &end, 10);
    return end == p || errno ? -EPROTO : 0;
}

static mode_t type_bits(const char *json)
{
    static const struct {
        const char *name;
        mode_t bits;
    } types[] = {
        {"\"type\": \"file\"", S_IFREG},    {"\"type\": \"dir\"", S_IFDIR},
        {"\"type\": \"symlink\"", S_IFLNK}, {"\"type\": \"device\"", S_IFCHR},
        {"\"type\": \"fifo\"", S_IFIFO},    {"\"type\": \"socket\"", S_IFSOCK},
    };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strstr(json, types[i].name))
            return types[i].bits;
    return 0;
}

static int parse_extents(const char *json, struct uext4_inode_info *info)
{
    const char *p = strstr(json, "\"extents\": [");
    unsigned n = 0;

    if (!p)
        return -EPROTO;
    for (const char *q = p; (q = strstr(q, "{\"lblk\": ")); q++)
        n++;
    info->extents = calloc(n ? n : 1, sizeof(*info->extents));
    if (!info->extents)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        struct uext4_extent *e = &info->extents[i];
        uint64_t len, unwritten;
        int ret;

        p = strstr(p, "{\"lblk\": ");
        ret = json_u64(p, "lblk", &e->lblk);
        if (!ret)
            ret = json_u64(p, "pblk", &e->pblk);
        if (!ret)
            ret = json_u64(p, "len", &len);
        if (!ret)
            ret = json_u64(p, "unwritten", &unwritten);
        if (ret)
            return ret;
        e->len = (uint32_t)len;
        e->unwritten = unwritten;
        p++;
    }
    info->nextents = n;
    return 0;
}

static int parse_info(const char *json, struct uext4_inode_info *info)
{
    uint64_t ino, mode, nlink, flags, is_inline, isize, cap;
    int ret = json_u64(json, "ino", &ino);

    if (!ret)
        ret = json_u64(json, "mode", &mode);
    if (!ret)
        ret = json_u64(json, "nlink", &nlink);
    if (!ret)
        ret = json_u64(json, "flags", &flags);
    if (!ret)
        ret = json_u64(json, "size", &info->size);
    if (!ret)
        ret = json_u64(json, "blocks", &info->blocks);
    if (!ret)
        ret = json_u64(json, "inline", &is_inline);
    if (!ret)
        ret = json_u64(json, "inline_size", &isize);
    if (!ret)
        ret = json_u64(json, "inline_capacity", &cap);
    if (!ret)
        ret = json_u64(json, "xattr_block", &info->xattr_block);
    if (ret)
        return ret;
    info->ino = (uint32_t)ino;
    info->mode = type_bits(json) | (mode_t)mode;
    info->nlink = (uint32_t)nlink;
    info->flags = (uint32_t)flags;
    info->is_inline = is_inline;
    info->inline_size = (size_t)isize;
    info->inline_capacity = (size_t)cap;
    return parse_extents(json, info);
}

/* By name (lgetxattr), as the lib backend inspects: an open file whose
 * name was unlinked or renamed over is not what PATH names. */
int scn_live_inspect(struct scn_run *r, const char *path, struct uext4_inode_info *info)
{
    char full[4096], *json;
    ssize_t n;
    int ret;

    memset(info, 0, sizeof(*info));
    snprintf(full, sizeof(full), "%s/%s", r->mnt, path);
    n = lgetxattr(full, UEXT4_INSPECT_XATTR, NULL, 0);
    if (n < 0)
        return -errno;
    json = malloc((size_t)n + 1);
    if (!json)
        return -ENOMEM;
    n = lgetxattr(full, UEXT4_INSPECT_XATTR, json, (size_t)n);
    if (n < 0) {
        ret = -errno; /* -ERANGE if it grew in between: a race the runner never makes */
        free(json);
        return ret;
    }
    json[n] = '\0';
    ret = parse_info(json, info);
    free(json);
    if (ret)
        uext4_inode_info_free(info);
    return ret;
}
