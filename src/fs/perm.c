/* Permission checks as the kernel's generic_permission(), POSIX ACLs
 * (access checks, inheritance at create, chmod), credentials. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACL_XATTR_VERSION 2
#define ACL_USER_OBJ      0x01
#define ACL_USER          0x02
#define ACL_GROUP_OBJ     0x04
#define ACL_GROUP         0x08
#define ACL_MASK          0x10
#define ACL_OTHER         0x20

struct acl_entry {
    uint16_t tag, perm;
    uint32_t id;
};

/* A parsed ACL xattr (Linux format, little-endian as on the wire). */
struct acl {
    unsigned n;
    struct acl_entry e[];
};

int fs_cred_from(struct uext4_fs *fs, const struct uext4_cred *cr, struct fs_cred *fc)
{
    memset(fc, 0, sizeof(*fc));
    fc->local = cr;
    fc->umask = cr->umask;
    if (fs->opts.fakeroot) {
        fc->root = true;
        return 0;
    }
    if (fs_uid_to_image(fs, cr->uid, &fc->uid))
        fc->uid = FS_NO_ID;
    if (fs_gid_to_image(fs, cr->gid, &fc->gid))
        fc->gid = FS_NO_ID;
    fc->groups = &fc->groups_storage;
    fc->groups->loaded = !cr->load_groups;
    fc->groups->n = cr->ngroups;
    fc->groups->gids = cr->groups;
    fc->root = fc->uid == 0;
    return 0;
}

bool fs_cred_in_group(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t gid)
{
    struct fs_groups *g = fc->groups;

    if (gid == FS_NO_ID)
        return false; /* what an unmapped caller's gid is set to */
    if (fc->gid == gid)
        return true;
    if (!g)
        return false; /* fakeroot: no groups needed */
    if (!g->loaded) {
        fc->local->load_groups(fc->local, &g->gids, &g->n);
        g->loaded = true;
    }
    for (unsigned i = 0; i < g->n; i++) {
        uint32_t image;
        if (!fs_gid_to_image(fs, g->gids[i], &image) && image == gid)
            return true;
    }
    return false;
}

bool fs_capable(const struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *a)
{
    uint32_t local;

    if (!fc->root)
        return false;
    if (fs->opts.fakeroot)
        return true;
    return fs_uid_is_mapped(fs, a->uid, &local) && fs_gid_is_mapped(fs, a->gid, &local);
}

bool fs_remove_privs(struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *a,
                     mode_t *mode)
{
    const struct uext4_cred *cr = fc->local;

    if (!(*mode & (S_ISUID | S_ISGID)) || !S_ISREG(a->mode))
        return false;
    /* fakeroot makes every caller root with all its powers. */
    if (fs_capable(fs, fc, a) &&
        (fs->opts.fakeroot || !cr || !cr->has_fsetid || cr->has_fsetid(cr)))
        return false;
    /* in_group_or_capable(): CAP_FSETID is the capability it means, and the
     * caller has none by now. */
    return fs_kill_priv(mode, fs_cred_in_group(fs, fc, a->gid));
}

bool fs_is_owner(const struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *a)
{
    return fs_cred_uid_is(fc, a->uid) || fs_capable(fs, fc, a);
}

static struct acl *acl_parse(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    struct acl *acl;
    uint32_t version;

    if (len < 4 || (len - 4) % 8)
        return NULL;
    memcpy(&version, p, 4);
    if (le32toh(version) != ACL_XATTR_VERSION)
        return NULL;
    acl = malloc(sizeof(*acl) + (len - 4) / 8 * sizeof(struct acl_entry));
    if (!acl)
        return NULL;
    acl->n = (unsigned)((len - 4) / 8);
    for (unsigned i = 0; i < acl->n; i++) {
        uint16_t t, pm;
        uint32_t id;
        memcpy(&t, p + 4 + 8 * i, 2);
        memcpy(&pm, p + 6 + 8 * i, 2);
        memcpy(&id, p + 8 + 8 * i, 4);
        acl->e[i] = (struct acl_entry){le16toh(t), le16toh(pm), le32toh(id)};
    }
    return acl;
}

static size_t acl_serialize(const struct acl *acl, void **out)
{
    size_t len = 4 + 8 * (size_t)acl->n;
    unsigned char *p = malloc(len);
    uint32_t v = htole32(ACL_XATTR_VERSION);

    if (!p)
        return 0;
    memcpy(p, &v, 4);
    for (unsigned i = 0; i < acl->n; i++) {
        uint16_t t = htole16(acl->e[i].tag), pm = htole16(acl->e[i].perm);
        uint32_t id = htole32(acl->e[i].id);
        memcpy(p + 4 + 8 * i, &t, 2);
        memcpy(p + 6 + 8 * i, &pm, 2);
        memcpy(p + 8 + 8 * i, &id, 4);
    }
    *out = p;
    return len;
}

/* Read an ACL xattr of @ino: 1 with *acl set, 0 if none, -errno. */
static int acl_read(struct uext4_fs *fs, uint32_t ino, const char *name, struct acl **acl)
{
    char buf[4 + 8 * 64];
    ssize_t len = e2_xattr_get(fs->img, ino, name, buf, sizeof(buf));

    *acl = NULL;
    if (len == -ENODATA)
        return 0;
    if (len == -ERANGE)
        return -EUCLEAN; /* more entries than any tool writes */
    if (len < 0)
        return (int)len;
    *acl = acl_parse(buf, (size_t)len);
    return *acl ? 1 : -EUCLEAN;
}

static int acl_permission(struct uext4_fs *fs, const struct fs_cred *fc, const struct acl *acl,
                          const struct e2_attr *a, int want)
{
    const struct acl_entry *match = NULL;
    bool found = false;

    for (unsigned i = 0; i < acl->n && !match; i++) {
        const struct acl_entry *e = &acl->e[i];
        switch (e->tag) {
        case ACL_USER:
            if (fs_cred_uid_is(fc, e->id))
                match = e;
            break;
        case ACL_GROUP_OBJ:
        case ACL_GROUP: {
            uint32_t gid = e->tag == ACL_GROUP_OBJ ? a->gid : e->id;
            if (fs_cred_in_group(fs, fc, gid)) {
                found = true;
                if ((e->perm & want) == want)
                    match = e;
            }
            break;
        }
        case ACL_OTHER:
            if (found)
                return -EACCES;
            return (e->perm & want) == want ? 0 : -EACCES;
        default:
            break;
        }
    }
    if (!match)
        return -EACCES;
    for (unsigned i = 0; i < acl->n; i++) {
        if (acl->e[i].tag == ACL_MASK && (acl->e[i].perm & want) != want)
            return -EACCES;
    }
    return (match->perm & want) == want ? 0 : -EACCES;
}

int fs_permission(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                  const struct e2_attr *a, int mask)
{
    unsigned perm;
    struct acl *acl;
    int ret;

    mask &= R_OK | W_OK | X_OK;
    /* inode_permission(): nobody writes an immutable inode, root included. */
    if ((mask & W_OK) && (a->flags & E2_FL_IMMUTABLE))
        return -EPERM;
    if (fs_capable(fs, fc, a)) {
        /* CAP_DAC_OVERRIDE: all but executing a file no one may execute. */
        if ((mask & X_OK) && !S_ISDIR(a->mode) && !(a->mode & 0111))
            return -EACCES;
        return 0;
    }
    if (fs_cred_uid_is(fc, a->uid)) {
        perm = (a->mode >> 6) & 7;
        return (perm & (unsigned)mask) == (unsigned)mask ? 0 : -EACCES;
    }
    ret = acl_read(fs, ino, "system.posix_acl_access", &acl);
    if (ret < 0)
        return ret;
    if (ret == 1) {
        ret = acl_permission(fs, fc, acl, a, mask);
        free(acl);
        return ret;
    }
    perm = fs_cred_in_group(fs, fc, a->gid) ? (a->mode >> 3) & 7 : a->mode & 7;
    return (perm & (unsigned)mask) == (unsigned)mask ? 0 : -EACCES;
}

int fs_may_delete(const struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *dir,
                  const struct e2_attr *victim)
{
    if ((dir->flags & E2_FL_APPEND) || (victim->flags & (E2_FL_APPEND | E2_FL_IMMUTABLE)))
        return -EPERM;
    if (!(dir->mode & S_ISVTX) || fs_capable(fs, fc, victim))
        return 0;
    if (fs_cred_uid_is(fc, victim->uid) || fs_cred_uid_is(fc, dir->uid))
        return 0;
    return -EPERM;
}

/* The host's fs.protected_hardlinks, read at each link (it may change).
 * Unreadable counts as on: fewer rights, never more. */
static bool hardlinks_protected(void)
{
    char c = '1';
    int fd = open("/proc/sys/fs/protected_hardlinks", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return true;
    if (read(fd, &c, 1) != 1)
        c = '1';
    close(fd);
    return c != '0';
}

int fs_may_hardlink(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                    const struct e2_attr *a)
{
    int ret;

    if (!hardlinks_protected() || fs_is_owner(fs, fc, a))
        return 0;
    /* Only a file the caller could read and write anyway, and not one
     * that would carry someone else's privileges: no device or FIFO, no
     * setuid, no setgid executable. */
    if (!S_ISREG(a->mode) || (a->mode & S_ISUID) ||
        (a->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
        return -EPERM;
    ret = fs_permission(fs, fc, ino, a, R_OK | W_OK);
    return ret == -EACCES ? -EPERM : ret;
}

/* posix_acl_create_masq(): restrict @acl by @mode and @mode by @acl.
 * Returns whether the ACL says more than the mode can. */
static bool acl_create_masq(struct acl *acl, mode_t *mode)
{
    struct acl_entry *group_obj = NULL, *mask_obj = NULL;
    mode_t m = *mode;
    bool not_equiv = false;

    for (unsigned i = 0; i < acl->n; i++) {
        struct acl_entry *e = &acl->e[i];
        switch (e->tag) {
        case ACL_USER_OBJ:
            e->perm &= (m >> 6) | ~7u;
            m &= (mode_t)(e->perm << 6) | ~(mode_t)0700;
            break;
        case ACL_USER:
        case ACL_GROUP:
            not_equiv = true;
            break;
        case ACL_GROUP_OBJ:
            group_obj = e;
            break;
        case ACL_OTHER:
            e->perm &= m | ~7u;
            m &= e->perm | ~(mode_t)7;
            break;
        case ACL_MASK:
            mask_obj = e;
            not_equiv = true;
            break;
        }
    }
    if (mask_obj) {
        mask_obj->perm &= (m >> 3) | ~7u;
        m &= (mode_t)(mask_obj->perm << 3) | ~(mode_t)070;
    } else if (group_obj) {
        group_obj->perm &= (m >> 3) | ~7u;
        m &= (mode_t)(group_obj->perm << 3) | ~(mode_t)070;
    }
    *mode = m;
    return not_equiv;
}

/* The default ACL of directory @dir, as acl_read(), with the mount lock
 * held for writing: a directory known to have none is not read again
 * (fs_inode.default_acl says when that holds). */
static int read_default_acl(struct uext4_fs *fs, uint32_t dir, struct acl **def)
{
    struct fs_inode *di = fs_inode_get(fs, dir);
    int ret;

    if (di && di->default_acl == FS_DEFACL_NONE) {
        *def = NULL;
        ret = 0;
        goto out_put;
    }
    ret = acl_read(fs, dir, "system.posix_acl_default", def);
    if (di && ret == 0)
        di->default_acl = FS_DEFACL_NONE;
out_put:
    fs_inode_put(fs, di);
    return ret;
}

int fs_acl_inherit(struct uext4_fs *fs, uint32_t dir, mode_t *mode, void **access_acl,
                   size_t *access_len, void **default_acl, size_t *default_len)
{
    struct acl *def;
    int ret;

    *access_acl = *default_acl = NULL;
    *access_len = *default_len = 0;
    if (S_ISLNK(*mode))
        return 0;
    ret = read_default_acl(fs, dir, &def);
    if (ret <= 0)
        return ret;
    if (S_ISDIR(*mode)) {
        *default_len = acl_serialize(def, default_acl);
        if (!*default_len)
            ret = -ENOMEM;
    }
    if (ret > 0 && acl_create_masq(def, mode)) {
        *access_len = acl_serialize(def, access_acl);
        if (!*access_len)
            ret = -ENOMEM;
    }
    free(def);
    if (ret < 0) {
        free(*default_acl);
        *default_acl = NULL;
    }
    return ret;
}

int fs_acl_chmod(struct uext4_fs *fs, uint32_t ino, mode_t mode, bool limited)
{
    struct acl *acl;
    void *buf;
    size_t len;
    int ret = acl_read(fs, ino, "system.posix_acl_access", &acl);
    bool has_mask = false;

    if (ret <= 0)
        return ret;
    for (unsigned i = 0; i < acl->n; i++)
        has_mask |= acl->e[i].tag == ACL_MASK;
    for (unsigned i = 0; i < acl->n; i++) {
        struct acl_entry *e = &acl->e[i];
        if (e->tag == ACL_USER_OBJ)
            e->perm = (mode >> 6) & 7;
        else if (e->tag == ACL_OTHER)
            e->perm = mode & 7;
        else if (e->tag == (has_mask ? ACL_MASK : ACL_GROUP_OBJ))
            e->perm = (mode >> 3) & 7;
    }
    len = acl_serialize(acl, &buf);
    free(acl);
    if (!len)
        return -ENOMEM;
    ret = e2_xattr_set(fs->img, ino, "system.posix_acl_access", buf, len, 0, limited);
    free(buf);
    return ret;
}

int fs_acl_equiv_mode(const void *buf, size_t len, mode_t *mode)
{
    struct acl *acl = acl_parse(buf, len);
    mode_t m = 0;
    int equiv = 1;

    if (!acl)
        return -EINVAL;
    for (unsigned i = 0; i < acl->n; i++) {
        const struct acl_entry *e = &acl->e[i];
        if (e->perm & ~7u) {
            free(acl);
            return -EINVAL;
        }
        switch (e->tag) {
        case ACL_USER_OBJ:
            m |= (mode_t)e->perm << 6;
            break;
        case ACL_GROUP_OBJ:
            m |= (mode_t)e->perm << 3;
            break;
        case ACL_OTHER:
            m |= e->perm;
            break;
        case ACL_MASK:
            m = (m & ~(mode_t)070) | (mode_t)e->perm << 3;
            equiv = 0;
            break;
        case ACL_USER:
        case ACL_GROUP:
            equiv = 0;
            break;
        default:
            free(acl);
            return -EINVAL;
        }
    }
    free(acl);
    /* The group bits are the mask's when there is one, whatever the order. */
    *mode = (*mode & ~(mode_t)0777) | m;
    return equiv;
}

int fs_acl_map_ids(const struct uext4_fs *fs, void *buf, size_t len, bool to_image)
{
    unsigned char *p = buf;

    if (len < 4 || (len - 4) % 8)
        return -EINVAL;
    for (size_t off = 4; off < len; off += 8) {
        uint16_t tag;
        uint32_t id, out;
        int ret = 0;
        memcpy(&tag, p + off, 2);
        memcpy(&id, p + off + 4, 4);
        tag = le16toh(tag);
        id = le32toh(id);
        if (tag == ACL_USER) {
            if (to_image)
                ret = fs_uid_to_image(fs, id, &out);
            else
                out = fs_uid_to_local(fs, id);
        } else if (tag == ACL_GROUP) {
            if (to_image)
                ret = fs_gid_to_image(fs, id, &out);
            else
                out = fs_gid_to_local(fs, id);
        } else {
            continue;
        }
        if (ret)
            return -EINVAL;
        out = htole32(out);
        memcpy(p + off + 4, &out, 4);
    }
    return 0;
}
