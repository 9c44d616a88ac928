#!/usr/bin/env python3
"""uext4 -o record=FILE: a mount's operations as a replayable scenario.

A workload that uses every operation the recorder writes runs on a mount
with record=FILE; FILE must then replay in library mode
(`uext4-scenario --backend=lib FILE`) with every expect line passing, its
digests must equal the contents read through the mount, and the same FILE
must pass through the mount backend too (a round trip through the daemon).
Every image touched, the replays' included, passes `e2fsck -fn`.
"""

import errno
import mmap
import os
import re

from uext4test import (UEXT4, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
                       FALLOC_FL_ZERO_RANGE, RENAME_EXCHANGE, RENAME_NOREPLACE,
                       Mount, MountError, check, eq, fallocate, fsck, main,
                       mkfs, pattern, renameat2, run, test, workdir,
                       write_file)

SCENARIO = os.path.join(os.path.dirname(UEXT4), 'uext4-scenario')

# Steps the workload must make the recorder write.
KINDS = ['create', 'mkdir', 'write', 'mmap-store', 'writeback', 'truncate',
         'fallocate', 'punch', 'zero-range', 'rename', 'link', 'unlink',
         'rmdir', 'symlink', 'setxattr', 'removexattr', 'chmod', 'chown',
         'utimes', 'copy-range']


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return '%d:%016x' % (len(data), h)


def workload(m):
    """Every recorded operation; returns {path: content} of the files left."""
    p = m.path
    write_file(p('small'), b'0123456789')                    # create, write
    os.mkdir(p('d'))
    write_file(p('d/f'), pattern(300))                       # converts
    os.mknod(p('node'), 0o100600)                            # mknod S_IFREG
    os.mkfifo(p('fifo'))                                     # comment only
    binary = bytes(range(256)) * 40 + b'\0' * 9000 + b'"\\#+' * 3
    write_file(p('bin'), binary)                             # several lines
    os.truncate(p('small'), 4)
    os.truncate(p('bin'), 30000)
    fd = os.open(p('falloc'), os.O_CREAT | os.O_RDWR, 0o640)
    try:
        os.write(fd, pattern(20000, 3))
        fallocate(fd, 0, 0, 40000)
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 40000, 12288)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)
        fallocate(fd, FALLOC_FL_ZERO_RANGE, 100, 50)
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 38000, 6000)
    finally:
        os.close(fd)
    # A shared mapping's pages reach the daemon as writeback.
    fd = os.open(p('mapped'), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, pattern(9000, 4))
        with mmap.mmap(fd, 9000) as mm:
            mm[5:10] = b'MMAP!'
            mm[8190:8200] = b'0123456789'
            mm.flush()
    finally:
        os.close(fd)
    os.rename(p('d/f'), p('d/g'))
    renameat2(p('small'), p('small2'), RENAME_NOREPLACE)
    write_file(p('x1'), b'one')
    write_file(p('x2'), b'two two')
    renameat2(p('x1'), p('x2'), RENAME_EXCHANGE)
    os.link(p('bin'), p('d/binlink'))
    os.link(p('small2'), p('gone'))
    os.unlink(p('gone'))
    os.mkdir(p('empty'))
    os.rmdir(p('empty'))
    os.symlink('small2', p('sym'))
    os.setxattr(p('small2'), 'user.a', b'\x00\x01value "q"')
    os.setxattr(p('small2'), 'user.b', b'b' * 100)
    os.removexattr(p('small2'), 'user.b')
    os.chmod(p('small2'), 0o600)
    os.chown(p('bin'), 1234, 5678)
    os.utime(p('small2'), (1000000, 2000000))
    src = os.open(p('falloc'), os.O_RDONLY)
    dst = os.open(p('copy'), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        eq(os.copy_file_range(src, dst, 5000, 1000, 0), 5000, 'copy')
    finally:
        os.close(src)
        os.close(dst)
    os.rename(p('d'), p('d2'))                               # a directory
    out = {}
    for n in ('small2', 'node', 'bin', 'falloc', 'mapped', 'x1', 'x2',
              'd2/g', 'd2/binlink', 'copy'):
        with open(p(n), 'rb') as f:
            out[n] = f.read()
    return out


def digests_in(text):
    return dict(re.findall(r'^expect (\S+) digest (\S+)$', text, re.M))


def replay(rec, backend):
    p = run([SCENARIO, '--backend=' + backend, rec], check_rc=False,
            timeout=120)
    out = p.stdout.decode(errors='replace') + p.stderr.decode(errors='replace')
    check(p.returncode == 0 and '1 passed, 0 failed' in out,
          'replay on %s: exit %d:\n%s' % (backend, p.returncode, out))


def record_round_trip(opts, features):
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), '32M', features=features,
                   opts=['-I', '256'])
        rec = os.path.join(d, 'rec.scn')
        with Mount(img, opts=['record=' + rec] + opts) as m:
            files = workload(m)
            # fsync pushes the lines written so far to FILE.
            fd = os.open(m.path('copy'), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            check('\nrmdir empty\n' in open(rec).read(),
                  'lines reach FILE at fsync')
        fsck(img)
        text = open(rec).read()
        steps = {l.split()[0] for l in text.splitlines()
                 if l and not l.startswith('#')}
        # With writeback_cache every page write is a writepage, which the
        # core takes as write(2) data: recorded as `write`.
        mmap_kinds = ('mmap-store', 'writeback')
        for k in KINDS:
            if 'writeback_cache' in opts and k in mmap_kinds:
                check(k not in steps, '%s recorded under writeback_cache' % k)
                continue
            check(k in steps, 'no %s step recorded:\n%s' % (k, text))
        check('# not recorded: mknod fifo' in text, 'the fifo is named')
        got = digests_in(text)
        want = {n: fnv1a(b) for n, b in files.items()}
        eq(got, want, 'digests at unmount vs contents read on the mount')
        for gone in ('small', 'd/f', 'd', 'empty', 'gone'):
            check('\nexpect %s missing\n' % gone in text, gone + ' missing')
        replay(rec, 'lib')
        replay(rec, 'mount')


@test(timeout=240)
def record_replays_in_lib_and_mount():
    record_round_trip([], ['inline_data'])


@test(timeout=240)
def record_with_writeback_cache():
    record_round_trip(['writeback_cache'], ['inline_data', '^metadata_csum'])


@test
def record_write_error_stops_recording_only():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), '16M')
        with Mount(img, opts=['record=/dev/full']) as m:
            for i in range(3):
                write_file(m.path('f%d' % i), pattern(5000, i))
                fd = os.open(m.path('f%d' % i), os.O_RDONLY)
                try:
                    os.fsync(fd)     # the flush that fails, then no more
                finally:
                    os.close(fd)
            eq(open(m.path('f2'), 'rb').read(), pattern(5000, 2), 'f2')
        eq(m.log().count("record: writing '/dev/full' failed"), 1,
           'the error is logged once: ' + m.log())
        check('No space left' in m.log(), 'with its cause: ' + m.log())
        fsck(img)


@test
def record_file_cannot_be_created():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), '16M')
        bad = os.path.join(d, 'no-such-dir', 'rec.scn')
        m = Mount(img, opts=['record=' + bad])
        try:
            m.start()
        except MountError:
            pass
        else:
            m.stop()
            raise AssertionError('mounted with an uncreatable record file')
        check(bad in m.log() and 'No such file' in m.log(),
              'message names the file and the cause: ' + m.log())
        fsck(img)


if __name__ == '__main__':
    main()
