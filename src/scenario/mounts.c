/* What serves the syscall backends' mount point: the uext4 daemon over FUSE
 * (`uext4 IMAGE MNT -f -o inline_mmap=MODE`) or the kernel's ext4 on a loop
 * device. Both are taken down by unmounting, and the daemon is waited for,
 * so the image is complete and unlocked when stop() returns.
 *
 * Every wait has a deadline; the only process ever signalled is the daemon
 * this file started, by its pid, and only when it overstays its deadline. */
#include "scenario/scn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MOUNT_TIMEOUT  20 /* seconds for a mount to appear */
#define UMOUNT_TIMEOUT 10 /* seconds of retrying a busy unmount */
#define EXIT_TIMEOUT   60 /* seconds for the daemon to exit after unmount */
#define TOOL_TIMEOUT   60

/* /proc/mounts escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
            *o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static bool is_mounted(const char *mnt)
{
    char line[PATH_MAX * 2 + 64], dev[PATH_MAX], where[PATH_MAX];
    bool found = false;
    FILE *f = fopen("/proc/mounts", "r");

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%4095s %4095s", dev, where) != 2)
            continue;
        unescape(where);
        found = !strcmp(where, mnt);
    }
    fclose(f);
    return found;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool in_path(const char *tool)
{
    char buf[PATH_MAX];
    const char *dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"};

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", dirs[i], tool);
        if (access(buf, X_OK) == 0)
            return true;
    }
    return false;
}

/* Unmount with @argv, retrying while the mount is busy. */
static int unmount(struct scn_run *r, char *const argv[], char *why, size_t why_len)
{
    double deadline = now() + UMOUNT_TIMEOUT;
    int ret = 0;

    while (is_mounted(r->mnt)) {
        ret = scn_run_cmd(argv, r->log, TOOL_TIMEOUT);
        if (!is_mounted(r->mnt))
            return 0;
        if (now() > deadline) {
            snprintf(why, why_len, "%s %s failed (%s) for %ds", argv[0], r->mnt,
                     ret < 0 ? scn_errno_name(ret) : "busy", UMOUNT_TIMEOUT);
            return -EBUSY;
        }
        usleep(100000);
    }
    return 0;
}

bool scn_fuse_available(struct scn_run *r, char *why, size_t why_len)
{
    if (access("/dev/fuse", R_OK | W_OK) < 0) {
        snprintf(why, why_len, "no usable /dev/fuse");
        return false;
    }
    if (!r->daemon || access(r->daemon, X_OK) < 0) {
        snprintf(why, why_len, "no uext4 daemon at %s (use --uext4=PATH)",
                 r->daemon ? r->daemon : "?");
        return false;
    }
    if (!in_path("fusermount3")) {
        snprintf(why, why_len, "fusermount3 not found");
        return false;
    }
    return true;
}

int scn_fuse_start(struct scn_run *r, char *why, size_t why_len)
{
    char opt[320], excerpt[512];
    double deadline = now() + MOUNT_TIMEOUT;
    pid_t pid;
    int ret = scn_sys_init(r);

    if (ret)
        return ret;
    /* the scenario's `mount-opts uext4=...` after the mode */
    snprintf(opt, sizeof(opt), "inline_mmap=%s%s%s",
             r->inline_mmap == UEXT4_INLINE_MMAP_CONVERT ? "convert" : "keep",
             r->script->image.uext4_opts[0] ? "," : "", r->script->image.uext4_opts);
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execl(r->daemon, r->daemon, r->image, r->mnt, "-f", "-o", opt, (char *)NULL);
        dprintf(2, "cannot run %s: %s\n", r->daemon, strerror(errno));
        _exit(127);
    }
    r->daemon_pid = pid;
    while (!is_mounted(r->mnt)) {
        int status;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->daemon_pid = 0;
            scn_log_excerpt(r->log, excerpt, sizeof(excerpt));
            snprintf(why, why_len, "uext4 exited before mounting: %s", excerpt);
            return -EIO;
        }
        if (now() > deadline) {
            /* Our own daemon overstayed: stop it by its pid. */
            kill(pid, SIGTERM);
            scn_wait_pid(pid, 10);
            r->daemon_pid = 0;
            snprintf(why, why_len, "uext4 did not mount within %ds", MOUNT_TIMEOUT);
            return -ETIMEDOUT;
        }
        usleep(5000);
    }
    return 0;
}

int scn_fuse_stop(struct scn_run *r, char *why, size_t why_len)
{
    char *const argv[] = {"fusermount3", "-u", r->mnt, NULL};
    char excerpt[512];
    int ret, status;

    scn_sys_close_all(r);
    ret = unmount(r, argv, why, why_len);
    if (r->daemon_pid <= 0)
        return ret;
    if (ret) {
        char *const lazy[] = {"fusermount3", "-uz", r->mnt, NULL};

        scn_run_cmd(lazy, r->log, TOOL_TIMEOUT);
    }
    status = scn_wait_pid(r->daemon_pid, EXIT_TIMEOUT);
    if (status == -ETIMEDOUT) {
        kill(r->daemon_pid, SIGKILL);
        scn_wait_pid(r->daemon_pid, 10);
        r->daemon_pid = 0;
        snprintf(why, why_len, "uext4 did not exit within %ds of the unmount", EXIT_TIMEOUT);
        return -ETIMEDOUT;
    }
    r->daemon_pid = 0;
    if (!ret && status != 0) {
        scn_log_excerpt(r->log, excerpt, sizeof(excerpt));
        snprintf(why, why_len, "uext4 exited with status %d: %s", status, excerpt);
        ret = -EIO;
    }
    return ret;
}

bool scn_loop_available(struct scn_run *r, char *why, size_t why_len)
{
    if (geteuid() != 0) {
        snprintf(why, why_len, "kernel backend needs root");
        return false;
    }
    if (access("/dev/loop-control", F_OK) < 0) {
        snprintf(why, why_len, "no loop devices (/dev/loop-control)");
        return false;
    }
    if (!in_path("mount") || !in_path("umount")) {
        snprintf(why, why_len, "mount/umount not found");
        return false;
    }
    return true;
}

int scn_loop_start(struct scn_run *r, char *why, size_t why_len)
{
    char fstype[sizeof(r->script->image.fstype)], opt[320];
    char *const argv[] = {"mount", "-t", fstype, "-o", opt, r->image, r->mnt, NULL};
    char excerpt[512];
    int ret = scn_sys_init(r);

    if (ret)
        return ret;
    memcpy(fstype, r->script->image.fstype, sizeof(fstype));
    /* the scenario's `mount-opts kernel=...` */
    snprintf(opt, sizeof(opt), "loop%s%s", r->script->image.kernel_opts[0] ? "," : "",
             r->script->image.kernel_opts);
    ret = scn_run_cmd(argv, r->log, TOOL_TIMEOUT);
    if (ret == 0 && is_mounted(r->mnt))
        return 0;
    scn_log_excerpt(r->log, excerpt, sizeof(excerpt));
    snprintf(why, why_len, "mount -o loop failed: %s", excerpt);
    return ret < 0 ? ret : -EIO;
}

int scn_loop_stop(struct scn_run *r, char *why, size_t why_len)
{
    char *const argv[] = {"umount", r->mnt, NULL};

    scn_sys_close_all(r);
    return unmount(r, argv, why, why_len);
}
