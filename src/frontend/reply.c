/* The reply helpers: the one place that turns the core's -errno into a FUSE
 * error reply, and that keeps lookup counts right when a reply is lost. */
#include "frontend/fe_int.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

int fe_entry_fill(fuse_req_t req, struct fuse_entry_param *e, const struct stat *st)
{
    uint32_t gen;
    int rc = uext4_generation(fe_fs(req), (uint32_t)st->st_ino, &gen);

    memset(e, 0, sizeof(*e));
    e->ino = fe_fuse_ino((uint32_t)st->st_ino);
    e->generation = gen;
    e->attr = *st;
    e->attr_timeout = FE_TIMEOUT;
    e->entry_timeout = fe_ctx(req)->entry_timeout;
    return rc;
}

void fe_reply_err(fuse_req_t req, int rc)
{
    assert(rc <= 0);
    fuse_reply_err(req, -rc);
}

void fe_reply_status(fuse_req_t req, int rc)
{
    fe_reply_err(req, rc < 0 ? rc : 0);
}

void fe_reply_entry(fuse_req_t req, int rc, const struct stat *st)
{
    struct fuse_entry_param e;

    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    rc = fe_entry_fill(req, &e, st);
    if (rc < 0) {
        uext4_forget(fe_fs(req), (uint32_t)st->st_ino, 1);
        fe_reply_err(req, rc);
        return;
    }
    if (fuse_reply_entry(req, &e) != 0)
        uext4_forget(fe_fs(req), (uint32_t)st->st_ino, 1);
}

/* A name appears only through a request of the kernel's own (mknod,
 * rename...), which replaces the negative entry: searches for files that
 * are not there (a PATH, an include path) then cost one request per name. */
void fe_reply_lookup(fuse_req_t req, int rc, const struct stat *st)
{
    struct fuse_entry_param e;

    if (rc != -ENOENT || fe_ctx(req)->entry_timeout <= 0) {
        fe_reply_entry(req, rc, st);
        return;
    }
    memset(&e, 0, sizeof(e)); /* ino 0: the name is known to be missing */
    e.entry_timeout = fe_ctx(req)->entry_timeout;
    fuse_reply_entry(req, &e);
}

void fe_reply_attr(fuse_req_t req, int rc, const struct stat *st)
{
    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    fuse_reply_attr(req, st, FE_TIMEOUT);
}

void fe_reply_statx(fuse_req_t req, int rc, const struct statx *stx)
{
    char out[FE_WIRE_STATX_OUT_SIZE];

    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    fe_wire_statx_out(out, stx, FE_TIMEOUT);
    fuse_reply_buf(req, out, sizeof(out));
}

void fe_reply_buf(fuse_req_t req, ssize_t rc, const void *buf)
{
    if (rc < 0) {
        fe_reply_err(req, (int)rc);
        return;
    }
    fuse_reply_buf(req, buf, (size_t)rc);
}

void fe_reply_write(fuse_req_t req, ssize_t rc)
{
    if (rc < 0) {
        fe_reply_err(req, (int)rc);
        return;
    }
    fuse_reply_write(req, (size_t)rc);
}

/* A size-0 xattr request asks for the length only (fuse_reply_xattr); any
 * other is answered with the bytes. */
void fe_reply_xattr(fuse_req_t req, ssize_t rc, const void *buf, size_t size)
{
    if (rc < 0) {
        fe_reply_err(req, (int)rc);
        return;
    }
    if (size == 0)
        fuse_reply_xattr(req, (size_t)rc);
    else
        fuse_reply_buf(req, buf, (size_t)rc);
}

void fe_reply_statfs(fuse_req_t req, int rc, const struct statvfs *sv)
{
    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    fuse_reply_statfs(req, sv);
}

void fe_reply_ioctl(fuse_req_t req, int rc, const void *buf, size_t size)
{
    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    fuse_reply_ioctl(req, 0, buf, size);
}

void fe_reply_lseek(fuse_req_t req, off_t rc)
{
    if (rc < 0) {
        fe_reply_err(req, (int)rc);
        return;
    }
    fuse_reply_lseek(req, rc);
}
