#!/usr/bin/env python3
"""Concurrent clients: several processes create, write, read, rename,
link, unlink and list in shared directories at once.  The daemon (whose
test builds run the lock-order checker) must neither deadlock nor abort,
every file must hold exactly what its writer wrote, and the image must be
clean afterwards."""

import ctypes
import mmap
import os
import platform
import random
import signal
import time

from uext4test import (Mount, TestFailure, check, eq, fsck, main, mkfs,
                       pattern, read_file, test, wait_until, workdir,
                       write_file)

WORKERS = 6
SECONDS = 8


def aliases(mine, p):
    """Names of this worker that are hard links to p (p included)."""
    ino = os.stat(p).st_ino
    return [n for n in mine if os.stat(n).st_ino == ino]


def worker(root, k, seed):
    """Runs in a child; returns normally or raises."""
    rnd = random.Random(seed)
    mine = {}
    deadline = time.monotonic() + SECONDS
    i = 0
    while time.monotonic() < deadline:
        i += 1
        op = rnd.randrange(10)
        d = os.path.join(root, 'shared%d' % rnd.randrange(3))
        name = os.path.join(d, 'w%d-%d' % (k, i))
        if op < 3 or not mine:
            data = pattern(rnd.choice([0, 10, 100, 4096, 5000, 70000]),
                           k * 100000 + i)
            write_file(name, data)
            mine[name] = data
        elif op == 3:
            old = rnd.choice(sorted(mine))
            new = os.path.join(d, 'r%d-%d' % (k, i))
            os.rename(old, new)
            mine[new] = mine.pop(old)
        elif op == 4:
            old = rnd.choice(sorted(mine))
            os.unlink(old)
            del mine[old]
        elif op == 5:
            old = rnd.choice(sorted(mine))
            os.link(old, name)
            mine[name] = mine[old]
            with open(old, 'r+b') as f:       # both names see the change
                f.write(b'L')
            for n in aliases(mine, old):
                mine[n] = b'L' + mine[n][1:]
        elif op == 6:
            os.listdir(d)
        elif op == 7:
            p = rnd.choice(sorted(mine))
            got = read_file(p)
            if got != mine[p]:
                raise TestFailure('worker %d: %s has %d bytes, want %d'
                                  % (k, p, len(got), len(mine[p])))
        elif op == 8:
            sub = os.path.join(d, 'dir%d-%d' % (k, i))
            os.mkdir(sub)
            write_file(os.path.join(sub, 'x'), b'x')
            os.rename(sub, os.path.join(root, 'shared%d' % rnd.randrange(3),
                                        'moved%d-%d' % (k, i)))
        else:
            p = rnd.choice(sorted(mine))
            os.truncate(p, len(mine[p]) // 2)
            for n in aliases(mine, p):
                mine[n] = mine[n][:len(mine[n]) // 2]
    return mine


@test(timeout=120)
def parallel_clients():
    with workdir() as d:
        img = mkfs(d + '/img', size='256M')
        with Mount(img) as m:
            for s in range(3):
                os.mkdir(m.path('shared%d' % s))
            pids = {}
            for k in range(WORKERS):
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(r)
                    code = 0
                    try:
                        signal.alarm(SECONDS + 60)
                        mine = worker(m.mnt, k, 1000 + k)
                        out = '\n'.join('%s %d' % (n, len(v))
                                        for n, v in sorted(mine.items()))
                        os.write(w, out.encode())
                    except BaseException as e:   # noqa: B902
                        os.write(w, ('ERROR %r' % e).encode())
                        code = 1
                    os._exit(code)
                os.close(w)
                pids[pid] = r
            results = {}
            for pid, r in pids.items():
                chunks = []
                while True:
                    b = os.read(r, 65536)
                    if not b:
                        break
                    chunks.append(b)
                os.close(r)
                _, status = os.waitpid(pid, 0)
                results[pid] = (status, b''.join(chunks).decode())
            errors = [out for status, out in results.values()
                      if status != 0 or out.startswith('ERROR')]
            if errors:
                raise TestFailure('workers failed: %s' % '; '.join(
                    e[:300] for e in errors))
            expect = {}
            for _, out in results.values():
                for line in out.splitlines():
                    n, size = line.rsplit(' ', 1)
                    expect[n] = int(size)
            for n, size in expect.items():
                eq(os.stat(n).st_size, size, 'size of ' + n)
            names = set()
            for s in range(3):
                for e in os.listdir(m.path('shared%d' % s)):
                    if e.startswith(('w', 'r')):
                        names.add(m.path('shared%d' % s, e))
            eq(names, set(expect), 'surviving names')
            check(len(expect) > 50, 'only %d files survived' % len(expect))
        fsck(img)
        with Mount(img) as m:
            for n, size in expect.items():
                eq(len(read_file(n)), size, 'after remount ' + n)
        fsck(img)


@test(timeout=120)
def parallel_io_one_file():
    """Writers to disjoint ranges of one file, readers alongside."""
    with workdir() as d:
        img = mkfs(d + '/img', size='128M')
        chunk = 256 * 1024
        with Mount(img) as m:
            p = m.path('shared')
            write_file(p, b'')
            pids = []
            for k in range(4):
                pid = os.fork()
                if pid == 0:
                    code = 0
                    try:
                        signal.alarm(60)
                        fd = os.open(p, os.O_RDWR)
                        for rnd in range(20):
                            data = pattern(chunk, k * 100 + rnd)
                            for off in range(0, chunk, 8192):
                                os.pwrite(fd, data[off:off + 8192],
                                          k * chunk + off)
                            os.pread(fd, 4 * chunk, 0)
                            if rnd % 5 == 0:
                                os.fsync(fd)
                        os.close(fd)
                    except BaseException:   # noqa: B902
                        code = 1
                    os._exit(code)
                pids.append(pid)
            for pid in pids:
                _, status = os.waitpid(pid, 0)
                eq(status, 0, 'writer exit status')
            want = b''.join(pattern(chunk, k * 100 + 19) for k in range(4))
            eq(read_file(p), want, 'final content')
        fsck(img)


class _Iocb(ctypes.Structure):
    _fields_ = [('data', ctypes.c_uint64), ('key', ctypes.c_uint32),
                ('rw_flags', ctypes.c_uint32), ('opcode', ctypes.c_uint16),
                ('reqprio', ctypes.c_int16), ('fildes', ctypes.c_uint32),
                ('buf', ctypes.c_uint64), ('nbytes', ctypes.c_uint64),
                ('offset', ctypes.c_int64), ('reserved2', ctypes.c_uint64),
                ('flags', ctypes.c_uint32), ('resfd', ctypes.c_uint32)]


class _IoEvent(ctypes.Structure):
    _fields_ = [('data', ctypes.c_uint64), ('obj', ctypes.c_uint64),
                ('res', ctypes.c_int64), ('res2', ctypes.c_int64)]


# io_setup, io_destroy, io_submit, io_getevents (no libaio needed)
_AIO_NR = {'x86_64': (206, 207, 209, 208), 'aarch64': (0, 1, 2, 4)}
IOCB_CMD_PWRITE = 1


class Aio:
    """One asynchronous O_DIRECT pwrite at a time, through the raw
    syscalls (the kernel's aio path, unlike a synchronous write)."""
    def __init__(self):
        nr = _AIO_NR.get(platform.machine())
        if nr is None:
            raise TestFailure('no aio syscall numbers for %s'
                              % platform.machine())
        self.nr_setup, self.nr_destroy, self.nr_submit, self.nr_get = nr
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.ctx = ctypes.c_ulong(0)
        self._call(self.nr_setup, 4, ctypes.byref(self.ctx))

    def _call(self, nr, *args):
        r = self.libc.syscall(nr, *args)
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return r

    def pwrite(self, fd, buf, off):
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        cb = _Iocb(opcode=IOCB_CMD_PWRITE, fildes=fd, buf=addr,
                   nbytes=len(buf), offset=off)
        cbs = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(cb))
        eq(self._call(self.nr_submit, self.ctx, 1, cbs), 1, 'io_submit')
        ev = _IoEvent()
        eq(self._call(self.nr_get, self.ctx, 1, 1, ctypes.byref(ev), None), 1,
           'io_getevents')
        return ev.res

    def close(self):
        self.libc.syscall(self.nr_destroy, self.ctx)


def odirect_aio_check(opts=(), rounds=1000, strict=True):
    """fstests generic/451: asynchronous O_DIRECT writes of a range that
    two other processes keep reading through the page cache; once a write
    has completed, a buffered read must return its bytes (@strict), or
    at least soon after the last one."""
    size = 655360
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=opts) as m:
            p = m.path('f')
            dfd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
            bfd = os.open(p, os.O_RDONLY)
            buf = mmap.mmap(-1, size)      # page-aligned for O_DIRECT
            aio = Aio()
            readers = []
            try:
                os.pwrite(dfd, buf, 0)
                for _ in range(2):
                    pid = os.fork()
                    if pid == 0:
                        try:
                            signal.alarm(100)
                            while True:
                                os.pread(bfd, size, 0)
                        finally:
                            os._exit(0)
                    readers.append(pid)
                stale = 0
                for i in range(rounds):
                    want = bytes([i % 250 + 1]) * size
                    buf.seek(0)
                    buf.write(want)
                    eq(aio.pwrite(dfd, buf, 0), size, 'aio O_DIRECT write')
                    if os.pread(bfd, size, 0) != want:
                        stale += 1
                if strict:
                    eq(stale, 0, 'buffered reads of old bytes after %d '
                       'completed O_DIRECT writes' % rounds)
                wait_until(lambda: os.pread(bfd, size, 0) == want, True,
                           'buffered read after the last O_DIRECT write')
            finally:
                for pid in readers:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                aio.close()
                os.close(dfd)
                os.close(bfd)
        fsck(img)


@test(timeout=120)
def odirect_aio_with_buffered_reads():
    odirect_aio_check()


@test(timeout=120)
def odirect_aio_one_worker():
    """With one worker the daemon cannot wait for the invalidation (the
    reads the kernel waits for need a worker): no deadlock (as there was
    when the worker did it after its reply), and buffered reads see the
    data once the invalidation is done."""
    odirect_aio_check(['max_threads=1'], rounds=300, strict=False)


if __name__ == '__main__':
    main()
