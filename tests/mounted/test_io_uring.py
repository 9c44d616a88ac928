#!/usr/bin/env python3
"""FUSE over io_uring (-o io_uring): requests taken from ring entries
instead of read(2) of /dev/fuse, and the fallback to /dev/fuse.

The kernel offers io_uring only while the fuse module's enable_uring
parameter is Y; each case sets the value it needs and puts the previous
one back, whatever happens.  Exits 77 where the kernel has no such
parameter or uext4 was built without liburing.  (with_io_uring.py runs the
other mounted files over io_uring.)
"""

import contextlib
import mmap
import os
import signal
import subprocess
import sys
import time

from uext4test import (UEXT4, IO_URING, Mount, SkipFile, TestFailure, check,
                       eq, fsck, main, mkfs, mounted_at, pattern, read_file,
                       test, workdir, write_file)

PARAM = '/sys/module/fuse/parameters/enable_uring'
FALLBACK = 'the kernel does not offer FUSE over io_uring'


def setup():
    if IO_URING:
        raise SkipFile('this file sets enable_uring itself')
    if not os.path.exists(PARAM):
        raise SkipFile('this kernel has no FUSE over io_uring (%s)' % PARAM)
    out = subprocess.run([UEXT4, '--version'], stdout=subprocess.PIPE,
                         timeout=30).stdout.decode()
    if 'FUSE over io_uring: built in' not in out:
        raise SkipFile('uext4 was built without liburing')


@contextlib.contextmanager
def enable_uring(value):
    with open(PARAM) as f:
        old = f.read().strip()
    try:
        with open(PARAM, 'w') as f:
            f.write(value)
        yield
    finally:
        with open(PARAM, 'w') as f:
            f.write(old)


# name -> contents: empty, small, one page, and more than one 1 MiB
# request (max_write), so payloads fill the entry's buffer.
FILES = {
    'empty': b'',
    'small': pattern(40, 1),
    'page': pattern(4096, 2),
    'big': pattern((1 << 20) * 3 + 13, 3),
}


def exercise(m):
    """Files written and read back byte for byte (buffered and O_DIRECT),
    a directory tree, a rename, xattrs, an unlink."""
    os.mkdir(m.path('d'))
    for name, data in FILES.items():
        write_file(m.path('d', name), data)
    for name, data in FILES.items():
        eq(read_file(m.path('d', name)), data, 'contents of %s' % name)
    fd = os.open(m.path('d', 'big'), os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, 1 << 20)
        n = os.readv(fd, [buf])
        eq(bytes(buf[:n]), FILES['big'][:n], 'O_DIRECT read of big')
    finally:
        os.close(fd)
    eq(sorted(os.listdir(m.path('d'))), sorted(FILES), 'directory listing')
    os.rename(m.path('d', 'small'), m.path('small2'))
    os.setxattr(m.path('small2'), 'user.k', b'v' * 100)
    eq(os.getxattr(m.path('small2'), 'user.k'), b'v' * 100, 'xattr')
    os.unlink(m.path('d', 'page'))
    check(not os.path.exists(m.path('d', 'page')), 'unlinked file is gone')


@test(timeout=60)
def served_through_rings():
    with workdir() as d, enable_uring('Y'):
        img = mkfs(os.path.join(d, 'img'), size='64M')
        with Mount(img, opts=['io_uring']) as m:
            exercise(m)
        served = m.uring_served()
        check(served is not None and served > 50,
              'requests served through io_uring: %r (log: %s)'
              % (served, m.log()))
        check(FALLBACK not in m.log(), 'no fallback: %s' % m.log())
        fsck(img)
        # The same image read back over /dev/fuse.
        with Mount(img, opts=['io_uring', 'no_io_uring']) as m:
            eq(read_file(m.path('d', 'big')), FILES['big'], 'big, remounted')
            eq(read_file(m.path('small2')), FILES['small'], 'small2')
        eq(m.uring_served(), None, 'no_io_uring: rings used')
        fsck(img)


@test(timeout=60)
def fallback_logged():
    with workdir() as d, enable_uring('N'):
        img = mkfs(os.path.join(d, 'img'), size='64M')
        with Mount(img, opts=['io_uring']) as m:
            exercise(m)
        log = m.log()
        eq(log.count(FALLBACK), 1, 'fallback lines in the log (%s)' % log)
        eq(m.uring_served(), None, 'rings used with enable_uring=N')
        fsck(img)


def traffic(mnt, n):
    """A child writing, fsyncing, renaming and unlinking files in @mnt
    until it fails (the daemon is gone) or has done @n rounds."""
    code = r'''
import os, sys
mnt, n = sys.argv[1], int(sys.argv[2])
try:
    for i in range(n):
        p = os.path.join(mnt, 'f%d' % (i % 50))
        with open(p, 'wb') as f:
            f.write(os.urandom(8192 + i % 5000))
            if i % 10 == 0:
                os.fsync(f.fileno())
        os.rename(p, p + '.r')
        os.stat(p + '.r')
        if i % 3 == 0:
            os.unlink(p + '.r')
        open(os.path.join(mnt, 'progress'), 'w').write(str(i))
except OSError as e:
    sys.exit(3)
'''
    return subprocess.Popen([sys.executable, '-c', code, mnt, str(n)])


@test(timeout=90)
def killed_during_traffic():
    """SIGKILL to the daemon while requests are in the rings: the writers
    fail instead of hanging, fusermount3 -u succeeds, and the image
    replays clean."""
    with workdir() as d, enable_uring('Y'):
        img = mkfs(os.path.join(d, 'img'), size='64M')
        m = Mount(img, opts=['io_uring'], expect_clean_exit=False)
        writers = []
        try:
            m.start()
            writers = [traffic(m.mnt, 100000) for _ in range(3)]
            progress = m.path('progress')
            deadline = time.monotonic() + 20
            while True:
                try:
                    if int(read_file(progress) or b'0') >= 200:
                        break
                except (OSError, ValueError):
                    pass
                check(time.monotonic() < deadline, 'no traffic after 20 s')
                time.sleep(0.01)
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(30)
            for w in writers:
                try:
                    rc = w.wait(30)
                except subprocess.TimeoutExpired:
                    raise TestFailure('a writer hangs after the daemon died')
                check(rc != 0, 'a writer finished all rounds (rc %d)' % rc)
            p = subprocess.run(['fusermount3', '-u', m.mnt],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            eq(p.returncode, 0, 'fusermount3 -u after the kill (%s)'
               % p.stdout.decode(errors='replace'))
            check(not mounted_at(m.mnt), 'still mounted after fusermount3 -u')
        finally:
            for w in writers:
                if w.poll() is None:
                    w.kill()
                    w.wait()
            m._kill()
        # The next mount replays the journal; the image is then clean.
        with Mount(img) as m2:
            os.listdir(m2.mnt)
        fsck(img)


if __name__ == '__main__':
    main(setup)
