/* The uext4 command: parse the command line, open the image, mount it over
 * FUSE, serve until unmounted, then write everything back.
 *
 * Ordering is the contract here:
 *  - the image is opened (and its exclusive lock taken) in the process that
 *    will serve it, so the daemon forks first and opens afterwards;
 *  - the parent of a daemon exits 0 only once the mount is live, and with
 *    the daemon's error message and 1 if it is not, told through a pipe
 *    (no sleeping, no polling of /proc/mounts); what the daemon logs before
 *    that (warnings, a journal replayed) is printed on the stderr it shares
 *    with the waiting parent, so it is there when the command returns;
 *  - on the way out the session is destroyed (no request can reach the
 *    core any more) before uext4_close() writes the image back, and the
 *    process exits only after that, so a caller that waits for the daemon's
 *    pid may run e2fsck at once. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "frontend/control.h"
#include "frontend/fe.h"
#include "frontend/mount_opts.h"
#include "uext4.h"

#define MSG_MAX 1024

/* Readiness pipe protocol: one status byte, then for a failure the message
 * (no "uext4: " prefix, no newline) up to EOF. */
#define READY_OK   '\0'
#define READY_FAIL '\1'

struct cli {
    char image[PATH_MAX];      /* absolute: the daemon runs in / */
    char mountpoint[PATH_MAX]; /* absolute */
    char journal[PATH_MAX];    /* -o journal_path, absolute */
    bool foreground;
    bool debug;
    bool single_thread;
    bool unmount;    /* -u MOUNTPOINT */
    bool remount;    /* -o remount: a request to the daemon serving it */
    bool remount_ro; /* the last of ro/rw given with remount */
    char *optv[64];  /* the -o arguments, parsed once all are known */
    unsigned optc;
    struct fe_mount_opts opts;
};

/* Seconds `uext4 -u` waits for the daemon to write the image back. */
#define UNMOUNT_TIMEOUT 120

static void usage(FILE *out)
{
    fprintf(out,
            "usage: uext4 IMAGE MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [-s]\n"
            "       uext4 -u MOUNTPOINT\n"
            "       uext4 [IMAGE] MOUNTPOINT -o remount,ro|rw\n"
            "       uext4 --help | --version\n"
            "\n"
            "Serve the ext2/ext3/ext4 file system in the file IMAGE on MOUNTPOINT\n"
            "through FUSE. Unmount with 'uext4 -u MOUNTPOINT': it returns once the\n"
            "image is written back, clean and unlocked (copy or check it after that).\n"
            "\n"
            "  -o OPTIONS     comma-separated mount options (below); may be repeated\n"
            "  -f             stay in the foreground, log to stderr\n"
            "  -d             debug: -f, debug logging, and every FUSE request traced\n"
            "  -s             serve requests from a single thread\n"
            "  -u             unmount MOUNTPOINT and wait until its daemon has\n"
            "                 written the image back and exited\n"
            "  -h, --help     print this help and exit\n"
            "  -V, --version  print the versions of uext4, libfuse and libext2fs\n"
            "\n"
            "File system options:\n"
            "  remount               with ro or rw: switch the daemon serving\n"
            "                        MOUNTPOINT to read-only (committing the\n"
            "                        image clean) or back (mount -o remount)\n"
            "  ro                    serve read-only (an image that needs recovery\n"
            "                        is replayed in memory, not written)\n"
            "  rw                    serve read-write (the default)\n"
            "  fakeroot              every caller acts as root inside the image;\n"
            "                        no permission checks (implies\n"
            "                        no_default_permissions; not with allow_other)\n"
            "  uidmap=IMG:LOCAL[:N]  image uids IMG..IMG+N-1 are local uids\n"
            "                        LOCAL..LOCAL+N-1 (N defaults to 1); up to %u,\n"
            "                        unmapped ids show as 65534\n"
            "  gidmap=IMG:LOCAL[:N]  the same for group ids\n"
            "  errors=continue|remount-ro|panic\n"
            "                        what to do after finding corruption (default:\n"
            "                        the superblock's setting)\n"
            "  inline_mmap=keep|convert\n"
            "                        writeback of mmap'd inline files: keep them\n"
            "                        inline (default) or convert them as Linux does\n"
            "  commit=SECONDS        commit metadata to the image (through its journal,\n"
            "                        if it has one) every SECONDS seconds (0: 5)\n"
            "  grpid, bsdgroups      new files take the group of their directory\n"
            "  nogrpid, sysvgroups   ... of their creator, or of a setgid directory\n"
            "                        (the default)\n"
            "  norecovery, noload    an image whose journal needs recovery is mounted\n"
            "                        read-only without replaying it\n"
            "  offset=BYTES          the file system starts BYTES into IMAGE (a\n"
            "                        partition of a disk image; uext4 names them)\n"
            "  sizelimit=BYTES       ... and spans at most BYTES of it (as losetup's)\n"
            "  journal_path=FILE     the file system's external journal (mke2fs -J\n"
            "                        device=) is FILE: the device or a copy of it\n"
            "  loop                  accepted: uext4 itself serves the image file\n"
            "\n"
            "FUSE options:\n"
            "  allow_other           let other users access the mount\n"
            "                        (needs user_allow_other in /etc/fuse.conf)\n"
            "  default_permissions   the kernel checks permissions and POSIX ACLs\n"
            "                        before uext4 does (the default, except with\n"
            "                        fakeroot)\n"
            "  no_default_permissions\n"
            "                        only uext4 checks; the kernel then keeps no\n"
            "                        names, so every path lookup costs a request\n"
            "  writeback_cache       let the kernel cache written data and send it\n"
            "                        later in large requests; fsync covers the same,\n"
            "                        but a crash can lose unsynced writes up to 30 s\n"
            "                        older, and a full image fails fsync or close\n"
            "                        instead of write (see uext4(1))\n"
            "  max_threads=N         serve requests from up to N threads (default 4)\n"
            "  io_uring, no_io_uring take requests through FUSE over io_uring where\n"
            "                        the kernel offers it (default: no_io_uring)\n"
            "  splice_write, no_splice_write  move large writes' data from the FUSE\n"
            "                        channel into the image with splice(2), without\n"
            "                        a copy through the daemon (default: splice_write)\n"
            "  fsname=NAME           source shown in /proc/mounts (default: IMAGE)\n"
            "  subtype=NAME          type shown as fuse.NAME (default: uext4)\n"
            "  record=FILE           write the file operations served to FILE as a\n"
            "                        scenario that replays them in library mode\n"
            "                        (uext4-scenario --backend=lib FILE)\n"
            "\n"
            "Mount flags, passed to the kernel:\n"
            "  nosuid, suid, nodev, dev, noexec, exec, sync, async, dirsync\n"
            "Access times, updated by uext4:\n"
            "  relatime (default), atime, strictatime, noatime, nodiratime, diratime\n"
            "Accepted and ignored (for fstab): defaults, auto, noauto, user, nouser,\n"
            "  users, owner, group, nofail, _netdev, comment=, x-*\n"
            "Accepted with a warning that they have no effect: the other options\n"
            "  of ext4 and mount(8) (data=, barrier, discard, quota, lazytime, ...)\n",
            UEXT4_MAX_IDMAP);
}

static void print_version(void)
{
    printf("uext4 %s\n", UEXT4_VERSION);
    printf("libfuse %s\n", fe_fuse_version());
    printf("libext2fs %s\n", uext4_ext2fs_version());
    printf("FUSE over io_uring: %s\n", fe_uring_available() ? "built in" : "not built");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("uext4: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'uext4 --help' for more information.\n", stderr);
    return -EINVAL;
}

/* Undo the octal escapes (\040) of a /proc/self/mountinfo field. */
static void unescape_mountinfo(char *s)
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

/* The kernel stacks a new mount on an existing one without a word; the
 * user most likely did not mean to hide what is mounted there. */
static void warn_if_mount_point(const char *mountpoint)
{
    static char line[2 * PATH_MAX + 512], point[PATH_MAX + 1];
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char fstype[64], source[256];

    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        const char *tail = strstr(line, " - ");
        if (sscanf(line, "%*d %*d %*s %*s %4096s", point) != 1 || !tail ||
            sscanf(tail, " - %63s %255s", fstype, source) != 2)
            continue;
        unescape_mountinfo(point);
        unescape_mountinfo(source);
        if (strcmp(point, mountpoint) == 0) {
            fprintf(stderr,
                    "uext4: warning: '%s' is already a mount point (%s, type %s); the new "
                    "mount hides it\n",
                    mountpoint, source, fstype);
            break;
        }
    }
    fclose(f);
}

/* Resolve the image and the mount point up front, so their problems are
 * named before anything forks. */
static int check_paths(struct cli *c, const char *image, const char *mountpoint)
{
    struct stat st;

    if (!realpath(image, c->image)) {
        fprintf(stderr, "uext4: cannot open image '%s': %s\n", image, strerror(errno));
        return -errno;
    }
    if (c->opts.core.journal_path) {
        if (!realpath(c->opts.core.journal_path, c->journal)) {
            int err = errno;
            fprintf(stderr, "uext4: cannot open journal_path '%s': %s\n", c->opts.core.journal_path,
                    strerror(err));
            return -err;
        }
        c->opts.core.journal_path = c->journal;
    }
    if (!realpath(mountpoint, c->mountpoint) || stat(c->mountpoint, &st) != 0) {
        fprintf(stderr, "uext4: bad mount point '%s': %s\n", mountpoint, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "uext4: bad mount point '%s': %s\n", mountpoint, strerror(ENOTDIR));
        return -ENOTDIR;
    }
    warn_if_mount_point(c->mountpoint);
    return 0;
}

/* -o remount (mount.fuse3 runs "uext4 IMAGE MNT -o remount,..." for
 * `mount -o remount`): the last ro or rw decides; other options are the
 * mount's own, which a remount does not change. */
static void note_remount(struct cli *c, const char *opts)
{
    const char *p = opts;

    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 7 && !strncmp(p, "remount", 7))
            c->remount = true;
        else if (n == 2 && !strncmp(p, "ro", 2))
            c->remount_ro = true;
        else if (n == 2 && !strncmp(p, "rw", 2))
            c->remount_ro = false;
        p += n + (p[n] == ',');
    }
}

/* -u MOUNTPOINT, or [IMAGE] MOUNTPOINT with -o remount: the mount point is
 * the last argument. */
static int parse_request(struct cli *c, int nargs, char **args)
{
    if (c->unmount && c->remount)
        return usage_error("-u and -o remount do not go together");
    if (nargs < 1)
        return usage_error("missing MOUNTPOINT");
    if (nargs > (c->unmount ? 1 : 2))
        return usage_error("unexpected argument '%s'", args[c->unmount ? 1 : 2]);
    if (strlen(args[nargs - 1]) >= sizeof(c->mountpoint))
        return usage_error("mount point name too long");
    strcpy(c->mountpoint, args[nargs - 1]);
    return 0;
}

/* One option of the command line (@opt from getopt_long over @argv):
 * 0, or the usage error. --help and --version exit here. */
static int take_option(struct cli *c, int opt, char **argv)
{
    switch (opt) {
    case 'h':
        usage(stdout);
        exit(0);
    case 'V':
        print_version();
        exit(0);
    case 'o':
        if (c->optc == sizeof(c->optv) / sizeof(c->optv[0]))
            return usage_error("too many -o options");
        c->optv[c->optc++] = optarg;
        break;
    case 'u':
        c->unmount = true;
        break;
    case 'f':
        c->foreground = true;
        break;
    case 'd':
        c->debug = true;
        c->foreground = true;
        break;
    case 's':
        c->single_thread = true;
        break;
    case ':':
        return usage_error("option '-%c' needs an argument", optopt);
    default:
        /* optopt names a bad short option; a bad long one only argv. */
        if (optopt)
            return usage_error("unknown option '-%c'", optopt);
        return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    return 0;
}

static int parse_cmdline(struct cli *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    char err[MSG_MAX];
    int opt;

    fe_opts_init(&c->opts);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":ho:fdsuV", longopts, NULL)) != -1) {
        int rc = take_option(c, opt, argv);

        if (rc)
            return rc;
    }
    for (unsigned i = 0; i < c->optc; i++)
        note_remount(c, c->optv[i]);
    if (c->unmount || c->remount)
        return parse_request(c, argc - optind, argv + optind);
    for (unsigned i = 0; i < c->optc; i++) {
        /* Split in place: c->opts points into argv from here on. */
        if (fe_opts_parse(&c->opts, c->optv[i], err, sizeof(err)) < 0)
            return usage_error("%s", err);
    }
    if (fe_opts_finish(&c->opts, err, sizeof(err)) < 0)
        return usage_error("%s", err);
    if (argc - optind < 2)
        return usage_error("missing %s",
                           argc - optind == 0 ? "IMAGE and MOUNTPOINT" : "MOUNTPOINT");
    if (argc - optind > 2)
        return usage_error("unexpected argument '%s'", argv[optind + 2]);
    return check_paths(c, argv[optind], argv[optind + 1]);
}

/* ---- start-up failures and readiness ---- */

/* Report a start-up failure: to the waiting parent through @notify_fd, or
 * to stderr when running in the foreground (@notify_fd < 0). */
static void report_failure(int notify_fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report_failure(int notify_fd, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;

    msg[0] = READY_FAIL;
    va_start(ap, fmt);
    vsnprintf(msg + 1, sizeof(msg) - 1, fmt, ap);
    va_end(ap);
    if (notify_fd < 0) {
        fprintf(stderr, "uext4: %s\n", msg + 1);
        return;
    }
    /* Best effort: if the parent is gone there is nobody left to tell. */
    if (write(notify_fd, msg, strlen(msg + 1) + 1) < 0)
        log_err("%s", msg + 1);
}

/* The mount is live: release the parent, then detach from its terminal. */
static void report_ready(int notify_fd)
{
    char ok = READY_OK;
    int null_fd;

    if (notify_fd < 0)
        return;
    if (write(notify_fd, &ok, 1) != 1)
        log_warn("cannot tell the parent that the mount is ready: %s", strerror(errno));
    close(notify_fd);
    log_tee_to_stderr(false);
    if (chdir("/") != 0)
        log_warn("chdir /: %s", strerror(errno));
    null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0) {
        log_warn("/dev/null: %s", strerror(errno));
        return;
    }
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    if (null_fd > STDERR_FILENO)
        close(null_fd);
}

/* From here on a signal must not cut the write-back of the image short:
 * once the loop has ended, a second Ctrl-C or SIGTERM is ignored.
 * (libfuse leaves a handler it did not install alone when removing its.) */
static void ignore_stop_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa = {.sa_handler = SIG_IGN};

    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
}

/* ---- serving ---- */

/* Octal escapes of /proc/self/mountinfo (\040 for a space), decoded in
 * place. */
static void unescape_mount_field(char *s)
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

/* The mount point of a FUSE mount whose source is @image: uext4 names its
 * image (by its real path) as the source unless fsname= says otherwise.
 * Fields of a mountinfo line: 4 is the mount point, and after the "-"
 * that ends the optional ones come the type and the source. */
static bool find_fuse_mount(const char *image, char *out, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    size_t cap = 0;
    char *line = NULL;
    bool found = false;

    if (!f)
        return false;
    while (!found && getline(&line, &cap, f) > 0) {
        char *save = NULL, *mnt = NULL, *type = NULL, *src = NULL;
        bool dash = false;
        int i = 0;

        for (char *t = strtok_r(line, " \n", &save); t && !src;
             t = strtok_r(NULL, " \n", &save), i++) {
            if (i == 4)
                mnt = t;
            else if (dash && !type)
                type = t;
            else if (dash)
                src = t;
            else if (i > 5 && !strcmp(t, "-"))
                dash = true;
        }
        if (!mnt || !src || (strcmp(type, "fuse") && strncmp(type, "fuse.", 5)))
            continue;
        unescape_mount_field(src);
        unescape_mount_field(mnt);
        if (!strcmp(src, image)) {
            snprintf(out, len, "%s", mnt);
            found = true;
        }
    }
    free(line);
    fclose(f);
    return found;
}

/* The image is locked by another uext4 (or a library user): name where it
 * is mounted, if it is, and the way to a second view of the same file
 * system, which one daemon serves (two would corrupt it). A mount's source
 * names the image file, not its window: for a partition, a mount of the
 * same file may serve another partition, and is not named. */
static void report_busy(int notify_fd, const struct cli *c, const char *why)
{
    bool partition = c->opts.core.offset || c->opts.core.sizelimit;
    char *mnt = malloc(PATH_MAX);

    if (mnt && !partition && find_fuse_mount(c->image, mnt, PATH_MAX))
        report_failure(notify_fd,
                       "%s: it is mounted on '%s'; for a second view of it, bind-mount that "
                       "directory: mount --bind '%s' '%s'",
                       why, mnt, mnt, c->mountpoint);
    else
        report_failure(notify_fd,
                       "%s; if it is mounted, bind-mount its mount point for a second view "
                       "(mount --bind)",
                       why);
    free(mnt);
}

/* Open, mount, serve, unmount, close. Start-up failures are reported via
 * report_failure(); later ones are logged. Returns 0 or -errno. */
/* Open the image for serve(), saying why not to the one waiting on
 * @notify_fd; first the options noted as having no effect. */
static int open_image(const struct cli *c, int notify_fd, struct uext4_fs **fs)
{
    char why[MSG_MAX] = "";
    int rc;

    for (unsigned i = 0; i < c->opts.nnoted; i++)
        log_warn("mount option '%s' has no effect: %s", c->opts.noted[i].name,
                 c->opts.noted[i].why);
    rc = uext4_open(c->image, &c->opts.core, fs, why, sizeof(why));
    if (rc == -EBUSY)
        report_busy(notify_fd, c, why[0] ? why : strerror(-rc));
    else if (rc < 0 && why[0])
        report_failure(notify_fd, "%s", why);
    else if (rc < 0)
        report_failure(notify_fd, "cannot open image '%s': %s", c->image, strerror(-rc));
    return rc;
}

static int serve(const struct cli *c, int notify_fd)
{
    struct fe_mount_params params = {
        .fsname = c->opts.fsname ? c->opts.fsname : c->image,
        .subtype = c->opts.subtype ? c->opts.subtype : "uext4",
        .image = c->image,
        .debug = c->debug,
        .opts = &c->opts,
    };
    char why[MSG_MAX] = "";
    struct fe_session *session;
    struct fe_control *control = NULL;
    struct uext4_fs *fs;
    int rc, close_rc;

    rc = open_image(c, notify_fd, &fs);
    if (rc < 0)
        return rc;
    params.read_only = c->opts.core.read_only || uext4_is_read_only(fs);
    if (params.read_only && !c->opts.core.read_only)
        log_warn("%s: serving read-only", c->image);

    rc = fe_session_new(fs, &params, &session);
    if (rc < 0) {
        report_failure(notify_fd, "cannot start the FUSE session: %s", strerror(-rc));
        goto out_close;
    }
    rc = fe_session_mount(session, c->mountpoint);
    if (rc < 0) {
        report_failure(notify_fd, "cannot mount on '%s'", c->mountpoint);
        goto out_destroy_session;
    }
    /* Before the mount is reported ready: a `uext4 -u` right after it
     * must find the socket. Without one the mount still works. */
    rc = fe_control_start(fs, session, c->mountpoint, &control, why, sizeof(why));
    if (rc < 0)
        log_warn("no control socket (uext4 -u and remount cannot reach this daemon): %s", why);
    log_info("serving %s on %s%s", c->image, c->mountpoint, params.read_only ? " (read-only)" : "");
    report_ready(notify_fd);

    rc = fe_session_run(session, c->single_thread);
    if (rc < 0)
        log_err("FUSE session failed: %s", strerror(-rc));
    fe_control_stop(control);

out_destroy_session:
    ignore_stop_signals();
    fe_session_destroy(session);
out_close:
    close_rc = uext4_close(fs);
    if (close_rc < 0) {
        log_err("%s: writing back the image failed: %s", c->image, strerror(-close_rc));
        if (rc == 0)
            rc = close_rc;
    }
    fe_control_finish(control, close_rc);
    return rc;
}

/* The parent's side of daemonising: wait for the child's verdict. */
static int wait_ready(int fd, pid_t child)
{
    char msg[MSG_MAX];
    size_t got = 0;
    ssize_t n;
    int status;

    while (got < sizeof(msg) - 1) {
        n = read(fd, msg + got, sizeof(msg) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (msg[0] == READY_OK)
            return 0;
    }
    msg[got] = '\0';
    if (got > 0 && msg[0] == READY_FAIL) {
        fprintf(stderr, "uext4: %s\n", msg + 1);
        waitpid(child, &status, 0);
        return -EIO;
    }
    /* EOF without a verdict: the child died before it could tell us. */
    if (waitpid(child, &status, 0) == child && WIFSIGNALED(status))
        fprintf(stderr, "uext4: the daemon was killed by signal %d before the mount was ready\n",
                WTERMSIG(status));
    else
        fprintf(stderr, "uext4: the daemon exited before the mount was ready\n");
    return -EIO;
}

static int daemonize_and_serve(const struct cli *c)
{
    int pipefd[2];
    pid_t pid;

    /* O_CLOEXEC: fusermount3, which libfuse runs to mount, must not hold
     * the write end open and so delay the parent's EOF. */
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        fprintf(stderr, "uext4: pipe: %s\n", strerror(errno));
        return -errno;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "uext4: fork: %s\n", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -EAGAIN;
    }
    if (pid > 0) {
        close(pipefd[1]);
        return wait_ready(pipefd[0], pid);
    }

    close(pipefd[0]);
    setsid();
    /* Before the core can start threads: log_setup() must come first. Until
     * the mount is ready, stderr is still the terminal of the parent, which
     * waits: warnings and notices (read-only fallback, journal replayed) go
     * there too. */
    log_setup("uext4", LOG_LVL_NOTICE, true);
    log_tee_to_stderr(true);
    _exit(serve(c, pipefd[1]) < 0 ? 1 : 0);
}

/* The daemon's memory in one heap. glibc gives each worker thread an arena
 * of its own, grown a page at a time with mprotect(2) as the thread's
 * allocations first reach it: in a cold phase (every lookup a new in-memory
 * inode and new cache blocks, allocated by whichever worker serves it)
 * that was a system call per ten lookups. One heap grows by brk(2) in
 * M_TOP_PAD steps instead; the workers seldom allocate at once (libext2fs
 * runs under one lock). */
static void malloc_setup(void)
{
    mallopt(M_ARENA_MAX, 1);
}

int main(int argc, char **argv)
{
    static struct cli c; /* two PATH_MAX buffers: not on the stack */
    int rc;

    malloc_setup();
    rc = parse_cmdline(&c, argc, argv);
    if (rc < 0)
        return 1;
    if (c.unmount)
        return fe_cmd_unmount(c.mountpoint, UNMOUNT_TIMEOUT) < 0 ? 1 : 0;
    if (c.remount)
        return fe_cmd_remount(c.mountpoint, c.remount_ro) < 0 ? 1 : 0;
    if (c.foreground) {
        log_setup("uext4", c.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO, false);
        rc = serve(&c, -1);
    } else {
        rc = daemonize_and_serve(&c);
    }
    return rc < 0 ? 1 : 0;
}
