/* Extended attributes. Names arrive with their namespace prefix, as the
 * core wants them. */
#include "frontend/fe_int.h"

#include <errno.h>
#include <stdlib.h>

void fe_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags)
{
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_setxattr(fe_fs(req), &c.cr, fe_ext4_ino(ino), name, value, size, flags);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_xattr(fe_ctx(req)->rec, fe_ext4_ino(ino), name, value ? value : "", size, flags);
    fe_reply_status(req, rc);
}

void fe_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct fe_cred c;
    char *value = NULL;
    ssize_t rc;

    if (size && !(value = malloc(size))) {
        fe_reply_err(req, -ENOMEM);
        return;
    }
    fe_cred_init(&c, req, true);
    rc = uext4_getxattr(fe_fs(req), &c.cr, fe_ext4_ino(ino), name, value, size);
    fe_cred_release(&c);
    fe_reply_xattr(req, rc, value, size);
    free(value);
}

void fe_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct fe_cred c;
    char *list = NULL;
    ssize_t rc;

    if (size && !(list = malloc(size))) {
        fe_reply_err(req, -ENOMEM);
        return;
    }
    fe_cred_init(&c, req, true);
    rc = uext4_listxattr(fe_fs(req), &c.cr, fe_ext4_ino(ino), list, size);
    fe_cred_release(&c);
    fe_reply_xattr(req, rc, list, size);
    free(list);
}

void fe_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_removexattr(fe_fs(req), &c.cr, fe_ext4_ino(ino), name);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_xattr(fe_ctx(req)->rec, fe_ext4_ino(ino), name, NULL, 0, 0);
    fe_reply_status(req, rc);
}
