#!/usr/bin/env python3
"""Adversarial tests of WRITEs answered early (-o early_write, the default):
a spliced WRITE is answered once its blocks are allocated and its bytes
move from the pipe, which holds the kernel's page-cache pages by
reference, into the image after the answer, under the inode lock
(src/fs/file.c uext4_write_pipe_early, src/frontend/file.c fe_write_told).

UEXT4_FAULT_WRITE_DELAY_US (src/e2/fault.h) makes every move of 64 KiB or
more wait first, so the caller's next requests meet a WRITE that is
answered and not yet in the image:
- read_after_answer: an O_DIRECT read, copy_file_range and SEEK_DATA of the
  range right after the write(2) returned see its bytes;
- pages_rewritten_in_the_pipe: a second write(2) and an mmap store over
  the pages still in the pipe: the last writer's bytes win, through the
  mount, in the image after unmount;
- racing_ops: truncate, punch, zero range, keep-size fallocate,
  copy_file_range, rename-over and unlink started while a 1 MiB write is
  being moved: the file is one of the two serial outcomes;
- overlapping_writers: two processes writing overlapping 1.5 MiB ranges
  (each write(2) one unit under the kernel's inode lock): one of the two
  serial outcomes, every round;
- full_fs_fails_the_write: the file system (not the host) full: the
  write(2) reports ENOSPC itself, nothing is latched, the bytes reported
  written are there;
- error_per_file: a move that fails after the answer reaches its own
  file's fsync once, not another file's; close and the daemon survive;
- daemon_killed_in_flight: SIGKILL of the daemon while answered moves
  wait: after a remount every fsync'd byte is there, e2fsck clean;
- writer_interrupted_and_killed: a signal to a writer mid-write(2) (FUSE
  INTERRUPT) and a SIGKILL of another: what was reported written is there,
  the daemon goes on.
Each ordering test runs with the default threads and max_threads=1. Every
image ends with e2fsck -fn.
"""
import errno
import mmap
import os
import signal
import subprocess
import sys
import threading
import time

from uext4test import (Mount, apply_write, check, control_socket, daemon_stats,
                       debugfs_cat, drop_caches, eq, fallocate, fsck, main,
                       mkfs, pattern, read_file, test, wait_until, workdir)

KiB, MiB = 1 << 10, 1 << 20
DELAY_US = 150000
THREADS = ([], ['max_threads=1'])
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 1, 2, 0x10


def slow_mount(img, opts, mnt=None, **kw):
    env = {'UEXT4_FAULT_WRITE_DELAY_US': str(DELAY_US)}
    env.update(kw.pop('env', {}))
    return Mount(img, mnt=mnt, opts=opts, env=env, **kw)


def early(m):
    return daemon_stats(control_socket(m.mnt))['early']


def prime(m):
    """The channel splices once a WRITE of 64 KiB or more has come
    (src/frontend/wire.c); every worker has then seen one."""
    fd = os.open(m.path('.prime'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(4):
            os.pwrite(fd, bytes(128 * KiB), 0)
    finally:
        os.close(fd)
    os.unlink(m.path('.prime'))


def odirect_read(path, size, off=0):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, size)
        n = os.preadv(fd, [buf], off)
        return bytes(buf[:n])
    finally:
        os.close(fd)


def check_everywhere(m, img, want, what):
    """@want (name -> bytes) through the mount with a cold cache and, after
    the unmount, in the image; e2fsck clean."""
    for name, data in want.items():
        eq(odirect_read(m.path(name), len(data) + MiB), data,
           '%s: %s read with O_DIRECT' % (what, name))
    drop_caches(3)
    for name, data in want.items():
        eq(read_file(m.path(name)), data, '%s: %s read cold' % (what, name))
    m.stop()
    for name, data in want.items():
        check(debugfs_cat(img, '/' + name) == data,
              '%s: %s in the image differs' % (what, name))
    fsck(img)


@test(timeout=120)
def read_after_answer():
    for opts in THREADS:
        with workdir() as d:
            img = mkfs(d + '/img', size='64M')
            with slow_mount(img, opts) as m:
                prime(m)
                data = pattern(MiB, 11)
                fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    n0 = early(m)
                    eq(os.write(fd, data), len(data), 'write(2)')
                    # The second half's move is now waiting (DELAY_US).
                    eq(odirect_read(m.path('f'), len(data)), data,
                       '%s: O_DIRECT read right after the write' % opts)
                    eq(os.lseek(fd, 0, os.SEEK_DATA), 0, 'SEEK_DATA')
                    os.pwrite(fd, data[:256 * KiB], MiB)
                    dst = os.open(m.path('g'), os.O_RDWR | os.O_CREAT, 0o644)
                    try:
                        eq(os.copy_file_range(fd, dst, len(data), 0, 0),
                           len(data), 'copy_file_range')
                    finally:
                        os.close(dst)
                    check(early(m) > n0, '%s: no WRITE answered early' % opts)
                finally:
                    os.close(fd)
                want = data + data[:256 * KiB]
                check_everywhere(m, img, {'f': want, 'g': data},
                                 'read_after_answer %s' % opts)


@test(timeout=120)
def pages_rewritten_in_the_pipe():
    for opts in THREADS:
        with workdir() as d:
            img = mkfs(d + '/img', size='64M')
            with slow_mount(img, opts) as m:
                prime(m)
                model = bytearray()
                fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    for i in range(4):
                        a = pattern(MiB, 20 + i)
                        b = pattern(200 * KiB, 40 + i)
                        c = pattern(3000, 60 + i)
                        os.pwrite(fd, a, 0)
                        apply_write(model, 0, a)
                        # Over pages whose first copy may still be in the
                        # pipe: a spliced WRITE and a small one.
                        os.pwrite(fd, b, 512 * KiB + 4 * KiB * i)
                        apply_write(model, 512 * KiB + 4 * KiB * i, b)
                        os.pwrite(fd, c, 512 * KiB + 100)
                        apply_write(model, 512 * KiB + 100, c)
                        # An mmap store, then a write(2) over the same page.
                        with mmap.mmap(fd, MiB) as mm:
                            mm[600 * KiB:600 * KiB + 5] = b'store'
                            apply_write(model, 600 * KiB, b'store')
                            os.pwrite(fd, a[:512 * KiB], 512 * KiB)
                            apply_write(model, 512 * KiB, a[:512 * KiB])
                            mm[700 * KiB:700 * KiB + 6] = b'stored'
                            apply_write(model, 700 * KiB, b'stored')
                            mm.flush()
                        eq(odirect_read(m.path('f'), 2 * MiB), bytes(model),
                           '%s round %d: O_DIRECT read' % (opts, i))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                check_everywhere(m, img, {'f': bytes(model)},
                                 'pages_rewritten %s' % opts)


def start_together(fns):
    """Run each of @fns in a thread released at once; their exceptions."""
    bar = threading.Barrier(len(fns))
    errs = []

    def run(fn):
        bar.wait(10)
        try:
            fn()
        except Exception as e:     # noqa: BLE001 - reported by the caller
            errs.append(e)
    ts = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
        check(not t.is_alive(), 'a racing thread hung')
    return errs


def race_op(m, name, fd, data, old):
    """(the racing op, the two serial outcomes of @name: write first, op
    first; None for 'either name content is fine but must be one of')."""
    path = m.path(name)
    size = len(old)

    def punch(mode, off, n):
        def op():
            fd2 = os.open(path, os.O_RDWR)
            try:
                fallocate(fd2, mode, off, n)
            finally:
                os.close(fd2)
        return op

    def zeroed(buf, off, n):
        b = bytearray(buf)
        b[off:off + n] = bytes(len(b[off:off + n]))
        return bytes(b)

    new = data + old[len(data):]
    if name == 'truncate':
        return (lambda: os.truncate(path, 300000), [new[:300000], data])
    if name == 'punch':
        return (punch(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      100 * KiB, 700 * KiB),
                [zeroed(new, 100 * KiB, 700 * KiB), new])
    if name == 'zero':
        return (punch(FALLOC_FL_ZERO_RANGE, 900 * KiB, 300 * KiB),
                [zeroed(new, 900 * KiB, 300 * KiB),
                 zeroed(new, MiB, 176 * KiB)])
    if name == 'keep_size':
        return (punch(FALLOC_FL_KEEP_SIZE, 0, 4 * MiB), [new])
    if name == 'copy_in':
        src = pattern(256 * KiB, 99)
        with open(m.path('src'), 'wb') as f:
            f.write(src)

        def op():
            s = os.open(m.path('src'), os.O_RDONLY)
            t = os.open(path, os.O_WRONLY)
            try:
                eq(os.copy_file_range(s, t, len(src), 0, 256 * KiB),
                   len(src), 'copy_file_range into the file')
            finally:
                os.close(s)
                os.close(t)
        b = bytearray(new)
        b[256 * KiB:512 * KiB] = src
        return op, [bytes(b), new]
    if name in ('rename_over', 'unlink'):
        with open(m.path('other'), 'wb') as f:
            f.write(pattern(size, 98))
        if name == 'unlink':
            return lambda: os.unlink(path), [None]
        return lambda: os.rename(m.path('other'), path), [pattern(size, 98)]
    raise ValueError(name)


RACES = ['truncate', 'punch', 'zero', 'keep_size', 'copy_in', 'rename_over',
         'unlink']


def one_race(m, name, rnd):
    old = pattern(2 * MiB, 70 + rnd)
    data = pattern(MiB, 80 + rnd)
    with open(m.path(name), 'wb') as f:
        f.write(old)
    fd = os.open(m.path(name), os.O_RDWR)
    try:
        op, outcomes = race_op(m, name, fd, data, old)

        def write():
            eq(os.pwrite(fd, data, 0), len(data), 'pwrite')

        def late_op():
            # Round 1: while the first half's move waits (DELAY_US).
            time.sleep(0.05 * rnd)
            op()
        errs = start_together([write, late_op])
        check(not errs, '%s: %r' % (name, errs))
        if name in ('rename_over', 'unlink'):
            eq(odirect_read('/proc/self/fd/%d' % fd, len(data)), data,
               '%s: the descriptor\'s file' % name)
        os.fsync(fd)
    finally:
        os.close(fd)
    if outcomes == [None]:
        check(not os.path.exists(m.path(name)), 'unlinked file still there')
        return
    drop_caches(3)
    got = read_file(m.path(name))
    check(got in outcomes, '%s round %d: %d bytes, not a serial outcome '
          '(sizes %s)' % (name, rnd, len(got), [len(o) for o in outcomes]))
    os.unlink(m.path(name))


@test(timeout=180)
def racing_ops():
    for opts in THREADS:
        with workdir() as d:
            img = mkfs(d + '/img', size='64M')
            with slow_mount(img, opts, env={
                    'UEXT4_FAULT_WRITE_DELAY_US': '50000'}) as m:
                prime(m)
                for rnd in range(2):
                    for name in RACES:
                        one_race(m, name, rnd)
            fsck(img)


def overlap_writer(path, off, data, go, keep, rounds):
    """Child: on each byte read from the pipe @go, pwrite @data at @off of
    @path; closes every other end of the pipes (@keep is its own read end)
    so that it sees EOF once the parent closes its write end."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for fd in go:
            if fd != keep:
                os.close(fd)
        for _ in range(rounds):
            if not os.read(keep, 1):
                break
            fd = os.open(path, os.O_WRONLY)
            os.pwrite(fd, data, off)
            os.close(fd)
        code = 0
    finally:
        os._exit(code)


@test(timeout=180)
def overlapping_writers():
    rounds = 8
    a, b = pattern(3 * MiB // 2, 1), pattern(3 * MiB // 2, 2)
    ab, ba = bytearray(2 * MiB), bytearray(2 * MiB)
    for model, first, second in ((ab, (0, a), (MiB // 2, b)),
                                 (ba, (MiB // 2, b), (0, a))):
        apply_write(model, *first)
        apply_write(model, *second)
    for opts in THREADS:
        with workdir() as d:
            img = mkfs(d + '/img', size='64M')
            with slow_mount(img, opts, env={
                    'UEXT4_FAULT_WRITE_DELAY_US': '20000'}) as m:
                prime(m)
                path = m.path('f')
                goa, gob = os.pipe(), os.pipe()
                with open(path, 'wb'):
                    pass
                pipes = goa + gob
                pids = [overlap_writer(path, 0, a, pipes, goa[0], rounds),
                        overlap_writer(path, MiB // 2, b, pipes, gob[0],
                                       rounds)]
                os.close(goa[0])
                os.close(gob[0])
                try:
                    for rnd in range(rounds):
                        os.truncate(path, 0)
                        os.write(goa[1], b'x')
                        os.write(gob[1], b'x')
                        want = 3 * MiB // 2 + MiB // 2
                        wait_until(lambda: os.stat(path).st_size, want,
                                   'both writes', timeout=20)
                        # Both wrote once the other's bytes show too.
                        got = b''
                        for _ in range(200):
                            got = odirect_read(path, 2 * MiB)
                            if got in (bytes(ab), bytes(ba)):
                                break
                            time.sleep(0.05)
                        check(got in (bytes(ab), bytes(ba)),
                              '%s round %d: not a serial outcome' %
                              (opts, rnd))
                finally:
                    os.close(goa[1])
                    os.close(gob[1])
                    for pid in pids:
                        _, st = os.waitpid(pid, 0)
                        eq(os.waitstatus_to_exitcode(st), 0, 'writer exit')
            fsck(img)


@test(timeout=120)
def full_fs_fails_the_write():
    for opts in THREADS:
        with workdir() as d:
            img = mkfs(d + '/img', size='16M')
            with slow_mount(img, opts) as m:
                prime(m)
                fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
                written, err = 0, None
                try:
                    n0 = early(m)
                    try:
                        for _ in range(64):
                            i = written // MiB
                            data = pattern(MiB, 50 + i)[written % MiB:]
                            written += os.write(fd, data)
                    except OSError as e:
                        err = e.errno
                    # The allocation decides before the answer: the file
                    # system's own ENOSPC is the write(2)'s, not a latched
                    # one found by the fsync.
                    eq(err, errno.ENOSPC, '%s: the write(2) that filled '
                       'the file system' % opts)
                    check(early(m) > n0, 'no WRITE answered early')
                    os.fsync(fd)
                finally:
                    os.close(fd)
                want = b''.join(pattern(MiB, 50 + i)
                                for i in range(32))[:written]
                check(written < 16 * MiB, 'written %d' % written)
                check_everywhere(m, img, {'f': want}, 'full %s' % opts)


@test(timeout=120)
def error_per_file():
    with workdir() as d:
        img = mkfs(d + '/img', size='64M')
        # Every move of 512 KiB or more fails after its answer.
        with Mount(img, opts=['max_threads=1'],
                   env={'UEXT4_FAULT_FAIL_BIG': str(512 * KiB),
                        'UEXT4_FAULT_ERRNO': 'EIO'},
                   expect_clean_exit=False) as m:
            prime(m)
            fa = os.open(m.path('a'), os.O_RDWR | os.O_CREAT, 0o644)
            fb = os.open(m.path('b'), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                # An overwrite: a move into new blocks past the end would
                # zero the gap with a write as long, which fails first.
                old = pattern(MiB, 4)
                for off in range(0, MiB, 32 * KiB):
                    os.pwrite(fa, old[off:off + 32 * KiB], off)
                os.fsync(fa)
                n0 = early(m)
                eq(os.pwrite(fa, pattern(MiB, 5), 0), MiB, 'a: the write(2)')
                eq(early(m), n0 + 2, 'a: two WRITEs answered early')
                eq(os.pwrite(fb, pattern(300 * KiB, 6), 0), 300 * KiB,
                   'b: a write that moves in smaller pieces')
                os.fsync(fb)        # not a's error
                try:
                    os.fsync(fa)
                    raise AssertionError('a: fsync reported no error')
                except OSError as e:
                    eq(e.errno, errno.EIO, 'a: fsync')
                os.fsync(fa)        # once
                os.fsync(fb)
            finally:
                os.close(fa)
                os.close(fb)
            # close(2) and release went by; the daemon still answers.
            eq(read_file(m.path('b')), pattern(300 * KiB, 6), 'b after')
            eq(read_file(m.path('a')), old, 'a: the bytes the image kept')
            with open(m.path('c'), 'wb') as f:
                f.write(b'alive')
            eq(read_file(m.path('c')), b'alive', 'the daemon still serves')
        fsck(img)


@test(timeout=120)
def daemon_killed_in_flight():
    with workdir() as d:
        img = mkfs(d + '/img', size='128M')
        safe = pattern(3 * MiB, 31)
        m = slow_mount(img, [], expect_clean_exit=False)
        with m:
            prime(m)
            with open(m.path('safe'), 'wb') as f:
                f.write(safe)
                os.fsync(f.fileno())
            fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
            os.write(fd, safe)
            os.fsync(fd)
            done = []

            def writer():
                try:
                    for i in range(64):
                        os.pwrite(fd, pattern(MiB, 40 + i), 3 * MiB + i * MiB)
                except OSError as e:
                    done.append(e.errno)
            n0 = early(m)
            t = threading.Thread(target=writer)
            t.start()
            wait_until(lambda: early(m) >= n0 + 4, True,
                       'answered WRITEs in flight', timeout=20)
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(10)
            t.join(20)
            check(not t.is_alive(), 'the writer hung after the kill')
            os.close(fd)
        with Mount(img, mnt=d + '/mnt2') as m2:
            eq(read_file(m2.path('safe')), safe, 'the fsync\'d file')
            eq(read_file(m2.path('f'))[:len(safe)], safe,
               'the fsync\'d part of the file written on')
        fsck(img)


WRITER = r'''
import os, signal, sys
signal.signal(signal.SIGUSR1, lambda *a: None)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
data = bytes([int(sys.argv[2])]) * (48 << 20)
os.write(1, b'go\n')
n = os.write(fd, data)
os.write(1, b'%d\n' % n)
'''


@test(timeout=120)
def writer_interrupted_and_killed():
    for opts in THREADS:
        with workdir() as d:
            img = mkfs(d + '/img', size='128M')
            with slow_mount(img, opts, env={
                    'UEXT4_FAULT_WRITE_DELAY_US': '30000'}) as m:
                prime(m)
                for name, sig in (('int', signal.SIGUSR1),
                                  ('kill', signal.SIGKILL)):
                    p = subprocess.Popen([sys.executable, '-c', WRITER,
                                          m.path(name), '7'],
                                         stdout=subprocess.PIPE)
                    try:
                        eq(p.stdout.readline(), b'go\n', 'writer started')
                        n0 = early(m)
                        wait_until(lambda: early(m) >= n0 + 3, True,
                                   'the writer\'s WRITEs', timeout=20)
                        p.send_signal(sig)
                        out = p.stdout.read()
                    finally:
                        p.wait(30)
                    got = read_file(m.path(name))
                    check(got == b'\7' * len(got), '%s: bytes' % name)
                    if sig == signal.SIGUSR1:
                        eq(p.returncode, 0, 'writer exit')
                        n = int(out)
                        check(0 < n <= 48 * MiB, 'written %d' % n)
                        check(len(got) >= n, '%s: %d of %d written bytes'
                              % (name, len(got), n))
                    else:
                        eq(p.returncode, -signal.SIGKILL, 'writer killed')
                with open(m.path('after'), 'wb') as f:
                    f.write(pattern(MiB, 3))
                eq(read_file(m.path('after')), pattern(MiB, 3), 'after')
            fsck(img)


if __name__ == '__main__':
    main()
