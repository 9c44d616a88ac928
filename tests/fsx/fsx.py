#!/usr/bin/env python3
"""fsx for uext4: random file operations checked against an in-memory model.

In the spirit of fsx (from the BSD/xfstests lineage): a few files on a fresh
image, thousands of random operations on them, and every byte the kernel
hands back compared with what a plain byte array says it must be.  The
operations:

  write       pwrite(2) at an offset (sparse offsets included)
  append      write(2) through a second descriptor opened O_APPEND
  read        pread(2), compared byte for byte (reads past EOF included)
  mapread     mmap(MAP_SHARED, PROT_READ) and compare (python mmap)
  mapwrite    mmap(MAP_SHARED) the whole file rounded up to a page, store
              bytes anywhere in it, including past EOF in the last page,
              then msync(MS_SYNC) and munmap at once.  Stores past EOF must
              never reach the file and an mmap store never changes the size
              (design.md, inline rule 3); the model drops them.  No mapping
              is ever live while the size changes.
  truncate    ftruncate(2) or truncate(2), up or down
  falloc      fallocate(2) mode 0 or FALLOC_FL_KEEP_SIZE
  punch       FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE
  zero        FALLOC_FL_ZERO_RANGE, with or without KEEP_SIZE
  copy        copy_file_range(2) between two of the files (or within one)
  seek        lseek SEEK_DATA / SEEK_HOLE: a reported hole must read as zeros
  fsync       fsync(2) or fdatasync(2)
  dropcache   posix_fadvise(DONTNEED): the next reads reach the daemon (uext4
              opens with keep_cache, so otherwise they may not)
  reopen      close(2) and open(2) again (now and then with O_TRUNC)
  recreate    close, unlink(2) and create the file again: a fresh inode
  remount     close everything, fusermount3 -u, wait for the daemon to exit
              (exit status 0), `e2fsck -fn` clean, compare every file with
              debugfs (on-disk bytes, i_size, inline data within capacity),
              mount again and compare every file through the mount

After every operation fstat(2) must give the model's size.  Sizes and
offsets concentrate on 0..200 bytes and around 60 (the i_block part) and the
inline capacity C (128 with 256-byte inodes; computed as the kernel's
ext4_get_max_inline_size does), with page boundaries, occasional sizes up to
64 KiB and sparse offsets.  Seeds choose the inode size: seed % 4 == 1 or 0:
256-byte inodes, 2: 1024-byte inodes (C = 896), 3: 128-byte inodes (no
inline_data); a third of the seeds keep every size within C + 212 bytes;
a quarter mount with inline_mmap=convert and a third with commit=1 (those
also pause 1.2 s now and then so that the periodic commit runs between ops).
The model is content and size only: which inodes are inline is the kernel
differential tests' business.  (Linux itself leaves a new file inline with
i_size past C after truncate 0 -> 129 and a 2-byte write at 61, so the
on-disk check holds the stored inline bytes to C, not i_size.)

Every byte written is ((op number + file offset) % 255) + 1, never zero: a
wrong byte tells which operation (mod 255) wrote it, and zeros are holes.

Each seed runs in a child process with its own temp dir (prefix uext4-fsx-);
the parent enforces a wall-clock limit per seed and afterwards unmounts and
kills whatever that seed left behind (only its own mounts and the daemon PIDs
it recorded).  Inside the child every operation runs in the main thread
under signal.alarm and a watchdog thread: if an operation hangs past its
limit the watchdog SIGKILLs the daemon (the FUSE connection aborts, the
operation fails with ENOTCONN) and the seed fails instead of hanging.

Usage:
  fsx.py --uext4 PATH [--seeds N] [--first-seed F] [--ops N]
  fsx.py --uext4 PATH --seed S [--ops N] [-v]     # reproduce one seed
  (by hand with PYTHONPATH=tests/lib, the test toolkit; meson sets it)
  --keep keeps the temp dirs (image, daemon log); --skip OP,... leaves out
  operations (to hunt past a known bug; it changes every sequence).
A seed's op sequence does not depend on --ops: a failure at op K reproduces
with any --ops >= K.  Output: `ok seed S` per seed (details of each failure
before it), last line `N passed, N failed`.  Exit 0 if all passed, else 1.
"""

import argparse
import collections
import ctypes
import errno
import mmap
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from uext4test import mounted_at, mounts_under  # tests/lib, on PYTHONPATH

PAGE = os.sysconf('SC_PAGE_SIZE')
MAX_FILE = 64 * 1024 + 512          # largest size / offset + length
UUID = '75657874-4653-5800-8000-000000000001'
HASH_SEED = '75657874-4653-5800-8000-000000000002'
HERE = os.path.dirname(os.path.abspath(__file__))

OP_TIMEOUT = 30         # seconds for one file system operation (signal.alarm)
WATCHDOG_GRACE = 15     # then the watchdog kills the daemon
MOUNT_TIMEOUT = 20
EXIT_TIMEOUT = 60
FSCK_TIMEOUT = 120

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
SEEK_DATA = getattr(os, 'SEEK_DATA', 3)
SEEK_HOLE = getattr(os, 'SEEK_HOLE', 4)
EXT4_INLINE_DATA_FL = 0x10000000

PROT_READ, PROT_WRITE = 1, 2
MAP_SHARED = 1
MS_SYNC = 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate64.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                              ctypes.c_int64]
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                       ctypes.c_int, ctypes.c_int, ctypes.c_int64]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MAP_FAILED = ctypes.c_void_p(-1).value

# The byte pattern: op k writes PATTERN[(k + off) % 255] at file offset off.
PATTERN = bytes(range(1, 256))


def pattern(opnum, off, n):
    start = (opnum + off) % 255
    reps = (start + n) // 255 + 1
    return (PATTERN * reps)[start:start + n]


class Failure(Exception):
    """The file system disagreed with the model (or misbehaved)."""


class OpTimeout(Exception):
    pass


def _oserr(what):
    e = ctypes.get_errno()
    return OSError(e, '%s: %s' % (what, os.strerror(e)))


def fallocate(fd, mode, off, length):
    if _libc.fallocate64(fd, mode, off, length) != 0:
        raise _oserr('fallocate')


def map_store(fd, maplen, stores):
    """mmap MAP_SHARED, store (off, bytes) pairs, msync(MS_SYNC), munmap.

    ctypes rather than the mmap module: the module refuses a length past
    EOF, and the stores past EOF within the last page are the point."""
    addr = _libc.mmap(None, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    if addr is None or addr == MAP_FAILED:
        raise _oserr('mmap')
    try:
        for off, data in stores:
            ctypes.memmove(addr + off, data, len(data))
        if _libc.msync(addr, maplen, MS_SYNC) != 0:
            raise _oserr('msync')
    finally:
        if _libc.munmap(addr, maplen) != 0:
            raise _oserr('munmap')


# ------------------------------------------------------------ helpers

def run(cmd, timeout, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=timeout, **kw)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:    # a zombie is as good as dead
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def pid_is_ours(pid, workdir):
    """The PID still runs a uext4 on an image in our workdir (no reuse)."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = f.read().split(b'\0')
    except OSError:
        return False
    return any(a.startswith(os.fsencode(workdir) + b'/') for a in argv)


def fusermount_u(mnt, lazy=False):
    try:
        run(['fusermount3', '-uz' if lazy else '-u', mnt], timeout=30)
    except subprocess.TimeoutExpired:
        pass


def hexs(b):
    return ' '.join('%02x' % c for c in b)


def describe_diff(got, want, base=0):
    """Text for the differing byte range of two byte strings."""
    n = min(len(got), len(want))
    diffs = [i for i in range(n) if got[i] != want[i]]
    lines = []
    if len(got) != len(want):
        lines.append('length: got %d bytes, want %d' % (len(got), len(want)))
    if diffs:
        first, last = diffs[0], diffs[-1]
        lines.append('differing bytes: file offsets [%d, %d] (%d of %d bytes '
                     'differ)' % (base + first, base + last, len(diffs), n))
        lo = max(0, first - 4)
        lines.append('  at %d: got  %s' % (base + lo, hexs(got[lo:first + 16])))
        lines.append('  at %d: want %s' % (base + lo, hexs(want[lo:first + 16])))
        g = got[first]
        if g:
            lines.append('  got byte %#04x at %d is the pattern of an op '
                         '≡ %d (mod 255)' % (g, base + first,
                                             (g - 1 - (base + first)) % 255))
        else:
            lines.append('  got zero at %d where the model has data'
                         % (base + first))
    elif len(got) > len(want):
        lines.append('  extra bytes from %d: %s' % (base + n, hexs(got[n:n + 16])))
    return '\n'.join(lines)


def inline_capacity(inode_size, extra_isize):
    """The kernel's ext4_get_max_inline_size() for an inode with no other
    in-inode xattrs: 60 bytes of i_block plus what system.data can take."""
    if inode_size <= 128:
        return 0
    # ext4_xattr_ibody_header (4) + EXT4_XATTR_LEN(strlen("data")) (20)
    # + EXT4_XATTR_ROUND (3) + the terminating __u32 (4)
    free = inode_size - 128 - extra_isize - 4 - 20 - 3 - 4
    return 60 + ((free + 3) & ~3)


def dumpe2fs_field(image, name):
    p = run(['dumpe2fs', '-h', image], timeout=60)
    for line in p.stdout.decode(errors='replace').splitlines():
        if line.startswith(name + ':'):
            return line.split(':', 1)[1].strip()
    return None


# ------------------------------------------------------------ the model

class File:
    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.data = bytearray()
        self.fd = -1

    @property
    def size(self):
        return len(self.data)

    def resize(self, n):
        if n < len(self.data):
            del self.data[n:]
        else:
            self.data.extend(bytes(n - len(self.data)))

    def put(self, off, b):
        if off + len(b) > len(self.data):
            self.resize(off + len(b))
        self.data[off:off + len(b)] = b

    def zero(self, off, n):
        end = min(off + n, len(self.data))
        if end > off:
            self.data[off:end] = bytes(end - off)


class Config:
    """Everything a seed decides before its first operation."""

    def __init__(self, seed, args):
        rng = random.Random('config-%d' % seed)
        self.seed = seed
        self.inode_size = args.inode_size or [256, 256, 1024, 128][seed % 4]
        self.nfiles = rng.randint(2, 4)
        # A third of the seeds never leave the inline range by much: no page
        # sized lengths, no offsets past capacity + 72 + 140.
        self.small = rng.random() < 0.33
        self.opts = []
        if rng.random() < 0.25:
            self.opts.append('inline_mmap=convert')
        if rng.random() < 0.33:
            self.opts.append('commit=1')
        if args.mount_opts is not None:
            self.opts = [o for o in args.mount_opts.split(',') if o]

    def describe(self):
        return 'inode_size=%d files=%d sizes=%s opts=%s' % (
            self.inode_size, self.nfiles, 'small' if self.small else 'mixed',
            ','.join(self.opts) or '-')


class Watchdog(threading.Thread):
    """Kills the daemon if an operation outlives its deadline, so that the
    operation, stuck in the kernel waiting for a FUSE reply that signals
    cannot interrupt, fails with ENOTCONN instead of hanging."""

    def __init__(self, runner):
        super().__init__(daemon=True)
        self.runner = runner
        self.lock = threading.Lock()
        self.deadline = None
        self.what = None
        self.fired = None

    def arm(self, what, seconds):
        with self.lock:
            self.what = what
            self.deadline = time.monotonic() + seconds

    def disarm(self):
        with self.lock:
            self.deadline = None

    def run(self):
        while True:
            time.sleep(0.5)
            with self.lock:
                late = self.deadline is not None and \
                    time.monotonic() > self.deadline
                what = self.what
                if late:
                    self.deadline = None
            if late:
                pid = self.runner.daemon_pid()
                self.fired = what
                sys.stdout.write('seed %d: watchdog: "%s" hung; killing uext4 '
                                 'pid %s\n' % (self.runner.cfg.seed, what, pid))
                sys.stdout.flush()
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass


def _alarm(signum, frame):
    raise OpTimeout('operation timed out (signal.alarm)')


class Runner:
    def __init__(self, cfg, args, workdir):
        self.cfg = cfg
        self.args = args
        self.uext4 = args.uext4
        self.workdir = workdir
        self.image = os.path.join(workdir, 'fsx.img')
        self.mnt = os.path.join(workdir, 'mnt')
        self.daemon_log = os.path.join(workdir, 'uext4.log')
        self.rng = random.Random(cfg.seed)
        self.proc = None
        self.files = []
        self.log = []
        self.opnum = 0
        self.mounts = 0
        self.cap = 0
        self.points = []
        self.counts = collections.Counter()
        self.log_checked = 0
        self.watchdog = Watchdog(self)

    # ---------------------------------------------------------- plumbing

    def daemon_pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def note(self, text):
        line = '#%d %s' % (self.opnum, text)
        self.log.append(line)
        if self.args.verbose:
            print(line, flush=True)

    def fail(self, msg):
        raise Failure(msg)

    class _Guard:
        def __init__(self, runner, what, seconds):
            self.runner, self.what, self.seconds = runner, what, seconds

        def __enter__(self):
            self.runner.watchdog.arm(self.what, self.seconds + WATCHDOG_GRACE)
            signal.alarm(self.seconds)

        def __exit__(self, *exc):
            signal.alarm(0)
            self.runner.watchdog.disarm()
            return False

    def guard(self, what, seconds=None):
        return self._Guard(self, what, seconds or self.args.op_timeout)

    def mkfs(self):
        with open(self.image, 'wb') as f:
            f.truncate(32 << 20)
        features = ['^orphan_file']
        if self.cfg.inode_size >= 256:
            features.append('inline_data')
        cmd = ['mke2fs', '-F', '-q', '-t', 'ext4', '-b', '4096',
               '-I', str(self.cfg.inode_size), '-N', '256',
               '-U', UUID, '-E', 'hash_seed=' + HASH_SEED,
               '-O', ','.join(features), self.image]
        env = dict(os.environ)
        conf = os.path.join(HERE, '..', '..', 'images', 'mke2fs.conf')
        if os.path.exists(conf):
            env['MKE2FS_CONFIG'] = conf
        p = run(cmd, timeout=60, env=env)
        if p.returncode != 0:
            raise RuntimeError('mke2fs failed: %s' % p.stdout.decode(errors='replace'))
        extra = int(dumpe2fs_field(self.image, 'Desired extra isize') or 32)
        self.cap = inline_capacity(self.cfg.inode_size, extra) \
            if self.cfg.inode_size >= 256 else 0
        self.points = sorted({60, 128} | ({self.cap} if self.cap else set()))

    def mount(self):
        os.makedirs(self.mnt, exist_ok=True)
        cmd = [self.uext4, self.image, self.mnt, '-f']
        if self.cfg.opts:
            cmd += ['-o', ','.join(self.cfg.opts)]
        with open(self.daemon_log, 'ab') as logf:
            logf.write(('--- mount %d: %s\n' % (self.mounts, ' '.join(cmd))).encode())
            logf.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf)
        self.mounts += 1
        with open(os.path.join(self.workdir, 'daemon.pids'), 'a') as f:
            f.write('%d\n' % self.proc.pid)
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not mounted_at(self.mnt):
            if self.proc.poll() is not None:
                self.fail('uext4 exited %d before mounting' % self.proc.returncode)
            if time.monotonic() > deadline:
                self.fail('uext4 did not mount within %ds' % MOUNT_TIMEOUT)
            time.sleep(0.01)

    def unmount(self):
        """fusermount3 -u, then wait for the daemon; it must exit 0."""
        if self.proc is None:
            return
        deadline = time.monotonic() + 15
        while mounted_at(self.mnt):
            p = run(['fusermount3', '-u', self.mnt], timeout=30)
            if p.returncode == 0 or not mounted_at(self.mnt):
                break
            if time.monotonic() > deadline:
                self.fail('fusermount3 -u keeps failing: %s'
                          % p.stdout.decode(errors='replace').strip())
            time.sleep(0.1)
        try:
            rc = self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail('uext4 did not exit within %ds of the unmount' % EXIT_TIMEOUT)
        self.proc = None
        if rc != 0:
            self.fail('uext4 exited %d after the unmount' % rc)
        self.check_daemon_log()

    def check_daemon_log(self):
        """The daemon must not have logged an error or a warning (a latched
        write-back error surfacing at release shows only there)."""
        with open(self.daemon_log, 'rb') as fh:
            fh.seek(self.log_checked)
            text = fh.read().decode(errors='replace')
            self.log_checked = fh.tell()
        bad = [l for l in text.splitlines()
               if re.match(r'uext4: (error|warning):', l) or
               re.search(r'lockdep|Assertion|Sanitizer|runtime error', l)]
        if bad:
            self.fail('uext4 logged:\n' + '\n'.join(bad[:20]))

    def abort_mount(self):
        """Best-effort teardown after a failure: no checks."""
        for f in self.files:
            if f.fd >= 0:
                try:
                    os.close(f.fd)
                except OSError:
                    pass
                f.fd = -1
        if self.proc is not None:
            if mounted_at(self.mnt):
                fusermount_u(self.mnt)
            try:
                self.proc.wait(EXIT_TIMEOUT if self.proc.poll() is None else 1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.daemon_rc = self.proc.returncode
            self.proc = None
        if mounted_at(self.mnt):
            fusermount_u(self.mnt, lazy=True)

    def fsck(self):
        p = run(['e2fsck', '-fn', self.image], timeout=FSCK_TIMEOUT)
        if p.returncode != 0:
            self.fail('e2fsck -fn exited %d:\n%s' % (
                p.returncode, p.stdout.decode(errors='replace').rstrip()))

    def check_on_disk(self):
        """debugfs: i_size, inline data within capacity, the bytes on disk."""
        for f in self.files:
            p = run(['debugfs', '-R', 'stat /' + f.name, self.image], timeout=60)
            out = p.stdout.decode(errors='replace')
            m = re.search(r'Flags: (0x[0-9a-f]+)', out)
            s = re.search(r'Size: (\d+)', out)
            if not m or not s:
                self.fail('debugfs stat /%s: cannot parse:\n%s' % (f.name, out))
            flags, size = int(m.group(1), 16), int(s.group(1))
            inline = bool(flags & EXT4_INLINE_DATA_FL)
            if size != f.size:
                self.fail('on disk: %s has i_size %d, model %d' % (f.name, size, f.size))
            # No i_size <= capacity check: Linux 6.18 itself leaves a new file
            # inline with i_size past the capacity (truncate 0 -> 129, then
            # write 2 bytes at 61); only the stored bytes must fit.
            out_path = os.path.join(self.workdir, 'dump.' + f.name)
            if os.path.exists(out_path):
                os.unlink(out_path)
            run(['debugfs', '-R', 'dump /%s %s' % (f.name, out_path), self.image],
                timeout=60)
            with open(out_path, 'rb') as fh:
                got = fh.read()
            os.unlink(out_path)
            # libext2fs reads an inline inode up to its inline data size, not
            # i_size (design.md). That size may be more than i_size (the rest
            # of i_block) or less (truncate up, then a short write: the kernel
            # stores only what was written, and reads zeros past it).
            if inline:
                if len(got) > self.cap:
                    self.fail('on disk: %s is inline with %d bytes of inline data '
                              '> capacity %d' % (f.name, len(got), self.cap))
                got = got[:f.size] + bytes(max(0, f.size - len(got)))
            if got != f.data:
                self.fail('on disk (debugfs dump) %s differs from the model '
                          '(%s):\n%s' % (f.name, 'inline' if inline else 'blocks',
                                         describe_diff(got, f.data)))

    def open_all(self):
        for f in self.files:
            with self.guard('open ' + f.name):
                f.fd = os.open(f.path, os.O_RDWR)

    def close_all(self):
        for f in self.files:
            if f.fd >= 0:
                with self.guard('close ' + f.name):
                    fd, f.fd = f.fd, -1
                    os.close(fd)

    def verify_all(self, why):
        for f in self.files:
            with self.guard('verify ' + f.name):
                st = os.fstat(f.fd)
                got = os.pread(f.fd, f.size + 1, 0)
            if st.st_size != f.size:
                self.fail('%s: %s: size %d, model %d' % (why, f.name, st.st_size, f.size))
            if got != f.data:
                self.fail('%s: %s differs from the model:\n%s'
                          % (why, f.name, describe_diff(got, f.data)))

    # ---------------------------------------------------------- choices

    def pick_pos(self):
        """A size or offset: mostly 0..200, around 60 and the capacity;
        page boundaries, up to 64 KiB and sparse offsets now and then."""
        rng = self.rng
        r = rng.random()
        if self.cfg.small:
            r *= 0.84
        if r < 0.42:
            v = rng.randint(0, max(200, self.cap + 72) if rng.random() < 0.3 else 200)
        elif r < 0.60:
            v = 60 + rng.randint(-4, 4)
        elif r < 0.84:
            v = rng.choice(self.points[1:] or [128]) + rng.randint(-4, 4)
        elif r < 0.91:
            v = PAGE * rng.randint(1, 3) + rng.randint(-8, 8)
        elif r < 0.96:
            v = rng.randint(0, MAX_FILE)
        else:
            v = PAGE * rng.randint(1, 15) + rng.randint(0, 200)
        return max(0, min(v, MAX_FILE))

    def pick_small(self):
        """A size for shrinking: brings a grown file back to inline range."""
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return rng.randint(0, 200)
        if r < 0.6:
            return 60 + rng.randint(-4, 4)
        if r < 0.9:
            return rng.choice(self.points[1:] or [128]) + rng.randint(-4, 4)
        return 0

    def pick_len(self):
        rng = self.rng
        r = rng.random()
        if self.cfg.small:
            r *= 0.88
        if r < 0.48:
            return rng.randint(1, 16)
        if r < 0.88:
            return rng.randint(1, 140)
        if r < 0.96:
            return rng.randint(1, PAGE + 100)
        return rng.randint(1, 16384)

    def pick_range(self):
        """(off, len) with off + len <= MAX_FILE; half the time chosen by its
        end, so that writes end exactly at 60, 128, 129, C, C + 1..."""
        n = self.pick_len()
        if self.rng.random() < 0.5:
            end = max(1, self.pick_pos())
            n = min(n, end)
            off = end - n
        else:
            off = min(self.pick_pos(), MAX_FILE - 1)
            n = min(n, MAX_FILE - off)
        return off, n

    # ---------------------------------------------------------- operations

    OPS = [('write', 20), ('append', 5), ('read', 14), ('mapread', 8),
           ('mapwrite', 10), ('truncate', 13), ('falloc', 5), ('punch', 5),
           ('zero', 3), ('copy', 3), ('seek', 3), ('fsync', 4),
           ('dropcache', 4), ('reopen', 5), ('recreate', 2), ('remount', 1)]

    def check_read(self, f, off, n, got, what):
        want = bytes(f.data[off:off + n])
        if got != want:
            self.fail('%s of %s at %d (%d bytes) differs from the model '
                      '(size %d):\n%s' % (what, f.name, off, n, f.size,
                                          describe_diff(got, want, off)))

    def op_write(self, f):
        off, n = self.pick_range()
        data = pattern(self.opnum, off, n)
        self.note('%s write off=%d len=%d (size %d -> %d)'
                  % (f.name, off, n, f.size, max(f.size, off + n)))
        with self.guard('write'):
            done = 0
            while done < n:
                done += os.pwrite(f.fd, data[done:], off + done)
        f.put(off, data)

    def op_append(self, f):
        n = self.pick_len()
        n = min(n, MAX_FILE - f.size)
        if n <= 0:
            return self.op_truncate(f)
        off = f.size
        data = pattern(self.opnum, off, n)
        self.note('%s append len=%d (size %d -> %d)' % (f.name, n, off, off + n))
        with self.guard('append'):
            fd = os.open(f.path, os.O_WRONLY | os.O_APPEND)
            try:
                done = 0
                while done < n:
                    done += os.write(fd, data[done:])
            finally:
                os.close(fd)
        f.put(off, data)

    def op_read(self, f):
        if self.rng.random() < 0.3:
            off, n = 0, f.size + self.rng.randint(0, 64)
        else:
            off, n = self.pick_range()
        self.note('%s read off=%d len=%d (size %d)' % (f.name, off, n, f.size))
        with self.guard('read'):
            got = os.pread(f.fd, n, off)
        self.check_read(f, off, n, got, 'read')

    def op_mapread(self, f):
        if f.size == 0:
            return self.op_read(f)
        if self.rng.random() < 0.4:
            off, n = 0, f.size
        else:
            off = self.rng.randrange(f.size)
            n = self.rng.randint(1, f.size - off)
        self.note('%s mapread off=%d len=%d (size %d)' % (f.name, off, n, f.size))
        with self.guard('mapread'):
            st = os.fstat(f.fd)
            if st.st_size != f.size:
                self.fail('before mmap: %s has size %d, model %d'
                          % (f.name, st.st_size, f.size))
            m = mmap.mmap(f.fd, f.size, mmap.MAP_SHARED, mmap.PROT_READ)
            try:
                got = m[off:off + n]
            finally:
                m.close()
        self.check_read(f, off, n, got, 'mapread')

    def op_mapwrite(self, f):
        if f.size == 0:
            return self.op_write(f)
        maplen = (f.size + PAGE - 1) // PAGE * PAGE
        stores = []
        for _ in range(self.rng.randint(1, 4)):
            r = self.rng.random()
            if r < 0.4:     # around EOF, often past it
                off = self.rng.randint(max(0, f.size - 16), maplen - 1)
            elif r < 0.7:
                off = min(self.pick_pos(), maplen - 1)
            else:
                off = self.rng.randrange(maplen)
            n = min(self.pick_len(), maplen - off)
            stores.append((off, pattern(self.opnum, off, n)))
        self.note('%s mapwrite maplen=%d size=%d stores=%s' % (
            f.name, maplen, f.size,
            ','.join('%d+%d' % (o, len(d)) for o, d in stores)))
        with self.guard('mapwrite'):
            st = os.fstat(f.fd)
            if st.st_size != f.size:
                self.fail('before mmap: %s has size %d, model %d'
                          % (f.name, st.st_size, f.size))
            map_store(f.fd, maplen, stores)
        for off, data in stores:    # stores past EOF never reach the file
            if off < f.size:
                f.put(off, data[:f.size - off])

    def op_truncate(self, f):
        # Shrink grown files more often than not: keep them near the
        # inline capacity most of the time.
        if f.size > 256 and self.rng.random() < 0.8:
            size = self.pick_small()
        else:
            size = self.pick_pos()
        how = self.rng.choice(['ftruncate', 'truncate'])
        self.note('%s %s %d -> %d' % (f.name, how, f.size, size))
        with self.guard(how):
            if how == 'ftruncate':
                os.ftruncate(f.fd, size)
            else:
                os.truncate(f.path, size)
        f.resize(size)

    def op_falloc(self, f):
        off, n = self.pick_range()
        keep = self.rng.random() < 0.5
        self.note('%s fallocate %s off=%d len=%d (size %d)'
                  % (f.name, 'KEEP_SIZE' if keep else 'mode 0', off, n, f.size))
        with self.guard('fallocate'):
            fallocate(f.fd, FALLOC_FL_KEEP_SIZE if keep else 0, off, n)
        if not keep and off + n > f.size:
            f.resize(off + n)

    def op_punch(self, f):
        if f.size and self.rng.random() < 0.6:
            off = self.rng.randrange(f.size)
            n = self.rng.randint(1, f.size - off + 8)
        else:
            off, n = self.pick_range()
        self.note('%s punch off=%d len=%d (size %d)' % (f.name, off, n, f.size))
        with self.guard('punch'):
            fallocate(f.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n)
        f.zero(off, n)

    def op_zero(self, f):
        off, n = self.pick_range()
        keep = self.rng.random() < 0.5
        self.note('%s zero_range%s off=%d len=%d (size %d)'
                  % (f.name, ' KEEP_SIZE' if keep else '', off, n, f.size))
        with self.guard('zero_range'):
            fallocate(f.fd, FALLOC_FL_ZERO_RANGE | (FALLOC_FL_KEEP_SIZE if keep else 0),
                      off, n)
        if not keep and off + n > f.size:
            f.resize(off + n)
        f.zero(off, n)

    def op_copy(self, f):
        src = self.rng.choice(self.files)
        if src.size == 0:
            return self.op_write(f)
        off_in = self.rng.randrange(src.size)
        n = self.rng.randint(1, src.size - off_in + 16)
        off_out = min(self.pick_pos(), MAX_FILE - n) if n < MAX_FILE else 0
        if src is f and off_in < off_out + n and off_out < off_in + n:
            off_out = src.size + self.rng.randint(0, 100)   # ranges may not overlap
            if off_out + n > MAX_FILE:
                return self.op_read(f)
        self.note('%s copy_file_range from %s off_in=%d len=%d off_out=%d '
                  '(sizes %d, %d)' % (f.name, src.name, off_in, n, off_out,
                                      src.size, f.size))
        want = bytes(src.data[off_in:off_in + n])
        with self.guard('copy_file_range'):
            done = 0
            while done < len(want):
                c = os.copy_file_range(src.fd, f.fd, n - done, off_in + done,
                                       off_out + done)
                if c == 0:
                    break
                done += c
        if done != len(want):
            self.fail('copy_file_range copied %d bytes, want %d' % (done, len(want)))
        f.put(off_out, want)

    def op_seek(self, f):
        off = self.pick_pos() if self.rng.random() < 0.5 else \
            self.rng.randint(0, f.size + 8)
        self.note('%s seek data/hole from %d (size %d)' % (f.name, off, f.size))
        res = {}
        with self.guard('lseek'):
            for name, whence in (('data', SEEK_DATA), ('hole', SEEK_HOLE)):
                try:
                    res[name] = os.lseek(f.fd, off, whence)
                except OSError as e:
                    if e.errno != errno.ENXIO:
                        raise
                    res[name] = None
        d, h = res['data'], res['hole']
        if off >= f.size:
            if d is not None or h is not None:
                self.fail('lseek past EOF (%d >= size %d): SEEK_DATA %s, SEEK_HOLE %s, '
                          'want ENXIO for both' % (off, f.size, d, h))
            return
        if h is None or not off <= h <= f.size:
            self.fail('SEEK_HOLE from %d gave %s (size %d)' % (off, h, f.size))
        if d is None:
            if any(f.data[off:]):
                self.fail('SEEK_DATA from %d: ENXIO but the model has data at %d'
                          % (off, off + next(i for i, c in enumerate(f.data[off:]) if c)))
        else:
            if not off <= d < f.size:
                self.fail('SEEK_DATA from %d gave %d (size %d)' % (off, d, f.size))
            if any(f.data[off:d]):
                self.fail('SEEK_DATA from %d skipped to %d over data (model)' % (off, d))

    def op_fsync(self, f):
        data_only = self.rng.random() < 0.3
        self.note('%s %s' % (f.name, 'fdatasync' if data_only else 'fsync'))
        with self.guard('fsync'):
            (os.fdatasync if data_only else os.fsync)(f.fd)

    def op_dropcache(self, f):
        self.note('%s posix_fadvise DONTNEED' % f.name)
        with self.guard('fadvise'):
            os.posix_fadvise(f.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def op_reopen(self, f):
        trunc = self.rng.random() < 0.08
        self.note('%s close and reopen%s' % (f.name, ' O_TRUNC' if trunc else ''))
        with self.guard('close/reopen'):
            fd, f.fd = f.fd, -1
            os.close(fd)
            f.fd = os.open(f.path, os.O_RDWR | (os.O_TRUNC if trunc else 0))
        if trunc:
            f.resize(0)

    def op_pause(self, f):
        # Only with commit=1: let the periodic commit write back between ops.
        self.note('pause 1.2 s (commit=1 writeback)')
        time.sleep(1.2)

    def op_recreate(self, f):
        # A fresh inode: new files have their own inline rules (the first
        # write that fits goes inline, even after a truncate up).
        self.note('%s unlink and create again' % f.name)
        with self.guard('unlink/create'):
            fd, f.fd = f.fd, -1
            os.close(fd)
            os.unlink(f.path)
            f.fd = os.open(f.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        f.resize(0)

    def op_remount(self, f):
        self.note('remount')
        self.remount('remount at op %d' % self.opnum)

    def remount(self, why):
        self.close_all()
        self.unmount()
        self.fsck()
        self.check_on_disk()
        self.mount()
        self.open_all()
        self.verify_all('after ' + why)

    # ---------------------------------------------------------- driver

    def run(self):
        self.watchdog.start()
        signal.signal(signal.SIGALRM, _alarm)
        self.mkfs()
        print('seed %d: %s inline capacity %d' % (self.cfg.seed, self.cfg.describe(),
                                                   self.cap), flush=True)
        self.mount()
        for i in range(self.cfg.nfiles):
            name = 'f%d' % i
            f = File(name, os.path.join(self.mnt, name))
            with self.guard('create ' + name):
                f.fd = os.open(f.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            self.files.append(f)
        ops = self.OPS + ([('pause', 0.15)] if 'commit=1' in self.cfg.opts else [])
        skip = set(filter(None, (self.args.skip or '').split(',')))
        names = [n for n, _ in ops]
        weights = [0 if n in skip else w for n, w in ops]
        for self.opnum in range(1, self.args.ops + 1):
            name = self.rng.choices(names, weights)[0]
            f = self.rng.choice(self.files)
            self.counts[name] += 1
            try:
                getattr(self, 'op_' + name)(f)
                if f.fd >= 0:
                    with self.guard('fstat'):
                        st = os.fstat(f.fd)
                    if st.st_size != f.size:
                        self.fail('after the op, fstat gives size %d, model %d'
                                  % (st.st_size, f.size))
            except (OSError, OpTimeout) as e:
                raise Failure('%s on %s: %s: %s' % (name, f.name, type(e).__name__, e)) from e
        self.opnum += 1
        self.note('final check')
        self.verify_all('final check')
        self.close_all()
        self.unmount()
        self.fsck()
        self.check_on_disk()


def diagnose(runner):
    """After a read mismatch: is it the kernel's cached copy or the daemon?"""
    out = []
    for f in runner.files:
        if f.fd < 0 or runner.daemon_pid() is None:
            continue
        try:
            with runner.guard('diagnose ' + f.name, 10):
                os.posix_fadvise(f.fd, 0, 0, os.POSIX_FADV_DONTNEED)
                fd = os.open(f.path, os.O_RDONLY)
                try:
                    got = os.pread(fd, f.size + 1, 0)
                finally:
                    os.close(fd)
        except (OSError, OpTimeout) as e:
            out.append('  %s: re-read failed: %s' % (f.name, e))
            continue
        if got == f.data:
            out.append('  %s: matches the model after dropping cached pages'
                       % f.name)
        else:
            out.append('  %s: after dropping cached pages still differs:\n%s'
                       % (f.name, '\n'.join('    ' + l for l in
                                            describe_diff(got, f.data).split('\n'))))
    return out


def run_child(args):
    seed = args.seed[0]
    cfg = Config(seed, args)
    runner = Runner(cfg, args, args.workdir)
    try:
        runner.run()
        print('seed %d: %d ops (%s), %d mounts, clean' % (
            seed, args.ops, ' '.join('%s=%d' % kv for kv in sorted(runner.counts.items())),
            runner.mounts), flush=True)
        return 0
    except (Failure, OpTimeout, OSError, subprocess.TimeoutExpired) as e:
        lines = ['FAIL seed %d (%s) at op %d of %d:' % (seed, cfg.describe(),
                                                      runner.opnum, args.ops)]
        lines += ['  ' + l for l in str(e).split('\n')]
        if runner.watchdog.fired:
            lines.append('  (the watchdog killed the daemon during "%s")'
                         % runner.watchdog.fired)
        if isinstance(e, Failure) and 'differs' in str(e) and \
                not str(e).startswith('on disk'):
            lines += diagnose(runner)
        lines.append('  last %d ops:' % min(20, len(runner.log)))
        lines += ['    ' + l for l in runner.log[-20:]]
        print('\n'.join(lines), flush=True)
        post = []
        try:
            runner.abort_mount()
            rc = getattr(runner, 'daemon_rc', None)
            if rc not in (0, None):
                post.append('  uext4 exited %d' % rc)
            p = run(['e2fsck', '-fn', runner.image], timeout=FSCK_TIMEOUT)
            post.append('  after unmount: e2fsck -fn exit %d%s' % (
                p.returncode, '' if p.returncode == 0 else ':\n' + '\n'.join(
                    '    ' + l for l in p.stdout.decode(errors='replace').splitlines()[:30])))
            try:
                runner.check_on_disk()
                post.append('  on disk: every file matches the model')
            except Failure as e2:
                post.append('  ' + str(e2).replace('\n', '\n  '))
        except Exception as e3:   # post-mortem only
            post.append('  post-mortem failed: %r' % e3)
        try:
            with open(runner.daemon_log, 'rb') as fh:
                text = fh.read().decode(errors='replace')
            tail = [l for l in text.splitlines()
                    if not l.startswith('--- mount') and
                    not l.startswith('uext4: info:')][-25:]
            if tail:
                post.append('  uext4 log (tail, info lines left out):')
                post += ['    ' + l for l in tail]
        except OSError:
            pass
        post.append('  reproduce: %s %s --uext4 %s --seed %d --ops %d%s' % (
            sys.executable, os.path.abspath(__file__), args.uext4, seed,
            max(runner.opnum, 1),
            (' --inode-size %d' % args.inode_size if args.inode_size else '') +
            (' --mount-opts %s' % args.mount_opts if args.mount_opts is not None else '') +
            (' --skip %s' % args.skip if args.skip else '')))
        print('\n'.join(post), flush=True)
        return 1
    except Exception:
        print('FAIL seed %d: harness error at op %d:\n%s' % (
            seed, runner.opnum, traceback.format_exc()), flush=True)
        return 1
    finally:
        try:
            runner.abort_mount()
        except Exception:
            pass


# ------------------------------------------------------------ parent

def cleanup_workdir(workdir):
    """Unmount and stop whatever a seed's child left behind: only mounts
    under its workdir and daemons it recorded that still serve from it."""
    pids = []
    try:
        with open(os.path.join(workdir, 'daemon.pids')) as f:
            pids = [int(l) for l in f if l.strip()]
    except OSError:
        pass
    for mp in mounts_under(workdir):
        fusermount_u(mp)
    deadline = time.monotonic() + 10
    for pid in pids:
        while pid_alive(pid) and pid_is_ours(pid, workdir) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if pid_alive(pid) and pid_is_ours(pid, workdir):
                os.kill(pid, sig)
                time.sleep(1)
    for mp in mounts_under(workdir):
        fusermount_u(mp, lazy=True)


def run_seed(args, seed):
    workdir = tempfile.mkdtemp(prefix='uext4-fsx-')
    cmd = [sys.executable, os.path.abspath(__file__), '--child', '--workdir', workdir,
           '--uext4', args.uext4, '--seed', str(seed), '--ops', str(args.ops)]
    if args.inode_size:
        cmd += ['--inode-size', str(args.inode_size)]
    if args.mount_opts is not None:
        cmd += ['--mount-opts', args.mount_opts]
    if args.skip:
        cmd += ['--skip', args.skip]
    if args.verbose:
        cmd.append('-v')
    cmd += ['--op-timeout', str(args.op_timeout)]
    limit = args.seed_timeout or (120 + args.ops * 0.2)
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        rc = child.wait(limit)
    except subprocess.TimeoutExpired:
        print('FAIL seed %d: no result within %ds; killing it' % (seed, limit),
              flush=True)
        child.kill()
        child.wait()
        rc = 1
    except BaseException:
        child.kill()
        child.wait()
        cleanup_workdir(workdir)
        raise
    finally:
        cleanup_workdir(workdir)
        if mounts_under(workdir):
            print('seed %d: still mounted under %s' % (seed, workdir), flush=True)
            rc = 1
        elif args.keep:
            print('seed %d: kept %s' % (seed, workdir), flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print('seed %d: %.1f s' % (seed, time.monotonic() - t0))
    print('%s seed %d' % ('ok' if rc == 0 else 'FAIL', seed), flush=True)
    return rc == 0


def _terminate(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main():
    # SIGTERM (meson's timeout) and SIGINT (even when started in the
    # background, where the shell ignores it) unwind through the finally
    # blocks: the child unmounts, the parent kills the child and cleans up.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--uext4', required=True, help='the uext4 binary')
    ap.add_argument('--seeds', type=int, default=4,
                    help='run seeds FIRST..FIRST+N-1 (default 4)')
    ap.add_argument('--first-seed', type=int, default=1)
    ap.add_argument('--seed', type=int, action='append',
                    help='run only this seed (repeatable)')
    ap.add_argument('--ops', type=int, default=1500, help='operations per seed')
    ap.add_argument('--inode-size', type=int, choices=[128, 256, 512, 1024],
                    help='override the inode size the seed picks')
    ap.add_argument('--mount-opts', help='override the mount options the seed '
                    'picks (comma-separated, "" for none)')
    ap.add_argument('--op-timeout', type=int, default=OP_TIMEOUT,
                    help='seconds per file system operation (default %%(default)s); '
                    'the watchdog kills the daemon %d s later' % WATCHDOG_GRACE)
    ap.add_argument('--seed-timeout', type=float,
                    help='seconds per seed (default 120 + 0.2 per op)')
    ap.add_argument('--skip', metavar='OP[,OP...]',
                    help='never run these operations (to hunt past a known bug; '
                    'changes every seed\'s sequence)')
    ap.add_argument('--keep', action='store_true', help='keep the temp dirs')
    ap.add_argument('-v', '--verbose', action='store_true', help='print every op')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--workdir', help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.uext4 = os.path.abspath(args.uext4)

    if args.child:
        try:
            sys.exit(run_child(args))
        except KeyboardInterrupt as e:
            print('seed %d: interrupted (%s)' % (args.seed[0], e), flush=True)
            sys.exit(1)
    if not os.path.exists('/dev/fuse'):
        print('fsx: no /dev/fuse: skipped')
        sys.exit(77)
    if not os.access(args.uext4, os.X_OK):
        print('fsx: %s is not executable' % args.uext4)
        print('0 passed, 1 failed')
        sys.exit(1)
    seeds = args.seed or list(range(args.first_seed, args.first_seed + args.seeds))
    passed = failed = 0
    try:
        for seed in seeds:
            if run_seed(args, seed):
                passed += 1
            else:
                failed += 1
    except KeyboardInterrupt as e:
        print('fsx: interrupted (%s)' % e)
        failed += 1
    print('%d passed, %d failed' % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
