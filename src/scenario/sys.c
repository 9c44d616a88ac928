/* The syscall backends (mount and kernel): scenario steps as real system
 * calls on the mounted image, with real MAP_SHARED mappings for mmap stores.
 * Which file system serves the mount point (uext4 over FUSE, or the kernel
 * on a loop device) is mounts.c's business; everything here is the same
 * for both, so one scenario exercises both the same way.
 *
 * A store through a mapping into a page wholly past EOF raises SIGBUS, and
 * one into a mapping made read-only by `mprotect` SIGSEGV; both are caught
 * (per thread) and reported as -EFAULT, as the lib backend does.
 *
 * A file opened with `open PATH direct` (O_DIRECT) is read and written
 * through a page-aligned bounce buffer, so that only the offset and the
 * length decide the alignment, and an EINVAL is the file system's. */
#include "scenario/scn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_HANDLES 64
#define PAGE        4096

struct sys_handle {
    char *path; /* NULL: free slot */
    int fd;
    int flags;          /* the open(2) flags */
    unsigned char *map; /* MAP_SHARED over [map_off, map_off + map_len) */
    off_t map_off;
    size_t map_len;
    int prot; /* the mapping's protection, kept when it is remapped larger */
};

struct scn_sys {
    pthread_mutex_t lock; /* protects handles[] against parallel steps */
    struct sys_handle handles[MAX_HANDLES];
};

/* volatile: the stores around the memcpy must not be optimised away. */
static __thread sigjmp_buf *volatile bus_jmp;

/* The handlers that were there before ours (a sanitizer's, say): a fault
 * outside a guarded store goes to them, so ASan still reports it. */
static struct sigaction prev_bus, prev_segv;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *prev = sig == SIGBUS ? &prev_bus : &prev_segv;

    if (bus_jmp)
        siglongjmp(*bus_jmp, 1);
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, si, uc);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_sigbus(void)
{
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &prev_bus);
    /* a store into a read-only mapping; any other SIGSEGV (no guard set)
     * goes to the handler before ours, else the default action */
    sigaction(SIGSEGV, &sa, &prev_segv);
}

static struct scn_sys *st_of(struct scn_run *r)
{
    return r->priv;
}

int scn_sys_init(struct scn_run *r)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct scn_sys *s;

    pthread_once(&once, install_sigbus);
    if (r->priv)
        return 0;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    r->priv = s;
    return 0;
}

static void drop_handle_locked(struct sys_handle *h)
{
    if (h->map)
        munmap(h->map, h->map_len);
    if (h->fd >= 0)
        close(h->fd);
    free(h->path);
    memset(h, 0, sizeof(*h));
}

void scn_sys_close_all(struct scn_run *r)
{
    struct scn_sys *s = st_of(r);

    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < MAX_HANDLES; i++)
        if (s->handles[i].path)
            drop_handle_locked(&s->handles[i]);
    pthread_mutex_unlock(&s->lock);
}

void scn_sys_fini(struct scn_run *r)
{
    struct scn_sys *s = st_of(r);

    if (!s)
        return;
    scn_sys_close_all(r);
    pthread_mutex_destroy(&s->lock);
    free(s);
    r->priv = NULL;
}

static void full_path(struct scn_run *r, const char *path, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", r->mnt, path);
}

static struct sys_handle *find_locked(struct scn_sys *s, const char *path)
{
    for (unsigned i = 0; i < MAX_HANDLES; i++)
        if (s->handles[i].path && !strcmp(s->handles[i].path, path))
            return &s->handles[i];
    return NULL;
}

static int add_handle(struct scn_sys *s, const char *path, int fd, int flags)
{
    struct sys_handle *h;
    int ret = -EMFILE;

    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    if (h)
        drop_handle_locked(h);
    for (unsigned i = 0; i < MAX_HANDLES; i++) {
        if (s->handles[i].path)
            continue;
        s->handles[i].path = strdup(path);
        s->handles[i].fd = fd;
        s->handles[i].flags = flags;
        s->handles[i].prot = PROT_READ | ((flags & O_ACCMODE) != O_RDONLY ? PROT_WRITE : 0);
        ret = s->handles[i].path ? 0 : -ENOMEM;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    if (ret)
        close(fd);
    return ret;
}

static int open_path(struct scn_run *r, const char *path, int flags, mode_t mode)
{
    char full[4096];
    int fd;

    full_path(r, path, full, sizeof(full));
    fd = open(full, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

/* The fd of @path's open file, opening it (read-write) if there is none:
 * data steps keep their file open until `close` or a checkpoint. */
static int handle_fd(struct scn_run *r, const char *path)
{
    struct scn_sys *s = st_of(r);
    struct sys_handle *h;
    int fd, ret;

    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    fd = h ? h->fd : -1;
    pthread_mutex_unlock(&s->lock);
    if (fd >= 0)
        return fd;
    fd = open_path(r, path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    ret = add_handle(s, path, fd, O_RDWR);
    return ret ? ret : fd;
}

/* The fd of @path's open file, or -1: live queries fall back to the path.
 * *@direct (if given) says whether it was opened O_DIRECT. */
static int existing_fd_direct(struct scn_run *r, const char *path, bool *direct)
{
    struct scn_sys *s = st_of(r);
    struct sys_handle *h;
    int fd;

    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    fd = h ? h->fd : -1;
    if (direct)
        *direct = h && (h->flags & O_DIRECT);
    pthread_mutex_unlock(&s->lock);
    return fd;
}

static int existing_fd(struct scn_run *r, const char *path)
{
    return existing_fd_direct(r, path, NULL);
}

/* A page-aligned buffer of @len bytes (at least one page) for O_DIRECT. */
static void *bounce_alloc(size_t len)
{
    void *b = NULL;

    return posix_memalign(&b, PAGE, len ? len : 1) ? NULL : b;
}

static int sys_create(struct scn_run *r, const char *path, mode_t mode)
{
    int fd = open_path(r, path, O_RDWR | O_CREAT | O_EXCL, mode);

    return fd < 0 ? fd : add_handle(st_of(r), path, fd, O_RDWR);
}

static int sys_open(struct scn_run *r, const char *path, int flags)
{
    int fd = open_path(r, path, flags, 0);

    return fd < 0 ? fd : add_handle(st_of(r), path, fd, flags);
}

static int sys_close(struct scn_run *r, const char *path)
{
    struct scn_sys *s = st_of(r);
    struct sys_handle *h;
    int ret = -EBADF;

    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    if (h) {
        /* close(2) is where FUSE's flush reports a latched writeback error;
         * the mapping goes first so its pages are not pinned. */
        if (h->map)
            munmap(h->map, h->map_len);
        ret = close(h->fd) < 0 ? -errno : 0;
        free(h->path);
        memset(h, 0, sizeof(*h));
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* One pwrite(2): a short count is the step's to judge. */
static ssize_t sys_write(struct scn_run *r, const char *path, const void *buf, size_t len,
                         off_t off)
{
    int fd = handle_fd(r, path);
    void *bounce = NULL;
    bool direct;
    ssize_t n;

    if (fd < 0)
        return fd;
    existing_fd_direct(r, path, &direct);
    if (direct) {
        bounce = bounce_alloc(len);
        if (!bounce)
            return -ENOMEM;
        memcpy(bounce, buf, len);
    }
    n = pwrite(fd, bounce ? bounce : buf, len, off);
    if (n < 0)
        n = -errno;
    free(bounce);
    return n;
}

static ssize_t sys_read(struct scn_run *r, const char *path, void *buf, size_t len, off_t off)
{
    bool direct;
    int fd = existing_fd_direct(r, path, &direct), own = -1;
    unsigned char *bounce = NULL, *dst = buf;
    size_t done = 0;
    ssize_t ret = 0;

    if (fd < 0) {
        own = fd = open_path(r, path, O_RDONLY, 0);
        if (fd < 0)
            return fd;
    }
    if (direct) {
        dst = bounce = bounce_alloc(len);
        if (!bounce)
            return -ENOMEM;
    }
    while (done < len) {
        ssize_t n = pread(fd, dst + done, len - done, off + (off_t)done);

        if (n < 0) {
            ret = -errno;
            break;
        }
        if (n == 0)
            break;
        done += (size_t)n;
        /* O_DIRECT: a short read is EOF, and the rest would be unaligned */
        if (bounce)
            break;
    }
    if (bounce) {
        memcpy(buf, bounce, done);
        free(bounce);
    }
    if (own >= 0)
        close(own);
    return ret ? ret : (ssize_t)done;
}

/* Make @h's mapping cover [off, off + len), remapping a larger window when
 * needed: munmap does not write back, so dirty pages stay dirty. */
static int cover_locked(struct sys_handle *h, off_t off, size_t len)
{
    off_t start = off & ~(off_t)(PAGE - 1);
    off_t end = (off + (off_t)len + PAGE - 1) & ~(off_t)(PAGE - 1);
    void *m;

    if (h->map && start >= h->map_off && end <= h->map_off + (off_t)h->map_len)
        return 0;
    if (h->map) {
        if (h->map_off < start)
            start = h->map_off;
        if (h->map_off + (off_t)h->map_len > end)
            end = h->map_off + (off_t)h->map_len;
        munmap(h->map, h->map_len);
        h->map = NULL;
    }
    if (end == start)
        end = start + PAGE;
    m = mmap(NULL, (size_t)(end - start), h->prot, MAP_SHARED, h->fd, start);
    if (m == MAP_FAILED)
        return -errno;
    h->map = m;
    h->map_off = start;
    h->map_len = (size_t)(end - start);
    return 0;
}

/* The shared mapping of @path's open file, grown to cover [@off, @off +
 * @len): *@p is where byte @off is. The caller touches it unlocked, under
 * its own SIGBUS guard. */
static int map_range(struct scn_run *r, const char *path, off_t off, size_t len, bool store,
                     unsigned char **p)
{
    struct scn_sys *s = st_of(r);
    struct sys_handle *h;
    int fd = handle_fd(r, path), ret;

    if (fd < 0)
        return fd;
    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    ret = h ? cover_locked(h, off, len) : -EBADF;
    /* a shared writable mapping of a read-only open: mmap(2) says EACCES */
    if (!ret && store && (h->flags & O_ACCMODE) == O_RDONLY)
        ret = -EACCES;
    if (!ret)
        *p = h->map + (off - h->map_off);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static int sys_mmap_store(struct scn_run *r, const char *path, const void *buf, size_t len,
                          off_t off)
{
    unsigned char *dst;
    sigjmp_buf jb;
    int ret = map_range(r, path, off, len, true, &dst);

    if (ret)
        return ret;
    /* The store runs unlocked: it may fault into the file system, which
     * may be a parallel step's target. */
    if (sigsetjmp(jb, 1)) {
        bus_jmp = NULL;
        return -EFAULT;
    }
    bus_jmp = &jb;
    /* Forward, one byte at a time: a store running into a page past EOF
     * lands up to the fault, as in the lib backend. memcpy's order is the
     * C library's choice (it may store the tail first) and would make the
     * outcome depend on it. */
    for (size_t i = 0; i < len; i++)
        ((volatile unsigned char *)dst)[i] = ((const unsigned char *)buf)[i];
    bus_jmp = NULL;
    return 0;
}

static int sys_lookup(struct scn_run *r, const char *path);

/* munmap(2) without msync: the dirty pages stay in the page cache, to be
 * written back later (a close, fsync, sync or the kernel's own timer). */
static int sys_munmap(struct scn_run *r, const char *path)
{
    struct scn_sys *s = st_of(r);
    struct sys_handle *h;
    int ret = 0;

    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    if (h && h->map && munmap(h->map, h->map_len) < 0)
        ret = -errno;
    else if (h)
        h->map = NULL;
    pthread_mutex_unlock(&s->lock);
    /* no mapping is not an error for munmap(2) either; the name must be */
    return h ? ret : sys_lookup(r, path);
}

/* msync(MS_ASYNC) or mprotect(2) of the shared mapping; -ENOMEM (as both
 * syscalls say of an unmapped range) when there is none. */
static int sys_map_op(struct scn_run *r, const char *path, int prot, bool is_mprotect)
{
    struct scn_sys *s = st_of(r);
    struct sys_handle *h;
    int ret = -ENOMEM;

    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    if (h && h->map) {
        ret =
            is_mprotect ? mprotect(h->map, h->map_len, prot) : msync(h->map, h->map_len, MS_ASYNC);
        ret = ret < 0 ? -errno : 0;
        if (!ret && is_mprotect)
            h->prot = prot;
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static int sys_msync_async(struct scn_run *r, const char *path)
{
    return sys_map_op(r, path, 0, false);
}

static int sys_mprotect(struct scn_run *r, const char *path, int prot)
{
    return sys_map_op(r, path, prot, true);
}

/* A store through a MAP_PRIVATE mapping of its own, unmapped at once: the
 * copy-on-write pages never reach the file. A page wholly past EOF is
 * SIGBUS (-EFAULT), as for a shared store. */
static int guarded_store(unsigned char *dst, const void *buf, size_t len)
{
    sigjmp_buf jb;

    if (sigsetjmp(jb, 1)) {
        bus_jmp = NULL;
        return -EFAULT;
    }
    bus_jmp = &jb;
    for (size_t i = 0; i < len; i++)
        ((volatile unsigned char *)dst)[i] = ((const unsigned char *)buf)[i];
    bus_jmp = NULL;
    return 0;
}

static int sys_mmap_private_store(struct scn_run *r, const char *path, const void *buf, size_t len,
                                  off_t off)
{
    off_t start = off & ~(off_t)(PAGE - 1);
    size_t mlen = (size_t)(off + (off_t)len - start + PAGE - 1) & ~(size_t)(PAGE - 1);
    int fd = handle_fd(r, path), ret;
    unsigned char *m;

    if (fd < 0)
        return fd;
    if (!mlen)
        mlen = PAGE;
    m = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, start);
    if (m == MAP_FAILED)
        return -errno;
    ret = guarded_store(m + (off - start), buf, len);
    munmap(m, mlen);
    return ret;
}

static int sys_statfs(struct scn_run *r, struct statvfs *sv)
{
    return statvfs(r->mnt, sv) < 0 ? -errno : 0;
}

static ssize_t sys_mmap_load(struct scn_run *r, const char *path, void *buf, size_t len, off_t off)
{
    unsigned char *src;
    sigjmp_buf jb;
    int ret = map_range(r, path, off, len, false, &src);

    if (ret)
        return ret;
    if (sigsetjmp(jb, 1)) {
        bus_jmp = NULL;
        return -EFAULT;
    }
    bus_jmp = &jb;
    memcpy(buf, src, len);
    bus_jmp = NULL;
    return (ssize_t)len;
}

static int sys_copy_range(struct scn_run *r, const char *from, off_t off_in, const char *to,
                          off_t off_out, size_t len)
{
    int in = handle_fd(r, from), out = in < 0 ? in : handle_fd(r, to);
    loff_t a = off_in, b = off_out;
    size_t done = 0;

    if (in < 0 || out < 0)
        return in < 0 ? in : out;
    /* The kernel may copy less than asked at a time; short at EOF only. */
    while (done < len) {
        ssize_t n = copy_file_range(in, &a, out, &b, len - done, 0);

        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return done == len ? 0 : -EIO;
}

static int sys_writeback(struct scn_run *r, const char *path)
{
    struct scn_sys *s = st_of(r);
    struct sys_handle *h;
    int ret = 0;

    pthread_mutex_lock(&s->lock);
    h = find_locked(s, path);
    if (h && h->map && msync(h->map, h->map_len, MS_SYNC) < 0)
        ret = -errno;
    else if (h && !h->map &&
             sync_file_range(h->fd, 0, 0,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                 SYNC_FILE_RANGE_WAIT_AFTER) < 0)
        ret = -errno;
    pthread_mutex_unlock(&s->lock);
    /* Nothing open: nothing to write back, if the name is there (the lib
     * backend resolves it too). */
    return h ? ret : sys_lookup(r, path);
}

static int sys_truncate(struct scn_run *r, const char *path, off_t size)
{
    char full[4096];
    int fd = existing_fd(r, path);

    if (fd >= 0)
        return ftruncate(fd, size) < 0 ? -errno : 0;
    full_path(r, path, full, sizeof(full));
    return truncate(full, size) < 0 ? -errno : 0;
}

static int sys_fallocate(struct scn_run *r, const char *path, int mode, off_t off, off_t len)
{
    int fd = handle_fd(r, path);

    if (fd < 0)
        return fd;
    return fallocate(fd, mode, off, len) < 0 ? -errno : 0;
}

static int sys_fsync(struct scn_run *r, const char *path)
{
    int fd = existing_fd(r, path), own = -1, ret;

    if (fd < 0) {
        own = fd = open_path(r, path, O_RDONLY, 0);
        if (fd < 0)
            return fd;
    }
    ret = fsync(fd) < 0 ? -errno : 0;
    if (own >= 0)
        close(own);
    return ret;
}

/* @fn on @path's open file, or on a read-only descriptor opened for it. */
static int on_fd(struct scn_run *r, const char *path, int (*fn)(int))
{
    int fd = path ? existing_fd(r, path) : -1, own = -1, ret;

    if (fd < 0) {
        if (path)
            own = fd = open_path(r, path, O_RDONLY, 0);
        else
            own = fd = open(r->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return path ? fd : -errno;
    }
    ret = fn(fd) < 0 ? -errno : 0;
    if (own >= 0)
        close(own);
    return ret;
}

static int sys_fdatasync(struct scn_run *r, const char *path)
{
    return on_fd(r, path, fdatasync);
}

static int sys_sync(struct scn_run *r, const char *path)
{
    return on_fd(r, path, syncfs);
}

/* syncfs, then drop_caches (pagecache, dentries and inodes): the kernel
 * evicts this mount's clean pages and unused inodes (through FUSE, the
 * client's, with FORGETs to the daemon). The knob is global; a scenario
 * needs only that this mount's caches are gone. */
static int sys_drop_caches(struct scn_run *r)
{
    int ret = on_fd(r, NULL, syncfs), fd;

    if (ret)
        return ret;
    fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ret = write(fd, "3", 1) == 1 ? 0 : -errno;
    close(fd);
    return ret;
}

static int sys_setattr(struct scn_run *r, const char *path, const struct stat *in, unsigned what)
{
    char full[4096];

    full_path(r, path, full, sizeof(full));
    if (what & UEXT4_SET_MODE)
        return chmod(full, in->st_mode & 07777) < 0 ? -errno : 0;
    if (what & UEXT4_SET_UID)
        return lchown(full, in->st_uid, in->st_gid) < 0 ? -errno : 0;
    struct timespec ts[2] = {in->st_atim, in->st_mtim};

    return utimensat(AT_FDCWD, full, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static off_t sys_lseek(struct scn_run *r, const char *path, off_t off, int whence)
{
    int fd = existing_fd(r, path), own = -1;
    off_t o;

    if (fd < 0) {
        own = fd = open_path(r, path, O_RDONLY, 0);
        if (fd < 0)
            return fd;
    }
    o = lseek(fd, off, whence);
    if (o < 0)
        o = -errno;
    if (own >= 0)
        close(own);
    return o;
}

static int sys_unlink(struct scn_run *r, const char *path)
{
    char full[4096];

    full_path(r, path, full, sizeof(full));
    return unlink(full) < 0 ? -errno : 0;
}

static int sys_rmdir(struct scn_run *r, const char *path)
{
    char full[4096];

    full_path(r, path, full, sizeof(full));
    return rmdir(full) < 0 ? -errno : 0;
}

static int sys_mkdir(struct scn_run *r, const char *path, mode_t mode)
{
    char full[4096];

    full_path(r, path, full, sizeof(full));
    return mkdir(full, mode) < 0 ? -errno : 0;
}

static int sys_rename(struct scn_run *r, const char *from, const char *to, unsigned flags)
{
    struct scn_sys *s = st_of(r);
    char a[4096], b[4096];
    struct sys_handle *ha, *hb;

    full_path(r, from, a, sizeof(a));
    full_path(r, to, b, sizeof(b));
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, flags) < 0)
        return -errno;
    /* Open files follow their names, as in the lib backend. */
    pthread_mutex_lock(&s->lock);
    ha = find_locked(s, from);
    hb = find_locked(s, to);
    if (flags & RENAME_EXCHANGE && ha && hb) {
        char *t = ha->path;

        ha->path = hb->path;
        hb->path = t;
    } else if (ha && !hb) {
        char *np = strdup(to);

        if (np) {
            free(ha->path);
            ha->path = np;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int sys_link(struct scn_run *r, const char *from, const char *to)
{
    char a[4096], b[4096];

    full_path(r, from, a, sizeof(a));
    full_path(r, to, b, sizeof(b));
    return link(a, b) < 0 ? -errno : 0;
}

static int sys_symlink(struct scn_run *r, const char *target, const char *path)
{
    char full[4096];

    full_path(r, path, full, sizeof(full));
    return symlink(target, full) < 0 ? -errno : 0;
}

static int sys_setxattr(struct scn_run *r, const char *path, const char *name, const void *v,
                        size_t len, int flags)
{
    char full[4096];
    int fd = existing_fd(r, path);

    if (fd >= 0)
        return fsetxattr(fd, name, v, len, flags) < 0 ? -errno : 0;
    full_path(r, path, full, sizeof(full));
    return lsetxattr(full, name, v, len, flags) < 0 ? -errno : 0;
}

static int sys_removexattr(struct scn_run *r, const char *path, const char *name)
{
    char full[4096];
    int fd = existing_fd(r, path);

    if (fd >= 0)
        return fremovexattr(fd, name) < 0 ? -errno : 0;
    full_path(r, path, full, sizeof(full));
    return lremovexattr(full, name) < 0 ? -errno : 0;
}

static int sys_stat(struct scn_run *r, const char *path, struct stat *st)
{
    char full[4096];
    int fd = existing_fd(r, path);

    if (fd >= 0)
        return fstat(fd, st) < 0 ? -errno : 0;
    full_path(r, path, full, sizeof(full));
    return lstat(full, st) < 0 ? -errno : 0;
}

static int sys_lookup(struct scn_run *r, const char *path)
{
    char full[4096];
    struct stat st;

    full_path(r, path, full, sizeof(full));
    return lstat(full, &st) < 0 ? -errno : 0;
}

static ssize_t sys_getxattr(struct scn_run *r, const char *path, const char *name, void *v,
                            size_t len)
{
    char full[4096];
    int fd = existing_fd(r, path);
    ssize_t n;

    full_path(r, path, full, sizeof(full));
    n = fd >= 0 ? fgetxattr(fd, name, v, len) : lgetxattr(full, name, v, len);
    return n < 0 ? -errno : n;
}

static ssize_t sys_listxattr(struct scn_run *r, const char *path, char *list, size_t len)
{
    char full[4096];
    int fd = existing_fd(r, path);
    ssize_t n;

    full_path(r, path, full, sizeof(full));
    n = fd >= 0 ? flistxattr(fd, list, len) : llistxattr(full, list, len);
    return n < 0 ? -errno : n;
}

static ssize_t sys_entries(struct scn_run *r, const char *path, char **list)
{
    char full[4096], *out = NULL;
    size_t len = 0;
    struct dirent *de;
    DIR *d;

    full_path(r, path, full, sizeof(full));
    d = opendir(full);
    if (!d)
        return -errno;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name) + 1;
        char *nl;

        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        nl = realloc(out, len + n);
        if (!nl) {
            free(out);
            closedir(d);
            return -ENOMEM;
        }
        out = nl;
        memcpy(out + len, de->d_name, n);
        len += n;
    }
    closedir(d);
    *list = out;
    return (ssize_t)len;
}

static int sys_dirty_pages(struct scn_run *r, const char *path)
{
    return -EOPNOTSUPP;
}

/* At a checkpoint the image is unmounted and r->ro is the library's
 * read-only view of it. */
int scn_sys_inspect(struct scn_run *r, const char *path, struct uext4_inode_info *info)
{
    char full[4096];
    uint32_t ino;
    int ret;

    if (!r->ro)
        return -ESTALE;
    snprintf(full, sizeof(full), "/%s", path);
    ret = uext4_resolve(r->ro, full, &ino);
    return ret ? ret : uext4_inspect(r->ro, ino, info);
}

const struct scn_backend scn_backend_mount = {
    .name = "mount",
    .tag = SCN_TAG_MOUNT,
    .live_inspect = true,
    .available = scn_fuse_available,
    .start = scn_fuse_start,
    .stop = scn_fuse_stop,
    .fini = scn_sys_fini,
    .inspect = scn_live_inspect,
    .create = sys_create,
    .open = sys_open,
    .close = sys_close,
    .write = sys_write,
    .read = sys_read,
    .mmap_store = sys_mmap_store,
    .mmap_load = sys_mmap_load,
    .copy_range = sys_copy_range,
    .writeback = sys_writeback,
    .truncate = sys_truncate,
    .fallocate = sys_fallocate,
    .fsync = sys_fsync,
    .fdatasync = sys_fdatasync,
    .sync = sys_sync,
    .drop_caches = sys_drop_caches,
    .setattr = sys_setattr,
    .lseek = sys_lseek,
    .unlink = sys_unlink,
    .rmdir = sys_rmdir,
    .mkdir = sys_mkdir,
    .rename = sys_rename,
    .link = sys_link,
    .symlink = sys_symlink,
    .setxattr = sys_setxattr,
    .removexattr = sys_removexattr,
    .stat = sys_stat,
    .lookup = sys_lookup,
    .getxattr = sys_getxattr,
    .listxattr = sys_listxattr,
    .entries = sys_entries,
    .dirty_pages = sys_dirty_pages,
    .munmap = sys_munmap,
    .msync_async = sys_msync_async,
    .mmap_private_store = sys_mmap_private_store,
    .mprotect = sys_mprotect,
    .statfs = sys_statfs,
};

const struct scn_backend scn_backend_kernel = {
    .name = "kernel",
    .tag = SCN_TAG_KERNEL,
    .available = scn_loop_available,
    .start = scn_loop_start,
    .stop = scn_loop_stop,
    .fini = scn_sys_fini,
    .inspect = scn_sys_inspect,
    .create = sys_create,
    .open = sys_open,
    .close = sys_close,
    .write = sys_write,
    .read = sys_read,
    .mmap_store = sys_mmap_store,
    .mmap_load = sys_mmap_load,
    .copy_range = sys_copy_range,
    .writeback = sys_writeback,
    .truncate = sys_truncate,
    .fallocate = sys_fallocate,
    .fsync = sys_fsync,
    .fdatasync = sys_fdatasync,
    .sync = sys_sync,
    .drop_caches = sys_drop_caches,
    .setattr = sys_setattr,
    .lseek = sys_lseek,
    .unlink = sys_unlink,
    .rmdir = sys_rmdir,
    .mkdir = sys_mkdir,
    .rename = sys_rename,
    .link = sys_link,
    .symlink = sys_symlink,
    .setxattr = sys_setxattr,
    .removexattr = sys_removexattr,
    .stat = sys_stat,
    .lookup = sys_lookup,
    .getxattr = sys_getxattr,
    .listxattr = sys_listxattr,
    .entries = sys_entries,
    .dirty_pages = sys_dirty_pages,
    .munmap = sys_munmap,
    .msync_async = sys_msync_async,
    .mmap_private_store = sys_mmap_private_store,
    .mprotect = sys_mprotect,
    .statfs = sys_statfs,
};
