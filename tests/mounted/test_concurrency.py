#!/usr/bin/env python3
"""Concurrent clients: several processes create, write, read, rename,
link, unlink and list in shared directories at once.  The daemon (whose
test builds run the lock-order checker) must neither deadlock nor abort,
every file must hold exactly what its writer wrote, and the image must be
clean afterwards."""

import os
import random
import signal
import time

from uext4test import (Mount, TestFailure, check, eq, fsck, main, mkfs,
                       pattern, read_file, test, workdir, write_file)

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


if __name__ == '__main__':
    main()
