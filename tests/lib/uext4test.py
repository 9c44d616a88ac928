"""The test toolkit: one module for every Python harness (tests/mounted,
mmap, crash, journal, fsx, inline, fuzz, the kernel-comparison files and
bench/run.py). meson puts this folder on PYTHONPATH; by hand:
`PYTHONPATH=tests/lib python3 tests/...`.

Every mounted test builds its own images with mke2fs (fixed UUID and hash seed) in a
private temp dir, mounts them with the real daemon through FUSE, checks the
results byte for byte and errno for errno, and runs `e2fsck -fn` on every
image it touched.

The daemon is taken from $UEXT4 (meson passes the build's uext4); $UEXT4_SRC
is the source tree.  A test file is a module that defines functions
decorated with @test and ends with `main()`.  Output: one `ok NAME` or
`FAIL NAME: reason` line per test, then `N passed, N failed`.  Exit status
0 if all passed, 1 on any failure, 77 if the whole file must be skipped.
"""

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import traceback

UEXT4 = os.environ.get('UEXT4') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'build', 'uext4')
UEXT4_SRC = os.environ.get('UEXT4_SRC', '')

UUID = '5d1c6e0a-7b2f-4c3d-9e8f-0a1b2c3d4e5f'
HASH_SEED = '3b9ac9ff-1d2e-4f50-8a6b-7c8d9e0f1a2b'

# UEXT4_SELF_CHECK_KERNEL=1 runs the tests on kernel loop mounts instead of
# uext4, to check the tests' expectations against the kernel (debug aid).
SELF_CHECK_KERNEL = os.environ.get('UEXT4_SELF_CHECK_KERNEL') == '1'
# Set by with_io_uring.py: every Mount adds -o io_uring, and a daemon that
# exits cleanly must have served requests through the rings.
IO_URING = os.environ.get('UEXT4_TEST_IO_URING') == '1'

MOUNT_TIMEOUT = 20.0      # seconds for a mount to appear
EXIT_TIMEOUT = 60.0       # seconds for a daemon to exit after unmount

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1
SEEK_DATA = getattr(os, 'SEEK_DATA', 3)
SEEK_HOLE = getattr(os, 'SEEK_HOLE', 4)

EXT4_EXTENTS_FL = 0x00080000
EXT4_INLINE_DATA_FL = 0x10000000
EXT4_INDEX_FL = 0x00001000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                            ctypes.c_char_p, ctypes.c_uint]
_libc.fallocate64.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                              ctypes.c_int64]
_libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                           ctypes.c_size_t]
_libc.getxattr.restype = ctypes.c_ssize_t
AT_FDCWD = -100


class TestFailure(Exception):
    pass


class TestTimeout(Exception):
    pass


class SkipFile(Exception):
    pass


# ---------------------------------------------------------------- checks

def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what):
    if got != want:
        g, w = got, want
        if isinstance(g, (bytes, bytearray)) and len(g) > 64:
            g, w = _describe_bytes_diff(got, want)
        raise TestFailure('%s: got %r, want %r' % (what, g, w))


def _describe_bytes_diff(got, want):
    n = min(len(got), len(want))
    first = next((i for i in range(n) if got[i] != want[i]), n)
    return ('<%d bytes, first difference at %d: %r>' %
            (len(got), first, bytes(got[first:first + 16])),
            '<%d bytes: %r>' % (len(want), bytes(want[first:first + 16])))


def ename(e):
    if e == 0:
        return 'success'
    return errno.errorcode.get(e, str(e))


def errno_of(fn, *args, **kw):
    """Run fn; return 0 if it succeeded, else the errno of its OSError."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


def expect_errno(want, fn, *args, **kw):
    got = errno_of(fn, *args, **kw)
    if got != want:
        raise TestFailure('%s%r: expected %s, got %s' % (
            getattr(fn, '__name__', fn), args, ename(want), ename(got)))


def read_file(path):
    with open(path, 'rb') as f:
        return f.read()


def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def apply_write(model, off, data):
    """What a write of @data at @off does to @model, a bytearray holding a
    file's expected bytes: zeros fill any gap past its end."""
    if len(model) < off:
        model.extend(bytes(off - len(model)))
    model[off:off + len(data)] = data


def pattern(n, seed=1):
    """Deterministic, non-repeating-per-block bytes."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += ('%d:%08d|' % (seed, i)).encode()
        i += 1
    return bytes(out[:n])


# ---------------------------------------------------------------- libc

def renameat2(old, new, flags):
    r = _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD,
                        os.fsencode(new), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def fallocate(fd, mode, off, length):
    r = _libc.fallocate64(fd, mode, off, length)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def getxattr_size(path, name, size):
    """getxattr(2) with an explicit buffer size; returns the result."""
    buf = ctypes.create_string_buffer(max(size, 1))
    r = _libc.getxattr(os.fsencode(path), name.encode(),
                       buf if size else None, size)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return r


STATX_BASIC_STATS = 0x7ff
STATX_BTIME = 0x800
STATX_ATTR_COMPRESSED = 0x4
STATX_ATTR_IMMUTABLE = 0x10
STATX_ATTR_APPEND = 0x20
STATX_ATTR_NODUMP = 0x40
STATX_ATTR_ENCRYPTED = 0x800
STATX_ATTR_VERITY = 0x100000
AT_STATX_FORCE_SYNC = 0x2000


class _StatxTime(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_int64), ('tv_nsec', ctypes.c_uint32),
                ('_reserved', ctypes.c_int32)]


class _Statx(ctypes.Structure):
    """struct statx of <linux/stat.h> (256 bytes)."""
    _fields_ = [('mask', ctypes.c_uint32), ('blksize', ctypes.c_uint32),
                ('attributes', ctypes.c_uint64), ('nlink', ctypes.c_uint32),
                ('uid', ctypes.c_uint32), ('gid', ctypes.c_uint32),
                ('mode', ctypes.c_uint16), ('_spare0', ctypes.c_uint16),
                ('ino', ctypes.c_uint64), ('size', ctypes.c_uint64),
                ('blocks', ctypes.c_uint64),
                ('attributes_mask', ctypes.c_uint64),
                ('atime', _StatxTime), ('btime', _StatxTime),
                ('ctime', _StatxTime), ('mtime', _StatxTime),
                ('rdev_major', ctypes.c_uint32),
                ('rdev_minor', ctypes.c_uint32),
                ('dev_major', ctypes.c_uint32), ('dev_minor', ctypes.c_uint32),
                ('_spare2', ctypes.c_uint64 * 14)]


_libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                        ctypes.c_uint, ctypes.POINTER(_Statx)]


def statx(path, mask=STATX_BASIC_STATS | STATX_BTIME, flags=0):
    """statx(2) (os.stat has no birth time): a dict of the fields, the
    times as (sec, nsec); 'btime' is None unless STATX_BTIME is in the
    returned mask."""
    buf = _Statx()
    if _libc.statx(AT_FDCWD, os.fsencode(path), flags, mask,
                   ctypes.byref(buf)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    out = {name: getattr(buf, name) for name, _ in _Statx._fields_
           if not name.startswith('_')}
    for t in ('atime', 'btime', 'ctime', 'mtime'):
        out[t] = (out[t].tv_sec, out[t].tv_nsec)
    if not buf.mask & STATX_BTIME:
        out['btime'] = None
    return out


def wait_until(fn, want, what, timeout=5.0):
    """Poll fn() until it returns want (for effects that follow FUSE's
    asynchronous FORGET); fail with the last value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want:
            return got
        if time.monotonic() > deadline:
            raise TestFailure('%s: got %r, want %r (after waiting %.0fs)'
                              % (what, got, want, timeout))
        time.sleep(0.01)


def drop_caches(what=2):
    """Make the kernel forget cached dentries/inodes (FUSE forget); with
    what=3 the page cache too."""
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('%d\n' % what)


# ---------------------------------------------------------------- images

def run(cmd, check_rc=True, timeout=120, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, **kw)
    if check_rc and p.returncode != 0:
        raise TestFailure('%s exited %d: %s%s' % (
            ' '.join(cmd), p.returncode, p.stdout.decode(errors='replace'),
            p.stderr.decode(errors='replace')))
    return p


def mkfs(path, size='64M', fstype='ext4', features=(), opts=(),
         extended=()):
    """Create a fresh image with a fixed UUID and hash seed."""
    mult = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    nbytes = int(size[:-1]) * mult[size[-1]] if size[-1] in mult \
        else int(size)
    with open(path, 'wb') as f:
        f.truncate(nbytes)
    ext = ['hash_seed=' + HASH_SEED] + list(extended)
    cmd = ['mke2fs', '-F', '-q', '-t', fstype, '-U', UUID, '-E',
           ','.join(ext)]
    if features:
        cmd += ['-O', ','.join(features)]
    if '-b' not in opts:
        cmd += ['-b', '4096']   # small images would default to 1 KiB blocks
    cmd += list(opts) + [path]
    run(cmd, env=dict(os.environ, MKE2FS_CONFIG='/etc/mke2fs.conf'))
    return path


def fsck(image, check_rc=True):
    """e2fsck -fn must exit 0 on every image a test touched. With
    check_rc=False, return what it said instead of failing (None: clean)."""
    p = run(['e2fsck', '-fn', image], check_rc=False, timeout=300)
    if p.returncode == 0:
        return None
    msg = 'e2fsck -fn %s exited %d:\n%s%s' % (
        os.path.basename(image), p.returncode,
        p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace'))
    if check_rc:
        raise TestFailure(msg)
    return msg


def debugfs(image, request, write=False):
    cmd = ['debugfs'] + (['-w'] if write else []) + ['-R', request, image]
    p = run(cmd)
    return p.stdout.decode(errors='replace')


def debugfs_batch(image, requests):
    """Run @requests (a list of debugfs commands) in one `debugfs -f -`;
    returns {request: its output} (what debugfs printed after echoing it)."""
    p = run(['debugfs', '-f', '-', image],
            input=''.join(r + '\n' for r in requests).encode(),
            env=dict(os.environ, PAGER='__none__', DEBUGFS_PAGER='__none__'))
    sections, cur = {}, None
    for line in p.stdout.decode(errors='replace').splitlines():
        if line.startswith('debugfs: '):
            cur = line[len('debugfs: '):].strip()
            sections[cur] = []
        elif cur is not None:
            sections[cur].append(line)
    return {k: '\n'.join(v) for k, v in sections.items()}


def debugfs_cat(image, path):
    p = run(['debugfs', '-R', 'cat %s' % path, image])
    return p.stdout


def inode_info(image, path):
    """Parse `debugfs -R 'stat PATH'` into a dict."""
    out = debugfs(image, 'stat %s' % path)
    m = re.search(r'Inode: (\d+)\s+Type: (.+?)\s+Mode:\s+(\d+)\s+'
                  r'Flags: (0x[0-9a-f]+)', out)
    if not m:
        raise TestFailure('debugfs stat %s: cannot parse:\n%s' % (path, out))
    info = {'ino': int(m.group(1)), 'type': m.group(2),
            'mode': int(m.group(3), 8), 'flags': int(m.group(4), 16)}
    m = re.search(r'User:\s+(\d+)\s+Group:\s+(\d+)', out)
    info['uid'], info['gid'] = int(m.group(1)), int(m.group(2))
    m = re.search(r'Size: (\d+)', out)
    info['size'] = int(m.group(1))
    m = re.search(r'Links: (\d+)\s+Blockcount: (\d+)', out)
    info['links'], info['blockcount'] = int(m.group(1)), int(m.group(2))
    info['text'] = out
    return info


def sb_field(image, name):
    out = run(['dumpe2fs', '-h', image]).stdout.decode(errors='replace')
    for line in out.splitlines():
        if line.startswith(name + ':'):
            return line.split(':', 1)[1].strip()
    return None


# ---------------------------------------------------------------- kernel

@contextlib.contextmanager
def kernel_mount(image, mnt, opts=()):
    """Loop-mount @image with the kernel's ext4 on @mnt (made if missing)
    for the with-block. Unmounts only what it mounted (the loop device goes
    with it); lazily if the mount is still busy, and then says so."""
    os.makedirs(mnt, exist_ok=True)
    run(['mount', '-t', 'ext4', '-o', ','.join(['loop'] + list(opts)), image,
         mnt])
    try:
        yield mnt
    finally:
        busy = kernel_unmount(mnt)
    if busy:    # reached only when the with-block itself succeeded
        raise TestFailure('umount %s: %s (unmounted lazily)' % (mnt, busy))


# How long a loop mount's ext4 may outlive its umount: the life of a mount
# namespace made while it was mounted (another suite's `unshare -m` case).
KERNEL_RELEASE_TIMEOUT = 60


def kernel_unmount(mnt):
    """umount @mnt if mounted, lazily if busy; returns umount's complaint
    when it had to be lazy. After a loop mount's umount, waits until its
    loop device lets go of the image (mount -o loop clears it with the
    file system's last reference): umount returns 0 while a mount
    namespace made meanwhile (`unshare -m`, anywhere on the machine) holds
    a copy of the mount, and that ext4 has not yet checkpointed its
    journal into the image the caller is about to read."""
    if not mounted_at(mnt):
        return None
    loop = _loop_behind(mnt)
    p = run(['umount', mnt], check_rc=False)
    if p.returncode == 0:
        if loop:
            wait_until(lambda: _loop_backing(loop[0]) != loop[1], True,
                       'the kernel\'s ext4 on %s still up after its umount (a '
                       'mount namespace made meanwhile holds a copy)' % loop[1],
                       timeout=KERNEL_RELEASE_TIMEOUT)
        return None
    run(['umount', '-l', mnt], check_rc=False)
    return p.stderr.decode(errors='replace').strip() or 'busy'


def _loop_backing(name):
    """The file loop device @name (loopN) serves; None when it is free."""
    try:
        with open('/sys/block/%s/loop/backing_file' % name) as f:
            return f.read().rstrip('\n')
    except OSError:
        return None


def _loop_behind(mnt):
    """(loopN, its file) for a mount at @mnt of a loop device that goes
    with its file system (autoclear: mount -o loop), else None."""
    path = os.path.realpath(mnt)
    with open('/proc/mounts') as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3 or _unescape(fields[1]) != path:
                continue
            name = os.path.basename(_unescape(fields[0]))
            try:
                with open('/sys/block/%s/loop/autoclear' % name) as a:
                    autoclear = a.read().strip() == '1'
            except OSError:
                autoclear = False
            backing = _loop_backing(name)
            return (name, backing) if autoclear and backing else None
    return None


def errno_tag(e):
    """How a step recorder writes a failure: 'E' + the errno's name."""
    return 'E' + errno.errorcode.get(e, str(e))


def recorder(log, fail=errno_tag):
    """The step recorder of the kernel-comparison scripts: r(name, fn,
    *args) runs fn and appends (name, result) to @log, a failure as
    fail(errno) and an os.stat_result as (filemode, nlink, size); it
    returns the result. The same script runs on both file systems and
    the logs are compared."""
    def r(name, fn, *args, **kw):
        try:
            res = fn(*args, **kw)
        except OSError as e:
            res = fail(e.errno)
        if isinstance(res, os.stat_result):
            res = (stat.filemode(res.st_mode), res.st_nlink, res.st_size)
        log.append((name, res))
        return res
    return r


# ---------------------------------------------------------------- mounts

def _unescape(s):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), s)


def mounted_at(path):
    path = os.path.realpath(path)
    with open('/proc/mounts') as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and _unescape(fields[1]) == path:
                return fields[2]
    return None


def mounts_under(path):
    path = os.path.realpath(path)
    out = []
    with open('/proc/mounts') as f:
        for line in f:
            fields = line.split()
            mp = _unescape(fields[1])
            if mp == path or mp.startswith(path + '/'):
                out.append(mp)
    return out


def fuse_unmount(mnt, as_user=None):
    """fusermount3 -u, retrying while busy, then -uz."""
    pre = _cred_preexec(*as_user) if as_user else None
    deadline = time.monotonic() + 10
    while mounted_at(mnt):
        p = subprocess.run(['fusermount3', '-u', mnt], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, preexec_fn=pre,
                           timeout=30)
        if p.returncode == 0 or not mounted_at(mnt):
            return True
        if time.monotonic() > deadline:
            subprocess.run(['fusermount3', '-uz', mnt], preexec_fn=pre,
                           timeout=30)
            return False
        time.sleep(0.1)
    return True


def ensure_user(name='uext4test'):
    """The uid and gid of the system user @name, created if missing
    (SkipFile where it cannot be)."""
    import pwd
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        p = subprocess.run(['useradd', '--system', '--no-create-home',
                            '--shell', '/usr/sbin/nologin', name],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise SkipFile('cannot create user %s: %s' % (name, p.stdout))
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def _cred_preexec(uid, gid, groups=()):
    def pre():
        os.setgroups(list(groups))
        os.setgid(gid)
        os.setuid(uid)
    return pre


class MountError(TestFailure):
    pass


class Mount:
    """Run `uext4 IMAGE MNT -f [-o OPTS]` and wait for the mount.

    Use as a context manager.  On exit: fusermount3 -u (then -uz if busy),
    wait for the daemon to exit, and fail if it exited non-zero.
    """

    def __init__(self, image, mnt=None, opts=(), user=None, env=None,
                 expect_clean_exit=True):
        self.image = image
        self.mnt = mnt or os.path.join(os.path.dirname(image), 'mnt')
        self.opts = list(opts)
        self.user = user            # (uid, gid, groups) to run the daemon as
        self.env = env
        self.expect_clean_exit = expect_clean_exit
        self.proc = None
        self.log_path = self.mnt.rstrip('/') + '.log'
        self.returncode = None

    def command(self):
        cmd = [UEXT4, self.image, self.mnt, '-f']
        opts = self.opts + (['io_uring'] if IO_URING else [])
        if opts:
            cmd += ['-o', ','.join(opts)]
        return cmd

    def uring_served(self):
        """Requests the daemon served through io_uring, from its last
        words at exit (None: it did not use io_uring)."""
        m = re.search(r'io_uring: (\d+) requests served', self.log())
        return int(m.group(1)) if m else None

    def log(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode(errors='replace')
        except OSError:
            return ''

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        if SELF_CHECK_KERNEL:
            return self._start_kernel()
        if self.user:
            os.chown(self.mnt, self.user[0], self.user[1])
        logf = open(self.log_path, 'wb')
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        pre = _cred_preexec(*self.user) if self.user else None
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, env=env,
                                     preexec_fn=pre)
        logf.close()
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not mounted_at(self.mnt):
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise MountError('uext4 %s exited %d before mounting: %s' % (
                    ' '.join(self.command()[1:]), self.proc.returncode,
                    self.log().strip()))
            if time.monotonic() > deadline:
                self._kill()
                raise MountError('uext4 did not mount within %ds: %s' % (
                    MOUNT_TIMEOUT, self.log().strip()))
            time.sleep(0.01)
        return self

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        fuse_unmount(self.mnt, self.user)

    def wait_exit(self):
        try:
            self.returncode = self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise TestFailure('uext4 did not exit within %ds after unmount'
                              % EXIT_TIMEOUT)
        return self.returncode

    def _start_kernel(self):
        opts = ['loop'] + [o for o in self.opts
                           if o in ('ro', 'rw') or o.startswith('errors=')]
        run(['mount', '-t', 'ext4', '-o', ','.join(opts), self.image,
             self.mnt])
        self.kernel = True
        return self

    def stop(self):
        if getattr(self, 'kernel', False):
            run(['umount', self.mnt])
            self.kernel = False
            return
        if self.proc is None:
            return
        if self.proc.poll() is None or mounted_at(self.mnt):
            clean = fuse_unmount(self.mnt, self.user)
            rc = self.wait_exit()
            if not clean:
                raise TestFailure('mount %s was busy; needed fusermount3 -uz'
                                  % self.mnt)
        else:
            rc = self.proc.returncode
            self.returncode = rc
        if self.expect_clean_exit and rc != 0:
            raise TestFailure('uext4 exited %d after unmount: %s' % (
                rc, self.log().strip()[-2000:]))
        if IO_URING and self.expect_clean_exit and not self.uring_served():
            raise TestFailure('uext4 -o io_uring served no request through '
                              'io_uring: %s' % self.log().strip()[-2000:])

    def __enter__(self):
        return self.start()

    def close_leaked_fds(self):
        """After a failure, close our fds into the mount so it can go."""
        prefix = os.path.realpath(self.mnt)
        for fd in os.listdir('/proc/self/fd'):
            try:
                target = os.readlink('/proc/self/fd/' + fd)
            except OSError:
                continue
            if target == prefix or target.startswith(prefix + '/'):
                try:
                    os.close(int(fd))
                except OSError:
                    pass

    def __exit__(self, etype, evalue, tb):
        if etype is not None:
            self.close_leaked_fds()
        try:
            self.stop()
        except Exception:
            if etype is None:
                raise
            sys.stderr.write('(cleanup after failure) %s\n'
                             % traceback.format_exc())
        return False

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)


def mount(image, opts=(), **kw):
    return Mount(image, opts=opts, **kw)


def run_daemon(image, mnt, opts=(), args=None, timeout=30, user=None):
    """Run uext4 expecting it to refuse (exit non-zero without mounting).

    Returns (returncode, output).  If it mounts anyway, it is unmounted and
    the returncode is reported as 0 with the mount noted in the output.
    """
    os.makedirs(mnt, exist_ok=True)
    cmd = [UEXT4, image, mnt, '-f'] if args is None else [UEXT4] + args
    if opts:
        cmd += ['-o', ','.join(opts)]
    pre = _cred_preexec(*user) if user else None
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         preexec_fn=pre)
    deadline = time.monotonic() + timeout
    while p.poll() is None:
        if mounted_at(mnt):
            fuse_unmount(mnt, user)
            out = p.communicate(timeout=EXIT_TIMEOUT)[0]
            return 0, '(it mounted) ' + out.decode(errors='replace')
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            fuse_unmount(mnt, user)
            raise TestFailure('uext4 %s neither mounted nor exited' % cmd)
        time.sleep(0.01)
    out = p.stdout.read().decode(errors='replace')
    if mounted_at(mnt):
        fuse_unmount(mnt, user)
    return p.returncode, out


def daemon_stats(sock, timeout=10):
    """The uext4 daemon's counters behind control socket @sock, its answer to
    "stats", "0 requests N spliced M interrupts K early E"
    (src/frontend/control.c): FUSE requests taken, bytes of WRITE data
    spliced (left in a pipe for the handler), FUSE_INTERRUPTs answered
    (refused, ENOSYS) and WRITEs answered before their data reached the
    image. TestFailure for any other answer, OSError when it cannot be
    asked."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sk:
        sk.settimeout(timeout)
        sk.connect(sock)
        sk.sendall(b'stats\n')
        ans = b''
        while not ans.endswith(b'\n'):
            got = sk.recv(256)
            check(got, 'control socket closed before answering: %r' % ans)
            ans += got
    m = re.fullmatch(r'0 requests (\d+) spliced (\d+) interrupts (\d+)'
                     r'(?: early (\d+))?\n', ans.decode(errors='replace'))
    check(m, 'unexpected "stats" answer %r' % ans)
    # "early" is missing from the answers of uext4 0.3.0 and older (bench
    # --uext4-base runs them): None.
    return {'requests': int(m.group(1)), 'spliced': int(m.group(2)),
            'interrupts': int(m.group(3)),
            'early': int(m.group(4)) if m.group(4) is not None else None}


def daemon_requests(sock, timeout=10):
    """The FUSE requests the uext4 daemon behind control socket @sock has
    taken (daemon_stats())."""
    return daemon_stats(sock, timeout)['requests']


def control_socket(mnt, uid=0):
    """The control socket of the daemon serving @mnt for @uid
    (src/frontend/control.c: in /run/uext4 for root, /run/user/UID/uext4 or
    /tmp/uext4-UID for others, named by an FNV-1a hash of the canonical
    mount point). Waits for it: the mount shows before the daemon opens it."""
    h = 0xcbf29ce484222325
    for ch in os.path.realpath(mnt).encode():
        h = ((h ^ ch) * 0x100000001b3) & 0xffffffffffffffff
    dirs = (['/run/uext4'] if uid == 0 else ['/run/user/%d/uext4' % uid]) + \
        ['/tmp/uext4-%d' % uid]
    paths = ['%s/ctl-%016x' % (d, h) for d in dirs]
    wait_until(lambda: any(os.path.exists(p) for p in paths), True,
               'a control socket among %r' % paths)
    return next(p for p in paths if os.path.exists(p))


# ---------------------------------------------------------------- dirs

@contextlib.contextmanager
def workdir(keep_failed=False):
    """A private temp dir for the with-block, removed after it with
    whatever the block left mounted. @keep_failed: when the block raises,
    unmount but leave the files, and say where (for a look at the images)."""
    d = tempfile.mkdtemp(prefix='uext4-t-')
    os.chmod(d, 0o755)
    failed = True
    try:
        yield d
        failed = False
    finally:
        # What a failed test left mounted: FUSE mounts through fusermount3,
        # kernel loop mounts lazily (their loop devices go with them).
        for mp in reversed(mounts_under(d)):
            if (mounted_at(mp) or '').startswith('fuse'):
                fuse_unmount(mp)
            else:
                kernel_unmount(mp)
        if mounts_under(d):
            sys.stderr.write('not removing %s: still mounted\n' % d)
        elif failed and keep_failed:
            sys.stderr.write('kept %s\n' % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- users

def run_as(uid, gid, groups, fn, *args, umask=0o022):
    """Run fn(*args) in a forked child with the given credentials.

    Returns fn's result; re-raises its exception (OSError keeps errno).
    """
    import pickle
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            signal.alarm(60)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            os.umask(umask)
            try:
                res = ('ok', fn(*args))
            except BaseException as e:   # noqa: B902 - relay everything
                res = ('exc', e)
            try:
                data = pickle.dumps(res)
            except Exception as e:
                data = pickle.dumps(('exc', TestFailure(repr(e))))
            with os.fdopen(w, 'wb') as f:
                f.write(data)
        except BaseException:
            code = 2
        os._exit(code)
    os.close(w)
    with os.fdopen(r, 'rb') as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        raise TestFailure('run_as child died without a result')
    kind, val = pickle.loads(data)
    if kind == 'exc':
        raise val
    return val


def errno_as(cred, fn, *args):
    """errno (0 on success) of fn(*args) run with cred=(uid, gid, groups)."""
    return run_as(cred[0], cred[1], cred[2], errno_of, fn, *args)


def expect_errno_as(cred, want, fn, *args):
    got = errno_as(cred, fn, *args)
    if got != want:
        raise TestFailure('uid %d: %s%r: expected %s, got %s' % (
            cred[0], getattr(fn, '__name__', fn), args, ename(want),
            ename(got)))


# ---------------------------------------------------------------- runner

_tests = []


def test(fn=None, timeout=120):
    def reg(f):
        f.timeout = timeout
        _tests.append(f)
        return f
    if fn is not None:
        return reg(fn)
    return reg


def _on_alarm(signum, frame):
    raise TestTimeout('test timed out')


def require_basics():
    if not os.path.exists('/dev/fuse'):
        raise SkipFile('/dev/fuse missing')
    if os.geteuid() != 0:
        raise SkipFile('the mounted tests run as root')


def main(setup=None, needs_daemon=True):
    """Run the @test functions named on the command line (all by default).
    @needs_daemon: the file mounts with uext4 (/dev/fuse, root, $UEXT4)."""
    names = sys.argv[1:]
    try:
        if needs_daemon:
            require_basics()
        if setup:
            setup()
    except SkipFile as e:
        print('SKIP: %s' % e)
        sys.exit(77)
    if needs_daemon and not SELF_CHECK_KERNEL and not os.access(UEXT4, os.X_OK):
        print('FAIL setup: daemon %s is not executable' % UEXT4)
        print('0 passed, 1 failed')
        sys.exit(1)
    os.umask(0o022)
    signal.signal(signal.SIGALRM, _on_alarm)
    passed = failed = 0
    for fn in _tests:
        if names and fn.__name__ not in names:
            continue
        t0 = time.monotonic()
        signal.alarm(fn.timeout)
        try:
            fn()
        except SkipFile as e:
            signal.alarm(0)
            print('SKIP: %s' % e)
            sys.exit(77)
        except Exception as e:
            signal.alarm(0)
            failed += 1
            reason = str(e) or e.__class__.__name__
            if not isinstance(e, TestFailure):
                reason = '%s: %s' % (e.__class__.__name__, reason)
            print('FAIL %s: %s' % (fn.__name__, reason))
            if not isinstance(e, TestFailure):
                traceback.print_exc(file=sys.stdout)
        else:
            signal.alarm(0)
            passed += 1
            print('ok %s' % fn.__name__)
            sys.stderr.write('# %s took %.1fs\n' % (fn.__name__,
                                                  time.monotonic() - t0))
        sys.stdout.flush()
    print('%d passed, %d failed' % (passed, failed))
    sys.exit(1 if failed else 0)


def stat_summary(st):
    return (stat.filemode(st.st_mode), st.st_nlink, st.st_size, st.st_uid,
            st.st_gid)


def require_kernel_loop_mount(features=()):
    """The setup() of a file that compares uext4 with the kernel's ext4:
    skip the whole file (exit 77) unless this process is root and the
    kernel loop-mounts an image made as the tests make theirs (with
    @features)."""
    if os.geteuid() != 0:
        raise SkipFile('needs root for loop mounts')
    with workdir() as d:
        img = mkfs(d + '/probe.img', size='16M', features=features)
        os.mkdir(d + '/m')
        p = subprocess.run(['mount', '-t', 'ext4', '-o', 'loop', img,
                            d + '/m'], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise SkipFile('kernel loop mount unavailable: %s'
                           % p.stdout.decode(errors='replace').strip())
        subprocess.run(['umount', d + '/m'], check=True)


FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602


def getflags(path):
    """The inode flags (FS_IOC_GETFLAGS, as lsattr reads them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        # chattr and lsattr pass an int: the kernel stores 4 bytes.
        return struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETFLAGS,
                                              bytes(4)))[0]
    finally:
        os.close(fd)


def setflags(path, flags):
    """Set the inode flags (FS_IOC_SETFLAGS, as chattr does)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack('I', flags))
    finally:
        os.close(fd)
