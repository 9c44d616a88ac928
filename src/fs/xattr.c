/* Extended attributes: namespace rules and POSIX ACL semantics on top of
 * the storage in e2/xattr.c. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ACL_ACCESS  "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"

enum xns { XNS_USER, XNS_TRUSTED, XNS_SECURITY, XNS_ACL_ACCESS, XNS_ACL_DEFAULT, XNS_NONE };

static enum xns name_space(const char *name)
{
    if (!strncmp(name, "user.", 5) && name[5])
        return XNS_USER;
    if (!strncmp(name, "trusted.", 8) && name[8])
        return XNS_TRUSTED;
    if (!strncmp(name, "security.", 9) && name[9])
        return XNS_SECURITY;
    if (!strcmp(name, ACL_ACCESS))
        return XNS_ACL_ACCESS;
    if (!strcmp(name, ACL_DEFAULT))
        return XNS_ACL_DEFAULT;
    return XNS_NONE;
}

/* xattr_permission() of the kernel. */
static int xattr_access(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                        const struct e2_attr *a, enum xns ns, bool write)
{
    if (write && (a->flags & (E2_FL_IMMUTABLE | E2_FL_APPEND)))
        return -EPERM;
    switch (ns) {
    case XNS_NONE:
        return -EOPNOTSUPP;
    case XNS_TRUSTED:
        return fc->root ? 0 : -EPERM;
    case XNS_USER:
        if (!S_ISREG(a->mode) && !S_ISDIR(a->mode))
            return write ? -EPERM : -ENODATA;
        if (write && S_ISDIR(a->mode) && (a->mode & S_ISVTX) && !fs_is_owner(fs, fc, a))
            return -EPERM;
        break;
    case XNS_ACL_ACCESS:
    case XNS_ACL_DEFAULT:
        if (write && !fs_is_owner(fs, fc, a))
            return -EPERM;
        if (!write)
            return 0;
        break;
    case XNS_SECURITY:
        if (!write)
            return 0;
        break;
    }
    return fs_permission(fs, fc, ino, a, write ? W_OK : R_OK);
}

/* Everything an xattr operation starts with: the inode pinned and locked
 * under the mount lock, its attributes read and the access checked. */
struct xop {
    struct fs_inode *fi;
    struct fs_cred fc;
    struct e2_attr a;
};

static int xop_begin(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                     const char *name, bool write, struct xop *x)
{
    int ret;

    fs_cred_from(fs, cr, &x->fc);
    x->fi = fs_op_begin(fs, ino);
    if (!x->fi)
        return -ENOMEM;
    ret = e2_inode_get(fs->img, ino, &x->a);
    if (!ret && name)
        ret = xattr_access(fs, &x->fc, ino, &x->a, name_space(name), write);
    if (!ret && write)
        ret = fs_may_write(fs);
    return ret;
}

/* Ends what xop_begin() started, even when it failed after pinning. */
static int xop_end(struct uext4_fs *fs, struct xop *x, int ret)
{
    if (!x->fi)
        return ret;
    ret = FS_CHECK(fs, x->fi->ino, ret);
    fs_op_end(fs, x->fi);
    return ret;
}

/* After a change (or a failed attempt: it may have got half way) to the
 * xattrs of the inode @x holds, whatever a create knew of its default ACL
 * is stale (fs_inode.default_acl; lock and mount lock held, as xop_begin
 * left them). */
static int xop_end_changed(struct uext4_fs *fs, struct xop *x, int ret)
{
    if (x->fi)
        x->fi->default_acl = FS_DEFACL_UNKNOWN;
    return xop_end(fs, x, ret);
}

ssize_t uext4_getxattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                       const char *name, void *value, size_t size)
{
    struct xop x;
    enum xns ns = name_space(name);
    ssize_t ret;

    if (!strcmp(name, UEXT4_INSPECT_XATTR))
        return FS_CHECK(fs, ino, fs_inspect_xattr(fs, cr, ino, value, size));
    ret = xop_begin(fs, cr, ino, name, false, &x);
    if (!ret)
        ret = e2_xattr_get(fs->img, ino, name, value, size);
    if (ret > 0 && size && (ns == XNS_ACL_ACCESS || ns == XNS_ACL_DEFAULT))
        fs_acl_map_ids(fs, value, (size_t)ret, false);
    return xop_end(fs, &x, (int)(ret < 0 ? ret : 0)) ?: ret;
}

/* The mode changes only once the ACL is stored (or, equivalent to the
 * mode, removed), as ext4_set_acl: a refused store (EDQUOT, ENOSPC) leaves
 * the inode as it was. Setting an ACL changes ctime, as any xattr. */
static int set_acl_locked(struct uext4_fs *fs, struct xop *x, enum xns ns, void *value, size_t size,
                          int flags)
{
    uint32_t ino = x->fi->ino;
    mode_t mode = x->a.mode;
    int equiv = 0, ret;

    if (ns == XNS_ACL_DEFAULT && !S_ISDIR(x->a.mode))
        return value && size ? -EACCES : 0;
    if (S_ISLNK(x->a.mode))
        return -EOPNOTSUPP;
    ret = fs_acl_map_ids(fs, value, size, true);
    if (ret)
        return ret;
    if (ns == XNS_ACL_ACCESS) {
        equiv = fs_acl_equiv_mode(value, size, &mode);
        if (equiv < 0)
            return equiv;
        if (!fs_capable(fs, &x->fc, &x->a) && !fs_cred_in_group(fs, &x->fc, x->a.gid))
            mode &= ~(mode_t)S_ISGID;
    }
    if (equiv) {
        /* The mode says it all: no ACL is stored (posix_acl_update_mode). */
        ret = e2_xattr_remove(fs->img, ino, ACL_ACCESS);
        ret = ret == -ENODATA ? 0 : ret;
    } else {
        ret = e2_xattr_set(fs->img, ino, ns == XNS_ACL_ACCESS ? ACL_ACCESS : ACL_DEFAULT, value,
                           size, flags, !x->fc.root);
    }
    if (ret)
        return ret;
    x->a.mode = mode;
    fs_now(&x->a.ctime);
    return e2_inode_set(fs->img, ino, &x->a, E2_A_MODE | E2_A_CTIME);
}

int uext4_setxattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, const char *name,
                   const void *value, size_t size, int flags)
{
    enum xns ns = name_space(name);
    void *copy = NULL;
    struct xop x;
    int ret;

    if (!strcmp(name, UEXT4_INSPECT_XATTR))
        return -EPERM; /* virtual and read-only */
    if (strlen(name) > 255)
        return -ERANGE;
    if (size > 65536)
        return -E2BIG;
    ret = xop_begin(fs, cr, ino, name, true, &x);
    if (ret)
        return xop_end(fs, &x, ret);
    if (ns == XNS_ACL_ACCESS || ns == XNS_ACL_DEFAULT) {
        copy = malloc(size ? size : 1);
        if (!copy)
            return xop_end(fs, &x, -ENOMEM);
        memcpy(copy, value, size);
        ret = set_acl_locked(fs, &x, ns, copy, size, flags);
        free(copy);
    } else {
        ret = e2_xattr_set(fs->img, ino, name, value, size, flags, !x.fc.root);
        if (!ret) {
            fs_now(&x.a.ctime);
            ret = e2_inode_set(fs->img, ino, &x.a, E2_A_CTIME);
        }
    }
    return xop_end_changed(fs, &x, ret);
}

ssize_t uext4_listxattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, char *list,
                        size_t size)
{
    struct xop x;
    ssize_t ret = xop_begin(fs, cr, ino, NULL, false, &x);
    size_t len, out = 0;
    char *all = NULL;

    if (ret)
        return xop_end(fs, &x, (int)ret);
    ret = e2_xattr_list(fs->img, ino, NULL, 0);
    if (ret <= 0)
        return xop_end(fs, &x, (int)(ret < 0 ? ret : 0)) ?: 0;
    len = (size_t)ret;
    all = malloc(len);
    if (!all)
        return xop_end(fs, &x, -ENOMEM);
    ret = e2_xattr_list(fs->img, ino, all, len);
    if (ret >= 0) {
        /* Only the names this caller may read are listed (trusted.*: root). */
        for (size_t off = 0; off < (size_t)ret; off += strlen(all + off) + 1) {
            const char *n = all + off;
            size_t nl = strlen(n) + 1;
            if (name_space(n) == XNS_TRUSTED && !x.fc.root)
                continue;
            if (size && out + nl <= size)
                memcpy(list + out, n, nl);
            out += nl;
        }
        ret = size && out > size ? -ERANGE : (ssize_t)out;
    }
    free(all);
    return xop_end(fs, &x, (int)(ret < 0 ? ret : 0)) ?: ret;
}

int uext4_removexattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                      const char *name)
{
    struct xop x;
    int ret;

    if (!strcmp(name, UEXT4_INSPECT_XATTR))
        return -EPERM; /* virtual and read-only */
    ret = xop_begin(fs, cr, ino, name, true, &x);
    if (ret)
        return xop_end(fs, &x, ret);
    ret = e2_xattr_remove(fs->img, ino, name);
    if (!ret) {
        fs_now(&x.a.ctime);
        ret = e2_inode_set(fs->img, ino, &x.a, E2_A_CTIME);
    }
    return xop_end_changed(fs, &x, ret);
}
