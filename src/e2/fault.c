/* Simulated power cuts and failed I/O (fault.h). */
#include "e2/fault.h"
#include "e2/iomgr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* UEXT4_FAULT_WRITE_DELAY_US delays writes this long or longer: a spliced
 * WRITE's data (64 KiB and more), not the metadata written a block at a
 * time. */
#define WRITE_DELAY_MIN 65536u

#define UNDO_GRAIN 4096 /* what a disk keeps or loses as a unit */

struct undo {
    int fd; /* the image, or an external journal's file */
    uint64_t off;
    size_t len;
    struct undo *prev;
    unsigned char old[];
};

struct e2_fault {
    unsigned long long at, steps;
    unsigned long long fail_at, fail_every; /* failed I/O: 0 for none */
    unsigned long long fail_big;            /* writes this long fail: 0 for none */
    int fail_errno;
    bool kill;               /* at step "at": the process dies, nothing rolled back */
    unsigned read_delay_us;  /* before each read outside the disk lock */
    unsigned write_delay_us; /* before each write of WRITE_DELAY_MIN bytes or more */
    uint64_t rng;
    char *count_path;
    struct undo *last; /* writes since the last completed sync, newest first */
};

static unsigned long long env_number(const char *name, unsigned long long dflt)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;

    if (!s || !*s)
        return dflt;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end) {
        fprintf(stderr, "uext4: ignoring %s=%s: not a number\n", name, s);
        return dflt;
    }
    return v;
}

static int env_errno(void)
{
    const char *s = getenv("UEXT4_FAULT_ERRNO");

    if (!s || !*s || !strcmp(s, "ENOSPC"))
        return ENOSPC;
    if (!strcmp(s, "EIO"))
        return EIO;
    if (!strcmp(s, "EDQUOT"))
        return EDQUOT;
    fprintf(stderr, "uext4: ignoring UEXT4_FAULT_ERRNO=%s: not ENOSPC, EIO or EDQUOT\n", s);
    return ENOSPC;
}

/* Built with -Dtest_hooks=false (packages), the library reads none of the
 * test suite's variables: a program embedding it cannot be made to fail
 * its I/O, or to die, by its environment. */
static const bool test_hooks = UEXT4_TEST_HOOKS;

errcode_t e2_fault_from_env(struct e2_fault **out)
{
    const char *count;
    unsigned long long at, fail_at, fail_every, fail_big, read_delay, write_delay;
    struct e2_fault *f;

    *out = NULL;
    if (!test_hooks)
        return 0;
    count = getenv("UEXT4_FAULT_COUNT");
    at = env_number("UEXT4_FAULT_AT", 0);
    fail_at = env_number("UEXT4_FAULT_FAIL_AT", 0);
    fail_every = env_number("UEXT4_FAULT_FAIL_EVERY", 0);
    fail_big = env_number("UEXT4_FAULT_FAIL_BIG", 0);
    read_delay = env_number("UEXT4_FAULT_READ_DELAY_US", 0);
    write_delay = env_number("UEXT4_FAULT_WRITE_DELAY_US", 0);
    if (!at && !fail_at && !fail_every && !fail_big && !read_delay && !write_delay &&
        !(count && *count))
        return 0;
    f = calloc(1, sizeof(*f));
    if (!f)
        return EXT2_ET_NO_MEMORY;
    f->at = at;
    f->fail_at = fail_at ? fail_at : fail_every;
    f->fail_every = fail_every;
    f->fail_big = fail_big;
    f->fail_errno = env_errno();
    f->kill = env_number("UEXT4_FAULT_KILL", 0) != 0;
    f->read_delay_us = read_delay < 1000000 ? (unsigned)read_delay : 1000000;
    f->write_delay_us = write_delay < 1000000 ? (unsigned)write_delay : 1000000;
    f->rng = env_number("UEXT4_FAULT_SEED", 0) * 2654435761u + 0x9E3779B97F4A7C15ull;
    if (count && *count && !(f->count_path = strdup(count))) {
        free(f);
        return EXT2_ET_NO_MEMORY;
    }
    *out = f;
    return 0;
}

static bool coin(struct e2_fault *f)
{
    /* xorshift64: deterministic for a seed. */
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng & 1;
}

static void write_all(int fd, const unsigned char *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n <= 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
}

/* Forget the writes to @fd (-1: to every file), now durable. */
static void free_undo(struct e2_fault *f, int fd)
{
    struct undo **p = &f->last;

    while (*p) {
        struct undo *u = *p;
        if (fd >= 0 && u->fd != fd) {
            p = &u->prev;
            continue;
        }
        *p = u->prev;
        free(u);
    }
}

/* The power cut: newest first, each grain of each unflushed write is kept
 * or rolled back by a coin; rolling back an older write over a kept newer
 * one yields the older contents, a state a disk can also reach. */
static void power_cut(struct e2_fault *f)
{
    if (f->kill) {
        fprintf(stderr, "uext4: fault injection: killed at write step %llu\n", f->at);
        _exit(E2_FAULT_EXIT);
    }
    for (struct undo *u = f->last; u; u = u->prev)
        for (size_t o = 0; o < u->len; o += UNDO_GRAIN) {
            size_t n = u->len - o < UNDO_GRAIN ? u->len - o : UNDO_GRAIN;
            if (coin(f))
                write_all(u->fd, u->old + o, n, u->off + o);
        }
    for (struct undo *u = f->last; u; u = u->prev)
        fsync(u->fd);
    fprintf(stderr, "uext4: fault injection: power cut at write step %llu\n", f->at);
    _exit(E2_FAULT_EXIT);
}

/* The next step: a power cut (no return), or the errno it fails with. */
static int step(struct e2_fault *f)
{
    unsigned long long s = ++f->steps;

    if (s == f->at)
        power_cut(f);
    if (!f->fail_at || s < f->fail_at)
        return 0;
    if (s == f->fail_at || (f->fail_every && (s - f->fail_at) % f->fail_every == 0)) {
        fprintf(stderr, "uext4: fault injection: write step %llu fails with %s\n", s,
                strerror(f->fail_errno));
        return f->fail_errno;
    }
    return 0;
}

int e2_fault_before_write(struct e2_fault *f, int fd, size_t len, uint64_t off)
{
    struct undo *u;
    int err;

    if (f->write_delay_us && len >= WRITE_DELAY_MIN)
        usleep(f->write_delay_us);
    err = step(f);

    if (!err && f->fail_big && len >= f->fail_big) {
        fprintf(stderr, "uext4: fault injection: a write of %zu bytes fails with %s\n", len,
                strerror(f->fail_errno));
        err = f->fail_errno;
    }
    if (err || !f->at || f->kill || f->steps > f->at)
        return err;
    u = malloc(sizeof(*u) + len);
    if (!u) {
        /* Cannot keep the old contents: treat it as flushed. */
        return 0;
    }
    u->fd = fd;
    u->off = off;
    u->len = len;
    /* Past the end of the file reads short: roll back to zeros there. */
    memset(u->old, 0, len);
    for (size_t got = 0; got < len;) {
        ssize_t n = pread(fd, u->old + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    u->prev = f->last;
    f->last = u;
    return 0;
}

int e2_fault_before_sync(struct e2_fault *f, int fd)
{
    (void)fd;
    return step(f);
}

void e2_fault_before_read_home(struct e2_fault *f)
{
    if (f->read_delay_us)
        usleep(f->read_delay_us);
}

void e2_fault_synced(struct e2_fault *f, int fd)
{
    free_undo(f, fd);
}

void e2_fault_destroy(struct e2_fault *f)
{
    if (!f)
        return;
    if (f->count_path) {
        FILE *fp = fopen(f->count_path, "w");
        if (fp) {
            fprintf(fp, "%llu\n", f->steps);
            fclose(fp);
        }
        free(f->count_path);
    }
    free_undo(f, -1);
    free(f);
}
