#!/usr/bin/env python3
"""What the kernel asks of uext4: the FUSE requests behind common
operations, read from the daemon's `-d` trace.

Each request the front end avoids is one it must keep avoiding: no OPEN or
RELEASE and MKNOD instead of CREATE where the kernel checks permissions,
one GETXATTR of security.capability per file written instead of one per
write (HANDLE_KILLPRIV_V2, added to the INIT reply by src/frontend/wire.c),
large reads spliced from the image.  And where the daemon must see opens
(no_default_permissions), it still does.
"""

import collections
import errno
import mmap
import os
import re
from uext4test import (Mount, check, control_socket, daemon_requests, drop_caches, eq, fsck,
                       main, mkfs, pattern, read_file, test, wait_until,
                       workdir, write_file)

OPCODE = re.compile(r'unique: (\d+), opcode: ([A-Z_]+) \(\d+\)')


class TracedMount(Mount):
    """A mount whose daemon traces every request (-d) into its log."""

    def command(self):
        return super().command() + ['-d']

    def requests(self):
        return [m.group(2) for m in OPCODE.finditer(self.log())]


def between(m, fn):
    """The requests fn causes (the trace is read before and after)."""
    before = len(m.requests())
    fn()
    return collections.Counter(m.requests()[before:])


def small_files(m, n):
    for i in range(n):
        write_file(m.path('d', 'f%d' % i), b'x' * 40)


def pwrites(path, n):
    fd = os.open(path, os.O_WRONLY)
    try:
        for i in range(n):
            os.pwrite(fd, b'w' * 4096, i * 4096)
    finally:
        os.close(fd)


@test
def kernel_checks_no_open_release_create():
    with workdir() as d:
        img = mkfs(d + '/img')
        with TracedMount(img) as m:
            os.mkdir(m.path('d'))
            write_file(m.path('warm'), b'w')   # the one OPEN/CREATE -> ENOSYS
            read_file(m.path('warm'))
            got = between(m, lambda: small_files(m, 10))
            eq(got['MKNOD'], 10, 'MKNOD per new file (%r)' % got)
            for op in ('CREATE', 'OPEN', 'RELEASE', 'FLUSH'):
                eq(got[op], 0, '%s requests for 10 new files (%r)' % (op, got))
            check(got['GETXATTR'] <= 10,
                  'at most one GETXATTR per new file (%r)' % got)
            drop_caches()
            got = between(m, lambda: [read_file(m.path('d', 'f%d' % i))
                                      for i in range(10)])
            for op in ('OPEN', 'RELEASE'):
                eq(got[op], 0, '%s requests for 10 cold reads (%r)' % (op, got))
            eq(got['READ'], 10, 'one READ per cold read (%r)' % got)
        fsck(img)


@test
def one_capability_check_per_file():
    with workdir() as d:
        img = mkfs(d + '/img')
        with TracedMount(img) as m:
            p = m.path('f')
            write_file(p, b'')
            got = between(m, lambda: pwrites(p, 20))
            eq(got['WRITE'], 20, 'WRITE requests (%r)' % got)
            check(got['GETXATTR'] <= 1,
                  'GETXATTR before every write (%r): HANDLE_KILLPRIV_V2 '
                  'not negotiated' % got)
            check('INIT reply: added flags 0x10000000' in m.log(),
                  'the INIT reply did not get HANDLE_KILLPRIV_V2')
        fsck(img)


@test
def large_reads_are_spliced():
    with workdir() as d:
        img = mkfs(d + '/img')
        data = pattern(1 << 20, 4)
        with TracedMount(img) as m:
            write_file(m.path('big'), data)
            write_file(m.path('small'), b'tiny')
            drop_caches()
            before = m.log().count('(splice)')
            eq(read_file(m.path('big')), data, 'content of a spliced read')
            check(m.log().count('(splice)') - before >= 4,
                  'no spliced replies for a 1 MiB read')
            before = m.log().count('(splice)')
            eq(read_file(m.path('small')), b'tiny', 'inline file')
            eq(m.log().count('(splice)'), before, 'an inline file spliced')
        fsck(img)


@test
def missing_names_are_remembered():
    """A name found missing is not asked for again, and creating, linking
    or renaming to it (all through the kernel) makes it appear."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with TracedMount(img) as m:
            os.mkdir(m.path('d'))
            write_file(m.path('src'), b'src')
            names = ['new', 'linked', 'renamed', 'dir']
            for n in names:
                check(not os.path.exists(m.path('d', n)), n + ' exists')
            got = between(m, lambda: [os.path.exists(m.path('d', n))
                                      for n in names])
            eq(got['LOOKUP'], 0, 'LOOKUPs of names known missing (%r)' % got)
            write_file(m.path('d', 'new'), b'new')
            os.link(m.path('src'), m.path('d', 'linked'))
            write_file(m.path('tmp'), b'moved')
            os.rename(m.path('tmp'), m.path('d', 'renamed'))
            os.mkdir(m.path('d', 'dir'))
            eq(read_file(m.path('d', 'new')), b'new', 'created over a negative entry')
            eq(read_file(m.path('d', 'linked')), b'src', 'linked over one')
            eq(read_file(m.path('d', 'renamed')), b'moved', 'renamed over one')
            check(os.path.isdir(m.path('d', 'dir')), 'mkdir over one')
            os.unlink(m.path('d', 'new'))
            check(not os.path.exists(m.path('d', 'new')), 'unlinked name')
        fsck(img)


@test
def daemon_checks_see_every_open():
    with workdir() as d:
        img = mkfs(d + '/img')
        with TracedMount(img, opts=['no_default_permissions']) as m:
            os.mkdir(m.path('d'))
            before = len(m.requests())
            small_files(m, 5)
            eq(m.requests()[before:].count('CREATE'), 5, 'CREATE per new file')
            # RELEASE is sent in the background: it may trail the close.
            wait_until(lambda: m.requests()[before:].count('RELEASE'), 5,
                       'RELEASE per close')
            got = between(m, lambda: [read_file(m.path('d', 'f%d' % i))
                                      for i in range(5)])
            eq(got['OPEN'], 5, 'OPEN per open (%r)' % got)
        fsck(img)


@test
def odirect_writes_send_no_invalidation():
    # Without async_dio the kernel drops the cached range after each
    # O_DIRECT write itself (src/frontend/session.c): the daemon writes the
    # reply and the data, not a page-cache notification besides.
    # test_concurrency's odirect_aio_* check that readers still see the data.
    n = 100
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('f')
            write_file(p, pattern(64 * 4096))
            fd = os.open(p, os.O_WRONLY | os.O_DIRECT)
            buf = mmap.mmap(-1, 4096)
            buf.write(b'd' * 4096)
            try:
                os.pwrite(fd, buf, 0)            # settle: the first one in
                before = proc_syscw(m.proc.pid)
                for i in range(n):
                    eq(os.pwritev(fd, [buf], (i % 64) * 4096), 4096, 'O_DIRECT write')
                after = proc_syscw(m.proc.pid)
            finally:
                os.close(fd)
            # Per write: the reply and the image pwrite; a commit or two
            # of the journal may fall in between.
            check(after - before <= 2 * n + 20,
                  '%d writes by the daemon for %d O_DIRECT writes' % (after - before, n))
            eq(read_file(p)[:4096], b'd' * 4096, 'the data read back')
        fsck(img)


def proc_syscw(pid):
    with open('/proc/%d/io' % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith('syscw:'))


def control_stats(mnt):
    """The number of requests the daemon serving @mnt has taken, from its
    control socket's "stats"."""
    return daemon_requests(control_socket(mnt))


@test
def stats_counts_every_request():
    # bench/run.py divides this count by the operations of a workload: it
    # must see every request the trace shows, and nothing else.
    with workdir() as d:
        img = mkfs(d + '/img')
        with TracedMount(img) as m:
            write_file(m.path('f'), b'x')
            os.mkdir(m.path('d'))
            s0, t0 = control_stats(m.mnt), len(m.requests())
            for _ in range(50):
                try:
                    os.getxattr(m.path('f'), 'user.missing')
                except OSError as e:
                    eq(e.errno, errno.ENODATA, 'getxattr of a missing name')
            small_files(m, 7)
            s1, t1 = control_stats(m.mnt), len(m.requests())
            check(t1 - t0 >= 50 + 7, 'the trace shows %d requests' % (t1 - t0))
            eq(s1 - s0, t1 - t0, 'requests counted by "stats" vs the -d trace (%r)'
               % collections.Counter(m.requests()[t0:t1]))
        fsck(img)


if __name__ == '__main__':
    main()
