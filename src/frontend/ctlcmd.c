/* The commands that talk to a running daemon through its control socket
 * (control.h): `uext4 [IMAGE] MNT -o remount,ro|rw` and `uext4 -u MNT`.
 * They run in the caller's process and print their own messages. */
#include "frontend/control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_CTL 600

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* The mount(2) flags named in mountinfo's comma-separated @opts. */
static unsigned long flags_of(const char *opts)
{
    static const struct {
        const char *name;
        unsigned long flag;
    } map[] = {{"nosuid", MS_NOSUID},           {"nodev", MS_NODEV},
               {"noexec", MS_NOEXEC},           {"noatime", MS_NOATIME},
               {"nodiratime", MS_NODIRATIME},   {"relatime", MS_RELATIME},
               {"strictatime", MS_STRICTATIME}, {"sync", MS_SYNCHRONOUS},
               {"dirsync", MS_DIRSYNC},         {"lazytime", MS_LAZYTIME}};
    unsigned long flags = 0;

    while (*opts) {
        size_t n = strcspn(opts, ",");
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (strlen(map[i].name) == n && !strncmp(opts, map[i].name, n))
                flags |= map[i].flag;
        opts += n + (opts[n] == ',');
    }
    return flags;
}

/* The newest mount on @mnt (canonical) must be a FUSE mount; *@uid is the
 * user who mounted it (its user_id=), *@flags its flags but MS_RDONLY (from
 * mountinfo: stat and statfs of another user's FUSE mount are refused). */
static int find_fuse_mount(const char *mnt, uid_t *uid, unsigned long *flags)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int ret = -ENOENT;

    if (!f) {
        fprintf(stderr, "uext4: cannot read /proc/self/mountinfo: %s\n", strerror(errno));
        return -errno;
    }
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *field, *mp = NULL, *mopts = NULL, *type = NULL, *opts = NULL, *u;
        int i = 0, k = 0; /* k: fields after the " - " separator */

        for (field = strtok_r(line, " \n", &save); field; field = strtok_r(NULL, " \n", &save)) {
            if (i == 4)
                mp = field;
            if (i++ == 5)
                mopts = field;
            if (k) {
                if (k == 1)
                    type = field;
                else if (k == 3)
                    opts = field;
                k++;
            } else if (i > 6 && !strcmp(field, "-")) {
                k = 1;
            }
        }
        if (!mp || !type)
            continue;
        unescape(mp);
        if (strcmp(mp, mnt))
            continue;
        /* The last entry is the mount the path reaches. */
        u = opts ? strstr(opts, "user_id=") : NULL;
        if ((strcmp(type, "fuse") && strncmp(type, "fuse.", 5)) || !u) {
            ret = -EINVAL;
            continue;
        }
        *uid = (uid_t)strtoul(u + 8, NULL, 10);
        *flags = (mopts ? flags_of(mopts) : 0) | flags_of(opts);
        ret = 0;
    }
    free(line);
    fclose(f);
    if (ret == -ENOENT)
        fprintf(stderr, "uext4: nothing is mounted on '%s'\n", mnt);
    else if (ret)
        fprintf(stderr, "uext4: '%s' is not a FUSE mount\n", mnt);
    return ret;
}

/* @mnt as the daemon named it (realpath before mounting). Another user's
 * FUSE mount cannot be looked at, even by root: then the parent is
 * resolved and the last name taken as it is. */
static int canonical(const char *mnt, char *canon)
{
    char copy[PATH_MAX], parent[PATH_MAX];
    const char *base;
    int err;

    if (realpath(mnt, canon))
        return 0;
    err = errno;
    if (err == EACCES && strlen(mnt) < sizeof(copy)) {
        strcpy(copy, mnt);
        while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
            copy[strlen(copy) - 1] = '\0';
        base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
        if (strcmp(base, ".") && strcmp(base, "..") && *base) {
            snprintf(parent, sizeof(parent), "%.*s", (int)(base - copy), copy);
            if (realpath(*parent ? parent : ".", canon) &&
                strlen(canon) + strlen(base) + 2 <= PATH_MAX) {
                if (strcmp(canon, "/"))
                    strcat(canon, "/");
                strcat(canon, base);
                return 0;
            }
        }
    }
    fprintf(stderr, "uext4: bad mount point '%s': %s\n", mnt, strerror(err));
    return -err;
}

/* Connect to the daemon serving @mnt (given as typed): resolves it into
 * @canon, and *@flags gets the mount's flags. Returns the socket or
 * -errno, having said why. */
static int connect_daemon(const char *mnt, char *canon, unsigned long *flags)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char why[256];
    uid_t uid = 0;
    int fd, ret;

    ret = canonical(mnt, canon);
    if (ret)
        return ret;
    ret = find_fuse_mount(canon, &uid, flags);
    if (ret)
        return ret;
    ret = fe_control_path(uid, canon, 0, sa.sun_path, sizeof(sa.sun_path), why, sizeof(why));
    if (ret) {
        fprintf(stderr, "uext4: cannot reach the daemon serving '%s': %s\n", canon, why);
        return ret;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "uext4: socket: %s\n", strerror(errno));
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        ret = -errno;
        close(fd);
        if (ret == -EACCES)
            fprintf(stderr,
                    "uext4: only the user who mounted it and root may control the mount on '%s' "
                    "(uid %u mounted it)\n",
                    canon, (unsigned)uid);
        else
            fprintf(stderr,
                    "uext4: no uext4 daemon answers for '%s' (%s: %s); a daemon older than "
                    "this command, or one that is gone, has no control socket\n",
                    canon, sa.sun_path, strerror(-ret));
        return ret;
    }
    return fd;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read one answer line "<rc> <message>" within @deadline (now_ms()
 * time, -1 for none); -ETIMEDOUT, or -EPROTO at EOF. */
static int read_answer(int fd, long long deadline, int *rc, char *msg, size_t len)
{
    char line[LINE_MAX_CTL];
    size_t got = 0;

    while (got < sizeof(line) - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
        ssize_t n;
        char *nl;

        if (deadline >= 0 && wait <= 0)
            return -ETIMEDOUT;
        if (poll(&p, 1, wait) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (!p.revents)
            continue;
        /* One byte at a time: what follows the line is not ours to take. */
        n = read(fd, line + got, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EPROTO;
        got++;
        line[got] = '\0';
        nl = strchr(line, '\n');
        if (!nl)
            continue;
        *nl = '\0';
        if (sscanf(line, "%d", rc) != 1)
            return -EPROTO;
        snprintf(msg, len, "%s", strchr(line, ' ') ? strchr(line, ' ') + 1 : "");
        return 0;
    }
    return -EPROTO;
}

static int ask(int fd, const char *req, int *rc, char *msg, size_t len)
{
    size_t n = strlen(req);

    if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n)
        return -errno;
    return read_answer(fd, now_ms() + 600000, rc, msg, len);
}

/* The kernel's flags of the mount on @mnt follow (root only): mount(2)
 * with MS_REMOUNT sets the mount's flags to those it is given, so pass
 * the others it has (@flags). */
static int kernel_remount(const char *mnt, unsigned long flags, bool ro)
{
    flags |= MS_REMOUNT | (ro ? MS_RDONLY : 0);
    return mount(NULL, mnt, NULL, flags, NULL) == 0 ? 0 : -errno;
}

/* What the kernel holds for the mount reaches the daemon first. */
static void sync_mount(const char *mnt)
{
    int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || syncfs(fd) != 0)
        fprintf(stderr, "uext4: warning: cannot sync '%s': %s\n", mnt, strerror(errno));
    if (fd >= 0)
        close(fd);
}

int fe_cmd_remount(const char *mnt, int read_only)
{
    char canon[PATH_MAX], msg[LINE_MAX_CTL];
    bool root = geteuid() == 0;
    unsigned long flags = 0;
    int fd, rc, ret;

    fd = connect_daemon(mnt, canon, &flags);
    if (fd < 0)
        return fd;
    if (read_only) {
        /* The kernel first: it refuses (EBUSY) while files are open for
         * writing, and writes back what it caches. Without root, syncfs
         * does the writing back. */
        if (!root)
            sync_mount(canon);
        if (root && (ret = kernel_remount(canon, flags, true)) != 0) {
            fprintf(stderr, "uext4: cannot remount '%s' read-only: %s\n", canon, strerror(-ret));
            close(fd);
            return ret;
        }
    }
    ret = ask(fd, read_only ? "remount ro\n" : "remount rw\n", &rc, msg, sizeof(msg));
    close(fd);
    if (ret || rc) {
        fprintf(stderr, "uext4: remounting '%s' %s failed: %s\n", canon,
                read_only ? "read-only" : "read-write", ret ? strerror(-ret) : msg);
        if (read_only && root && kernel_remount(canon, flags, false) != 0)
            fprintf(stderr, "uext4: and the mount stays read-only in the kernel\n");
        return ret ? ret : rc;
    }
    if (!read_only && root) {
        ret = kernel_remount(canon, flags, false);
        if (ret) {
            fprintf(stderr,
                    "uext4: the daemon serves '%s' read-write again, but the kernel refused to "
                    "remount it read-write: %s\n",
                    canon, strerror(-ret));
            return ret;
        }
    }
    if (!root)
        fprintf(stderr,
                "uext4: '%s' is served %s; its flags in the kernel stay as they were (only root "
                "may remount a FUSE mount), so %s\n",
                canon, read_only ? "read-only" : "read-write",
                read_only ? "writes reach the daemon and fail with EROFS"
                          : "a mount made read-only stays so");
    return 0;
}

/* Unmount @mnt the way its user may: umount2 for root, else fusermount3. */
static int unmount_it(const char *mnt)
{
    int status;
    pid_t pid;

    if (geteuid() == 0) {
        if (umount2(mnt, 0) == 0)
            return 0;
        fprintf(stderr, "uext4: cannot unmount '%s': %s\n", mnt, strerror(errno));
        return -errno;
    }
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        execlp("fusermount3", "fusermount3", "-u", "--", mnt, (char *)NULL);
        fprintf(stderr, "uext4: cannot run fusermount3: %s\n", strerror(errno));
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid)
        return -errno;
    /* fusermount3 said why itself. */
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
}

int fe_cmd_unmount(const char *mnt, unsigned timeout_sec)
{
    char canon[PATH_MAX], msg[LINE_MAX_CTL], rest;
    unsigned long flags;
    long long deadline;
    int fd, rc, ret;

    fd = connect_daemon(mnt, canon, &flags);
    if (fd < 0)
        return fd;
    ret = ask(fd, "wait\n", &rc, msg, sizeof(msg));
    if (ret || rc) {
        fprintf(stderr, "uext4: the daemon serving '%s' refused: %s\n", canon,
                ret ? strerror(-ret) : msg);
        close(fd);
        return ret ? ret : rc;
    }
    ret = unmount_it(canon);
    if (ret) {
        close(fd);
        return ret;
    }
    deadline = now_ms() + (long long)timeout_sec * 1000;
    ret = read_answer(fd, deadline, &rc, msg, sizeof(msg));
    if (!ret) {
        /* Then the end of the connection: the daemon has exited. */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int wait = (int)(deadline - now_ms());
        if (wait < 0 || poll(&p, 1, wait) <= 0 || read(fd, &rest, 1) != 0)
            ret = -ETIMEDOUT;
    }
    close(fd);
    if (ret == -ETIMEDOUT) {
        fprintf(stderr,
                "uext4: '%s' is unmounted, but its daemon did not finish within %u s; the image "
                "may not be final yet\n",
                canon, timeout_sec);
        return ret;
    }
    if (ret == -EPROTO) {
        fprintf(stderr,
                "uext4: '%s' is unmounted, but its daemon ended without saying that the image "
                "was written back (it may have been killed)\n",
                canon);
        return ret;
    }
    if (ret)
        return ret;
    if (rc) {
        fprintf(stderr, "uext4: '%s' is unmounted, but writing back its image failed: %s\n", canon,
                msg);
        return rc;
    }
    return 0;
}
