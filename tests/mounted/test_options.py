#!/usr/bin/env python3
"""Command line and mount options, refusal of unsafe images, daemon mode,
the image lock, and errors=continue|remount-ro|panic."""

import errno
import hashlib
import os
import re
import signal
import subprocess
import time

from uext4test import (EXIT_TIMEOUT, UEXT4, UEXT4_SRC, Mount, TestFailure,
                       check, debugfs, eq, errno_of, expect_errno, fsck,
                       fuse_unmount, inode_info, main, mkfs, mounted_at,
                       read_file, run, run_daemon, sb_field, test,
                       wait_until, workdir, write_file)


def sha(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def expect_refused(img, mnt, opts=(), pattern=None, what=''):
    rc, out = run_daemon(img, mnt, opts)
    check(rc != 0, '%s: uext4 did not refuse (rc %d): %s' % (what, rc, out))
    check(out.strip(), '%s: refused without a message' % what)
    if pattern:
        check(re.search(pattern, out, re.I),
              '%s: message does not name the cause (/%s/): %r'
              % (what, pattern, out.strip()))
    check(not mounted_at(mnt), '%s: left a mount behind' % what)
    return out


@test
def help_and_version():
    p = run([UEXT4, '--help'], check_rc=False)
    out = (p.stdout + p.stderr).decode(errors='replace')
    eq(p.returncode, 0, '--help exit status')
    check(re.search(r'usage', out, re.I) and 'MOUNTPOINT'.lower() in
          out.lower(), '--help output lacks a usage line: %r' % out)
    p = run([UEXT4, '--version'], check_rc=False)
    out = (p.stdout + p.stderr).decode(errors='replace')
    eq(p.returncode, 0, '--version exit status')
    want = None
    if UEXT4_SRC:
        with open(os.path.join(UEXT4_SRC, 'meson.build')) as f:
            m = re.search(r"version\s*:\s*'([^']+)'", f.read())
            want = m.group(1) if m else None
    check(want, 'cannot find the project version in meson.build')
    check(want in out, '--version output %r lacks %s' % (out, want))
    # No arguments: usage error.
    p = run([UEXT4], check_rc=False)
    check(p.returncode != 0, 'uext4 with no arguments exited 0')


@test
def bad_options_rejected():
    with workdir() as d:
        img = mkfs(d + '/img')
        mnt = d + '/mnt'
        for opt, name in [('nosuchopt', 'nosuchopt'),
                          ('errors=bogus', 'errors'),
                          ('uidmap=abc', 'uidmap'),
                          ('uidmap=0:', 'uidmap'),
                          ('gidmap=1:2:x', 'gidmap'),
                          ('gidmap=', 'gidmap'),
                          ('ro=1', 'ro'),
                          ('rw,bogus_flag', 'bogus_flag')]:
            expect_refused(img, mnt, [opt], re.escape(name), '-o ' + opt)
        fsck(img)


@test
def accepted_options():
    with workdir() as d:
        img = mkfs(d + '/img')
        for opts in (['rw'], ['errors=continue'], ['errors=remount-ro'],
                     ['errors=panic'], ['allow_other', 'default_permissions'],
                     ['no_default_permissions'],
                     ['uidmap=0:0', 'gidmap=0:0'], ['fakeroot']):
            with Mount(img, opts=opts) as m:
                write_file(m.path('f'), b' '.join(o.encode() for o in opts))
                eq(read_file(m.path('f')),
                   b' '.join(o.encode() for o in opts), 'rw with %r' % opts)
            fsck(img)


@test
def read_only_mount():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            write_file(m.path('f'), b'content')
            os.mkdir(m.path('d'))
            os.setxattr(m.path('f'), 'user.x', b'1')
        fsck(img)
        before = sha(img)
        with Mount(img, opts=['ro']) as m:
            eq(read_file(m.path('f')), b'content', 'read on ro mount')
            eq(os.getxattr(m.path('f'), 'user.x'), b'1', 'xattr on ro')
            p = m.path
            expect_errno(errno.EROFS, os.open, p('f'), os.O_WRONLY)
            expect_errno(errno.EROFS, os.open, p('new'),
                         os.O_CREAT | os.O_WRONLY, 0o644)
            expect_errno(errno.EROFS, os.mkdir, p('d2'))
            expect_errno(errno.EROFS, os.unlink, p('f'))
            expect_errno(errno.EROFS, os.rmdir, p('d'))
            expect_errno(errno.EROFS, os.rename, p('f'), p('g'))
            expect_errno(errno.EROFS, os.chmod, p('f'), 0o600)
            expect_errno(errno.EROFS, os.utime, p('f'), (1, 1))
            expect_errno(errno.EROFS, os.truncate, p('f'), 0)
            expect_errno(errno.EROFS, os.setxattr, p('f'), 'user.y', b'')
            expect_errno(errno.EROFS, os.symlink, 'x', p('l'))
            expect_errno(errno.EROFS, os.link, p('f'), p('h'))
            check(os.statvfs(m.mnt).f_flag & os.ST_RDONLY,
                  'statvfs lacks ST_RDONLY')
        eq(sha(img), before, 'image changed by a read-only mount')
        fsck(img)


@test
def second_mount_refused():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            write_file(m.path('f'), b'first')
            out = expect_refused(img, d + '/mnt2', (),
                                 r'lock|busy|in use|already', 'second mount')
            # The refusal names the mount point and the way to a second
            # view of the same file system.
            want = "mounted on '%s'" % os.path.realpath(m.mnt)
            check(want in out, 'second mount: %r not in %r' % (want, out))
            want = "mount --bind '%s' '%s'" % (os.path.realpath(m.mnt),
                                               os.path.realpath(d + '/mnt2'))
            check(want in out, 'second mount: %r not in %r' % (want, out))
            out = expect_refused(img, d + '/mnt3', ['ro'],
                                 r'lock|busy|in use|already',
                                 'second read-only mount')
            eq(read_file(m.path('f')), b'first', 'first mount still works')
            write_file(m.path('g'), b'still writable')
        fsck(img)
        del out


@test
def not_ext_refused():
    with workdir() as d:
        cause = r'ext[234]|superblock|magic|file ?system|not an? '
        zero = d + '/zero'
        with open(zero, 'wb') as f:
            f.truncate(16 << 20)
        expect_refused(zero, d + '/mnt', (), cause, 'all-zero file')
        text = d + '/text'
        with open(text, 'w') as f:
            f.write('this is not a file system\n' * 50000)
        expect_refused(text, d + '/mnt', (), cause, 'text file')
        tiny = d + '/tiny'
        with open(tiny, 'wb') as f:
            f.write(b'x' * 100)
        expect_refused(tiny, d + '/mnt', (), None, '100-byte file')
        expect_refused(d + '/missing', d + '/mnt', (), r'missing|no such',
                       'missing image')
        eq(read_file(zero), bytes(16 << 20), 'refused image was modified')


@test
def needs_recovery_empty_journal_mounts():
    # The flag with nothing in the log (what the kernel leaves when it
    # crashes right after mounting): recovery replays nothing, clears it.
    with workdir() as d:
        img = mkfs(d + '/img')
        debugfs(img, 'feature needs_recovery', write=True)
        check('needs_recovery' in (sb_field(img, 'Filesystem features')
                                   or ''), 'could not set needs_recovery')
        with Mount(img) as m:
            write_file(m.mnt + '/f', b'data')
        check('needs_recovery' not in (sb_field(img, 'Filesystem features')
                                       or ''), 'needs_recovery left set')
        fsck(img)


@test
def needs_recovery_without_journal_refused():
    with workdir() as d:
        img = mkfs(d + '/img', features=['^has_journal'])
        debugfs(img, 'feature needs_recovery', write=True)
        check('needs_recovery' in (sb_field(img, 'Filesystem features')
                                   or ''), 'could not set needs_recovery')
        before = sha(img)
        expect_refused(img, d + '/mnt', (), r'needs_recovery.*no journal',
                       'needs_recovery without a journal')
        eq(sha(img), before, 'refused image was modified')


@test
def needs_recovery_bad_journal_refused():
    # A journal superblock that is not one: refused, nothing written; with
    # norecovery the image is still readable, read-only.
    with workdir() as d:
        img = mkfs(d + '/img')
        write_file(d + '/seed', b'x')
        debugfs(img, 'write %s/seed f' % d, write=True)
        debugfs(img, 'feature needs_recovery', write=True)
        blk = int(debugfs(img, 'bmap <8> 0').split()[-1])
        with open(img, 'r+b') as f:
            f.seek(blk * 4096)
            f.write(b'\0' * 1024)
        before = sha(img)
        expect_refused(img, d + '/mnt', (), r'journal',
                       'needs_recovery with a damaged journal')
        eq(sha(img), before, 'refused image was modified')
        with Mount(img, opts=['norecovery']) as m:
            eq(read_file(m.mnt + '/f'), b'x', 'norecovery read')
            expect_errno(errno.EROFS, lambda: write_file(m.mnt + '/g', b''))
        eq(sha(img), before, 'norecovery mount modified the image')


@test
def errors_recorded_refused():
    with workdir() as d:
        img = mkfs(d + '/img')
        debugfs(img, 'ssv state 2', write=True)
        check('error' in (sb_field(img, 'Filesystem state') or ''),
              'could not set the error state')
        before = sha(img)
        # "error:" alone would be a generic prefix; require the cause.
        expect_refused(img, d + '/mnt', (),
                       r'errors? (recorded|found|detected|state)|has errors|'
                       r'with errors|contains errors|e2fsck|not clean',
                       'errors recorded')
        eq(sha(img), before, 'refused image was modified')


@test
def unsupported_features():
    for feature in ('encrypt',):
        with workdir() as d:
            img = mkfs(d + '/img', features=[feature])
            mnt = d + '/mnt'
            rc, out = run_daemon(img, mnt, ())
            if rc != 0:
                check(re.search(feature, out, re.I),
                      '%s: refused without naming the feature: %r'
                      % (feature, out))
            else:
                # It mounted: it must have been read-only.
                with Mount(img, expect_clean_exit=True) as m:
                    expect_errno(errno.EROFS, os.open, m.path('f'),
                                 os.O_CREAT | os.O_WRONLY, 0o644)
                    check(os.listdir(m.mnt) == ['lost+found'],
                          '%s: listing on read-only fallback' % feature)
                if re.search(feature, m.log(), re.I) is None:
                    raise TestFailure('%s: mounted read-only without '
                                      'naming the feature' % feature)
            fsck(img)


def find_daemon(img, mnt):
    want = [os.fsencode(UEXT4), os.fsencode(img), os.fsencode(mnt)]
    real = os.path.realpath(UEXT4)
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
            exe = os.readlink('/proc/%s/exe' % pid)
        except OSError:
            continue
        if argv[1:3] == want[1:] and (argv[0] == want[0] or exe == real):
            return int(pid)
    return None


def wait_pid_gone(pid, timeout=EXIT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while os.path.exists('/proc/%d' % pid):
        with open('/proc/%d/stat' % pid) as f:
            if f.read().split(') ')[-1].startswith('Z'):
                return     # exited; its parent (init) will reap it
        if time.monotonic() > deadline:
            raise TestFailure('daemon %d did not exit after unmount' % pid)
        time.sleep(0.02)


@test
def daemon_mode():
    """Without -f the parent exits only once the mount is ready."""
    with workdir() as d:
        img = mkfs(d + '/img')
        mnt = d + '/mnt'
        os.mkdir(mnt)
        with open(d + '/out', 'wb') as out:
            p = subprocess.run([UEXT4, img, mnt], stdout=out,
                               stderr=subprocess.STDOUT, timeout=30)
        log = read_file(d + '/out').decode(errors='replace')
        eq(p.returncode, 0, 'parent exit status (%s)' % log)
        ready = mounted_at(mnt)          # checked at once: no waiting
        pid = find_daemon(img, mnt)
        try:
            check(ready, 'parent exited before the mount was ready')
            check(pid, 'no daemon process found')
            write_file(os.path.join(mnt, 'f'), b'daemonized')
            eq(read_file(os.path.join(mnt, 'f')), b'daemonized', 'io')
        finally:
            clean = fuse_unmount(mnt)
            if pid:
                wait_pid_gone(pid)
        check(clean, 'unmount was busy')
        fsck(img)
        # Failure is reported by the parent's exit status and a message.
        with open(d + '/bad', 'wb') as f:
            f.truncate(1 << 20)
        with open(d + '/out2', 'wb') as out:
            p = subprocess.run([UEXT4, d + '/bad', mnt], stdout=out,
                               stderr=subprocess.STDOUT, timeout=30)
        log = read_file(d + '/out2').decode(errors='replace')
        check(p.returncode != 0, 'daemon mode on a bad image exited 0')
        check(log.strip(), 'daemon mode failure without a message')
        check(not mounted_at(mnt), 'bad image mounted')
        # Same for an already locked image.
        with Mount(img, mnt=d + '/mnt4'):
            with open(d + '/out3', 'wb') as out:
                p = subprocess.run([UEXT4, img, mnt], stdout=out,
                                   stderr=subprocess.STDOUT, timeout=30)
            check(p.returncode != 0, 'daemon mode on a locked image '
                  'exited 0: %s' % read_file(d + '/out3'))
            if mounted_at(mnt):
                fuse_unmount(mnt)
                raise TestFailure('second daemon mounted a locked image')
        fsck(img)


def background_mount(img, mnt, opts=()):
    """`uext4 IMG MNT` without -f; returns (exit status, everything the
    command printed by the time it returned, daemon pid)."""
    out_path = mnt + '.out'
    cmd = [UEXT4, img, mnt] + (['-o', ','.join(opts)] if opts else [])
    with open(out_path, 'wb') as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=30)
    return (p.returncode, read_file(out_path).decode(errors='replace'),
            find_daemon(img, mnt))


def stop_background(mnt, pid):
    clean = fuse_unmount(mnt)
    if pid:
        wait_pid_gone(pid)
    check(clean, 'unmount was busy')


def needing_replay(d):
    """An image whose journal holds a committed transaction: a daemon
    killed after an fsync."""
    img = mkfs(d + '/replay.img')
    m = Mount(img, mnt=d + '/kill', expect_clean_exit=False)
    with m:
        write_file(m.path('kept'), b'fsynced before the kill')
        fd = os.open(m.path('kept'), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        m.proc.kill()
        m.proc.wait(EXIT_TIMEOUT)
    check('needs_recovery' in (sb_field(img, 'Filesystem features') or ''),
          'the killed daemon left no journal to replay')
    return img


@test
def daemon_mode_messages():
    """What the daemon says before the mount is ready is on the command's
    stderr when it returns: the read-only fallback and a journal replay."""
    with workdir() as d:
        # The read-only feature: mounted read-only, with a warning.
        img = mkfs(d + '/ro.img')
        run(['tune2fs', '-O', 'read-only', img])
        mnt = d + '/mnt'
        os.mkdir(mnt)
        rc, log, pid = background_mount(img, mnt)
        try:
            eq(rc, 0, 'exit status (%s)' % log)
            check(mounted_at(mnt), 'not mounted when the command returned')
            check(re.search(r"'read-only'.*mounting read-only", log),
                  'read-only fallback not told: %r' % log)
            check(re.search(r'serving read-only', log),
                  'read-only serving not told: %r' % log)
            expect_errno(errno.EROFS, os.open, os.path.join(mnt, 'f'),
                         os.O_CREAT | os.O_WRONLY, 0o644)
        finally:
            stop_background(mnt, pid)
        fsck(img)

        img = needing_replay(d)
        rc, log, pid = background_mount(img, mnt)
        try:
            eq(rc, 0, 'exit status (%s)' % log)
            check(re.search(r'journal recovered: 1 transaction', log),
                  'journal replay not told: %r' % log)
            eq(read_file(os.path.join(mnt, 'kept')),
               b'fsynced before the kill', 'replayed file')
            # After readiness the daemon's stderr is no longer the user's.
            eq(os.readlink('/proc/%d/fd/2' % pid), '/dev/null',
               'daemon stderr after ready')
        finally:
            stop_background(mnt, pid)
        fsck(img)

        # norecovery: the read-only fallback of an unreplayed journal.
        img = needing_replay(d)
        rc, log, pid = background_mount(img, mnt, ['norecovery'])
        try:
            eq(rc, 0, 'exit status (%s)' % log)
            check(re.search(r'needs journal recovery.*read-only', log),
                  'norecovery fallback not told: %r' % log)
        finally:
            stop_background(mnt, pid)
        with Mount(img, mnt=mnt):
            pass                    # replays it
        fsck(img)


def corrupt_image(d):
    """An image whose superblock is clean but /victim's extent header is
    destroyed; /other is intact."""
    src = d + '/src'
    os.mkdir(src)
    write_file(src + '/victim', b'v' * 20000)
    write_file(src + '/other', b'intact')
    img = mkfs(d + '/img', opts=['-d', src])
    fsck(img)
    debugfs(img, 'sif /victim block[0] 0', write=True)
    debugfs(img, 'sif /victim block[1] 0', write=True)
    p = run(['e2fsck', '-fn', img], check_rc=False)
    check(p.returncode != 0, 'corruption not detected by e2fsck')
    eq(sb_field(img, 'Filesystem state'), 'clean', 'superblock state')
    return img


def repairable(img):
    run(['e2fsck', '-fy', img], check_rc=False)
    fsck(img)


@test
def errors_continue():
    with workdir() as d:
        img = corrupt_image(d)
        with Mount(img, opts=['errors=continue']) as m:
            eq(errno_of(read_file, m.path('victim')), errno.EUCLEAN,
               'errno reading a corrupt file')
            eq(read_file(m.path('other')), b'intact', 'other file')
            write_file(m.path('new'), b'still writable')
            eq(read_file(m.path('new')), b'still writable', 'write after')
        state = sb_field(img, 'Filesystem state') or ''
        count = sb_field(img, 'FS Error count')
        check('error' in state or (count and int(count) > 0),
              'error not recorded in the superblock (state %r, count %r)'
              % (state, count))
        repairable(img)


@test
def errors_remount_ro():
    with workdir() as d:
        img = corrupt_image(d)
        with Mount(img, opts=['errors=remount-ro']) as m:
            write_file(m.path('before'), b'ok')
            eq(errno_of(read_file, m.path('victim')), errno.EUCLEAN,
               'errno reading a corrupt file')
            eq(read_file(m.path('other')), b'intact', 'reads still work')
            expect_errno(errno.EROFS, os.open, m.path('after'),
                         os.O_CREAT | os.O_WRONLY, 0o644)
            expect_errno(errno.EROFS, os.unlink, m.path('before'))
        repairable(img)


@test
def free_failure_reported():
    """A file whose i_blocks counts fewer blocks than it maps (set by
    debugfs) cannot be freed.  rm succeeds: the kernel still holds the
    inode, freed at its FORGET, which has no reply.  The failure must not
    stay in the log (issue 17): the next fsync on the mount fails with
    EUCLEAN, once, and the superblock records it against the inode."""
    with workdir() as d:
        src = d + '/src'
        os.mkdir(src)
        write_file(src + '/victim', b'v' * 20000)
        write_file(src + '/other', b'intact')
        img = mkfs(d + '/img', opts=['-d', src])
        fsck(img)
        ino = inode_info(img, '/victim')['ino']
        debugfs(img, 'sif /victim blocks 8', write=True)
        check(run(['e2fsck', '-fn', img], check_rc=False).returncode != 0,
              'corruption not detected by e2fsck')
        with Mount(img, opts=['errors=continue']) as m:
            fd = os.open(m.path('other'), os.O_RDONLY)
            try:
                os.unlink(m.path('victim'))
                # Reported by the first fsync after the FORGET arrives.
                wait_until(lambda: errno_of(os.fsync, fd), errno.EUCLEAN,
                           'fsync after the failed free')
                eq(errno_of(os.fsync, fd), 0, 'the next fsync')
            finally:
                os.close(fd)
        check('freeing unlinked inode %d' % ino in m.log(),
              'daemon log: %s' % m.log())
        eq(sb_field(img, 'FS Error count'), '1', 'superblock error count')
        eq(sb_field(img, 'Last error inode #'), str(ino), 'error inode')
        repairable(img)


@test
def errors_panic():
    with workdir() as d:
        img = corrupt_image(d)
        m = Mount(img, opts=['errors=panic'], expect_clean_exit=False)
        with m:
            err = errno_of(read_file, m.path('victim'))
            check(err in (errno.EUCLEAN, errno.ENOTCONN, errno.ECONNABORTED,
                          errno.EIO),
                  'errno reading a corrupt file with errors=panic: %s'
                  % errno.errorcode.get(err, err))
            try:
                m.proc.wait(30)
            except subprocess.TimeoutExpired:
                raise TestFailure('errors=panic: daemon still running')
            eq(m.proc.returncode, -signal.SIGABRT, 'daemon exit status')
            expect_errno(errno.ENOTCONN, os.stat, m.path('other'))
        check(not mounted_at(m.mnt), 'dead mount left behind')
        repairable(img)


if __name__ == '__main__':
    main()
