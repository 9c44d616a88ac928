/* The daemon's side of the control socket (control.h has the layout and
 * the protocol). One thread accepts and answers one connection at a time:
 * requests are rare, and a remount must not run beside another. */
#include "frontend/control.h"
#include "base/log.h"
#include "frontend/fe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define REQ_MAX     64
#define MSG_MAX     512
#define REQ_TIMEOUT 5 /* seconds a client may take to send its request */

struct fe_control {
    struct uext4_fs *fs;
    const struct fe_session *session;
    int listen_fd;
    int stop_pipe[2]; /* written by fe_control_stop to end the thread */
    pthread_t thread;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    ino_t ino; /* the socket file we made: removed only if still ours */
    /* Owned by the control thread until fe_control_stop joins it, then by
     * the caller: no lock. */
    int *waiters;
    size_t nwaiters, capwaiters;
};

/* FNV-1a: the mount point's name in the socket directory. */
static uint64_t hash_path(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* @dir is a directory of @uid that nobody else can enter or write. */
static int check_dir(const char *dir, uid_t uid, char *why, size_t why_len)
{
    struct stat st;

    if (lstat(dir, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077)) {
        snprintf(why, why_len,
                 "control directory '%s' is not safe (not a directory of uid %u with mode 0700)",
                 dir, (unsigned)uid);
        return -EPERM;
    }
    return 0;
}

int fe_control_path(uid_t uid, const char *mnt, int create, char *path, size_t len, char *why,
                    size_t why_len)
{
    char dirs[2][64], parent[48];
    struct stat st;
    int ndirs = 0, ret = -ENOENT;

    snprintf(why, why_len, "no control directory of uid %u", (unsigned)uid);
    if (uid == 0) {
        snprintf(dirs[ndirs++], sizeof(dirs[0]), "/run/uext4");
    } else {
        snprintf(parent, sizeof(parent), "/run/user/%u", (unsigned)uid);
        if (lstat(parent, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid)
            snprintf(dirs[ndirs++], sizeof(dirs[0]), "%s/uext4", parent);
    }
    snprintf(dirs[ndirs++], sizeof(dirs[0]), "/tmp/uext4-%u", (unsigned)uid);
    for (int i = 0; i < ndirs; i++) {
        if (create && mkdir(dirs[i], 0700) != 0 && errno != EEXIST)
            continue;
        ret = check_dir(dirs[i], uid, why, why_len);
        if (ret == -ENOENT)
            continue;
        if (ret)
            return ret; /* someone else's: never fall back past it */
        if ((size_t)snprintf(path, len, "%s/ctl-%016llx", dirs[i],
                             (unsigned long long)hash_path(mnt)) >= len)
            return -ENAMETOOLONG;
        return 0;
    }
    return ret;
}

static void reply(int fd, int rc, const char *msg)
{
    char line[MSG_MAX + 16];
    int n = snprintf(line, sizeof(line), "%d %s\n", rc, msg);

    /* A client that went away has nobody left to tell. */
    if (send(fd, line, (size_t)(n < (int)sizeof(line) ? n : (int)sizeof(line) - 1), MSG_NOSIGNAL) <
        0)
        log_debug("control: reply lost: %s", strerror(errno));
}

/* Read the request line into @req (without the newline). */
static int read_request(int fd, char *req, size_t len)
{
    size_t got = 0;

    while (got < len - 1) {
        ssize_t n = recv(fd, req + got, len - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? -EPROTO : -errno;
        got += (size_t)n;
        if (memchr(req, '\n', got)) {
            *(char *)memchr(req, '\n', got) = '\0';
            return 0;
        }
    }
    return -EPROTO;
}

static bool add_waiter(struct fe_control *c, int fd)
{
    if (c->nwaiters == c->capwaiters) {
        size_t cap = c->capwaiters ? c->capwaiters * 2 : 4;
        int *w = realloc(c->waiters, cap * sizeof(*w));
        if (!w)
            return false;
        c->waiters = w;
        c->capwaiters = cap;
    }
    c->waiters[c->nwaiters++] = fd;
    return true;
}

/* Answer one connection; returns true if it is kept as a waiter. */
static bool serve_one(struct fe_control *c, int fd)
{
    struct timeval tv = {.tv_sec = REQ_TIMEOUT};
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    char req[REQ_MAX], why[MSG_MAX] = "";
    int rc;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
        reply(fd, -errno, "cannot identify the caller");
        return false;
    }
    if (cred.uid != 0 && cred.uid != geteuid()) {
        log_warn("control: uid %u (pid %d) asked, but only uid %u and root may control this "
                 "mount",
                 (unsigned)cred.uid, (int)cred.pid, (unsigned)geteuid());
        reply(fd, -EPERM, "only the user who mounted it and root may control this mount");
        return false;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    rc = read_request(fd, req, sizeof(req));
    if (rc) {
        reply(fd, rc, "no request received");
        return false;
    }
    if (!strcmp(req, "wait")) {
        if (!add_waiter(c, fd)) {
            reply(fd, -ENOMEM, "out of memory");
            return false;
        }
        reply(fd, 0, "waiting");
        return true;
    }
    if (!strcmp(req, "remount ro") || !strcmp(req, "remount rw")) {
        bool ro = !strcmp(req, "remount ro");
        log_info("control: remount %s asked by uid %u (pid %d)", ro ? "read-only" : "read-write",
                 (unsigned)cred.uid, (int)cred.pid);
        rc = uext4_remount(c->fs, ro, why, sizeof(why));
        if (rc)
            log_err("remount %s failed: %s", ro ? "read-only" : "read-write",
                    why[0] ? why : strerror(-rc));
        reply(fd, rc, rc ? (why[0] ? why : strerror(-rc)) : (ro ? "read-only" : "read-write"));
        return false;
    }
    if (!strcmp(req, "stats")) {
        snprintf(why, sizeof(why), "requests %llu spliced %llu interrupts %llu early %llu",
                 (unsigned long long)fe_session_requests(c->session),
                 (unsigned long long)fe_session_spliced(c->session),
                 (unsigned long long)fe_session_interrupts(c->session),
                 (unsigned long long)fe_session_answered_early(c->session));
        reply(fd, 0, why);
        return false;
    }
    reply(fd, -EINVAL, "unknown request");
    return false;
}

static void *control_thread(void *arg)
{
    struct fe_control *c = arg;
    struct pollfd pfd[2] = {{.fd = c->listen_fd, .events = POLLIN},
                            {.fd = c->stop_pipe[0], .events = POLLIN}};

    for (;;) {
        int fd;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_err("control: poll: %s", strerror(errno));
            break;
        }
        if (pfd[1].revents)
            break;
        fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (!serve_one(c, fd))
            close(fd);
    }
    return NULL;
}

/* Bind @c->listen_fd to @c->path, replacing a stale socket, or one of a
 * daemon whose mount ours now covers (the path reaches the newest). */
static int bind_socket(struct fe_control *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;

    memcpy(sa.sun_path, c->path, sizeof(c->path));
    if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EADDRINUSE)
            return -errno;
        if (unlink(c->path) != 0 || bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            return -errno;
    }
    if (stat(c->path, &st) != 0)
        return -errno;
    c->ino = st.st_ino;
    return listen(c->listen_fd, 8) == 0 ? 0 : -errno;
}

int fe_control_start(struct uext4_fs *fs, const struct fe_session *session, const char *mnt,
                     struct fe_control **out, char *why, size_t why_len)
{
    struct fe_control *c = calloc(1, sizeof(*c));
    int ret;

    if (!c)
        return -ENOMEM;
    c->fs = fs;
    c->session = session;
    c->listen_fd = -1;
    c->stop_pipe[0] = c->stop_pipe[1] = -1;
    ret = fe_control_path(geteuid(), mnt, 1, c->path, sizeof(c->path), why, why_len);
    if (ret)
        goto out_free;
    c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->listen_fd < 0 || pipe2(c->stop_pipe, O_CLOEXEC) != 0) {
        ret = -errno;
        snprintf(why, why_len, "cannot create the control socket: %s", strerror(-ret));
        goto out_free;
    }
    ret = bind_socket(c);
    if (ret) {
        snprintf(why, why_len, "cannot listen on '%s': %s", c->path, strerror(-ret));
        goto out_free;
    }
    ret = -pthread_create(&c->thread, NULL, control_thread, c);
    if (ret) {
        snprintf(why, why_len, "cannot start the control thread: %s", strerror(-ret));
        goto out_unlink;
    }
    *out = c;
    return 0;

out_unlink:
    unlink(c->path);
out_free:
    if (c->listen_fd >= 0)
        close(c->listen_fd);
    if (c->stop_pipe[0] >= 0) {
        close(c->stop_pipe[0]);
        close(c->stop_pipe[1]);
    }
    free(c);
    return ret;
}

void fe_control_stop(struct fe_control *c)
{
    struct stat st;
    char b = 0;

    if (!c || c->listen_fd < 0)
        return;
    if (write(c->stop_pipe[1], &b, 1) != 1)
        log_err("control: cannot stop the control thread: %s", strerror(errno));
    pthread_join(c->thread, NULL);
    if (stat(c->path, &st) == 0 && st.st_ino == c->ino)
        unlink(c->path);
    close(c->listen_fd);
    c->listen_fd = -1;
    close(c->stop_pipe[0]);
    close(c->stop_pipe[1]);
}

void fe_control_finish(struct fe_control *c, int rc)
{
    if (!c)
        return;
    fe_control_stop(c);
    for (size_t i = 0; i < c->nwaiters; i++)
        reply(c->waiters[i], rc, rc ? strerror(-rc) : "closed");
    /* The descriptors are left to the process's exit, on purpose. */
    free(c->waiters);
    free(c);
}
