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
"""

import errno
import os
import subprocess

from uext4test import (Mount, check, debugfs, eq, fsck, main, mkfs, pattern,
                       read_file, run, run_daemon, test, workdir)

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


@test(timeout=240)
def host_full():
    with workdir() as d:
        host = d + '/host'
        os.mkdir(host)
        run(['mount', '-t', 'tmpfs', '-o', 'size=20m,mode=0755', 'tmpfs',
             host])
        try:
            img = mkfs(host + '/img', size='64M')
            # Back the journal's blocks (mke2fs leaves them holes), so
            # that commits still find room once the host is full.
            bs = 4096
            with open(img, 'r+b') as f:
                for b in journal_blocks(img):
                    f.seek(b * bs)
                    block = f.read(bs)
                    f.seek(b * bs)
                    f.write(block)
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
                eq(os.statvfs(host).f_bavail, 0, 'free blocks on the host')
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
            run(['mount', '-o', 'remount,size=80m', host])
            with Mount(img, mnt=d + '/mnt2') as m:
                for i in range(9):
                    if res['s%d' % i] == 0:
                        eq(read_file(m.path('s%d' % i)), pattern(SMALL, i),
                           'fsync\'d s%d after remount' % i)
            fsck(img)
        finally:
            subprocess.run(['umount', host], timeout=60)


if __name__ == '__main__':
    main()
