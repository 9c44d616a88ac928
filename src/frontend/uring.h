/* FUSE over io_uring (-o io_uring): requests arrive in ring entries
 * registered with the kernel, one io_uring per serving thread, instead of
 * read(2) of /dev/fuse, and replies go back with the command that fetches
 * the next request. uring_abi.h gives the protocol; libfuse still parses
 * each request and runs the handlers, through the channel's hooks. */
#ifndef UEXT4_FRONTEND_URING_H
#define UEXT4_FRONTEND_URING_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

struct fuse_session;
struct fe_wire;
struct fe_uring;

/* Whether this build has the transport (liburing was found). */
bool fe_uring_built(void);

/* Set up, while answering INIT and before offering io_uring in the reply:
 * @per_queue rings for each of the kernel's queues (one per possible CPU),
 * each with one entry of @payload bytes for @fd. A failure is logged and
 * io_uring is then not offered. */
int fe_uring_prepare(struct fe_uring **out, struct fuse_session *se, struct fe_wire *w, int fd,
                     unsigned per_queue, size_t payload);

/* Once the INIT reply is written: start the threads, which register the
 * entries and serve. A thread that cannot start makes the kernel fall
 * back to /dev/fuse (a failed registration tells it so). */
void fe_uring_go(struct fe_uring *u);

/* Stop the threads and free @u (NULL: nothing). */
void fe_uring_stop(struct fe_uring *u);

/* The reply hooks: when the calling thread serves a ring entry and @iov
 * answers its request, the reply goes into the entry (returns its length,
 * or -errno) and *@taken is set; otherwise nothing is done. */
ssize_t fe_uring_writev(const struct iovec *iov, int count, bool *taken);
ssize_t fe_uring_splice(int pipe_fd, size_t len, bool *taken);

/* Whether the calling thread serves a ring entry now. */
bool fe_uring_serving(void);

#endif
