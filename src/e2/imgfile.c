/* The image file: type checks, one open, its lock, and who holds it
 * (rules in imgfile.h). */
#include "e2/imgfile.h"
#include "e2/e2_internal.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define NAME_PREFIX   "uext4-fd:"
#define RETRY_MS      50
#define WARN_AFTER_MS 1000
/* A holder still serving a mount is given this long: a daemon whose mount
 * was just unmounted closes /dev/fuse a moment before it writes back. */
#define SERVING_GRACE_MS 1000

/* How long a holder may be waited for. */
enum holder_wait {
    WAIT_NONE,  /* this process, or an open file that is not locked */
    WAIT_GRACE, /* serving a mount: most likely it stays */
    WAIT_FULL,  /* not serving (finishing, or unknown) */
};

void e2_imgfile_name(char *buf, size_t len, int fd)
{
    snprintf(buf, len, NAME_PREFIX "%d", fd);
}

int e2_imgfile_name_fd(const char *name)
{
    size_t n = strlen(NAME_PREFIX);
    char *end;
    long fd;

    if (strncmp(name, NAME_PREFIX, n) != 0)
        return -1;
    errno = 0;
    fd = strtol(name + n, &end, 10);
    if (errno || end == name + n || *end || fd < 0 || fd > INT_MAX)
        return -1;
    return (int)fd;
}

static const char *type_name(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISDIR(mode))
        return "a directory";
    return "of an unknown type";
}

static int check_type(const char *path, mode_t mode, char *why, size_t len)
{
    if (S_ISREG(mode) || S_ISBLK(mode))
        return 0;
    e2_say(why, len, "image '%s' is %s, not a regular file or a block device", path,
           type_name(mode));
    return S_ISDIR(mode) ? -EISDIR : -EINVAL;
}

/* The first flock(2) lock in /proc/locks on the file of @st (not a
 * waiter): its owner's pid and whether it is exclusive. OFD locks, whose
 * lines say pid -1, are found by find_ofd_holder(). */
static bool find_lock_holder(const struct stat *st, long *pid, bool *exclusive)
{
    FILE *f = fopen("/proc/locks", "re");
    char line[256], type[16], rw[16];
    unsigned maj, min;
    unsigned long ino;
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strstr(line, "->"))
            continue;
        if (sscanf(line, "%*d: %15s %*s %15s %ld %x:%x:%lu", type, rw, pid, &maj, &min, &ino) !=
                6 ||
            strcmp(type, "FLOCK") != 0)
            continue;
        if (maj == major(st->st_dev) && min == minor(st->st_dev) && ino == st->st_ino) {
            *exclusive = strcmp(rw, "WRITE") == 0;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* The first line of the file @path, without its newline. */
static bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    bool ok;

    if (!f)
        return false;
    ok = fgets(buf, (int)len, f) != NULL;
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
    return ok;
}

static void read_comm(long pid, char *comm, size_t len)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    if (!read_line(path, comm, len))
        snprintf(comm, len, "?");
}

/* Whether @pid has /dev/fuse open: a uext4 serving a mount (one that is
 * writing back after its unmount has closed it). False when unknown (the
 * process is another user's). */
static bool is_serving(long pid)
{
    char dir[64], link[PATH_MAX + 64], target[64];
    struct dirent *d;
    bool serving = false;
    DIR *dp;

    snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
    dp = opendir(dir);
    if (!dp)
        return false;
    while (!serving && (d = readdir(dp))) {
        ssize_t n;
        snprintf(link, sizeof(link), "%s/%s", dir, d->d_name);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        serving = strcmp(target, "/dev/fuse") == 0;
    }
    closedir(dp);
    return serving;
}

/* Whether the "lock:" line @line of an fdinfo file is the OFD lock @l:
 * the same first byte and last byte ("EOF" for l_len 0). */
static bool is_ofd_lock_line(const char *line, const struct flock *l)
{
    char kind[16], last[32], want[32];
    long long first;

    if (sscanf(line, "lock: %*d: %15s %*s %*s %*d %*s %lld %31s", kind, &first, last) != 3 ||
        strcmp(kind, "OFDLCK") != 0 || first != (long long)l->l_start)
        return false;
    if (l->l_len)
        snprintf(want, sizeof(want), "%lld", (long long)(l->l_start + l->l_len - 1));
    else
        snprintf(want, sizeof(want), "EOF");
    return strcmp(last, want) == 0;
}

/* Whether /proc/@pid/fdinfo/@fd shows the OFD lock @l. The range matters:
 * several processes may hold OFD locks on one disk image (one per
 * partition), and only the one that conflicts is the holder. */
static bool fd_has_ofd_lock(const char *pid, const char *fd, const struct flock *l)
{
    char path[PATH_MAX], line[256];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", pid, fd);
    f = fopen(path, "re");
    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f))
        found = strncmp(line, "lock:", 5) == 0 && is_ofd_lock_line(line, l);
    fclose(f);
    return found;
}

/* Whether process @pid has the file @st open with the OFD lock @l. */
static bool pid_has_ofd_lock(const char *pid, const struct stat *st, const struct flock *l)
{
    char dir[PATH_MAX], path[2 * PATH_MAX];
    struct dirent *d;
    struct stat fst;
    bool found = false;
    DIR *dp;

    snprintf(dir, sizeof(dir), "/proc/%s/fd", pid);
    dp = opendir(dir);
    if (!dp)
        return false; /* another user's process: not ours to see */
    while (!found && (d = readdir(dp))) {
        snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
        found = d->d_name[0] != '.' && stat(path, &fst) == 0 && fst.st_dev == st->st_dev &&
                fst.st_ino == st->st_ino && fd_has_ofd_lock(pid, d->d_name, l);
    }
    closedir(dp);
    return found;
}

/* An OFD lock's owner is an open file, not a process (/proc/locks says
 * pid -1): the first process with the file open and the lock @l on it
 * (F_OFD_GETLK's answer: the conflicting lock's range). */
static long find_ofd_holder(const struct stat *st, const struct flock *l)
{
    DIR *dp = opendir("/proc");
    struct dirent *d;
    long pid = -1;

    if (!dp)
        return -1;
    while (pid < 0 && (d = readdir(dp))) {
        char *end;
        long p = strtol(d->d_name, &end, 10);

        if (*end || p <= 0)
            continue;
        if (pid_has_ofd_lock(d->d_name, st, l))
            pid = p;
    }
    closedir(dp);
    return pid;
}

/* How long to wait for the known holder @pid: not at all for ourselves
 * (another mount in this process), briefly for a daemon still serving. */
static enum holder_wait holder_wait_for(long pid)
{
    if (pid == (long)getpid())
        return WAIT_NONE;
    return is_serving(pid) ? WAIT_GRACE : WAIT_FULL;
}

/* Say who holds the bytes @l of @path (an OFD lock that conflicts with
 * ours), and how long to wait for it. */
static enum holder_wait say_range_holder(const char *path, const struct stat *st,
                                         const struct flock *l, char *why, size_t len)
{
    long pid = find_ofd_holder(st, l);
    char comm[32], range[64];

    if (l->l_len)
        snprintf(range, sizeof(range), "bytes %lld-%lld", (long long)l->l_start,
                 (long long)(l->l_start + l->l_len - 1));
    else
        snprintf(range, sizeof(range), "bytes %lld to its end", (long long)l->l_start);
    if (pid <= 0) {
        e2_say(why, len, "image '%s' is in use: another process holds %s of it", path, range);
        return WAIT_FULL;
    }
    read_comm(pid, comm, sizeof(comm));
    e2_say(why, len, "image '%s' is in use: pid %ld (%s) holds %s of it for %s", path, pid, comm,
           range, l->l_type == F_WRLCK ? "writing" : "reading");
    return holder_wait_for(pid);
}

/* Say who holds the lock of @path, and how long to wait for it. */
static enum holder_wait say_lock_holder(const char *path, const struct stat *st, char *why,
                                        size_t len)
{
    long pid = -1;
    bool exclusive = false;
    char comm[32];

    if (!find_lock_holder(st, &pid, &exclusive) || pid <= 0) {
        e2_say(why, len, "image '%s' is in use: another process holds its lock", path);
        return WAIT_FULL;
    }
    read_comm(pid, comm, sizeof(comm));
    e2_say(why, len, "image '%s' is in use: pid %ld (%s) holds its lock %s", path, pid, comm,
           exclusive ? "for writing" : "for reading");
    return holder_wait_for(pid);
}

/* Undo the octal escapes (\040) of a /proc/self/mountinfo field. */
static void unescape(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* Where the kernel has mounted the block device @rdev, if it has. */
static bool find_mount(dev_t rdev, char *mnt, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096], point[4096];
    unsigned maj, min;
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, point) != 3)
            continue;
        if (maj == major(rdev) && min == minor(rdev)) {
            unescape(point);
            snprintf(mnt, len, "%s", point);
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Whether the bytes [@off, @off + @size) of the file (@size 0: to its end)
 * overlap those @c claims. */
static bool overlaps(uint64_t off, uint64_t size, const struct e2_imgfile_claim *c)
{
    return (!size || off + size > c->offset) && (!c->size || c->offset + c->size > off);
}

/* @out = @dir/@name; false if it does not fit. */
static bool join_path(char *out, size_t len, const char *dir, const char *name)
{
    int n = snprintf(out, len, "%s/%s", dir, name);

    return n >= 0 && (size_t)n < len;
}

/* A decimal number from the sysfs file @dir/@name; 0 if unreadable. */
static uint64_t sysfs_num(const char *dir, const char *name)
{
    char path[PATH_MAX], line[64];

    if (!join_path(path, sizeof(path), dir, name) || !read_line(path, line, sizeof(line)))
        return 0;
    return strtoull(line, NULL, 10);
}

/* Where the kernel has mounted the block device whose sysfs directory is
 * @dir, if it has; its name is @name. */
static bool find_dev_mount(const char *dir, const char *name, char *dev, size_t dev_len, char *mnt,
                           size_t mnt_len)
{
    char path[PATH_MAX], line[64];
    unsigned maj, min;

    if (!join_path(path, sizeof(path), dir, "dev") || !read_line(path, line, sizeof(line)) ||
        sscanf(line, "%u:%u", &maj, &min) != 2 || !find_mount(makedev(maj, min), mnt, mnt_len))
        return false;
    snprintf(dev, dev_len, "/dev/%s", name);
    return true;
}

/* A mounted partition of loop device @name (loopNpM: losetup -P, partx
 * -a) over bytes @c claims. The device serves the file from @off; a
 * partition's start and size are in 512-byte sectors of the device. */
static bool find_part_mount(const char *name, uint64_t off, const struct e2_imgfile_claim *c,
                            char *dev, size_t dev_len, char *mnt, size_t mnt_len)
{
    char dir[PATH_MAX], pdir[PATH_MAX];
    size_t n = strlen(name);
    DIR *dp;
    struct dirent *d;
    bool found = false;

    if (!join_path(dir, sizeof(dir), "/sys/block", name) || !(dp = opendir(dir)))
        return false;
    while (!found && (d = readdir(dp))) {
        if (strncmp(d->d_name, name, n) != 0 || d->d_name[n] != 'p')
            continue;
        if (!join_path(pdir, sizeof(pdir), dir, d->d_name))
            continue;
        uint64_t start = sysfs_num(pdir, "start") * 512, size = sysfs_num(pdir, "size") * 512;
        found = size && overlaps(off + start, size, c) &&
                find_dev_mount(pdir, d->d_name, dev, dev_len, mnt, mnt_len);
    }
    closedir(dp);
    return found;
}

/* Whether the kernel has mounted the regular file @st through a loop
 * device (which takes no lock on it), or a partition of one, over bytes
 * @c claims: the device's name and mount point. */
static bool find_loop_mount(const struct stat *st, const struct e2_imgfile_claim *c, char *dev,
                            size_t dev_len, char *mnt, size_t mnt_len)
{
    char dir[PATH_MAX], path[PATH_MAX], line[PATH_MAX];
    DIR *dp = opendir("/sys/block");
    struct dirent *d;
    struct stat bst;
    bool found = false;

    if (!dp)
        return false;
    while (!found && (d = readdir(dp))) {
        if (strncmp(d->d_name, "loop", 4) != 0)
            continue;
        if (!join_path(dir, sizeof(dir), "/sys/block", d->d_name) ||
            !join_path(path, sizeof(path), dir, "loop/backing_file") ||
            !read_line(path, line, sizeof(line)) || stat(line, &bst) != 0 ||
            bst.st_dev != st->st_dev || bst.st_ino != st->st_ino)
            continue;
        if (!join_path(path, sizeof(path), dir, "loop"))
            continue;
        uint64_t off = sysfs_num(path, "offset"), size = sysfs_num(path, "sizelimit");
        found = (overlaps(off, size, c) &&
                 find_dev_mount(dir, d->d_name, dev, dev_len, mnt, mnt_len)) ||
                find_part_mount(d->d_name, off, c, dev, dev_len, mnt, mnt_len);
    }
    closedir(dp);
    return found;
}

/* Why open(2) of @path failed with @err; *@wait as for try_open(). */
static void say_open_failed(const char *path, bool rw, int err, char *why, size_t len,
                            enum holder_wait *wait)
{
    struct stat st;
    char mnt[PATH_MAX];

    if (err == EBUSY && stat(path, &st) == 0 && S_ISBLK(st.st_mode)) {
        if (find_mount(st.st_rdev, mnt, sizeof(mnt))) {
            e2_say(why, len, "device '%s' is in use: it is mounted on '%s'", path, mnt);
        } else {
            e2_say(why, len, "device '%s' is in use: another program has it open exclusively",
                   path);
            *wait = WAIT_FULL;
        }
    } else if (rw && (err == EACCES || err == EPERM || err == EROFS)) {
        e2_say(why, len, "cannot open image '%s' for writing: %s (-o ro mounts it read-only)", path,
               strerror(err));
    } else {
        e2_say(why, len, "cannot open image '%s': %s", path, strerror(err));
    }
}

/* Our locks on the open @fd (see imgfile.h): an flock of the whole file,
 * exclusive only for a read-write claim of all of it, and an OFD lock on
 * the claimed bytes. 0, EBUSY with @why naming the holder, or an errno. */
static int lock_claim(int fd, const char *path, const struct stat *st,
                      const struct e2_imgfile_claim *c, char *why, size_t len,
                      enum holder_wait *wait)
{
    bool whole = !c->offset && !c->size;
    struct flock l = {.l_type = c->rw ? F_WRLCK : F_RDLCK,
                      .l_whence = SEEK_SET,
                      .l_start = (off_t)c->offset,
                      .l_len = (off_t)c->size};
    int err;

    if (flock(fd, (c->rw && whole ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        err = errno;
        if (err != EWOULDBLOCK) {
            e2_say(why, len, "cannot lock image '%s': %s", path, strerror(err));
            return err;
        }
        *wait = say_lock_holder(path, st, why, len);
        return EBUSY;
    }
    if (fcntl(fd, F_OFD_SETLK, &l) == 0)
        return 0;
    err = errno;
    if (err != EAGAIN && err != EACCES) {
        e2_say(why, len, "cannot lock image '%s': %s", path, strerror(err));
        return err;
    }
    /* The holder's range, for the message (ours if it went meanwhile). */
    if (fcntl(fd, F_OFD_GETLK, &l) != 0 || l.l_type == F_UNLCK)
        l.l_type = c->rw ? F_WRLCK : F_RDLCK;
    *wait = say_range_holder(path, st, &l, why, len);
    return EBUSY;
}

/* The opened @fd is a usable image nobody else has: its type, no kernel
 * loop mount of it, blocking again, our lock. 0 or a positive errno. */
static int claim_fd(int fd, const char *path, const struct e2_imgfile_claim *c, char *why,
                    size_t len, enum holder_wait *wait)
{
    struct stat st;
    char mnt[PATH_MAX], dev[NAME_MAX + 8];
    int err, fl;

    if (fstat(fd, &st) != 0) {
        err = errno;
        e2_say(why, len, "cannot open image '%s': %s", path, strerror(err));
        return err;
    }
    err = -check_type(path, st.st_mode, why, len);
    if (err)
        return err;
    if (S_ISREG(st.st_mode) && find_loop_mount(&st, c, dev, sizeof(dev), mnt, sizeof(mnt))) {
        e2_say(why, len, "image '%s' is in use: the kernel has it mounted on '%s' through %s", path,
               mnt, dev);
        return EBUSY;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        err = errno;
        e2_say(why, len, "cannot open image '%s': %s", path, strerror(err));
        return err;
    }
    return lock_claim(fd, path, &st, c, why, len, wait);
}

/* One attempt: the descriptor, or -errno with *@wait telling whether the
 * holder may let go soon. */
static int try_open(const char *path, const struct e2_imgfile_claim *c, char *why, size_t len,
                    enum holder_wait *wait)
{
    bool rw = c->rw;
    int fd, err;

    *wait = WAIT_NONE;
    /* O_NONBLOCK: a FIFO that slipped past the caller's stat() must not
     * block the open. O_EXCL without O_CREAT claims a block device and
     * means nothing for a regular file. */
    fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_NOCTTY | O_EXCL | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        say_open_failed(path, rw, err, why, len, wait);
        return -err;
    }
    err = claim_fd(fd, path, c, why, len, wait);
    if (err) {
        close(fd);
        return -err;
    }
    return fd;
}

int e2_imgfile_narrow(int fd, const struct e2_imgfile_claim *c, uint64_t size)
{
    struct flock l = {.l_type = F_UNLCK,
                      .l_whence = SEEK_SET,
                      .l_start = (off_t)(c->offset + size),
                      .l_len = c->size ? (off_t)(c->size - size) : 0};

    if (c->size && size >= c->size)
        return 0;
    return fcntl(fd, F_OFD_SETLK, &l) ? -errno : 0;
}

int e2_imgfile_size(int fd, uint64_t *size)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return -errno;
    if (S_ISBLK(st.st_mode))
        return ioctl(fd, BLKGETSIZE64, size) ? -errno : 0;
    *size = (uint64_t)st.st_size;
    return 0;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

int e2_imgfile_open(const char *path, const struct e2_imgfile_claim *c, char *why, size_t why_len)
{
    const struct timespec pause = {0, RETRY_MS * 1000000L};
    struct timespec t0;
    struct stat st;
    enum holder_wait wait;
    bool warned = false;
    int fd, ret;

    /* Checked before any open: opening a FIFO or a tape has effects. */
    if (stat(path, &st) != 0) {
        ret = -errno;
        e2_say(why, why_len, "cannot open image '%s': %s", path, strerror(-ret));
        return ret;
    }
    ret = check_type(path, st.st_mode, why, why_len);
    if (ret)
        return ret;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        fd = try_open(path, c, why, why_len, &wait);
        if (fd >= 0 || wait == WAIT_NONE)
            break;
        if (ms_since(&t0) >= (wait == WAIT_GRACE ? SERVING_GRACE_MS : E2_IMGFILE_WAIT_MS))
            break;
        if (!warned && ms_since(&t0) >= WARN_AFTER_MS) {
            log_warn("%s; waiting up to %d s for it to be released", why,
                     E2_IMGFILE_WAIT_MS / 1000);
            warned = true;
        }
        nanosleep(&pause, NULL);
    }
    if (fd >= 0 && why_len)
        why[0] = '\0';
    if (fd >= 0 && warned)
        log_warn("image '%s' released after %.1f s", path, (double)ms_since(&t0) / 1000);
    return fd;
}
