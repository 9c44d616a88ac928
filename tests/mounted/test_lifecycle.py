#!/usr/bin/env python3
"""A mount's life cycle around the image: read-only mounts of images that
need recovery, remounting read-only and back, and the unmount that waits
for the image to be final (`uext4 -u`).

ro_* cases need a journal that Linux wrote and did not checkpoint: a fresh
image is loop-mounted with commit=600, files and directories are written
and fsync'd (each fsync commits the journal; the metadata reaches only the
log, its home blocks stay dirty in the kernel's cache), and the backing
file is copied while still mounted.  The copy is a crashed image whose
home blocks are stale.  Runs only as root where `mount -o loop` works, else
exits 77.  Only freshly made images are ever loop-mounted.
"""

import errno
import hashlib
import os
import shutil
import subprocess

from uext4test import (UEXT4, ensure_user, Mount, SkipFile, TestFailure, check,
                       debugfs_cat, eq, errno_of, fsck, fuse_unmount, main,
                       mkfs, mounted_at, pattern, read_file, run, run_as,
                       sb_field, test, workdir, write_file)

USER = 'uext4test'
OTHER_USER = 'uext4test2'

# What the kernel writes into the crashed image: name -> contents.
KERNEL_FILES = {
    'small': pattern(100, 1),
    'four_blocks': pattern(16384, 2),
    'dir/inner': pattern(70000, 3),
    'dir/sub/leaf': pattern(5, 4),
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def kernel_crashed_image(d):
    """A copy of a kernel-mounted image taken after fsyncs: it needs
    recovery and only its journal holds the new files."""
    orig = mkfs(os.path.join(d, 'orig.img'), size='32M',
                extended=('lazy_itable_init=0', 'lazy_journal_init=0'))
    kmnt = os.path.join(d, 'kmnt')
    os.makedirs(kmnt)
    p = subprocess.run(['mount', '-t', 'ext4', '-o', 'loop,commit=600', orig,
                        kmnt], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise SkipFile('loop mounts do not work here: %s'
                       % p.stdout.decode(errors='replace').strip())
    crashed = os.path.join(d, 'crashed.img')
    try:
        os.makedirs(os.path.join(kmnt, 'dir', 'sub'))
        for name, data in KERNEL_FILES.items():
            path = os.path.join(kmnt, name)
            with open(path, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for sub in ('dir/sub', 'dir', ''):
            fsync_path(os.path.join(kmnt, sub))
        run(['cp', '--sparse=always', orig, crashed])
    finally:
        run(['umount', kmnt])
    fsck(orig)
    return crashed


def tree(root):
    """{relative path: contents} of the regular files under root; dirs map
    to None."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirs:
            if name != 'lost+found':
                out[os.path.normpath(os.path.join(rel, name))] = None
        for name in files:
            out[os.path.normpath(os.path.join(rel, name))] = read_file(
                os.path.join(dirpath, name))
    return out


def expected_tree():
    want = {'dir': None, 'dir/sub': None}
    want.update(KERNEL_FILES)
    return want


# ------------------------------------------------------------ remount

def mount_flags(mnt):
    """The per-mount options of the newest mount on mnt (mountinfo)."""
    mnt = os.path.realpath(mnt)
    flags = None
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            if fields[4] == mnt:
                flags = fields[5].split(',')
    return flags


def uext4(*args, user=None, check_rc=True):
    pre = None
    if user:
        def pre():
            os.setgroups(list(user[2]))
            os.setgid(user[1])
            os.setuid(user[0])
    p = subprocess.run([UEXT4] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=180, preexec_fn=pre)
    out = p.stdout.decode(errors='replace')
    if check_rc and p.returncode != 0:
        raise TestFailure('uext4 %s exited %d: %s'
                          % (' '.join(args), p.returncode, out.strip()))
    return p.returncode, out


def clean_and_recovered(img):
    """e2fsck -fn clean and needs_recovery clear: the image is final."""
    fsck(img)
    feats = sb_field(img, 'Filesystem features')
    check('needs_recovery' not in feats,
          'needs_recovery set: ' + feats)
    eq(sb_field(img, 'Filesystem state'), 'clean', 'the superblock state')


def try_write(path):
    try:
        write_file(path, b'x')
        return 0
    except OSError as e:
        return e.errno


@test
def remount_ro_and_back():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='32M')
        with Mount(img) as m:
            write_file(m.path('a'), pattern(50000, 5))
            os.mkdir(m.path('d'))
            uext4(m.mnt, '-o', 'remount,ro')
            check('ro' in mount_flags(m.mnt), 'kernel flags: %s'
                  % mount_flags(m.mnt))
            check('nosuid' in mount_flags(m.mnt) and
                  'nodev' in mount_flags(m.mnt),
                  'the remount lost the mount\'s flags: %s'
                  % mount_flags(m.mnt))
            eq(try_write(m.path('b')), errno.EROFS, 'create while ro')
            eq(errno_of(os.mkdir, m.path('e')), errno.EROFS, 'mkdir while ro')
            eq(errno_of(os.unlink, m.path('a')), errno.EROFS,
               'unlink while ro')
            # While read-only the image is final: clean, and reads do not
            # change it.
            clean_and_recovered(img)
            eq(debugfs_cat(img, '/a'), pattern(50000, 5), 'a in the image')
            before = sha256(img)
            eq(read_file(m.path('a')), pattern(50000, 5), 'a read while ro')
            eq(sha256(img), before, 'the image after reads while ro')
            # remount,ro again is a no-op.
            uext4(m.mnt, '-o', 'remount,ro')
            # Back, in mount.fuse3's form (IMAGE MNT -o remount,rw).
            uext4(img, m.mnt, '-o', 'remount,rw')
            check('rw' in mount_flags(m.mnt), 'kernel flags: %s'
                  % mount_flags(m.mnt))
            write_file(m.path('b'), pattern(7000, 6))
            os.mkdir(m.path('e'))
            os.unlink(m.path('a'))
            feats = sb_field(img, 'Filesystem features')
            check('needs_recovery' in feats,
                  'read-write again but needs_recovery clear: ' + feats)
            # A file open for writing: the kernel refuses, nothing changes.
            with open(m.path('b'), 'ab'):
                rc, out = uext4(m.mnt, '-o', 'remount,ro', check_rc=False)
                eq(rc, 1, 'exit status of remount,ro with a file open for '
                   'writing')
                check('busy' in out, 'message: ' + out)
            check('rw' in mount_flags(m.mnt), 'flags after the refusal: %s'
                  % mount_flags(m.mnt))
            eq(try_write(m.path('c')), 0, 'write after the refused remount')
            uext4(m.mnt, '-o', 'remount,ro')
            clean_and_recovered(img)
            uext4(m.mnt, '-o', 'remount,rw')
        clean_and_recovered(img)
        eq(debugfs_cat(img, '/b'), pattern(7000, 6), 'b in the image')


def unlinked_open_across_remount(mnt):
    """As the mounting user (root's remount is refused by the kernel while
    an unlinked file is open): returns what the open file reads after ro
    and back, with another file written in between."""
    write_file(os.path.join(mnt, 'u'), pattern(200000, 7))
    fd = os.open(os.path.join(mnt, 'u'), os.O_RDONLY)
    try:
        os.unlink(os.path.join(mnt, 'u'))
        for mode in ('ro', 'rw'):
            p = subprocess.run([UEXT4, mnt, '-o', 'remount,' + mode],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            if p.returncode != 0:
                raise TestFailure('remount,%s: %s' % (mode, p.stdout))
        # Blocks freed too early would be reused here.
        write_file(os.path.join(mnt, 'v'), pattern(400000, 8))
        fd2 = os.open(os.path.join(mnt, 'v'), os.O_RDONLY)
        os.fsync(fd2)
        os.close(fd2)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return os.pread(fd, 200000, 0)
    finally:
        os.close(fd)


def user_cred(name):
    uid, gid = ensure_user(name)
    return (uid, gid, [gid])


@test
def remount_keeps_open_unlinked_file():
    """A file unlinked while open is on the orphan list; going read-only
    and back must leave it to its last close, not free it under the
    open descriptor."""
    c = user_cred(USER)
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='32M',
                   extended=['root_owner=%d:%d' % (c[0], c[1])])
        os.chown(img, c[0], c[1])
        with Mount(img, user=c) as m:
            got = run_as(*c, unlinked_open_across_remount, m.mnt)
            eq(got, pattern(200000, 7),
               'the open unlinked file after ro and back')
        clean_and_recovered(img)
        eq(debugfs_cat(img, '/v'), pattern(400000, 8), 'v in the image')


@test
def remount_of_an_ro_mount_refused():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='32M')
        with Mount(img, opts=['ro']) as m:
            rc, out = uext4(m.mnt, '-o', 'remount,rw', check_rc=False)
            eq(rc, 1, 'exit status')
            check('mounted read-only' in out, 'message: ' + out)
            check('ro' in mount_flags(m.mnt), 'flags: %s'
                  % mount_flags(m.mnt))
            eq(try_write(m.path('x')), errno.EROFS, 'write')
        clean_and_recovered(img)


@test
def remount_through_mount8():
    """mount(8) runs mount.fuse3, which runs `uext4 IMAGE MNT -o
    remount,...` found on the default PATH (mount(8) drops the caller's):
    a private mount namespace gets a directory with our uext4 bound over
    /usr/local/bin, and the whole case runs in it."""
    check(shutil.which('mount.fuse3'),
          'mount.fuse3 is not installed (it comes with fusermount3)')
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='32M')
        bindir = os.path.join(d, 'bin')
        os.mkdir(bindir)
        os.symlink(os.path.realpath(UEXT4), os.path.join(bindir, 'uext4'))
        mnt = os.path.join(d, 'mnt')
        os.mkdir(mnt)
        script = r'''
set -u
trap 'umount -l "$MNT" 2>/dev/null' EXIT
mount --bind "$BIN" /usr/local/bin
"$UEXT4" "$IMG" "$MNT" || exit 10
echo one > "$MNT/one" || exit 11
mount -o remount,ro "$MNT" || exit 12
grep -q " $MNT ro," /proc/self/mountinfo || exit 13
if echo two > "$MNT/two" 2>/dev/null; then exit 14; fi
e2fsck -fn "$IMG" >/dev/null 2>&1 || exit 15
mount -o remount,rw "$MNT" || exit 16
grep -q " $MNT rw," /proc/self/mountinfo || exit 17
echo two > "$MNT/two" || exit 18
"$UEXT4" -u "$MNT" || exit 19
trap - EXIT
'''
        env = dict(os.environ, MNT=mnt, BIN=bindir, IMG=img,
                   UEXT4=os.path.realpath(UEXT4))
        p = subprocess.run(['unshare', '-m', '--propagation', 'private',
                            'sh', '-c', script], env=env, timeout=120,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        eq(p.returncode, 0, 'the script\'s exit status (output: %s)'
           % p.stdout.decode(errors='replace').strip())
        clean_and_recovered(img)
        eq(debugfs_cat(img, '/one'), b'one\n', 'one')
        eq(debugfs_cat(img, '/two'), b'two\n', 'two')


@test
def remount_as_user():
    c = user_cred(USER)
    other = user_cred(OTHER_USER)
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='32M',
                   extended=['root_owner=%d:%d' % (c[0], c[1])])
        os.chown(img, c[0], c[1])
        with Mount(img, user=c) as m:
            eq(run_as(*c, try_write, m.path('a')), 0, 'first write')
            rc, out = uext4(m.mnt, '-o', 'remount,ro', user=c)
            check('only root' in out, 'no word on the kernel flags: ' + out)
            eq(run_as(*c, try_write, m.path('b')), errno.EROFS,
               'write after remount,ro')
            clean_and_recovered(img)
            # Another user may not ask.
            rc, out = uext4(m.mnt, '-o', 'remount,rw', user=other,
                            check_rc=False)
            eq(rc, 1, 'exit status for another user')
            check('only the user who mounted it and root' in out,
                  'message for another user: ' + out)
            eq(run_as(*c, try_write, m.path('b')), errno.EROFS,
               'write after the other user\'s request')
            # Root may, though it cannot look into the mount.
            uext4(m.mnt, '-o', 'remount,rw')
            eq(run_as(*c, try_write, m.path('b')), 0, 'write after remount,rw')
            uext4('-u', m.mnt, user=c)
            check(not mounted_at(m.mnt), 'still mounted after uext4 -u')
            eq(m.wait_exit(), 0, 'daemon exit status')
        clean_and_recovered(img)


# ------------------------------------------------------------ uext4 -u

def daemon_mount(img, mnt, opts=()):
    """Mount as `uext4 IMG MNT` does for a user: daemonised, ready when it
    returns."""
    args = [img, mnt] + (['-o', ','.join(opts)] if opts else [])
    uext4(*args)
    check(mounted_at(mnt), 'not mounted after uext4 returned')


def cycles(n, img, mnt, fsck_each):
    for i in range(n):
        try:
            daemon_mount(img, mnt)
        except TestFailure as e:
            raise TestFailure('cycle %d: %s' % (i, e))
        try:
            write_file(os.path.join(mnt, 'f%d' % (i % 7)), pattern(3000 + i, i))
            os.mkdir(os.path.join(mnt, 'd%d' % i))
        finally:
            rc, out = uext4('-u', mnt, check_rc=False)
        if rc != 0:
            fuse_unmount(mnt)
            raise TestFailure('cycle %d: uext4 -u exited %d: %s'
                              % (i, rc, out))
        check(not mounted_at(mnt), 'cycle %d: still mounted' % i)
        if fsck_each:
            # At once: uext4 -u returned, so the image is final.
            p = subprocess.run(['e2fsck', '-fn', img], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if p.returncode != 0:
                raise TestFailure('cycle %d: e2fsck -fn exited %d: %s' % (
                    i, p.returncode, p.stdout.decode(errors='replace')))
            feats = sb_field(img, 'Filesystem features')
            check('needs_recovery' not in feats,
                  'cycle %d: needs_recovery set' % i)


CYCLES = int(os.environ.get('UEXT4_UNMOUNT_CYCLES', '40'))


@test(timeout=300)
def unmount_waits_for_final_image():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='16M')
        mnt = os.path.join(d, 'mnt')
        os.mkdir(mnt)
        cycles(CYCLES, img, mnt, fsck_each=True)
        clean_and_recovered(img)


@test(timeout=300)
def mount_right_after_unmount():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='16M')
        mnt = os.path.join(d, 'mnt')
        os.mkdir(mnt)
        cycles(CYCLES, img, mnt, fsck_each=False)
        clean_and_recovered(img)
        daemon_mount(img, mnt)
        try:
            names = sorted(os.listdir(mnt))
        finally:
            uext4('-u', mnt)
        eq(len([n for n in names if n.startswith('d')]), CYCLES,
           'directories made by the cycles')


@test
def unmount_refusals():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='16M')
        mnt = os.path.join(d, 'mnt')
        os.mkdir(mnt)
        rc, out = uext4('-u', mnt, check_rc=False)
        eq(rc, 1, 'exit status for a directory with nothing mounted')
        check('nothing is mounted' in out, 'message: ' + out)
        daemon_mount(img, mnt)
        try:
            fd = os.open(os.path.join(mnt, 'busy'), os.O_CREAT | os.O_WRONLY)
            try:
                rc, out = uext4('-u', mnt, check_rc=False)
                eq(rc, 1, 'exit status while busy')
                check('busy' in out, 'message: ' + out)
                check(mounted_at(mnt), 'unmounted although busy')
            finally:
                os.close(fd)
        finally:
            rc, out = uext4('-u', mnt, check_rc=False)
        eq(rc, 0, 'uext4 -u after closing (output: %s)' % out)
        clean_and_recovered(img)


# ------------------------------------------------------------ ro replay
# Last: without loop mounts they skip the rest of the file.

@test
def ro_mount_replays_in_memory():
    with workdir() as d:
        img = kernel_crashed_image(d)
        check('needs_recovery' in sb_field(img, 'Filesystem features'),
              'the copied image does not need recovery')
        # The test means something only if the home blocks are stale:
        # without replay the files are not there.
        with Mount(img, opts=['ro', 'norecovery']) as m:
            check(tree(m.mnt) != expected_tree(),
                  'the files are visible without replaying the journal')
        before = sha256(img)
        with Mount(img, opts=['ro']) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree of the ro mount')
        eq(sha256(img), before, 'sha256 of the image after the ro mount')
        check('journal recovered in memory' in m.log(),
              'no in-memory recovery logged: ' + m.log())
        check('needs_recovery' in sb_field(img, 'Filesystem features'),
              'needs_recovery was cleared by the ro mount')
        # A second ro mount replays again, the same way.
        with Mount(img, opts=['ro']) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree of a second ro mount')
        eq(sha256(img), before, 'sha256 after a second ro mount')
        # Read-write replays into the image for real.
        with Mount(img) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree of the rw mount')
        check(sha256(img) != before, 'the rw mount did not replay')
        check('needs_recovery' not in sb_field(img, 'Filesystem features'),
              'needs_recovery still set after the rw mount')
        fsck(img)
        with Mount(img, opts=['ro']) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree after the replay')
            check('journal recovered' not in m.log(),
                  'a clean image was replayed again: ' + m.log())


@test
def ro_norecovery_unchanged():
    with workdir() as d:
        img = kernel_crashed_image(d)
        before = sha256(img)
        with Mount(img, opts=['ro', 'noload']) as m:
            check(tree(m.mnt) != expected_tree(),
                  'noload shows the journal\'s files')
        eq(sha256(img), before, 'sha256 of the image after a noload mount')


if __name__ == '__main__':
    main()
