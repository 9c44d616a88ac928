/* The FUSE channel under libfuse (src/frontend/wire.c), driven through
 * pipes with requests and replies laid out as the kernel and libfuse lay
 * them out: HANDLE_KILLPRIV_V2 is added to the INIT reply only when the
 * kernel offered it, only to the reply of that INIT, only to a successful
 * one; FUSE_TMPFILE becomes a CREATE, FUSE_STATX a GETATTR answered with
 * a fuse_statx_out; FUSE_INTERRUPT is answered ENOSYS and never passed on;
 * everything else passes through byte for byte. */
#include "frontend/uring_abi.h"
#include "frontend/wire.h"
#include "harness.h"

#include <errno.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct init_req {
    struct fuse_in_header h;
    struct fuse_init_in in;
};

struct init_reply {
    struct fuse_out_header h;
    struct fuse_init_out out;
};

/* Push @len bytes through a pipe into fe_wire_read(), as if the kernel had
 * sent them. */
static ssize_t feed(struct fe_wire *w, const void *req, size_t len, void *buf, size_t cap)
{
    int p[2];
    ssize_t n;

    if (pipe(p) != 0)
        return -1;
    n = write(p[1], req, len) == (ssize_t)len ? fe_wire_read(w, p[0], buf, cap) : -1;
    close(p[0]);
    close(p[1]);
    return n;
}

/* Send @r through fe_wire_writev() as libfuse does (header, then argument)
 * and return what reached the "kernel" in @got. */
static int reply(struct fe_wire *w, struct init_reply *r, size_t arglen, struct init_reply *got)
{
    struct iovec iov[2] = {{&r->h, sizeof(r->h)}, {&r->out, arglen}};
    int p[2], rc = -1;

    if (pipe(p) != 0)
        return -1;
    if (fe_wire_writev(w, p[1], iov, arglen ? 2 : 1) == (ssize_t)(sizeof(r->h) + arglen) &&
        read(p[0], got, sizeof(*got)) == (ssize_t)(sizeof(r->h) + arglen))
        rc = 0;
    close(p[0]);
    close(p[1]);
    return rc;
}

static void make_init(struct init_req *q, uint64_t unique, uint32_t flags)
{
    memset(q, 0, sizeof(*q));
    q->h.len = sizeof(*q);
    q->h.opcode = FUSE_INIT;
    q->h.unique = unique;
    q->in.major = 7;
    q->in.minor = 38;
    q->in.flags = flags;
}

static void make_reply(struct init_reply *r, uint64_t unique, int error, uint32_t flags)
{
    memset(r, 0, sizeof(*r));
    r->h.len = sizeof(*r);
    r->h.unique = unique;
    r->h.error = error;
    r->out.major = 7;
    r->out.minor = 38;
    r->out.flags = flags;
}

/* One INIT and its reply, then a later reply, for each combination of
 * what uext4 wants and what the kernel offers. */
static int test_init_negotiation(void)
{
    static const struct {
        const char *name;
        bool want;
        uint32_t offered, replied, expect;
    } rows[] = {
        {"offered and wanted", true, FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV_V2, FUSE_ASYNC_READ,
         FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV_V2},
        {"not offered", true, FUSE_ASYNC_READ, FUSE_ASYNC_READ, FUSE_ASYNC_READ},
        {"not wanted", false, FUSE_HANDLE_KILLPRIV_V2, 0, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fe_wire w;
        struct init_req q;
        struct init_reply r, got;
        char buf[4096];

        fprintf(stderr, "  %s\n", rows[i].name);
        fe_wire_init(&w, rows[i].want);
        make_init(&q, 2, rows[i].offered);
        CHECK_EQ(feed(&w, &q, sizeof(q), buf, sizeof(buf)), (ssize_t)sizeof(q));
        CHECK(!memcmp(buf, &q, sizeof(q))); /* passed through untouched */
        make_reply(&r, 2, 0, rows[i].replied);
        CHECK_EQ(reply(&w, &r, sizeof(r.out), &got), 0);
        CHECK_EQ(got.out.flags, rows[i].expect);
        CHECK_EQ(fe_wire_has_killpriv_v2(&w), (rows[i].expect & FUSE_HANDLE_KILLPRIV_V2) != 0);
        /* Later replies are left alone, even one that looks like an INIT
         * reply. */
        make_reply(&r, 4, 0, 0);
        CHECK_EQ(reply(&w, &r, sizeof(r.out), &got), 0);
        CHECK_EQ(got.out.flags, 0u);
    }
    return 0;
}

/* An INIT refused (a protocol version libfuse will not speak): the error
 * reply carries no argument and is passed on unchanged. */
static int test_error_reply_untouched(void)
{
    struct fe_wire w;
    struct init_req q;
    struct init_reply r, got;
    char buf[4096];

    fe_wire_init(&w, true);
    make_init(&q, 2, FUSE_HANDLE_KILLPRIV_V2);
    CHECK_EQ(feed(&w, &q, sizeof(q), buf, sizeof(buf)), (ssize_t)sizeof(q));
    make_reply(&r, 2, -EPROTO, 0);
    r.h.len = sizeof(r.h);
    CHECK_EQ(reply(&w, &r, 0, &got), 0);
    CHECK_EQ(got.h.error, -EPROTO);
    CHECK(!fe_wire_has_killpriv_v2(&w));
    return 0;
}

/* Other requests and short reads are passed on without a look. */
static int test_other_requests_pass(void)
{
    struct fe_wire w;
    struct init_req q;
    struct init_reply r, got;
    char buf[4096];

    fe_wire_init(&w, true);
    make_init(&q, 6, FUSE_HANDLE_KILLPRIV_V2);
    q.h.opcode = FUSE_GETATTR;
    CHECK_EQ(feed(&w, &q, sizeof(q), buf, sizeof(buf)), (ssize_t)sizeof(q));
    CHECK_EQ(feed(&w, &q, 10, buf, sizeof(buf)), 10);
    make_reply(&r, 6, 0, 0);
    CHECK_EQ(reply(&w, &r, sizeof(r.out), &got), 0);
    CHECK(!memcmp(&got, &r, sizeof(r)));
    CHECK(!fe_wire_has_killpriv_v2(&w));
    return 0;
}

/* FUSE_TMPFILE (51) leaves as a CREATE, the rest of it byte for byte;
 * a CREATE stays a CREATE. */
static int test_tmpfile_as_create(void)
{
    struct {
        struct fuse_in_header h;
        struct fuse_create_in in;
        char name[2];
    } q, got;
    struct fe_wire w;

    fe_wire_init(&w, true);
    memset(&q, 0, sizeof(q));
    q.h.len = sizeof(q);
    q.h.opcode = 51;
    q.h.unique = 8;
    q.h.nodeid = 1;
    q.in.flags = 02 | 020000000; /* O_RDWR | __O_TMPFILE */
    q.in.mode = 0100600;
    q.in.umask = 022;
    memcpy(q.name, "/", 2);
    CHECK_EQ(feed(&w, &q, sizeof(q), &got, sizeof(got)), (ssize_t)sizeof(q));
    CHECK_EQ(got.h.opcode, FUSE_CREATE);
    got.h.opcode = q.h.opcode;
    CHECK(!memcmp(&got, &q, sizeof(q)));
    q.h.opcode = FUSE_CREATE;
    CHECK_EQ(feed(&w, &q, sizeof(q), &got, sizeof(got)), (ssize_t)sizeof(q));
    CHECK(!memcmp(&got, &q, sizeof(q)));
    return 0;
}

/* FUSE_STATX (52) goes to libfuse as a GETATTR whose argument is the
 * statx one (it begins as fuse_getattr_in), and fe_wire_is_statx() says so
 * until the next request; a STATX too short for its argument is left
 * alone. */
static int test_statx_as_getattr(void)
{
    struct {
        struct fuse_in_header h;
        uint32_t getattr_flags, reserved;
        uint64_t fh;
        uint32_t sx_flags, sx_mask;
    } q, got;
    struct fe_wire w;

    fe_wire_init(&w, true);
    memset(&q, 0, sizeof(q));
    q.h.len = sizeof(q);
    q.h.opcode = 52;
    q.h.unique = 9;
    q.h.nodeid = 5;
    q.getattr_flags = FUSE_GETATTR_FH;
    q.fh = 77;
    q.sx_mask = 0xfff;
    CHECK_EQ(feed(&w, &q, sizeof(q), &got, sizeof(got)), (ssize_t)sizeof(q));
    CHECK_EQ(got.h.opcode, FUSE_GETATTR);
    CHECK(fe_wire_is_statx());
    got.h.opcode = q.h.opcode;
    CHECK(!memcmp(&got, &q, sizeof(q)));
    q.h.opcode = FUSE_GETATTR;
    CHECK_EQ(feed(&w, &q, sizeof(q), &got, sizeof(got)), (ssize_t)sizeof(q));
    CHECK(!fe_wire_is_statx());
    CHECK(!memcmp(&got, &q, sizeof(q)));
    q.h.opcode = 52;
    q.h.len = sizeof(q.h);
    CHECK_EQ(feed(&w, &q, sizeof(q.h), &got, sizeof(got)), (ssize_t)sizeof(q.h));
    CHECK_EQ(got.h.opcode, 52);
    CHECK(!fe_wire_is_statx());
    return 0;
}

/* The STATX reply as the kernel's uapi lays out fuse_statx_out: the
 * validity, then struct fuse_statx at byte 32 (its fields where struct
 * statx has them). */
static int test_statx_reply_layout(void)
{
    unsigned char out[FE_WIRE_STATX_OUT_SIZE];
    struct statx sx;
    uint64_t u64;
    uint32_t u32;
    uint16_t u16;
    int64_t s64;

    memset(&sx, 0, sizeof(sx));
    sx.stx_mask = 0xfff;
    sx.stx_blksize = 4096;
    sx.stx_attributes = 0x30;
    sx.stx_nlink = 3;
    sx.stx_uid = 1000;
    sx.stx_gid = 1001;
    sx.stx_mode = 0100644;
    sx.stx_ino = 12;
    sx.stx_size = 5;
    sx.stx_blocks = 8;
    sx.stx_attributes_mask = 0x100874;
    sx.stx_btime.tv_sec = -2;
    sx.stx_btime.tv_nsec = 999999999;
    sx.stx_mtime.tv_sec = 1700000000;
    sx.stx_rdev_major = 8;
    sx.stx_rdev_minor = 1;
    fe_wire_statx_out(out, &sx, 86400.5);
    memcpy(&u64, out, 8);
    CHECK_EQ(u64, 86400);
    memcpy(&u32, out + 8, 4);
    CHECK_EQ(u32, 500000000);
    memcpy(&u32, out + 32, 4);
    CHECK_EQ(u32, 0xfff);
    memcpy(&u32, out + 32 + 4, 4);
    CHECK_EQ(u32, 4096);
    memcpy(&u64, out + 32 + 8, 8);
    CHECK_EQ(u64, 0x30);
    memcpy(&u32, out + 32 + 16, 4);
    CHECK_EQ(u32, 3);
    memcpy(&u32, out + 32 + 24, 4);
    CHECK_EQ(u32, 1001);
    memcpy(&u16, out + 32 + 28, 2);
    CHECK_EQ(u16, 0100644);
    memcpy(&u64, out + 32 + 32, 8);
    CHECK_EQ(u64, 12);
    memcpy(&u64, out + 32 + 56, 8);
    CHECK_EQ(u64, 0x100874);
    memcpy(&s64, out + 32 + 80, 8);
    CHECK_EQ(s64, -2);
    memcpy(&u32, out + 32 + 88, 4);
    CHECK_EQ(u32, 999999999);
    memcpy(&s64, out + 32 + 112, 8);
    CHECK_EQ(s64, 1700000000);
    memcpy(&u32, out + 32 + 128, 4);
    CHECK_EQ(u32, 8);
    memcpy(&u32, out + 32 + 132, 4);
    CHECK_EQ(u32, 1);
    return 0;
}

/* Negotiate (or not) HANDLE_KILLPRIV_V2 on @w with an INIT and its reply. */
static int negotiate(struct fe_wire *w, uint32_t offered)
{
    struct init_req q;
    struct init_reply r, got;
    char buf[4096];

    fe_wire_init(w, true);
    make_init(&q, 1, offered);
    CHECK_EQ(feed(w, &q, sizeof(q), buf, sizeof(buf)), (ssize_t)sizeof(q));
    make_reply(&r, 1, 0, 0);
    CHECK_EQ(reply(w, &r, sizeof(r.out), &got), 0);
    return 0;
}

/* The kill mark of each WRITE and size SETATTR, read back on the thread
 * that read the request; nothing for other requests, or without
 * HANDLE_KILLPRIV_V2. */
static int test_kill_marks(void)
{
    static const struct {
        const char *name;
        bool negotiated;
        uint32_t opcode, flags; /* write_flags, or setattr valid */
        enum fe_wire_kill want;
    } rows[] = {
        {"write", true, FUSE_WRITE, 0, FE_KILL_NO},
        {"write, kill", true, FUSE_WRITE, FUSE_WRITE_KILL_SUIDGID, FE_KILL_YES},
        {"writeback, kill", true, FUSE_WRITE, FUSE_WRITE_CACHE | FUSE_WRITE_KILL_SUIDGID,
         FE_KILL_UNKNOWN},
        {"truncate", true, FUSE_SETATTR, FATTR_SIZE, FE_KILL_NO},
        {"truncate, kill", true, FUSE_SETATTR, FATTR_SIZE | FATTR_KILL_SUIDGID, FE_KILL_YES},
        {"chown and truncate", true, FUSE_SETATTR, FATTR_SIZE | FATTR_UID | FATTR_KILL_SUIDGID,
         FE_KILL_UNKNOWN},
        {"chmod", true, FUSE_SETATTR, FATTR_MODE, FE_KILL_UNKNOWN},
        {"getattr", true, FUSE_GETATTR, 0, FE_KILL_UNKNOWN},
        {"write, kill, not negotiated", false, FUSE_WRITE, FUSE_WRITE_KILL_SUIDGID,
         FE_KILL_UNKNOWN},
    };
    union {
        struct fuse_write_in w;
        struct fuse_setattr_in s;
    } arg;
    struct {
        struct fuse_in_header h;
        char arg[sizeof(arg)];
    } q;
    char buf[4096];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fe_wire w;

        if (negotiate(&w, rows[i].negotiated ? FUSE_HANDLE_KILLPRIV_V2 : 0))
            return 1;
        memset(&arg, 0, sizeof(arg));
        if (rows[i].opcode == FUSE_WRITE)
            arg.w.write_flags = rows[i].flags;
        else
            arg.s.valid = rows[i].flags;
        memset(&q, 0, sizeof(q));
        q.h.len = sizeof(q);
        q.h.opcode = rows[i].opcode;
        q.h.unique = 2;
        memcpy(q.arg, &arg, sizeof(arg));
        CHECK_EQ(feed(&w, &q, sizeof(q), buf, sizeof(buf)), (ssize_t)sizeof(q));
        if (fe_wire_kill_mark(&w) != rows[i].want) {
            fprintf(stderr, "%s: mark %d, want %d\n", rows[i].name, (int)fe_wire_kill_mark(&w),
                    (int)rows[i].want);
            return 1;
        }
    }
    return 0;
}

static int on_init_calls;

static void count_init(void *arg)
{
    on_init_calls++;
}

/* FUSE over io_uring is offered in the INIT reply (flags2, with
 * FUSE_INIT_EXT) only when asked for and offered by the kernel, and the
 * transport starts once, after that reply is written, with the limits the
 * reply gave. */
static int test_uring_negotiation(void)
{
    static const struct {
        const char *name;
        bool want, offered, expect;
    } rows[] = {
        {"wanted and offered", true, true, true},
        {"wanted, not offered (enable_uring=N)", true, false, false},
        {"offered, not wanted", false, true, false},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fe_wire w;
        struct init_req q;
        struct init_reply r, got;
        char buf[4096];

        fprintf(stderr, "  %s\n", rows[i].name);
        fe_wire_init(&w, true);
        w.want_uring = rows[i].want;
        w.on_init = count_init;
        on_init_calls = 0;
        make_init(&q, 2, FUSE_INIT_EXT | FUSE_MAX_PAGES);
        q.in.flags2 = rows[i].offered ? FE_FUSE_OVER_IO_URING_FLAGS2 : 0;
        CHECK_EQ(feed(&w, &q, sizeof(q), buf, sizeof(buf)), (ssize_t)sizeof(q));
        make_reply(&r, 2, 0, FUSE_MAX_PAGES);
        r.out.max_write = 1u << 20;
        r.out.max_pages = 256;
        CHECK_EQ(reply(&w, &r, sizeof(r.out), &got), 0);
        CHECK_EQ((got.out.flags2 & FE_FUSE_OVER_IO_URING_FLAGS2) != 0, rows[i].expect);
        CHECK_EQ((got.out.flags & FUSE_INIT_EXT) != 0, rows[i].expect);
        CHECK_EQ(w.uring, rows[i].expect);
        CHECK_EQ(on_init_calls, rows[i].expect ? 1 : 0);
        if (rows[i].expect) {
            CHECK_EQ(w.max_write, 1u << 20);
            CHECK_EQ(w.max_pages, 256u);
        }
        /* A later reply starts nothing. */
        make_reply(&r, 4, 0, 0);
        CHECK_EQ(reply(&w, &r, sizeof(r.out), &got), 0);
        CHECK_EQ(on_init_calls, rows[i].expect ? 1 : 0);
    }
    return 0;
}

/* A request taken from a ring entry (header, op argument, payload apart)
 * is laid out byte for byte as read(2) of /dev/fuse gives it, with the
 * channel's work done on it; a header whose length does not add up is
 * refused. */
static int test_uring_request_layout(void)
{
    struct {
        struct fuse_in_header h;
        struct fuse_write_in in;
        char data[100];
    } want;
    /* The struct may be padded at its end; the request is not. */
    const size_t len = sizeof(want.h) + sizeof(want.in) + sizeof(want.data);
    struct fe_wire w;
    char mem[256 + sizeof(want.data)], *start = NULL;
    char in_out[FE_URING_IN_OUT_HEADER_SZ] = {0}, op_in[FE_URING_OP_IN_OUT_SZ] = {0};

    memset(&want, 0, sizeof(want));
    want.h.len = (uint32_t)len;
    want.h.opcode = FUSE_WRITE;
    want.h.unique = 77;
    want.h.nodeid = 12;
    want.in.size = sizeof(want.data);
    want.in.offset = 4096;
    want.in.write_flags = FUSE_WRITE_KILL_SUIDGID;
    for (size_t i = 0; i < sizeof(want.data); i++)
        want.data[i] = (char)(i * 7 + 1);
    memcpy(in_out, &want.h, sizeof(want.h));
    memcpy(op_in, &want.in, sizeof(want.in));
    memcpy(mem + 256, want.data, sizeof(want.data));

    fe_wire_init(&w, true);
    w.added = FUSE_HANDLE_KILLPRIV_V2;
    CHECK_EQ(fe_wire_uring_in(&w, in_out, op_in, mem + 256, 256, sizeof(want.data), &start),
             (ssize_t)len);
    CHECK(start == mem + 256 - sizeof(want.h) - sizeof(want.in));
    CHECK(!memcmp(start, &want, len));
    CHECK_EQ(fe_wire_kill_mark(&w), FE_KILL_YES);

    /* Payload larger than the length says; op argument beyond its area. */
    CHECK_EQ(fe_wire_uring_in(&w, in_out, op_in, mem + 256, 256, len + 1, &start),
             (ssize_t)-EPROTO);
    want.h.len = sizeof(want.h) + FE_URING_OP_IN_OUT_SZ + 1 + sizeof(want.data);
    memcpy(in_out, &want.h, sizeof(want.h));
    CHECK_EQ(fe_wire_uring_in(&w, in_out, op_in, mem + 256, 256, sizeof(want.data), &start),
             (ssize_t)-EPROTO);
    return 0;
}

/* An INTERRUPT is answered on the channel itself (ENOSYS, its unique, a
 * header alone) and the read goes on to the next request, which libfuse
 * gets byte for byte. A socket pair keeps the two requests apart as
 * /dev/fuse does. An INTERRUPT's unique has bit 0 set (the kernel's
 * FUSE_INT_REQ_BIT). */
static int test_interrupt_refused(void)
{
    struct {
        struct fuse_in_header h;
        struct fuse_interrupt_in in;
    } intr = {.h = {.len = sizeof(intr), .opcode = FUSE_INTERRUPT, .unique = 7 | 1},
              .in = {.unique = 6}};
    struct init_req q;
    struct fuse_out_header out;
    struct fe_wire w;
    char buf[4096];
    int sv[2];

    fe_wire_init(&w, false);
    make_init(&q, 8, 0);
    q.h.opcode = FUSE_GETATTR;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    CHECK_EQ(write(sv[0], &intr, sizeof(intr)), (ssize_t)sizeof(intr));
    CHECK_EQ(write(sv[0], &q, sizeof(q)), (ssize_t)sizeof(q));
    CHECK_EQ(fe_wire_read(&w, sv[1], buf, sizeof(buf)), (ssize_t)sizeof(q));
    CHECK(!memcmp(buf, &q, sizeof(q)));
    CHECK_EQ(read(sv[0], buf, sizeof(buf)), (ssize_t)sizeof(out));
    memcpy(&out, buf, sizeof(out));
    CHECK_EQ(out.len, sizeof(out));
    CHECK_EQ(out.error, -ENOSYS);
    CHECK_EQ(out.unique, intr.h.unique);
    CHECK_EQ(fe_wire_interrupts(&w), 1);
    CHECK_EQ(fe_wire_requests(&w), 2);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"init_negotiation", test_init_negotiation},
        {"error_reply_untouched", test_error_reply_untouched},
        {"other_requests_pass", test_other_requests_pass},
        {"tmpfile_as_create", test_tmpfile_as_create},
        {"statx_as_getattr", test_statx_as_getattr},
        {"statx_reply_layout", test_statx_reply_layout},
        {"kill_marks", test_kill_marks},
        {"uring_negotiation", test_uring_negotiation},
        {"uring_request_layout", test_uring_request_layout},
        {"interrupt_refused", test_interrupt_refused},
    };
    return run_tests(cases, sizeof(cases) / sizeof(cases[0]));
}
