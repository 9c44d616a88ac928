/* Open regular files and their data: create, open, read, write, release,
 * fsync, fallocate, lseek, copy_file_range.
 *
 * Opens keep no per-handle state but their open(2) flags, in fi->fh
 * (fe_fh_flags(): FS_IOC_ENABLE_VERITY needs the caller's descriptor
 * read-only, and IOCTL carries no flags). An unlinked file must
 * live while it is open, and the kernel's reference (the lookup count)
 * already lasts that long: FUSE forgets an inode only once nothing holds
 * it. So where the daemon has nothing to check at open (the kernel checks
 * permissions, or fakeroot allows everything) OPEN is answered ENOSYS, and
 * from then on the kernel opens and closes regular files without a
 * request: reading a small file cold is a LOOKUP and a READ. The price: a
 * write open of an image that errors=remount-ro has made read-only
 * succeeds, and its first write fails with EROFS (ext4 fails the open).
 * Elsewhere (no_default_permissions) the core checks each open and counts
 * it, and RELEASE uncounts it.
 *
 * No flush handler: close(2) needs nothing of the daemon (no state per
 * descriptor, no POSIX locks to drop), so libfuse answers the first FLUSH
 * with ENOSYS and the kernel sends no more. It still writes a file's cached
 * pages back at every close and reports their errors there; only the
 * request that would follow is saved, one per close. */
#include "frontend/fe_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* The daemon is the only writer of the image, so cached pages stay valid
 * across opens (but under strictatime, fe_int.h). Never direct_io: it
 * breaks shared mmap on libfuse 3.14. */
static void fe_open_info(fuse_req_t req, struct fuse_file_info *fi)
{
    fi->fh = FE_FH_OPEN | (uint32_t)fi->flags;
    fi->keep_cache = !fe_ctx(req)->drop_cache_on_open;
    fi->direct_io = 0;
}

/* The reply to a CREATE whose file @st the core has just made under @c's
 * credentials (and holds one lookup reference to): open it (counted unless
 * @counted is false) and answer with the entry and the open. On any
 * failure, or a reply the kernel never receives, the open and the
 * reference are given back. Releases @c. */
static void reply_created(fuse_req_t req, struct fe_cred *c, const struct stat *st,
                          struct fuse_file_info *fi, bool counted)
{
    struct uext4_fs *fs = fe_fs(req);
    uint32_t ino = (uint32_t)st->st_ino;
    struct fuse_entry_param e;
    int rc = 0;

    /* O_CREAT tells the core this open made the file: no mode check. */
    if (counted)
        rc = uext4_open_file(fs, &c->cr, ino, fi->flags | O_CREAT);
    if (rc < 0)
        goto out_forget;
    rc = fe_entry_fill(req, &e, st);
    if (rc < 0)
        goto out_release;
    fe_cred_release(c);

    fe_open_info(req, fi);
    if (fuse_reply_create(req, &e, fi) != 0) {
        if (counted)
            uext4_release_file(fs, ino, fi->flags);
        uext4_forget(fs, ino, 1);
    }
    return;

out_release:
    if (counted)
        uext4_release_file(fs, ino, fi->flags);
out_forget:
    uext4_forget(fs, ino, 1);
    fe_cred_release(c);
    fe_reply_err(req, rc);
}

/* O_TMPFILE, arriving as a CREATE of "/" (wire.c). The open is counted as
 * a create's, except without counted opens (no_open): the kernel holds the
 * lookup reference of the reply until the file is closed, and its FORGET
 * frees the inode. */
static void fe_tmpfile(fuse_req_t req, fuse_ino_t parent, mode_t mode, struct fuse_file_info *fi)
{
    struct fe_cred c;
    struct stat st;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_tmpfile(fe_fs(req), &c.cr, fe_ext4_ino(parent), mode, fi->flags, &st);
    if (rc < 0) {
        fe_cred_release(&c);
        fe_reply_err(req, rc);
        return;
    }
    reply_created(req, &c, &st, fi, !fe_ctx(req)->no_open);
}

void fe_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi)
{
    struct fe_cred c;
    struct stat st;
    int rc;

    if (strcmp(name, "/") == 0) {
        fe_tmpfile(req, parent, mode, fi);
        return;
    }
    /* Without counted opens, CREATE would cost the RELEASE that follows it
     * (the kernel skips RELEASE only once an OPEN has failed with ENOSYS).
     * ENOSYS makes the kernel create with MKNOD instead, once and for all,
     * and open the new file without a request (and without checking its
     * mode: the file still counts as created by this open). */
    if (fe_ctx(req)->no_open) {
        fe_reply_err(req, -ENOSYS);
        return;
    }
    fe_cred_init(&c, req, true);
    rc = uext4_mknod(fe_fs(req), &c.cr, fe_ext4_ino(parent), name, S_IFREG | (mode & ~S_IFMT), 0,
                     &st);
    if (rc < 0) {
        fe_cred_release(&c);
        fe_reply_err(req, rc);
        return;
    }
    fe_rec_new(fe_ctx(req)->rec, fe_ext4_ino(parent), name, &st, 0, NULL);
    reply_created(req, &c, &st, fi, true);
}

void fe_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct uext4_fs *fs = fe_fs(req);
    struct fe_cred c;
    int rc;

    if (fe_ctx(req)->no_open) {
        fe_reply_err(req, -ENOSYS);
        return;
    }
    fe_cred_init(&c, req, true);
    rc = uext4_open_file(fs, &c.cr, fe_ext4_ino(ino), fi->flags);
    fe_cred_release(&c);
    if (rc < 0) {
        fe_reply_err(req, rc);
        return;
    }
    fe_open_info(req, fi);
    if (fuse_reply_open(req, fi) != 0)
        uext4_release_file(fs, fe_ext4_ino(ino), fi->flags);
}

/* Reads from this size on go by reference. libfuse copies replies under
 * two pages anyway (a pread into a buffer it allocates, then writev), and
 * a smaller read copied by uext4_read() costs less: 4 KiB O_DIRECT reads by
 * reference took 310 ms of daemon CPU per 16,384 against 230-250 ms
 * copied (bench/run.py rand_read_direct, two runs of 7 and 9), while the
 * reply by reference still held the inode lock. Sent without it, 4 KiB
 * spliced and copied cost the same daemon CPU (medians of 7 within 10%
 * either way, one and two O_DIRECT readers): the copy stays. Both read
 * the image outside the disk lock. */
#define FE_READ_REF_MIN (8u << 10)

/* Zeros for the holes of a read by reference. */
#define FE_ZERO_CHUNK (64u << 10)
static const char fe_zeros[FE_ZERO_CHUNK];

struct fe_ref_reply {
    fuse_req_t req;
    bool replied; /* the reply was sent, or its sending failed */
};

/* The reply to a read by reference: the data segments go to the kernel
 * as pieces of the image file, which libfuse splices into a pipe and from
 * there into the request (one copy, where pread and writev made two). */
static int fe_reply_ref(void *arg, int fd, const struct uext4_read_seg *segs, unsigned nseg,
                        size_t total __attribute__((unused)))
{
    struct fe_ref_reply *r = arg;
    struct fuse_bufvec *bv;
    size_t nbuf = 0, k = 0;
    int rc;

    for (unsigned i = 0; i < nseg; i++)
        nbuf += segs[i].pos < 0 ? (segs[i].len + FE_ZERO_CHUNK - 1) / FE_ZERO_CHUNK : 1;
    bv = calloc(1, sizeof(*bv) + (nbuf ? nbuf : 1) * sizeof(bv->buf[0]));
    if (!bv)
        return -ENOMEM;
    r->replied = true;
    for (unsigned i = 0; i < nseg; i++) {
        if (segs[i].pos >= 0) {
            bv->buf[k++] = (struct fuse_buf){
                .size = segs[i].len,
                .flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
                .fd = fd,
                .pos = segs[i].pos,
            };
            continue;
        }
        for (size_t done = 0; done < segs[i].len; done += FE_ZERO_CHUNK) {
            size_t len = segs[i].len - done;
            bv->buf[k++] = (struct fuse_buf){
                .size = len < FE_ZERO_CHUNK ? len : FE_ZERO_CHUNK,
                .mem = (void *)fe_zeros, /* only read from */
            };
        }
    }
    bv->count = k;
    bv->idx = 0;
    bv->off = 0;
    rc = fuse_reply_data(r->req, bv, 0);
    free(bv);
    return rc;
}

void fe_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    /* Copied reads are the small ones: their buffer is on the worker's
     * stack, not a malloc and free per request (a 4 KiB one went through
     * malloc_consolidate each time, after libfuse's small frees). */
    char small[FE_READ_REF_MIN];
    char *buf = small;
    ssize_t n;

    if (size >= FE_READ_REF_MIN) {
        struct fe_ref_reply r = {.req = req};
        int rc = uext4_read_ref(fe_fs(req), fe_ext4_ino(ino), size, off, fe_reply_ref, &r);

        /* A reply that failed (an interrupted request) needs no other. */
        if (r.replied) {
            if (rc < 0)
                log_debug("inode %u: read reply: %s", fe_ext4_ino(ino), strerror(-rc));
            return;
        }
        if (rc != -EOPNOTSUPP) {
            fe_reply_err(req, rc);
            return;
        }
    }
    if (size > sizeof(small) && !(buf = malloc(size))) {
        fe_reply_err(req, -ENOMEM);
        return;
    }
    n = uext4_read(fe_fs(req), fe_ext4_ino(ino), buf, size, off);
    fe_reply_buf(req, n, buf);
    if (buf != small)
        free(buf);
}

/* The flags of the core write for a FUSE write.
 *
 * Without writeback_cache, fi->writepage marks the writeback of mmap'd
 * pages, which must never grow i_size nor convert an inline inode
 * (design.md, inline rule 3); write(2) data arrives without it.
 *
 * With writeback_cache, write(2) data is written back from the kernel's page
 * cache as well, so writepage no longer says "mmap". The kernel owns i_size
 * then and clamps every writeback to it: a write that grows the file is
 * write(2) data, one that does not changes nothing the inline rules care
 * about (an inline file's data ends within its capacity), so the core's
 * write(2) path is right for both: it keys the inline rules on growth.
 * A setuid/setgid file is never cached: with HANDLE_KILLPRIV_V2 (wire.c)
 * the kernel writes it through, as its writer, so the core clears the bits;
 * and the kernel keeps the times and sends them with a SETATTR: a writeback
 * is UEXT4_WRITE_CACHED, which touches neither. */
static unsigned fe_write_flags(fuse_req_t req, const struct fuse_file_info *fi)
{
    if (fe_ctx(req)->writeback_cache)
        return fi->writepage ? UEXT4_WRITE_CACHED : 0; /* the kernel's times stand */
    return fi->writepage ? UEXT4_WRITE_MMAP : 0;
}

/* A writeback must not end short: the kernel does not look at the count
 * it gets back and would drop the rest of its pages without a word. The
 * rest is written again until what stops it (-ENOSPC, -EFBIG) is the
 * reply, which the kernel then reports at fsync or close. A short count is
 * what the core returns for a write that ran out of space part way. */
static ssize_t fe_writeback_all(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                                const char *buf, size_t size, off_t off, unsigned flags)
{
    size_t done = 0;

    while (done < size) {
        ssize_t n = uext4_write(fs, cr, ino, buf + done, size - done, off + (off_t)done, flags);

        if (n < 0)
            return n;
        if (n == 0)
            return -ENOSPC;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Whether @ino is a setuid/setgid file, which a write or copy by a caller
 * without CAP_FSETID changes (HANDLE_KILLPRIV_V2: the core drops the bits).
 * After WRITE and COPY_FILE_RANGE the kernel refreshes only size and times:
 * a statx(2) for the mode alone would read the old one from its cache
 * (fstests generic/355), so the caller drops the cached attributes when
 * this was true. Asked before the write: afterwards the bits are gone. */
static bool fe_is_setid(fuse_req_t req, fuse_ino_t ino)
{
    struct stat st;

    return uext4_getattr(fe_fs(req), fe_ext4_ino(ino), &st) == 0 && S_ISREG(st.st_mode) &&
           (st.st_mode & (S_ISUID | S_ISGID));
}

/* uext4_write_pipe_early()'s answer to the WRITE @arg: its reply, while
 * the core holds its locks (lock.h says why that is safe). */
static void fe_write_told(void *arg, size_t n)
{
    fuse_req_t req = arg;

    atomic_fetch_add_explicit(&fe_ctx(req)->answered_early, 1, memory_order_relaxed);
    fe_reply_write(req, (ssize_t)n);
}

/* Whether a spliced WRITE may be answered once its blocks are allocated,
 * before its bytes move from the pipe into the image (-o early_write):
 * the caller then copies its next bytes into the kernel's pages while the
 * daemon moves these, where each used to wait for the other. Its bytes
 * are the kernel's page-cache pages, which the pipe holds by reference:
 * a later write(2) over them comes as a WRITE of its own after this one,
 * and the inode lock, held until the bytes are in, orders the two. A
 * failure of the image file after the answer reaches the file's next
 * fsync, as a writeback error of ext4's does (uext4_write_pipe_early()).
 * The kernel then holds pages and a size the image lacks; it drops both at
 * its next look at the attributes, which every read makes after a write
 * (the mtime it set itself in the write is not the file's: auto_inval_data;
 * the size is the image's), as test_ioerr.py early_answer_* check.
 * Not for O_DIRECT (whose callers look for errors in the write itself),
 * nor O_SYNC and O_DSYNC (durable first; the kernel's FSYNC after the
 * write would report it all the same), nor a write that drops
 * setuid/setgid (whose attributes are invalidated after it). */
static bool fe_may_answer_early(fuse_req_t req, const struct fuse_file_info *fi, bool setid)
{
    return fe_ctx(req)->early_write && !fi->writepage && !setid &&
           !(fi->flags & (O_DIRECT | O_SYNC | O_DSYNC));
}

/* A large WRITE's data may have stayed in the channel's pipe (wire.h):
 * moved from there straight into the image where the core can take it
 * so, else read into the request's buffer, where read(2) would have put
 * it: -EAGAIN then, for the caller to write from @buf. mmap writeback
 * (UEXT4_WRITE_MMAP) is always written from memory; a writeback cut short
 * has the rest of its bytes read and written on (fe_writeback_all()).
 * With @early the core may answer the WRITE itself (*@told): @req is gone
 * then, and the return is only for the caller to know. */
static ssize_t fe_write_spliced(fuse_req_t req, const struct uext4_cred *cr, fuse_ino_t ino,
                                const char *buf, size_t size, off_t off, unsigned flags,
                                bool writepage, bool early, bool *told)
{
    /* libfuse's receive buffer, which has room for the whole request. */
    char *mem = (char *)buf;
    ssize_t n = -EAGAIN, more;
    size_t len;
    int fd = fe_wire_payload(&len);
    int err;

    if (fd < 0)
        return -EAGAIN;
    if (len != size) {
        log_err("WRITE of %zu bytes with %zu in its pipe", size, len);
        fe_wire_payload_taken(-1);
        return -EIO;
    }
    if (early)
        n = uext4_write_pipe_early(fe_fs(req), cr, fe_ext4_ino(ino), fd, size, off, flags,
                                   fe_write_told, req, told);
    else if (!(flags & UEXT4_WRITE_MMAP))
        n = uext4_write_pipe(fe_fs(req), cr, fe_ext4_ino(ino), fd, size, off, flags);
    if (n != -EAGAIN)
        fe_wire_payload_taken(n);
    if (*told)
        return n;
    if (n != -EAGAIN && (!writepage || n <= 0 || (size_t)n == size))
        return n;
    if (n == -EAGAIN)
        n = 0;
    err = fe_wire_payload_fill(mem + n);
    if (err)
        return err;
    if (n == 0)
        return -EAGAIN;
    more = fe_writeback_all(fe_fs(req), cr, fe_ext4_ino(ino), mem + n, size - (size_t)n, off + n,
                            flags);
    return more < 0 ? more : n + more;
}

/* Writeback requests are sent on nobody's behalf (pid 0, the ids of no
 * caller), so there are no groups to read. write(2) without writeback_cache
 * and O_DIRECT writes return a short count to the caller, as write(2) may.
 * Only a write the kernel marked (a caller without CAP_FSETID) can drop
 * setuid/setgid: others pay nothing for fe_is_setid(). */
void fe_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi)
{
    unsigned flags = fe_write_flags(req, fi);
    bool setid, told = false;
    struct fe_cred c;
    ssize_t n;

    fe_cred_init(&c, req, !fi->writepage);
    setid = c.kill == FE_KILL_YES && fe_is_setid(req, ino);
    n = fe_write_spliced(req, &c.cr, ino, buf, size, off, flags, fi->writepage,
                         fe_may_answer_early(req, fi, setid), &told);
    if (told) {
        /* Answered; @req is gone. */
        fe_cred_release(&c);
        return;
    }
    if (n == -EAGAIN)
        n = fi->writepage
                ? fe_writeback_all(fe_fs(req), &c.cr, fe_ext4_ino(ino), buf, size, off, flags)
                : uext4_write(fe_fs(req), &c.cr, fe_ext4_ino(ino), buf, size, off, flags);
    fe_cred_release(&c);
    /* A writepage without writeback_cache is a shared mapping's page; with
     * it, write(2) data too, which the core takes as writes. */
    if (n > 0)
        fe_rec_write(fe_ctx(req)->rec, fe_ext4_ino(ino), buf, (size_t)n, off,
                     fi->writepage && !fe_ctx(req)->writeback_cache);
    if (n > 0 && setid)
        fe_inval_attr(req, ino);
    fe_reply_write(req, n);
}

/* The kernel ignores the reply to release, so a latched writeback error
 * that surfaces here would vanish without the log line. */
void fe_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    int rc;

    /* Without counted opens there is nothing to uncount: the kernel sends
     * no RELEASE once OPEN has failed with ENOSYS, and CREATE never
     * succeeds. Answered all the same, should one come. */
    if (fe_ctx(req)->no_open) {
        fe_reply_status(req, 0);
        return;
    }
    rc = uext4_release_file(fe_fs(req), fe_ext4_ino(ino), fi->flags);

    if (rc < 0)
        log_err("inode %u: write-back error reported at close: %s", fe_ext4_ino(ino),
                strerror(-rc));
    fe_reply_status(req, rc);
}

void fe_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    int rc = uext4_fsync(fe_fs(req), fe_ext4_ino(ino), datasync != 0);

    fe_record_flush(fe_ctx(req)->rec);
    fe_reply_status(req, rc);
}

void fe_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                  struct fuse_file_info *fi)
{
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_fallocate(fe_fs(req), &c.cr, fe_ext4_ino(ino), mode, off, len);
    fe_cred_release(&c);
    /* fallocate may have dropped setuid/setgid (HANDLE_KILLPRIV_V2), but
     * after FALLOCATE the kernel refreshes only size and times, and a
     * statx(2) for the mode alone would read the old one from its cache
     * (fstests generic/683-685). */
    if (!rc) {
        fe_rec_fallocate(fe_ctx(req)->rec, fe_ext4_ino(ino), mode, off, len);
        fe_inval_attr(req, ino);
    }
    fe_reply_status(req, rc);
}

/* The kernel resolves SEEK_SET, SEEK_CUR and SEEK_END itself and only asks
 * us about data and holes. With writeback_cache it asks without writing
 * its dirty pages back first, so data and size still in its cache would
 * read as a hole or as past the end (ENXIO): -ENOSYS makes it answer every
 * later SEEK_DATA/SEEK_HOLE itself, from its own size, the whole file being
 * data. */
void fe_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
    off_t rc = -EINVAL;

    if (fe_ctx(req)->writeback_cache)
        rc = -ENOSYS;
    else if (whence == SEEK_DATA || whence == SEEK_HOLE)
        rc = uext4_lseek(fe_fs(req), fe_ext4_ino(ino), off, whence);
    fe_reply_lseek(req, rc);
}

/* copy_file_range(2) defines no flags yet. */
void fe_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                        struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                        struct fuse_file_info *fi_out, size_t len, int flags)
{
    struct fe_cred c;
    bool setid;
    ssize_t n;

    if (flags != 0) {
        fe_reply_err(req, -EINVAL);
        return;
    }
    /* The request carries no kill mark: the core asks the caller's
     * capabilities, so any copy into a set-id file may drop the bits. */
    setid = fe_is_setid(req, ino_out);
    fe_cred_init(&c, req, true);
    n = uext4_copy_file_range(fe_fs(req), &c.cr, fe_ext4_ino(ino_in), off_in, fe_ext4_ino(ino_out),
                              off_out, len);
    fe_cred_release(&c);
    if (n > 0)
        fe_rec_copy(fe_ctx(req)->rec, fe_ext4_ino(ino_in), off_in, fe_ext4_ino(ino_out), off_out,
                    (size_t)n);
    if (n > 0 && setid)
        fe_inval_attr(req, ino_out);
    fe_reply_write(req, n);
}
