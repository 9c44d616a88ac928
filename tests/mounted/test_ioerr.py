#!/usr/bin/env python3
"""A full or failing host disk under the image: write(2) and fsync(2) report
the failure, no fsync'd file is lost, and the image is clean (e2fsck -fn)
after its journal is replayed.

- fault_sweep: the daemon's Nth image write step (pwrite or fdatasync)
  fails with ENOSPC or EIO (UEXT4_FAULT_FAIL_AT, src/e2/fault.h), or every
  Kth step does.
- host_full: a real full host: a 64 MiB sparse image on a 20 MiB tmpfs,
  its journal rewritten in place so that it is backed; the host is filled
  through the mount, then small files are written and fsync'd.
- early_answer_fails_at_fsync / no_early_write_fails_the_write: the same
  full host under large write(2)s, which uext4 answers once their blocks
  are allocated (-o early_write, the default): every write(2) succeeds and
  the file's fsync reports the failure; what the mount then shows of the
  file is what the image holds. With -o no_early_write the failing write(2)
  itself reports it.
- early_answer_fails_in_place: a 1 MiB write(2) over a file's blocks whose
  move into the image fails (UEXT4_FAULT_FAIL_BIG) after its answer: the
  mount then shows the bytes the image kept, not those written; the next
  fsync reports EIO once.
"""

import contextlib
import errno
import os
import subprocess

from uext4test import (Mount, check, control_socket, daemon_stats, debugfs,
                       drop_caches, eq, fsck, main, mkfs, pattern, read_file,
                       run, run_daemon, test, workdir)

# (name, offset, length); each is written at offset and fsync'd.
FILES = [('a', 0, 3000), ('b', 0, 70000), ('c', 200000, 5000),
         ('d', 0, (300 << 12) + 5)]
SMALL = 3000


def write_fsync(path, off, data):
    """Write and fsync; the errno of the first failure, or 0.  A short
    write is written on (what failed is written again); 'short' counts."""
    short = False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        return e.errno, short
    try:
        done = 0
        while done < len(data):
            n = os.pwrite(fd, data[done:], off + done)
            check(n > 0, 'write made no progress')
            short |= n < len(data) - done
            done += n
        os.fsync(fd)
    except OSError as e:
        return e.errno, short
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return 0, short


def workload(m):
    """Each file written and fsync'd: {name: errno} and whether any write
    came back short."""
    res, any_short = {}, False
    for name, off, n in FILES:
        res[name], short = write_fsync(m.path(name), off, pattern(n, n))
        any_short |= short
    return res, any_short


def expected(off, n):
    return bytes(off) + pattern(n, n)


def verify(img, d, res):
    with Mount(img, mnt=d + '/mnt2') as m:
        for name, off, n in FILES:
            if res.get(name) == 0:
                eq(read_file(m.path(name)), expected(off, n),
                   'fsync\'d file %s after remount' % name)
    fsck(img)


def count_steps(d):
    img = mkfs(d + '/img', size='32M')
    count = d + '/steps'
    with Mount(img, opts=['commit=3600'],
               env={'UEXT4_FAULT_COUNT': count}) as m:
        res, _ = workload(m)
    eq(set(res.values()), {0}, 'the clean run')
    with open(count) as f:
        return int(f.read())


def faulty_run(d, var, value, err):
    d = os.path.join(d, '%s-%s-%s' % (var[12:].lower(), value, err))
    os.mkdir(d)
    img = mkfs(d + '/img', size='32M')
    m = Mount(img, opts=['commit=3600'], expect_clean_exit=False,
              env={var: str(value), 'UEXT4_FAULT_ERRNO': err})
    try:
        m.start()
    except Exception:
        # The step failed while mounting: refused, with the cause named.
        check(m.returncode not in (None, 0),
              '%s=%s: mount neither worked nor failed' % (var, value))
        check(os.path.basename(img) in m.log(),
              'the refusal names the image: %s' % m.log())
        verify(img, d, {})
        return True
    try:
        res, short = workload(m)
    finally:
        m.stop()
    reported = short or any(res.values()) or m.returncode != 0
    if not reported:
        print('# %s=%s %s: written again after the failed step' % (var, value, err))
    if any(res.values()):
        check(set(res.values()) <= {0, errno.ENOSPC, errno.EIO},
              'errors %r' % res)
    try:
        verify(img, d, res)
    except Exception as e:
        raise type(e)('%s=%s %s (results %r, daemon exit %s): %s'
                      % (var, value, err, res, m.returncode, e))
    return reported


@test(timeout=240)
def fault_sweep():
    with workdir() as d:
        steps = count_steps(d)
        check(steps > 10, 'only %d write steps' % steps)
        runs = unreported = 0
        for k, err in enumerate(('ENOSPC', 'EIO')):
            points = sorted({1 + k, 5, steps // 3, steps // 2 + k,
                             2 * steps // 3, steps - 2, steps})
            for n in points:
                runs += 1
                unreported += not faulty_run(d, 'UEXT4_FAULT_FAIL_AT', n, err)
            runs += 1
            unreported += not faulty_run(d, 'UEXT4_FAULT_FAIL_EVERY',
                                         7 + 4 * k, err)
        # Unreported only when what failed was written again (verify()
        # found every file intact); the step numbers of a mount shift a
        # little from run to run, so some land on such writes.
        check(unreported * 2 <= runs,
              '%d of %d failed steps went unreported' % (unreported, runs))


def journal_blocks(img):
    out = debugfs(img, 'blocks <8>').split()
    return [int(x) for x in out]


@contextlib.contextmanager
def small_host(d):
    """A 20 MiB tmpfs at d/host holding a 64 MiB sparse image whose
    journal's blocks are backed (mke2fs leaves them holes), so that commits
    still find room once the host is full: the image's path."""
    host = d + '/host'
    os.mkdir(host)
    run(['mount', '-t', 'tmpfs', '-o', 'size=20m,mode=0755', 'tmpfs', host])
    try:
        img = mkfs(host + '/img', size='64M')
        bs = 4096
        with open(img, 'r+b') as f:
            for b in journal_blocks(img):
                f.seek(b * bs)
                block = f.read(bs)
                f.seek(b * bs)
                f.write(block)
        yield img
    finally:
        subprocess.run(['umount', host], timeout=60)


def room_again(img):
    """The host of small_host() grown, as after deleting on the host."""
    run(['mount', '-o', 'remount,size=80m', os.path.dirname(img)])


@test(timeout=240)
def host_full():
    with workdir() as d, small_host(d) as img:
        res = {}
        with Mount(img, mnt=d + '/mnt', expect_clean_exit=False) as m:
            fd = os.open(m.path('fill'), os.O_WRONLY | os.O_CREAT, 0o644)
            fill_err = 0
            try:
                for _ in range(60):
                    os.write(fd, b'x' * (1 << 20))
                os.fsync(fd)
            except OSError as e:
                fill_err = e.errno
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass
            check(fill_err in (errno.ENOSPC, errno.EIO),
                  'filling a full host: %s' % errno.errorcode.get(
                      fill_err, fill_err))
            eq(os.statvfs(os.path.dirname(img)).f_bavail, 0,
               'free blocks on the host')
            for i in range(9):
                res['s%d' % i], _ = write_fsync(
                    m.path('s%d' % i), 0, pattern(SMALL, i))
        check(set(res.values()) <= {0, errno.ENOSPC, errno.EIO},
              'errors %r' % res)
        # Still full: the replay cannot write home; a refusal names
        # the image and the cause.
        rc, out = run_daemon(img, d + '/mnt1')
        if rc != 0:
            check(img in out and 'No space left' in out,
                  'refusal on a full host: %s' % out)
        # Room again (as after deleting on the host), then replay.
        room_again(img)
        with Mount(img, mnt=d + '/mnt2') as m:
            for i in range(9):
                if res['s%d' % i] == 0:
                    eq(read_file(m.path('s%d' % i)), pattern(SMALL, i),
                       'fsync\'d s%d after remount' % i)
        fsck(img)


BIG = 40 << 20   # more than the host has room for, less than the image


def fill_in_pieces(path):
    """Write BIG bytes of pattern(BIG) to @path in 1 MiB write(2)s, stopping
    at the first that fails or comes back short, then fsync: (bytes the
    write(2)s took, errno of the failed write or 0, errno of fsync or 0)."""
    data, done, werr, ferr = pattern(BIG, 7), 0, 0, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while done < BIG:
            try:
                n = os.write(fd, data[done:done + (1 << 20)])
            except OSError as e:
                werr = e.errno
                break
            done += n
            if n < 1 << 20:
                break
        try:
            os.fsync(fd)
        except OSError as e:
            ferr = e.errno
    finally:
        os.close(fd)
    return done, werr, ferr


def fill_full_host(opts):
    """fill_in_pieces() on a full host through a mount with @opts: the
    mount's answers, and what it and the image afterwards hold."""
    with workdir() as d, small_host(d) as img:
        m = Mount(img, mnt=d + '/mnt', opts=opts, expect_clean_exit=False)
        with m:
            done, werr, ferr = fill_in_pieces(m.path('big'))
            early = daemon_stats(control_socket(m.mnt))['early']
            # What the mount shows now is what the image holds: the size
            # and bytes the kernel kept from the writes it was told were
            # done are dropped with the failure.
            size = os.stat(m.path('big')).st_size
            check(size < BIG, 'the full host took all %d bytes' % BIG)
            eq(read_file(m.path('big')), pattern(BIG, 7)[:size],
               'the file through the mount after the failure')
            drop_caches(3)
            eq(os.stat(m.path('big')).st_size, size, 'size after a cache drop')
        log = m.log()
        room_again(img)
        with Mount(img, mnt=d + '/mnt2') as m2:
            eq(read_file(m2.path('big')), pattern(BIG, 7)[:size],
               'the file after a remount')
        fsck(img)
    return done, size, werr, ferr, early, log


@test(timeout=240)
def early_answer_fails_at_fsync():
    done, size, werr, ferr, early, log = fill_full_host([])
    # write(2)s were answered once their blocks were allocated (the image
    # has room for them all): the host's ENOSPC came after the answer of
    # the first that did not fit. (The next write(2) may see the failure
    # itself: the image then refuses what it cannot write home.)
    check(done > size, 'no write(2) was answered before its bytes were in '
          '(%d taken, the file holds %d)' % (done, size))
    check(early > 0, 'WRITEs answered early: %d' % early)
    check(werr in (0, errno.ENOSPC, errno.EIO),
          'a write(2): %s' % errno.errorcode.get(werr, werr))
    check(ferr in (errno.ENOSPC, errno.EIO),
          'fsync after the host filled: %s' % errno.errorcode.get(ferr, ferr))
    check('answered as done, did not reach the image' in log,
          'the late failure is logged: %s' % log[-2000:])


@test(timeout=240)
def no_early_write_fails_the_write():
    done, size, werr, ferr, early, log = fill_full_host(['no_early_write'])
    eq(early, 0, 'WRITEs answered early with -o no_early_write')
    # Every byte a write(2) took is in the file.
    eq(done, size, 'bytes taken by write(2) against the file\'s size')
    check(werr in (0, errno.ENOSPC, errno.EIO),
          'the write(2) that failed: %s' % errno.errorcode.get(werr, werr))


@test(timeout=120)
def early_answer_fails_in_place():
    old, new = pattern(2 << 20, 3), pattern(1 << 20, 4)
    with workdir() as d:
        img = mkfs(d + '/img', size='32M')
        # Writes of 512 KiB and more fail: the spliced WRITEs' moves, and
        # no metadata write of this test's. One worker: a thread waiting for
        # a request chose between read(2) and splice(2) before it came
        # (src/frontend/wire.c), and only this one is sure to splice after
        # the first large WRITE.
        with Mount(img, opts=['max_threads=1'],
                   env={'UEXT4_FAULT_FAIL_BIG': str(512 << 10),
                        'UEXT4_FAULT_ERRNO': 'EIO'},
                   expect_clean_exit=False) as m:
            fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                for off in range(0, len(old), 32 << 10):
                    os.pwrite(fd, old[off:off + (32 << 10)], off)
                os.fsync(fd)
                # The channel splices WRITEs once one of 64 KiB or more has
                # come (src/frontend/wire.c): 128 KiB of the same bytes.
                os.pwrite(fd, old[:128 << 10], 0)
                early = daemon_stats(control_socket(m.mnt))['early']
                eq(os.pwrite(fd, new, 1 << 19), len(new),
                   'the write(2) answered before its bytes moved')
                eq(daemon_stats(control_socket(m.mnt))['early'], early + 2,
                   'its two WRITEs answered early')
                eq(os.pread(fd, len(old), 0), old,
                   'the file through the mount after the failed write')
                with contextlib.suppress(OSError):
                    os.fsync(fd)
                    raise AssertionError('fsync reported no error')
                os.fsync(fd)    # reported once
            finally:
                os.close(fd)
        with Mount(img, mnt=d + '/mnt2') as m:
            eq(read_file(m.path('f')), old, 'the file after a remount')
        fsck(img)


if __name__ == '__main__':
    main()
