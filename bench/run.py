#!/usr/bin/python3
"""uext4 benchmark: kernel ext4 (loop mount) vs fuse2fs vs uext4.

Builds a fresh 1 GiB inline_data image on tmpfs, runs every workload on a
fresh copy of it for each system, interleaving the systems inside each
repetition, and prints medians, spread and time ratios; then the scaling,
mount-time and memory checks. See bench/README.md for what each workload does
and how to read the output. Python standard library only.
"""
import argparse
import ctypes
import errno
import json
import mmap
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20
GiB = 1 << 30
PAGE = 4096
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))  # the test toolkit
import uext4test as ut  # noqa: E402
from uext4test import mounted_at as mounted  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=120, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


def syncfs(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.syncfs(fd) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def is_root():
    return os.geteuid() == 0


def drop_caches():
    """Drop the kernel's page/dentry/inode caches (root only). The tmpfs file
    backing each image stays in RAM: "cold" means the file system's caches."""
    if not is_root():
        return False
    ut.drop_caches(3)
    return True


def fs_type_of(path):
    """fstype of the mount holding path (longest mount-point prefix)."""
    best, typ = '', None
    real = os.path.realpath(path)
    with open('/proc/mounts') as f:
        for line in f:
            p = line.split()
            mp = p[1]
            if (real == mp or real.startswith(mp.rstrip('/') + '/')) and len(mp) >= len(best):
                best, typ = mp, p[2]
    return typ


# ---------------------------------------------------------------- /proc probes

def proc_status(pid, key):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def proc_counters(pid):
    """Daemon CPU seconds and I/O syscall counts (whole thread group)."""
    out = {}
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        tick = os.sysconf('SC_CLK_TCK')
        out['cpu'] = (int(fields[11]) + int(fields[12])) / tick
        with open('/proc/%d/io' % pid) as f:
            for line in f:
                k, v = line.split(':')
                out[k] = int(v)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def control_socket(pid):
    """The path of the uext4 daemon @pid's control socket (the listening Unix
    socket among its descriptors named ctl-*), or None."""
    inodes = set()
    try:
        for fd in os.listdir('/proc/%d/fd' % pid):
            try:
                t = os.readlink('/proc/%d/fd/%s' % (pid, fd))
            except OSError:
                continue
            if t.startswith('socket:['):
                inodes.add(t[8:-1])
        with open('/proc/net/unix') as f:
            next(f)
            for line in f:
                p = line.split()
                if len(p) >= 8 and p[6] in inodes and '/ctl-' in p[7]:
                    return p[7]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return None


def daemon_requests(path):
    """FUSE requests the uext4 daemon behind control socket @path has taken,
    or None when it cannot tell."""
    try:
        return ut.daemon_requests(path, timeout=5)
    except (OSError, ut.TestFailure):
        return None


def counters_delta(a, b):
    return {k: b[k] - a[k] for k in b if k in a}


# ---------------------------------------------------------------- systems

class MountError(Exception):
    pass


class Mount:
    """One mount of one image by one system; pid is the daemon's (or None)."""

    def __init__(self, system, img, mnt, pid=None, proc=None, mount_s=None):
        self.system, self.img, self.mnt = system, img, mnt
        self.pid, self.proc, self.mount_s = pid, proc, mount_s


class Registry:
    """Everything this run started, so cleanup touches nothing else."""

    def __init__(self):
        self.mounts = []
        self.lock = threading.Lock()

    def add(self, m):
        with self.lock:
            self.mounts.append(m)

    def remove(self, m):
        with self.lock:
            if m in self.mounts:
                self.mounts.remove(m)


REG = Registry()


class System:
    name = '?'
    is_fuse = True

    def __init__(self, args):
        self.args = args

    def mount(self, img, mnt, timeout=30.0):
        raise NotImplementedError

    def unmount(self, m, timeout=60.0):
        raise NotImplementedError


class Kernel(System):
    name = 'kernel'
    is_fuse = False

    def mount(self, img, mnt, timeout=30.0, extra=None):
        opts = 'loop' + (',' + extra if extra else '')
        t0 = time.perf_counter()
        r = run(['mount', '-t', 'ext4', '-o', opts, img, mnt], check=False, timeout=timeout)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise MountError('kernel mount failed: ' + r.stderr.strip())
        m = Mount(self, img, mnt, mount_s=dt)
        REG.add(m)
        return m

    def unmount(self, m, timeout=60.0):
        ut.kernel_unmount(m.mnt)
        REG.remove(m)


class FuseSystem(System):
    fusermount = 'fusermount3'
    expect_log = None  # a line the daemon must have logged, checked at unmount

    def cmd(self, img, mnt):
        raise NotImplementedError

    def mount(self, img, mnt, timeout=30.0):
        errf = tempfile.TemporaryFile()
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.cmd(img, mnt), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=errf)
        m = Mount(self, img, mnt, pid=proc.pid, proc=proc)
        REG.add(m)
        deadline = t0 + timeout
        while True:
            if mounted(mnt):
                m.mount_s = time.perf_counter() - t0
                break
            if proc.poll() is not None:
                errf.seek(0)
                REG.remove(m)
                raise MountError('%s exited %s before mounting: %s' % (
                    self.name, proc.returncode, errf.read().decode(errors='replace').strip()))
            if time.perf_counter() > deadline:
                self.kill(m)
                raise MountError('%s: mount not visible after %.0f s' % (self.name, timeout))
            time.sleep(0.0005)
        m.errf = errf
        return m

    def kill(self, m):
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait(10)
        if mounted(m.mnt):
            run([self.fusermount, '-uz', m.mnt], check=False)
        REG.remove(m)

    def unmount(self, m, timeout=60.0):
        for _ in range(20):
            r = run([self.fusermount, '-u', m.mnt], check=False, timeout=timeout)
            if r.returncode == 0 or not mounted(m.mnt):
                break
            time.sleep(0.2)  # busy right after a workload's last close
        try:
            m.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log('  ! %s pid %d did not exit %.0f s after unmount; killing it' % (
                self.name, m.pid, timeout))
            self.kill(m)
            raise MountError('%s did not exit after unmount' % self.name)
        REG.remove(m)
        m.errf.seek(0)
        log_text = m.errf.read().decode(errors='replace')
        if m.proc.returncode != 0:
            raise MountError('%s exited %d: %s' % (self.name, m.proc.returncode,
                             log_text.strip()[-500:]))
        if self.expect_log and self.expect_log not in log_text:
            raise MountError('%s: no "%s" in its log: %s' % (self.name, self.expect_log,
                                                             log_text.strip()[-300:]))


class Fuse2fs(FuseSystem):
    name = 'fuse2fs'
    fusermount = 'fusermount'  # Debian's fuse2fs is built on libfuse 2

    def cmd(self, img, mnt):
        return [self.args.fuse2fs, img, mnt, '-f']


class Uext4(FuseSystem):
    """uext4 with its defaults, or a variant 'uext4-NAME' run with -o OPTS
    (--uext4-opts NAME=OPTS)."""
    name = 'uext4'

    def __init__(self, args, variant=None, opts='', binary=None):
        super().__init__(args)
        if variant:
            self.name = 'uext4-' + variant
        self.opts = opts
        self.binary = binary or args.uext4

    def cmd(self, img, mnt):
        return [self.binary, img, mnt, '-f'] + (['-o', self.opts] if self.opts else [])

    def mount(self, img, mnt, timeout=30.0):
        # The mount shows in /proc/mounts just before the daemon opens its
        # control socket, which the request counts need.
        m = super().mount(img, mnt, timeout)
        deadline = time.perf_counter() + 5
        while control_socket(m.pid) is None and time.perf_counter() < deadline:
            time.sleep(0.001)
        return m


URING_PARAM = '/sys/module/fuse/parameters/enable_uring'


class Uext4Uring(Uext4):
    """uext4 -o io_uring, which must have served through the rings: a run
    where the kernel did not offer io_uring (the daemon fell back to
    /dev/fuse) is an error, not a figure."""

    def __init__(self, args):
        super().__init__(args, 'uring', 'io_uring')
        self.expect_log = 'io_uring: serving'


class UringParam:
    """Sets the fuse module's enable_uring to Y for the run and gives it back
    its previous value on every way out (restore() is idempotent)."""

    def __init__(self):
        self.prev = None

    def enable(self):
        with open(URING_PARAM) as f:
            self.prev = f.read().strip()
        if self.prev != 'Y':
            with open(URING_PARAM, 'w') as f:
                f.write('Y\n')
        log('%s: %s -> Y (restored at the end)' % (URING_PARAM, self.prev))

    def restore(self):
        if self.prev is None:
            return
        prev, self.prev = self.prev, None
        try:
            with open(URING_PARAM) as f:
                cur = f.read().strip()
            if cur != prev:
                with open(URING_PARAM, 'w') as f:
                    f.write(prev + '\n')
            log('%s: restored to %s' % (URING_PARAM, prev))
        except OSError as e:
            log('! could not restore %s to %s: %s' % (URING_PARAM, prev, e))


URING = UringParam()


# ---------------------------------------------------------------- watchdog

class Watchdog:
    """Kills the current daemon if a run exceeds its time limit: the blocked
    system call then fails with ENOTCONN and the run is recorded as an error
    instead of hanging the benchmark."""

    def __init__(self):
        self.cv = threading.Condition()
        self.deadline = None
        self.target = None
        self.fired = False
        t = threading.Thread(target=self.loop, daemon=True)
        t.start()

    def arm(self, seconds, ctx):
        with self.cv:
            self.deadline, self.target, self.fired = time.monotonic() + seconds, ctx, False
            self.cv.notify()

    def disarm(self):
        with self.cv:
            self.deadline, self.target = None, None

    def loop(self):
        with self.cv:
            while True:
                if self.deadline is None:
                    self.cv.wait()
                    continue
                left = self.deadline - time.monotonic()
                if left > 0:
                    self.cv.wait(left)
                    continue
                ctx, self.deadline = self.target, None
                self.fired = True
                m = ctx.m if ctx else None
                if m and m.pid:
                    log('  ! time limit: killing %s pid %d' % (m.system.name, m.pid))
                    try:
                        os.kill(m.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


WATCHDOG = None


# ---------------------------------------------------------------- run context

class Ctx:
    """One (workload, system) run: a fresh image copy, mounted."""

    def __init__(self, system, img, mnt):
        self.system, self.img, self.mnt = system, img, mnt
        self.m = None
        self.times = {}     # phase -> seconds
        self.daemon = {}    # phase -> counter deltas
        self.notes = {}

    def mount(self):
        self.m = self.system.mount(self.img, self.mnt)

    def unmount(self):
        if self.m:
            m, self.m = self.m, None
            self.system.unmount(m)

    def cold(self):
        """Empty the file system's caches: remount (FUSE and kernel) and drop
        the kernel's caches (root)."""
        self.unmount()
        drop_caches()
        self.mount()

    def path(self, *p):
        return os.path.join(self.mnt, *p)

    def measure(self, phase, fn, *a):
        pid = self.m.pid if self.m else None
        before = proc_counters(pid) if pid else {}
        ctl = control_socket(pid) if pid and isinstance(self.system, Uext4) else None
        if ctl:
            before['requests'] = daemon_requests(ctl)
        t0 = time.perf_counter()
        r = fn(*a)
        dt = time.perf_counter() - t0
        if pid:
            after = proc_counters(pid)
            if ctl:
                after['requests'] = daemon_requests(ctl)
                if before['requests'] is None or after['requests'] is None:
                    del before['requests'], after['requests']
            self.daemon[phase] = counters_delta(before, after)
            # After the rtt row too: its paired ratio, near 1.00, shows the
            # probe measures what the row does.
            if ctl and phase in PHASE_OPS:
                self.daemon[phase]['rtt_probe'] = self.rtt_probe()
        self.times[phase] = dt
        return r

    def rtt_probe(self):
        """The round trip of this mount just after a phase, in seconds:
        getxattrs of a missing name on its root, a request each. The rtt
        row is measured in a mount of its own, minutes away from the row it
        is the yardstick of; on a loaded machine the two drift apart, and
        the floor column with them. Not counted in the phase's figures."""
        t0 = time.perf_counter()
        for _ in range(PROBE_OPS):
            try:
                os.getxattr(self.mnt, 'user.missing')
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.ENOTSUP):
                    raise
        return (time.perf_counter() - t0) / PROBE_OPS


class NotApplicable(Exception):
    pass


# ---------------------------------------------------------------- helpers for workloads

def write_file(path, size, bs=MiB, fsync=True):
    buf = os.urandom(bs)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        while left > 0:
            n = os.write(fd, buf[:min(bs, left)])
            left -= n
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path, bs=MiB):
    buf = bytearray(bs)
    total = 0
    with open(path, 'rb', buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            total += n
    return total


def open_direct(path, flags):
    try:
        return os.open(path, flags | os.O_DIRECT)
    except OSError as e:
        if e.errno == 22:
            raise NotApplicable('O_DIRECT open: EINVAL')
        raise


def offsets(n, file_size, seed):
    rnd = random.Random(seed)
    nblk = file_size // PAGE
    return [rnd.randrange(nblk) * PAGE for _ in range(n)]


def rand_reads_direct(path, offs):
    fd = open_direct(path, os.O_RDONLY)
    buf = mmap.mmap(-1, PAGE)  # page aligned, as O_DIRECT wants
    try:
        for off in offs:
            if os.preadv(fd, [buf], off) != PAGE:
                raise IOError('short O_DIRECT read at %d' % off)
    finally:
        os.close(fd)
        buf.close()


def rand_writes(path, offs, direct):
    flags = os.O_WRONLY
    fd = open_direct(path, flags) if direct else os.open(path, flags)
    buf = mmap.mmap(-1, PAGE)
    buf.write(os.urandom(PAGE))
    try:
        for off in offs:
            if os.pwritev(fd, [buf], off) != PAGE:
                raise IOError('short write at %d' % off)
        os.fsync(fd)
    finally:
        os.close(fd)
        buf.close()


# ---------------------------------------------------------------- workloads
# Each takes (ctx, sizes) and times its phases with ctx.measure(); setup work
# outside measure() is not timed.

def wl_seq_write(ctx, S):
    ctx.measure('seq_write', write_file, ctx.path('seq'), S['seq'])


def wl_seq_read(ctx, S):
    write_file(ctx.path('seq'), S['seq'])
    ctx.cold()
    n = ctx.measure('seq_read_cold', read_file, ctx.path('seq'))
    if n != S['seq']:
        raise IOError('read %d bytes, expected %d' % (n, S['seq']))


def wl_rand_read_direct(ctx, S):
    write_file(ctx.path('r'), S['rand_file'])
    ctx.cold()
    ctx.measure('rand_read_direct', rand_reads_direct, ctx.path('r'),
                offsets(S['rand_ops'], S['rand_file'], 1))


def wl_rand_write_direct(ctx, S):
    write_file(ctx.path('r'), S['rand_file'])
    ctx.cold()
    ctx.measure('rand_write_direct', rand_writes, ctx.path('r'),
                offsets(S['rand_ops'], S['rand_file'], 2), True)


def wl_rand_write_buffered(ctx, S):
    write_file(ctx.path('r'), S['rand_file'])
    ctx.cold()
    ctx.measure('rand_write_buffered', rand_writes, ctx.path('r'),
                offsets(S['rand_ops'], S['rand_file'], 3), False)


def wl_files(ctx, S):
    d = ctx.path('d')
    os.mkdir(d)
    names = [os.path.join(d, 'file-%06d' % i) for i in range(S['files'])]
    shuffled = names[:]
    random.Random(4).shuffle(shuffled)

    def create():
        for p in names:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    def stat():
        for p in shuffled:
            os.stat(p)

    def unlink():
        for p in shuffled:
            os.unlink(p)

    ctx.measure('create', create)
    ctx.cold()
    ctx.measure('stat_cold', stat)
    ctx.measure('unlink', unlink)


def small_content(i):
    return (b'small file %06d ' % i).ljust(39, b'.') + b'\n'   # 40 bytes


def wl_small(ctx, S):
    d = ctx.path('s')
    os.mkdir(d)
    names = [os.path.join(d, 'f%05d' % i) for i in range(S['small'])]

    def write_all():
        for i, p in enumerate(names):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, small_content(i))
            os.close(fd)
        syncfs(d)

    def read_all():
        for i, p in enumerate(names):
            fd = os.open(p, os.O_RDONLY)
            data = os.read(fd, 4096)
            os.close(fd)
            if data != small_content(i):
                raise IOError('%s: wrong content %r' % (p, data[:60]))

    ctx.measure('small_write', write_all)
    ctx.cold()
    ctx.measure('small_read_cold', read_all)


def wl_mmap(ctx, S):
    p = ctx.path('m')
    size = S['mmap']
    write_file(p, size)
    ctx.cold()

    def dirty():
        fd = os.open(p, os.O_RDWR)
        try:
            m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            for off in range(0, size, PAGE):
                m[off] = (m[off] + 1) & 0xff
            m.flush()   # msync(MS_SYNC)
            m.close()
        finally:
            os.close(fd)

    ctx.measure('mmap_dirty_msync', dirty)


def wl_par2(ctx, S):
    paths = [ctx.path('p%d' % i) for i in range(2)]
    for p in paths:
        write_file(p, S['rand_file'])
    ctx.cold()
    # O_DIRECT may be refused: find out before forking.
    os.close(open_direct(paths[0], os.O_RDONLY))

    def two_procs():
        r, w = os.pipe()
        pids = []
        for i, p in enumerate(paths):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.close(w)
                    offs = offsets(S['rand_ops'], S['rand_file'], 10 + i)
                    os.read(r, 1)       # start together
                    rand_reads_direct(p, offs)
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        os.close(r)
        time.sleep(0.05)                # let both children reach the barrier
        t0 = time.perf_counter()
        os.write(w, b'xx')
        os.close(w)
        bad = 0
        for pid in pids:
            _, st = os.waitpid(pid, 0)
            bad += st != 0
        dt = time.perf_counter() - t0
        if bad:
            raise IOError('%d reader process(es) failed' % bad)
        return dt

    # The barrier sleep is outside the timed interval: use the children's span.
    ctx.times['par2_rand_read_direct'] = ctx.measure('par2_rand_read_direct', two_procs)


# name -> (function, phases it reports, description used in the table)
def wl_rtt(ctx, S):
    p = ctx.path('x')
    with open(p, 'wb') as f:
        f.write(b'x')

    def missing_xattrs():
        # FUSE caches no xattrs: every call is one request and its reply,
        # which the daemon answers from memory. On the kernel, one syscall.
        for _ in range(S['rtt_ops']):
            try:
                os.getxattr(p, 'user.missing')
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.ENOTSUP):
                    raise

    ctx.measure('rtt', missing_xattrs)


WORKLOADS = [
    ('rtt', wl_rtt, [('rtt', 'getxattr of a missing name x{rtt_ops} (a request each)')]),
    ('seq_write', wl_seq_write, [('seq_write', 'seq write {seq_h}, bs 1 MiB, fsync')]),
    ('seq_read', wl_seq_read, [('seq_read_cold', 'seq read {seq_h}, cold')]),
    ('rand_read_direct', wl_rand_read_direct,
     [('rand_read_direct', 'rand 4K read O_DIRECT x{rand_ops}, {rand_file_h} file')]),
    ('rand_write_direct', wl_rand_write_direct,
     [('rand_write_direct', 'rand 4K write O_DIRECT x{rand_ops} +fsync')]),
    ('rand_write_buffered', wl_rand_write_buffered,
     [('rand_write_buffered', 'rand 4K write buffered x{rand_ops} +fsync')]),
    ('files', wl_files, [('create', 'create {files} files, one dir'),
                         ('stat_cold', 'stat {files} files, cold'),
                         ('unlink', 'unlink {files} files')]),
    ('small', wl_small, [('small_write', 'write {small} x 40 B files +syncfs'),
                         ('small_read_cold', 'read {small} x 40 B files, cold')]),
    ('mmap', wl_mmap, [('mmap_dirty_msync', 'mmap {mmap_h} shared, dirty all, msync')]),
    ('par2', wl_par2, [('par2_rand_read_direct', '2 procs rand 4K O_DIRECT read x{rand_ops} each')]),
]


# Round trips in the rtt probe after each round-trip-bound phase (Ctx.rtt_probe).
PROBE_OPS = 2000

# Round-trip-bound phases: operations per run (a size key), for the floor.
PHASE_OPS = {'rtt': 'rtt_ops', 'rand_read_direct': 'rand_ops', 'rand_write_direct': 'rand_ops',
             'rand_write_buffered': 'rand_ops', 'create': 'files', 'stat_cold': 'files',
             'unlink': 'files', 'small_write': 'small', 'small_read_cold': 'small'}


def paired_ratio(ds, times):
    """Median (min-max) over runs of requests x that run's probed round
    trip / its time; '-' without probes. @ds and @times are parallel (one
    entry per run of a uext4 system)."""
    rs = [d['requests'] * d['rtt_probe'] / t for d, t in zip(ds, times)
          if 'requests' in d and 'rtt_probe' in d and t > 0]
    if not rs:
        return '-'
    return '%.2f (%.2f-%.2f)' % (statistics.median(rs), min(rs), max(rs))


def human(n):
    return '%d GiB' % (n // GiB) if n >= GiB and n % GiB == 0 else '%d MiB' % (n // MiB)


# ---------------------------------------------------------------- images

def mkfs(img, size, extra=(), lazy=False):
    """The toolkit's image (fixed UUID and hash seed), inline_data; inode
    tables and journal written now unless @lazy."""
    ut.mkfs(img, size=str(size), features=('inline_data',), opts=extra,
            extended=() if lazy else ('lazy_itable_init=0', 'lazy_journal_init=0'))


def copy_image(src, dst):
    run(['cp', '--sparse=always', src, dst], timeout=300)


def fsck(img):
    """None if e2fsck -fn passes, else the end of what it said."""
    msg = ut.fsck(img, check_rc=False)
    if msg is None:
        return None
    head, _, said = msg.partition('\n')
    return '%s %s' % (head, said.strip()[-400:])


def inline_flag(img, path):
    try:
        return bool(ut.inode_info(img, path)['flags'] & ut.EXT4_INLINE_DATA_FL)
    except ut.TestFailure:
        return None


# ---------------------------------------------------------------- one run

def one_run(system, wl_name, fn, S, base, work):
    img = os.path.join(work, 'img-%s-%s.img' % (system.name, wl_name))
    mnt = os.path.join(work, 'mnt-%s' % system.name)
    os.makedirs(mnt, exist_ok=True)
    copy_image(base, img)
    ctx = Ctx(system, img, mnt)
    err = None
    try:
        drop_caches()
        ctx.mount()
        WATCHDOG.arm(S['run_timeout'], ctx)
        try:
            fn(ctx, S)
        finally:
            WATCHDOG.disarm()
        ctx.unmount()
    except NotApplicable as e:
        err = 'n/a'
        ctx.notes['na'] = str(e)
    except Exception as e:  # one failed cell must not end the benchmark
        err = 'ERR'
        ctx.notes['error'] = '%s: %s' % (type(e).__name__, e)
        log('  ! %s/%s: %s' % (system.name, wl_name, ctx.notes['error']))
    finally:
        if ctx.m:
            try:
                ctx.unmount()
            except Exception as e:
                log('  ! unmount: %s' % e)
    if err is None and wl_name == 'small':
        ctx.notes['inline'] = inline_flag(img, '/s/f00000')
    if err != 'n/a':
        problem = fsck(img)
        if problem:
            ctx.notes['fsck'] = problem
            log('  ! %s/%s: %s' % (system.name, wl_name, problem.splitlines()[0]))
    os.unlink(img)
    return ctx, err


def o_direct_probe(system, base, work):
    """Does an O_DIRECT read on this system reach the daemon each time?"""
    img = os.path.join(work, 'probe-%s.img' % system.name)
    mnt = os.path.join(work, 'mnt-%s' % system.name)
    os.makedirs(mnt, exist_ok=True)
    copy_image(base, img)
    res = {}
    m = system.mount(img, mnt)
    try:
        p = os.path.join(mnt, 'probe')
        write_file(p, MiB)
        read_file(p)  # now in the page cache
        ctl = control_socket(m.pid) if isinstance(system, Uext4) else None
        for direct in (False, True):
            before = proc_counters(m.pid)
            req0 = daemon_requests(ctl) if ctl else None
            try:
                fd = open_direct(p, os.O_RDONLY) if direct else os.open(p, os.O_RDONLY)
            except NotApplicable as e:
                res['direct'] = str(e)
                continue
            buf = mmap.mmap(-1, PAGE)
            for _ in range(200):
                os.preadv(fd, [buf], 8192)
            os.close(fd)
            buf.close()
            d = counters_delta(before, proc_counters(m.pid))
            # Each request answered is a write to /dev/fuse (syscw; wchar holds
            # the data replied). Reads may be served from libext2fs's cache, so
            # the image reads (rchar) tell nothing.
            # uext4 counts its requests itself, which also covers io_uring
            # (no write(2) to /dev/fuse there).
            req1 = daemon_requests(ctl) if req0 is not None else None
            res['direct' if direct else 'buffered'] = (
                req1 - req0 if req1 is not None else d.get('syscw', 0))
            res[('direct' if direct else 'buffered') + '_wchar'] = d.get('wchar', 0)
    finally:
        system.unmount(m)
        os.unlink(img)
    return res


# ---------------------------------------------------------------- scaling

def scaling(system, S, work, limit):
    img = os.path.join(work, 'scale-%s.img' % system.name)
    mnt = os.path.join(work, 'mnt-%s' % system.name)
    os.makedirs(mnt, exist_ok=True)
    mkfs(img, GiB, ['-N', str(S['scale'] + 20000)])
    m = system.mount(img, mnt)
    batches = []
    err = None
    try:
        d = os.path.join(mnt, 'd')
        os.mkdir(d)
        t_start = time.perf_counter()
        WATCHDOG.arm(limit + 120, type('C', (), {'m': m})())
        for b in range(S['scale'] // 1000):
            t0 = time.perf_counter()
            for i in range(b * 1000, (b + 1) * 1000):
                os.close(os.open(os.path.join(d, 'f%07d' % i),
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            batches.append(time.perf_counter() - t0)
            if time.perf_counter() - t_start > limit and b + 1 < S['scale'] // 1000:
                err = 'stopped at %d files after the %.0f s limit' % ((b + 1) * 1000, limit)
                break
    except Exception as e:
        err = '%s: %s' % (type(e).__name__, e)
    finally:
        WATCHDOG.disarm()
        try:
            system.unmount(m)
        except Exception as e:
            err = err or str(e)
    problem = fsck(img)
    os.unlink(img)
    return {'batches_s': batches, 'error': err, 'fsck': problem}


# ---------------------------------------------------------------- mount time / RSS

def mount_stats(systems, img_by_size, work, reps):
    """Mount time (exec -> visible in /proc/mounts) and daemon VmRSS after
    mount, per system and image; interleaved, median of reps."""
    res = {s.name: {k: {'mount_s': [], 'rss': []} for k in img_by_size} for s in systems}
    for r in range(reps):
        for key, img in img_by_size.items():
            for s in systems:
                mnt = os.path.join(work, 'mnt-%s' % s.name)
                os.makedirs(mnt, exist_ok=True)
                drop_caches()
                if s.is_fuse:
                    m = s.mount(img, mnt)
                    time.sleep(0.2)     # let it settle before reading RSS
                    res[s.name][key]['rss'].append(proc_status(m.pid, 'VmRSS'))
                else:
                    # noinit_itable: no background inode-table zeroing afterwards.
                    m = s.mount(img, mnt, extra='noinit_itable')
                res[s.name][key]['mount_s'].append(m.mount_s)
                s.unmount(m)
    return res


def rss_while_writing(system, S, work):
    img = os.path.join(work, 'rss-%s.img' % system.name)
    mnt = os.path.join(work, 'mnt-%s' % system.name)
    os.makedirs(mnt, exist_ok=True)
    mkfs(img, S['rss_write'] + GiB)
    m = system.mount(img, mnt)
    out = {'rss_after_mount': proc_status(m.pid, 'VmRSS'), 'samples_peak': 0}
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            v = proc_status(m.pid, 'VmRSS') or 0
            out['samples_peak'] = max(out['samples_peak'], v)
            stop.wait(0.05)

    t = threading.Thread(target=sampler)
    t.start()
    try:
        WATCHDOG.arm(S['run_timeout'], type('C', (), {'m': m})())
        t0 = time.perf_counter()
        write_file(os.path.join(mnt, 'big'), S['rss_write'])
        out['write_s'] = time.perf_counter() - t0
        out['hwm'] = proc_status(m.pid, 'VmHWM')
    except Exception as e:
        out['error'] = '%s: %s' % (type(e).__name__, e)
    finally:
        WATCHDOG.disarm()
        stop.set()
        t.join()
        system.unmount(m)
        os.unlink(img)
    out['peak'] = max(out.get('hwm') or 0, out['samples_peak'])
    return out


# ---------------------------------------------------------------- reporting

def fmt_t(s):
    if s is None:
        return '-'
    if s >= 10:
        return '%.1fs' % s
    if s >= 1:
        return '%.2fs' % s
    if s >= 0.1:
        return '%.0fms' % (s * 1e3)
    return '%.1fms' % (s * 1e3)


def cell(samples, err):
    if not samples:
        return err or '-'
    med = statistics.median(samples)
    if len(samples) == 1:
        return fmt_t(med)
    return '%s (%s-%s)' % (fmt_t(med), fmt_t(min(samples)), fmt_t(max(samples)))


def ratio(a, b):
    if not a or not b:
        return '-'
    return '%.2f' % (statistics.median(a) / statistics.median(b))


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: '| ' + ' | '.join(
        str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)) + ' |'
    out = [line(header), '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    out += [line(r) for r in rows]
    return '\n'.join(out)


def mib(b):
    return '-' if b is None else '%.1f MiB' % (b / MiB)


# ---------------------------------------------------------------- main

SIZES_FULL = dict(seq=256 * MiB, rand_file=64 * MiB, rand_ops=16384, files=5000, small=2000,
                  rtt_ops=20000,
                  mmap=32 * MiB, scale=100_000, scale_limit=150, mount_reps=5,
                  rss_write=GiB, run_timeout=600)
SIZES_QUICK = dict(SIZES_FULL, rand_ops=2048, scale=20_000, scale_limit=40, mount_reps=3,
                   rss_write=256 * MiB, run_timeout=300)


def pick_workdir(args):
    """A directory on tmpfs: /dev/shm, or a tmpfs mounted for this run."""
    if args.workdir:
        return tempfile.mkdtemp(prefix='uext4-bench-', dir=args.workdir), None
    if os.path.isdir('/dev/shm') and fs_type_of('/dev/shm') == 'tmpfs':
        return tempfile.mkdtemp(prefix='uext4-bench-', dir='/dev/shm'), None
    if not is_root():
        sys.exit('no tmpfs at /dev/shm and not root: pass --workdir on a tmpfs')
    d = tempfile.mkdtemp(prefix='uext4-bench-', dir='/tmp')
    run(['mount', '-t', 'tmpfs', '-o', 'size=80g', 'uext4-bench', d])
    return d, d


def cleanup(work, own_tmpfs):
    for m in list(REG.mounts):
        log('cleanup: unmounting %s (%s)' % (m.mnt, m.system.name))
        try:
            if m.system.is_fuse:
                m.system.kill(m)
            else:
                m.system.unmount(m)
        except Exception as e:
            log('cleanup: %s' % e)
    if work and os.path.isdir(work):
        if own_tmpfs:
            run(['umount', own_tmpfs], check=False)
            os.rmdir(own_tmpfs)
        else:
            shutil.rmtree(work, ignore_errors=True)


def versions(args):
    v = {'kernel': platform.release(), 'python': platform.python_version()}
    for k, cmd in (('uext4', [args.uext4, '--version']),
                   ('e2fsprogs', ['mkfs.ext4', '-V'])):
        try:
            r = run(cmd, check=False)
            v[k] = (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception:
            v[k] = '?'
    try:
        v['uext4_git'] = run(['git', '-C', REPO, 'describe', '--always', '--dirty'],
                             check=False).stdout.strip()
    except Exception:
        pass
    v['cpus'] = os.cpu_count()
    return v


def main():
    global WATCHDOG
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--uext4', default=os.path.join(REPO, 'build', 'uext4'))
    ap.add_argument('--fuse2fs', default=shutil.which('fuse2fs') or '/usr/bin/fuse2fs')
    ap.add_argument('--reps', type=int, default=None, help='repetitions (default 5, quick 1)')
    ap.add_argument('--quick', action='store_true', help='fewer reps and smaller checks')
    names = [w[0] for w in WORKLOADS] + ['scaling', 'mount', 'rss']
    ap.add_argument('--only', nargs='+', metavar='WORKLOAD', choices=names,
                    help='run only these: ' + ' '.join(names))
    ap.add_argument('--systems', nargs='+', choices=['kernel', 'fuse2fs', 'uext4', 'uring'],
                    default=['kernel', 'fuse2fs', 'uext4', 'uring'],
                    help='uring: uext4 -o io_uring (root, a kernel with FUSE over io_uring; '
                         'enable_uring is set to Y for the run and restored after)')
    ap.add_argument('--uext4-opts', action='append', default=[], metavar='NAME=OPTS',
                    help='also run uext4 -o OPTS as the system uext4-NAME '
                         '(e.g. wbc=writeback_cache); may be repeated')
    ap.add_argument('--uext4-base', metavar='PATH',
                    help='also run this uext4 binary (an older build, say) as the '
                         'system uext4-base, for before/after comparisons in one run')
    ap.add_argument('--json', metavar='OUT', help='write every sample and note as JSON')
    ap.add_argument('--workdir', help='directory on a tmpfs (default: /dev/shm)')
    ap.add_argument('--cache-budget', type=int, default=64,
                    help="uext4's cache budget in MiB for the RSS check (default 64: "
                         "PC_BUDGET in src/fs/mmap.c; no option sets it)")
    ap.add_argument('--scale-limit', type=float, default=None,
                    help='seconds per system for the 100,000-create scaling check')
    args = ap.parse_args()

    S = dict(SIZES_QUICK if args.quick else SIZES_FULL)
    reps = args.reps or (1 if args.quick else 5)
    if args.scale_limit:
        S['scale_limit'] = args.scale_limit
    S['rss_write'] = max(S['rss_write'], 4 * args.cache_budget * MiB)
    fmtvars = dict(S, seq_h=human(S['seq']), rand_file_h=human(S['rand_file']),
                   mmap_h=human(S['mmap']))

    systems = []
    for n in args.systems:
        if n == 'kernel':
            if not is_root():
                log('not root: no kernel ext4 reference, no drop_caches')
                continue
            systems.append(Kernel(args))
        elif n == 'fuse2fs':
            if not os.access(args.fuse2fs, os.X_OK):
                log('no fuse2fs at %s: skipped (apt-get install fuse2fs)' % args.fuse2fs)
                continue
            systems.append(Fuse2fs(args))
        elif n == 'uring':
            if not is_root() or not os.path.exists(URING_PARAM):
                log('no FUSE over io_uring here (not root, or no %s): uext4-uring skipped'
                    % URING_PARAM)
                continue
            systems.append(Uext4Uring(args))
        else:
            if not os.access(args.uext4, os.X_OK):
                sys.exit('no uext4 binary at %s (build it, or pass --uext4)' % args.uext4)
            systems.append(Uext4(args))
    for v in args.uext4_opts:
        name, sep, opts = v.partition('=')
        if not sep or not re.fullmatch(r'[A-Za-z0-9_]+', name):
            sys.exit('--uext4-opts wants NAME=OPTS, got %r' % v)
        if not os.access(args.uext4, os.X_OK):
            sys.exit('no uext4 binary at %s (build it, or pass --uext4)' % args.uext4)
        systems.append(Uext4(args, name, opts))
    if args.uext4_base:
        if not os.access(args.uext4_base, os.X_OK):
            sys.exit('no uext4 binary at %s' % args.uext4_base)
        systems.append(Uext4(args, 'base', binary=args.uext4_base))
    fuse_systems = [s for s in systems if s.is_fuse]
    selected = set(args.only or names)

    def on_term(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    WATCHDOG = Watchdog()
    work, own_tmpfs = pick_workdir(args)
    result = {'versions': versions(args), 'sizes': S, 'reps': reps,
              'systems': [s.name for s in systems], 'runs': [], 'workdir_fs': fs_type_of(work)}
    t_all = time.perf_counter()
    try:
        if any(isinstance(s, Uext4Uring) for s in systems):
            URING.enable()
        base = os.path.join(work, 'base.img')
        log('image: mkfs.ext4 -O inline_data, 1 GiB, on %s (%s)' % (work, fs_type_of(work)))
        mkfs(base, GiB)

        # -- O_DIRECT: does it reach the daemon?
        probes = {}
        if any(w in selected for w in ('rand_read_direct', 'rand_write_direct', 'par2')):
            for s in fuse_systems:
                try:
                    probes[s.name] = o_direct_probe(s, base, work)
                except Exception as e:
                    probes[s.name] = {'error': str(e)}
        result['o_direct_probe'] = probes

        # -- the interleaved table
        samples = {}   # (phase, system) -> [seconds]
        dstats = {}    # (phase, system) -> [counter deltas]
        errs = {}
        wls = [w for w in WORKLOADS if w[0] in selected]
        for rep in range(reps):
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]
            for wl_name, fn, phases in wls:
                for s in order:
                    t0 = time.perf_counter()
                    ctx, err = one_run(s, wl_name, fn, S, base, work)
                    log('rep %d/%d %-20s %-8s %6.1fs %s%s' % (
                        rep + 1, reps, wl_name, s.name, time.perf_counter() - t0,
                        ' '.join('%s=%s' % (k, fmt_t(v)) for k, v in ctx.times.items()),
                        (' [%s]' % err) if err else ''))
                    result['runs'].append({'rep': rep, 'workload': wl_name, 'system': s.name,
                                           'times': ctx.times, 'daemon': ctx.daemon,
                                           'error': err, 'notes': ctx.notes})
                    for ph, _ in phases:
                        if err is None and ph in ctx.times:
                            samples.setdefault((ph, s.name), []).append(ctx.times[ph])
                            if ph in ctx.daemon:
                                dstats.setdefault((ph, s.name), []).append(ctx.daemon[ph])
                        elif err:
                            errs[(ph, s.name)] = err

        # -- scaling
        scale = {}
        if 'scaling' in selected:
            for s in systems:
                log('scaling: %d creates in one directory on %s' % (S['scale'], s.name))
                scale[s.name] = scaling(s, S, work, S['scale_limit'])
        result['scaling'] = scale

        # -- mount time and RSS after mount
        mstats = {}
        if 'mount' in selected:
            log('mount: 64 GiB sparse image, -N 1000000; and the 1 GiB image')
            big = os.path.join(work, 'big64.img')
            mkfs(big, 64 * GiB, ['-N', '1000000'], lazy=True)
            small_img = os.path.join(work, 'mount1g.img')
            copy_image(base, small_img)
            mstats = mount_stats(systems, {'1g': small_img, '64g': big}, work, S['mount_reps'])
            for img in (big, small_img):
                problem = fsck(img)
                if problem:
                    mstats.setdefault('fsck', []).append(problem[-300:])
            os.unlink(big)
            os.unlink(small_img)
        result['mount'] = mstats

        # -- RSS while writing 4x the budget
        rss = {}
        if 'rss' in selected:
            for s in fuse_systems:
                log('rss: writing %s through %s' % (human(S['rss_write']), s.name))
                rss[s.name] = rss_while_writing(s, S, work)
        result['rss'] = rss
    except KeyboardInterrupt:
        log('interrupted: cleaning up')
        cleanup(work, own_tmpfs)
        URING.restore()
        sys.exit(130)
    finally:
        if REG.mounts or os.path.isdir(work):
            cleanup(work, own_tmpfs)
        URING.restore()
    result['elapsed_s'] = time.perf_counter() - t_all

    # ------------------------------------------------------------ print
    v = result['versions']
    print('uext4 benchmark  (%s; %s; kernel %s; %d CPUs; images on %s)' % (
        v.get('uext4'), v.get('e2fsprogs'), v['kernel'], v['cpus'], result['workdir_fs']))
    print('%d repetition(s), systems interleaved; cells: median (min-max) wall time, lower is '
          'better;\nratios are median time / median time (2.00 = twice as slow).' % reps)
    print()
    sn = [s.name for s in systems]
    header = ['workload'] + sn
    pairs = [('fuse2fs', 'kernel'), ('uext4', 'kernel'), ('uext4', 'fuse2fs')]
    for n in sn:
        if n.startswith('uext4-'):
            pairs += [(n, 'kernel'), (n, 'fuse2fs'), (n, 'uext4')]
    pairs = [p for p in pairs if p[0] in sn and p[1] in sn]
    header += ['%s/%s' % p for p in pairs]
    rows = []
    for wl_name, fn, phases in wls:
        for ph, desc in phases:
            r = [desc.format(**fmtvars)]
            for s in sn:
                r.append(cell(samples.get((ph, s)), errs.get((ph, s))))
            for a, b in pairs:
                r.append(ratio(samples.get((ph, a)), samples.get((ph, b))))
            rows.append(r)
    if rows:
        print(table(rows, header))
        print()

    # daemon-side cost per phase
    if rows and fuse_systems:
        h2 = ['daemon, median per run']
        for s in fuse_systems:
            h2 += ['%s CPU' % s.name, '%s syscalls' % s.name]
        rows2 = []
        for wl_name, fn, phases in wls:
            for ph, desc in phases:
                r = [ph]
                for s in fuse_systems:
                    ds = dstats.get((ph, s.name))
                    if ds:
                        r.append(fmt_t(statistics.median(d.get('cpu', 0) for d in ds)))
                        r.append('%d' % statistics.median(d.get('syscr', 0) + d.get('syscw', 0)
                                                          for d in ds))
                    else:
                        r += ['-', '-']
                rows2.append(r)
        print('Daemon CPU time (user+sys) and read+write system calls (/dev/fuse and image; '
              'splice calls not counted) '
              'during each timed phase:')
        print(table(rows2, h2))
        print()

    # the FUSE floor: requests per operation x the round trip of the same system
    floor_sys = [s for s in fuse_systems if isinstance(s, Uext4)]
    if rows and floor_sys and samples.get(('rtt', floor_sys[0].name)):
        h3 = ['round-trip-bound row']
        for s in floor_sys:
            h3 += ['%s req/op' % s.name, '%s floor' % s.name, '%s rate/floor' % s.name,
                   '%s paired rate/floor' % s.name]
        rows3 = []
        for wl_name, fn, phases in wls:
            for ph, desc in phases:
                if ph not in PHASE_OPS:
                    continue
                nops = S[PHASE_OPS[ph]]
                r = [ph]
                for s in floor_sys:
                    ds = [d['requests'] for d in dstats.get((ph, s.name), []) if 'requests' in d]
                    rtt = samples.get(('rtt', s.name))
                    t = samples.get((ph, s.name))
                    if not ds or not rtt or not t:
                        r += ['-', '-', '-', '-']
                        continue
                    per_req = statistics.median(rtt) / S['rtt_ops']
                    rpo = statistics.median(ds) / nops
                    floor = rpo * nops * per_req
                    r += ['%.2f' % rpo, fmt_t(floor), '%.2f' % (floor / statistics.median(t)),
                          paired_ratio(dstats.get((ph, s.name), []), t)]
                rows3.append(r)
        print('FUSE floor: requests per operation (the daemon\'s count, median) x the '
              'round trip (median rtt / %d) of the same system; rate/floor = floor time / '
              'median time (1.00 = at the floor); paired: each run\'s own requests x the '
              'round trip probed in the same mount right after it (%d getxattrs) over its '
              'time, median (min-max):' % (S['rtt_ops'], PROBE_OPS))
        print(table(rows3, h3))
        print()

    if probes:
        print('O_DIRECT on FUSE (200 re-reads of one cached 4 KiB block; requests uext4 '
              'counted, replies fuse2fs wrote to /dev/fuse):')
        for n, p in probes.items():
            if 'error' in p:
                print('  %s: probe failed: %s' % (n, p['error']))
                continue
            dr = p.get('direct')
            txt = dr if isinstance(dr, str) else (
                '%d, %s written -> %s' % (dr, mib(p.get('direct_wchar')),
                                          'every read reached the daemon (uncached)'
                                          if dr >= 200 else 'served from the page cache'))
            print('  %s: buffered %d; O_DIRECT %s' % (n, p.get('buffered', -1), txt))
        print()

    notes = []
    for run_ in result['runs']:
        for k in ('error', 'na', 'fsck'):
            if k in run_['notes']:
                notes.append('rep %d %s/%s: %s: %s' % (run_['rep'] + 1, run_['workload'],
                                                       run_['system'], k, run_['notes'][k]))
    inl = {r['system']: r['notes'].get('inline') for r in result['runs']
           if r['workload'] == 'small' and 'inline' in r['notes']}
    if inl:
        print('40-byte files stored inline: ' + ', '.join(
            '%s %s' % (k, {True: 'yes', False: 'NO', None: '?'}[v]) for k, v in inl.items()))
        print()

    if scale:
        print('Scaling: %d creates in one directory (time per create, first vs last 1,000; '
              'target: last <= 1.5x first)' % S['scale'])
        rows3 = []
        for n, sc in scale.items():
            b = sc['batches_s']
            if not b:
                rows3.append([n, '-', '-', '-', '-', '-', sc['error'] or ''])
                continue
            first, last = b[0] / 1000, b[-1] / 1000
            k = min(5, len(b) // 2) or 1
            robust = statistics.median(b[-k:]) / statistics.median(b[:k])
            ok = 'ok' if last / first <= 1.5 else 'FAIL'
            if n == 'kernel':
                ok = '(ref)'   # the target is for the daemons; the kernel is the reference
            rows3.append([n, '%d' % (len(b) * 1000), '%.1f us' % (first * 1e6),
                          '%.1f us' % (last * 1e6), '%.2f %s' % (last / first, ok),
                          '%.2f' % robust, sc['error'] or ''])
        print(table(rows3, ['system', 'files', 'first 1k', 'last 1k', 'last/first',
                            'med last 5k/first 5k', 'note']))
        print()

    if mstats:
        print('Mount: exec -> visible in /proc/mounts (median of %d) and daemon VmRSS after '
              'mount; 64 GiB sparse image with 1,000,000 inodes vs the 1 GiB image' %
              S['mount_reps'])
        # bitmaps of the 64 GiB image minus the 1 GiB one's: block + inode bitmaps
        bm64 = (64 * GiB // PAGE) // 8 + 1_000_000 // 8
        bm1 = (GiB // PAGE) // 8 + 65536 // 8
        rows4 = []
        for s in systems:
            st = mstats.get(s.name)
            if not st:
                continue
            mt1 = statistics.median(st['1g']['mount_s'])
            mt64 = statistics.median(st['64g']['mount_s'])
            r = [s.name, '%.1f ms' % (mt1 * 1e3), '%.1f ms (%.1f-%.1f)' % (
                mt64 * 1e3, min(st['64g']['mount_s']) * 1e3, max(st['64g']['mount_s']) * 1e3),
                 'ok' if mt64 < 0.2 else 'FAIL']
            if s.is_fuse:
                r1 = statistics.median(st['1g']['rss'])
                r64 = statistics.median(st['64g']['rss'])
                r += [mib(r1), mib(r64), mib(r64 - r1), mib(r64 - r1 - (bm64 - bm1)).replace('-0.0', '0.0')]
            else:
                r += ['-', '-', '-', '-']
            rows4.append(r)
        print(table(rows4, ['system', 'mount 1G', 'mount 64G', '<200ms', 'RSS 1G', 'RSS 64G',
                            'RSS delta', 'delta - bitmap delta']))
        print('(raw bitmap size difference 64G vs 1G: %s)' % mib(bm64 - bm1))
        for f in mstats.get('fsck', []):
            notes.append('mount images: e2fsck -fn: ' + f)
        print()

    if rss:
        lim = (args.cache_budget + 32) * MiB
        print('RSS while writing a %s file (1 MiB writes + fsync); limit = cache budget %d MiB '
              '+ 32 MiB' % (human(S['rss_write']), args.cache_budget))
        rows5 = []
        for n, r in rss.items():
            rows5.append([n, mib(r['rss_after_mount']), mib(r['peak']),
                          'ok' if r['peak'] <= lim else 'FAIL',
                          fmt_t(r.get('write_s')), r.get('error', '')])
        print(table(rows5, ['system', 'RSS after mount', 'peak RSS', '<= limit', 'write time',
                            'note']))
        print()

    if notes:
        print('Notes:')
        for n in notes:
            print('  ' + n)
        print()
    print('total %.0f s' % result['elapsed_s'])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == '__main__':
    main()
