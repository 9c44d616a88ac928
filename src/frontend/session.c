/* The FUSE session: connection set-up (init), the operations table, and the
 * mount / loop / unmount life cycle that main.c drives through fe.h. */
#include "frontend/fe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "frontend/fe.h"
#include "frontend/uring.h"

/* Workers of the multi-threaded loop (-o max_threads= overrides). The core
 * runs image access under one lock, so workers add no throughput; what they
 * change is the latency of each request, through the way the kernel hands
 * requests out (to the reader that has waited longest) and wakes threads.
 * Measured with bench/run.py (7 repetitions, 2 CPUs) against 2 workers, the
 * previous default: 4 workers made one process's requests faster (random
 * 4 KiB O_DIRECT reads -28%, writes -30%, 5,000 creates -17%, cold stats
 * -20%, small files -11% to -22%; libfuse's default of 10: a little less)
 * and two processes reading at once slower (+57%), unlinks +10%. One
 * worker doubles the time of every request (a FUSE round trip: 50 us
 * against 20-25 us). */
#define FE_MAX_THREADS 4

struct fe_session {
    struct fe_ctx ctx; /* the session's userdata */
    struct fuse_session *se;
    struct fuse_args args; /* kept until destroy: the session was built from them */
    unsigned max_threads;
    /* Threads per io_uring queue, and the transport once INIT took it
     * (uring.c; started by the worker that answers INIT). */
    unsigned uring_per_queue;
    struct fe_uring *uring;
    bool mounted;
};

static void fe_want(struct fuse_conn_info *conn, unsigned cap)
{
    if (conn->capable & cap)
        conn->want |= cap;
}

/* Names: umask, readdirplus, symlinks. */
static void fe_init_names(const struct fe_ctx *ctx, struct fuse_conn_info *conn)
{
    /* The kernel hands us the umask instead of applying it, so the core can
     * skip it where a default ACL governs the new inode's mode. */
    fe_want(conn, FUSE_CAP_DONT_MASK);
    /* readdirplus hands the kernel a dentry and attributes per entry, at the
     * price of a lookup each. With an entry timeout of 0 the dentries are
     * stale at once and every later stat(2) of a name sends its LOOKUP all
     * the same: plain readdir then, which is half the work for `ls -l`. */
    conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
    if (ctx->entry_timeout > 0) {
        fe_want(conn, FUSE_CAP_READDIRPLUS);
        fe_want(conn, FUSE_CAP_READDIRPLUS_AUTO);
    }
    /* Only this daemon changes the image, so cached symlink targets stay
     * true until we change them ourselves. */
    fe_want(conn, FUSE_CAP_CACHE_SYMLINKS);
}

/* Permissions: killpriv, ACLs, O_TRUNC. */
static void fe_init_perms(const struct fe_ctx *ctx, struct fuse_conn_info *conn)
{
    /* Clearing setuid/setgid on write, truncate and chown is the core's
     * job (it knows the caller). libfuse 3.14 never passes HANDLE_KILLPRIV
     * on to the kernel (libfuse issue #884) and knows nothing of
     * HANDLE_KILLPRIV_V2, which the channel adds to the INIT reply instead
     * (wire.c): with it the kernel writes a setuid/setgid file through
     * even with writeback_cache, so the core sees each writer. Plain
     * HANDLE_KILLPRIV is asked for (for a libfuse that forwards it) only
     * without writeback_cache: under it, cached data reaches us at
     * writeback, as uid 0, when the writer is no longer known. */
    if (ctx->writeback_cache)
        conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
    else
        fe_want(conn, FUSE_CAP_HANDLE_KILLPRIV);
    /* The kernel enforces ACLs itself only when it checks permissions at
     * all, which is what default_permissions asks for. */
    if (ctx->posix_acl)
        fe_want(conn, FUSE_CAP_POSIX_ACL);
    /* open(O_TRUNC) then arrives as an open plus a setattr of the size:
     * uext4.h promises a truncation only from setattr, while
     * uext4_open_file() is documented to check rights and count the open. */
    conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
}

/* The data path: splicing and the page cache. */
static void fe_init_io(struct fuse_conn_info *conn)
{
    /* Replies to reads are spliced from the image file (file.c). Not
     * wanted: splicing requests in (write data would have to be copied out
     * of the pipe again), moving pages (they belong to the image file's
     * page cache). writeback_cache only when asked for (doc/uext4.1 says
     * what it changes). */
    conn->want &=
        ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_MOVE);
    fe_want(conn, FUSE_CAP_SPLICE_WRITE);
    /* File handles (name_to_handle_at, NFS) outlive the kernel's cache and
     * the mount: node ids are ext4 inode numbers and entries carry
     * i_generation, so a handle is resolved by number (namei.c). */
    fe_want(conn, FUSE_CAP_EXPORT_SUPPORT);
}

/* writeback_cache (ctx's flag follows what is granted) and no async_dio. */
static void fe_init_cache(struct fe_ctx *ctx, struct fuse_conn_info *conn)
{
    if (ctx->writeback_cache && !(conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
        /* INIT comes before any other request: nothing reads ctx yet. */
        log_warn("the kernel offers no writeback cache: writeback_cache ignored");
        ctx->writeback_cache = false;
    }
    /* Without async_dio every O_DIRECT request is an ordinary one and
     * completes before its system call (or aio) returns, so the kernel
     * drops the cached pages of each range written itself, as it does for
     * any synchronous O_DIRECT write: the daemon need not (an extra
     * notify, a system call per write; inval.c).
     * With it, O_DIRECT requests are background requests (queued behind
     * max_background, completed through the kernel's aio path) and may be
     * split over several in flight, which gains nothing from a core that
     * serves an inode's I/O one at a time. */
    conn->want &= ~(unsigned)FUSE_CAP_ASYNC_DIO;
    if (ctx->writeback_cache) {
        conn->want |= FUSE_CAP_WRITEBACK_CACHE;
        /* Writeback requests are background requests, which the kernel
         * sends up to max_background at a time (12 by default) and the
         * workers then serve in any order: a file written from start to
         * end reaches the core as writes past its end and holes filled
         * afterwards, the slow way to allocate (256 MiB written
         * sequentially: 0.9 s instead of 0.6 s).
         * The core serialises an inode's writes anyway, so one at a time
         * costs nothing but the reordering. (O_DIRECT requests, with
         * async_dio background ones, would queue for that one slot too:
         * it is off, above.) */
        conn->max_background = 1;
    }
}

/* The largest power of two not above @n (n > 0). */
static unsigned floor_pow2(unsigned n)
{
    while (n & (n - 1))
        n &= n - 1;
    return n;
}

static void fe_init(void *userdata, struct fuse_conn_info *conn)
{
    struct fe_ctx *ctx = userdata;

    /* Where WRITE data can stay in a pipe (wire.c), max_write is what
     * such a pipe holds. Not with io_uring, whose rings carry the data. */
    conn->max_write = ctx->splice_write && !ctx->wire.want_uring
                          ? (unsigned)fe_wire_splice_setup(&ctx->wire, FE_MAX_WRITE)
                          : FE_MAX_WRITE;
    /* A write(2) larger than max_write reaches us in max_write pieces, one
     * after the other. Answered early (fe_write), a piece's bytes move into
     * the image while the caller copies the next piece; a power of two cuts
     * the usual sizes into equal pieces, so the two overlap, where an
     * ordinary user's 1020 KiB left a 4 KiB piece that waited for the whole
     * 1020 KiB move. */
    if (ctx->early_write)
        conn->max_write = floor_pow2(conn->max_write);
    fe_init_names(ctx, conn);
    fe_init_perms(ctx, conn);
    fe_init_io(conn);
    fe_init_cache(ctx, conn);
    log_debug("FUSE %u.%u, capable %#x, want %#x, max_write %u", conn->proto_major,
              conn->proto_minor, conn->capable, conn->want, conn->max_write);
}

static void fe_destroy(void *userdata)
{
    log_debug("FUSE session ends");
}

static const struct fuse_lowlevel_ops fe_ops = {
    .init = fe_init,
    .destroy = fe_destroy,
    .lookup = fe_lookup,
    .forget = fe_forget,
    .forget_multi = fe_forget_multi,
    .getattr = fe_getattr,
    .setattr = fe_setattr,
    .readlink = fe_readlink,
    .mknod = fe_mknod,
    .mkdir = fe_mkdir,
    .unlink = fe_unlink,
    .rmdir = fe_rmdir,
    .symlink = fe_symlink,
    .rename = fe_rename,
    .link = fe_link,
    .open = fe_open,
    .read = fe_read,
    .write = fe_write,
    .release = fe_release,
    .fsync = fe_fsync,
    .opendir = fe_opendir,
    .readdir = fe_readdir,
    .readdirplus = fe_readdirplus,
    .releasedir = fe_releasedir,
    .fsyncdir = fe_fsyncdir,
    .statfs = fe_statfs,
    .setxattr = fe_setxattr,
    .getxattr = fe_getxattr,
    .listxattr = fe_listxattr,
    .removexattr = fe_removexattr,
    .access = fe_access,
    .create = fe_create,
    .fallocate = fe_fallocate,
    .lseek = fe_lseek,
    .copy_file_range = fe_copy_file_range,
    .ioctl = fe_ioctl,
};

/* Append "name" or "name=value" to the comma-separated @opts, escaping
 * commas in the value (an image path may contain them). */
static int fe_add_opt(char **opts, const char *name, const char *value)
{
    char *opt = NULL;
    int rc = 0;

    if (!value)
        return fuse_opt_add_opt(opts, name) == 0 ? 0 : -ENOMEM;
    if (asprintf(&opt, "%s=%s", name, value) < 0)
        return -ENOMEM;
    if (fuse_opt_add_opt_escaped(opts, opt) != 0)
        rc = -ENOMEM;
    free(opt);
    return rc;
}

/* The argument vector for fuse_session_new(), built from options we have
 * already checked: nothing the user typed reaches libfuse unparsed. */
static int fe_build_args(struct fuse_args *args, const struct fe_mount_params *p)
{
    const struct fe_mount_opts *o = p->opts;
    char *opts = NULL;
    int rc;

    rc = fe_add_opt(&opts, "fsname", p->fsname);
    if (rc == 0)
        rc = fe_add_opt(&opts, "subtype", p->subtype);
    if (rc == 0 && o->perm_check == FE_PERM_KERNEL)
        rc = fe_add_opt(&opts, "default_permissions", NULL);
    if (rc == 0 && o->allow_other)
        rc = fe_add_opt(&opts, "allow_other", NULL);
    if (rc == 0 && p->read_only)
        rc = fe_add_opt(&opts, "ro", NULL);
    for (unsigned i = 0; rc == 0 && i < FE_KF_NR; i++) {
        if (o->kflag[i])
            rc = fe_add_opt(&opts, o->kflag[i], NULL);
    }
    if (rc < 0)
        goto out_free_opts;

    rc = -ENOMEM;
    if (fuse_opt_add_arg(args, "uext4") != 0 || fuse_opt_add_arg(args, "-o") != 0 ||
        fuse_opt_add_arg(args, opts) != 0)
        goto out_free_opts;
    if (p->debug && fuse_opt_add_arg(args, "-d") != 0)
        goto out_free_opts;
    rc = 0;
out_free_opts:
    free(opts);
    return rc;
}

/* Answering INIT, before io_uring is offered in the reply (wire.c). */
static int fe_session_uring_prepare(void *arg, size_t payload)
{
    struct fe_session *s = arg;

    return fe_uring_prepare(&s->uring, s->se, &s->ctx.wire, fuse_session_fd(s->se),
                            s->uring_per_queue, payload);
}

/* INIT is answered and took FUSE over io_uring. */
static void fe_session_uring_start(void *arg)
{
    struct fe_session *s = arg;

    fe_uring_go(s->uring);
}

/* The session's context from the mount's options: what the kernel may
 * cache, and the transport. */
static void fe_session_ctx_init(struct fe_session *s, struct uext4_fs *fs,
                                const struct fe_mount_params *p)
{
    bool kernel_checks = p->opts->perm_check == FE_PERM_KERNEL;
    /* Under an id map the kernel sees unmapped owners as 65534, and the
     * local user 65534 would pass its owner checks: the daemon, which
     * knows the image's ids, checks every path and open as well. */
    bool id_mapped = p->opts->core.nuidmap || p->opts->core.ngidmap;
    /* The daemon checks nothing per path or per open when the kernel checks
     * first, or when nobody checks (fakeroot): the kernel may then keep
     * names and open files without asking. Not on an image with fs-verity
     * files, whose opens for writing fail (EPERM) whatever the mode says. */
    bool nothing_to_check =
        ((kernel_checks && !id_mapped) || p->opts->core.fakeroot) && !uext4_open_needs_check(fs);

    s->ctx.fs = fs;
    s->ctx.posix_acl = kernel_checks;
    s->ctx.writeback_cache = p->opts->writeback_cache && !p->read_only;
    s->ctx.drop_cache_on_open = p->opts->core.strictatime && !p->opts->core.noatime;
    s->ctx.no_open = nothing_to_check && !s->ctx.drop_cache_on_open;
    /* Casefold: the kernel's dentry cache knows names by their bytes, so a
     * name kept for "readme" would outlive an unlink of "README", and a
     * negative "README" would hide a new "readme". Every name is then
     * looked up again at each use (the daemon's index makes that cheap). */
    s->ctx.entry_timeout = nothing_to_check && !uext4_has_casefold(fs) ? FE_TIMEOUT : 0.0;
    fe_wire_init(&s->ctx.wire, true);
    if (p->opts->io_uring && !fe_uring_built())
        log_info("io_uring: this uext4 was built without liburing: serving /dev/fuse");
    s->ctx.wire.want_uring = p->opts->io_uring && fe_uring_built();
    s->ctx.splice_write = !p->opts->no_splice_write && !p->opts->record;
    s->ctx.early_write = s->ctx.splice_write && !p->opts->no_early_write;
    s->ctx.wire.on_prepare = fe_session_uring_prepare;
    s->ctx.wire.on_init = fe_session_uring_start;
    s->ctx.wire.on_init_arg = s;
    s->max_threads = p->opts->max_threads ? p->opts->max_threads : FE_MAX_THREADS;
}

int fe_session_new(struct uext4_fs *fs, const struct fe_mount_params *p, struct fe_session **out)
{
    struct fe_session *s;
    int rc;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    fe_session_ctx_init(s, fs, p);
    rc = fe_build_args(&s->args, p);
    if (rc < 0)
        goto out_free_args;
    /* Before the daemon leaves its working directory: FILE may be relative. */
    if (p->opts->record) {
        rc = fe_record_open(&s->ctx.rec, p->opts->record, p->image,
                            p->opts->core.inline_mmap == UEXT4_INLINE_MMAP_CONVERT);
        if (rc < 0)
            goto out_free_args;
    }

    s->se = fuse_session_new(&s->args, &fe_ops, sizeof(fe_ops), &s->ctx);
    if (!s->se) {
        rc = -EINVAL;
        goto out_free_args;
    }
    if (fuse_set_signal_handlers(s->se) != 0) {
        rc = -errno;
        goto out_destroy_session;
    }
    *out = s;
    return 0;

out_destroy_session:
    fuse_session_destroy(s->se);
out_free_args:
    fe_record_close(s->ctx.rec, fs);
    fuse_opt_free_args(&s->args);
    free(s);
    return rc;
}

static ssize_t fe_io_read(int fd, void *buf, size_t len, void *userdata)
{
    struct fe_ctx *ctx = userdata;

    return fe_wire_read(&ctx->wire, fd, buf, len);
}

static ssize_t fe_io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    struct fe_ctx *ctx = userdata;
    bool taken;
    ssize_t n = fe_uring_writev(iov, count, &taken);

    return taken ? n : fe_wire_writev(&ctx->wire, fd, iov, count);
}

/* Replies spliced from a pipe (read data, file.c). */
static ssize_t fe_io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
                                 unsigned int flags, void *userdata)
{
    bool taken;
    ssize_t n = fe_uring_splice(fdin, len, &taken);

    return taken ? n : splice(fdin, offin, fdout, offout, len, flags);
}

int fe_session_mount(struct fe_session *s, const char *mountpoint)
{
    /* No splice_receive: libfuse then reads requests into memory. */
    static const struct fuse_custom_io io = {
        .read = fe_io_read,
        .writev = fe_io_writev,
        .splice_send = fe_io_splice_send,
    };
    int rc;

    if (fuse_session_mount(s->se, mountpoint) != 0)
        return -EIO;
    s->mounted = true;
    /* The channel goes in after mounting, on the descriptor the mount
     * opened; before INIT, which the loop reads first. */
    rc = fuse_session_custom_io(s->se, &io, fuse_session_fd(s->se));
    return rc < 0 ? rc : 0;
}

int fe_session_run(struct fe_session *s, bool single_thread)
{
    struct fuse_loop_config *cfg;
    int rc;

    s->uring_per_queue = single_thread ? 1 : s->max_threads;
    s->ctx.se = s->se;
    if (single_thread) {
        rc = fuse_session_loop(s->se);
    } else {
        cfg = fuse_loop_cfg_create();
        if (cfg) {
            fuse_loop_cfg_set_max_threads(cfg, s->max_threads);
            rc = fuse_session_loop_mt(s->se, cfg);
            fuse_loop_cfg_destroy(cfg);
        } else {
            rc = -ENOMEM;
        }
    }
    fe_uring_stop(s->uring);
    s->uring = NULL;
    /* A positive value is the signal that stopped the loop: a normal end. */
    return rc < 0 ? rc : 0;
}

uint64_t fe_session_requests(const struct fe_session *s)
{
    return fe_wire_requests(&s->ctx.wire);
}

uint64_t fe_session_spliced(const struct fe_session *s)
{
    return fe_wire_spliced(&s->ctx.wire);
}

uint64_t fe_session_answered_early(const struct fe_session *s)
{
    return atomic_load_explicit(&s->ctx.answered_early, memory_order_relaxed);
}

uint64_t fe_session_interrupts(const struct fe_session *s)
{
    return fe_wire_interrupts(&s->ctx.wire);
}

void fe_session_destroy(struct fe_session *s)
{
    /* After `fusermount3 -u` the kernel side is gone already; libfuse
     * notices and skips the unmount. */
    if (s->mounted)
        fuse_session_unmount(s->se);
    fuse_remove_signal_handlers(s->se);
    fuse_session_destroy(s->se);
    /* No request is left: the expect lines read the file system as final. */
    fe_record_close(s->ctx.rec, s->ctx.fs);
    fuse_opt_free_args(&s->args);
    free(s);
}

bool fe_uring_available(void)
{
    return fe_uring_built();
}

const char *fe_fuse_version(void)
{
    return fuse_pkgversion();
}
