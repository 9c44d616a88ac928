/* Names: lookup and forget, the create family, unlink, rename, readlink. */
#include "frontend/fe_int.h"

#include <errno.h>
#include <limits.h>
#include <linux/fs.h>
#include <string.h>

/* With export support the kernel finds the inode of a file handle it no
 * longer has in its cache by a lookup of "." in the handle's node id (any
 * type of inode), and a directory's parent by a lookup of ".." (an entry
 * ext4 keeps in every directory). Path walks never send either. */
void fe_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fe_cred c;
    struct stat st;
    int rc;

    if (!strcmp(name, ".")) {
        uint32_t gen;

        rc = uext4_lookup_ino(fe_fs(req), fe_ext4_ino(parent), &st, &gen);
        fe_reply_entry(req, rc, &st); /* an error, never a negative entry */
        return;
    }
    fe_cred_init(&c, req, true);
    rc = uext4_lookup(fe_fs(req), &c.cr, fe_ext4_ino(parent), name, &st);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_name(fe_ctx(req)->rec, fe_ext4_ino(parent), name, (uint32_t)st.st_ino,
                    S_ISDIR(st.st_mode));
    fe_reply_lookup(req, rc, &st);
}

/* The root is never freed, and the kernel's count on it does not start from
 * a lookup of ours, so its forgets would only unbalance the core's count. */
static void fe_forget_one(struct uext4_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
    if (ino != FUSE_ROOT_ID)
        uext4_forget(fs, fe_ext4_ino(ino), nlookup);
}

void fe_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    fe_forget_one(fe_fs(req), ino, nlookup);
    fuse_reply_none(req);
}

void fe_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        fe_forget_one(fe_fs(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

void fe_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    struct fe_cred c;
    struct stat st;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_mknod(fe_fs(req), &c.cr, fe_ext4_ino(parent), name, mode, rdev, &st);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_new(fe_ctx(req)->rec, fe_ext4_ino(parent), name, &st, rdev, NULL);
    fe_reply_entry(req, rc, &st);
}

void fe_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct fe_cred c;
    struct stat st;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_mkdir(fe_fs(req), &c.cr, fe_ext4_ino(parent), name, mode, &st);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_new(fe_ctx(req)->rec, fe_ext4_ino(parent), name, &st, 0, NULL);
    fe_reply_entry(req, rc, &st);
}

void fe_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    struct fe_cred c;
    struct stat st;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_symlink(fe_fs(req), &c.cr, fe_ext4_ino(parent), name, target, &st);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_new(fe_ctx(req)->rec, fe_ext4_ino(parent), name, &st, 0, target);
    fe_reply_entry(req, rc, &st);
}

void fe_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct fe_cred c;
    struct stat st;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_link(fe_fs(req), &c.cr, fe_ext4_ino(ino), fe_ext4_ino(newparent), newname, &st);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_link(fe_ctx(req)->rec, fe_ext4_ino(ino), fe_ext4_ino(newparent), newname);
    fe_reply_entry(req, rc, &st);
}

void fe_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_unlink(fe_fs(req), &c.cr, fe_ext4_ino(parent), name);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_remove(fe_ctx(req)->rec, fe_ext4_ino(parent), name, false);
    fe_reply_status(req, rc);
}

void fe_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_rmdir(fe_fs(req), &c.cr, fe_ext4_ino(parent), name);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_remove(fe_ctx(req)->rec, fe_ext4_ino(parent), name, true);
    fe_reply_status(req, rc);
}

/* Unknown flags are refused, as ext4 does. */
static int fe_rename_flags(unsigned int flags, unsigned *out)
{
    *out = 0;
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
        return -EINVAL;
    if (flags & RENAME_WHITEOUT)
        *out |= UEXT4_RENAME_WHITEOUT;
    if (flags & RENAME_NOREPLACE)
        *out |= UEXT4_RENAME_NOREPLACE;
    if (flags & RENAME_EXCHANGE)
        *out |= UEXT4_RENAME_EXCHANGE;
    return 0;
}

void fe_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags)
{
    struct fe_cred c;
    unsigned uflags;
    int rc;

    rc = fe_rename_flags(flags, &uflags);
    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    fe_cred_init(&c, req, true);
    rc = uext4_rename(fe_fs(req), &c.cr, fe_ext4_ino(parent), name, fe_ext4_ino(newparent), newname,
                      uflags);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_rename(fe_ctx(req)->rec, fe_ext4_ino(parent), name, fe_ext4_ino(newparent), newname,
                      flags);
    fe_reply_status(req, rc);
}

void fe_readlink(fuse_req_t req, fuse_ino_t ino)
{
    /* symlink(2) caps targets below PATH_MAX; a longer one on a crafted
     * image makes the core return -ERANGE, which we pass on. */
    char target[PATH_MAX + 1];
    ssize_t n;

    n = uext4_readlink(fe_fs(req), fe_ext4_ino(ino), target, sizeof(target) - 1);
    if (n < 0) {
        fe_reply_err(req, (int)n);
        return;
    }
    target[n] = '\0';
    fuse_reply_readlink(req, target);
}
