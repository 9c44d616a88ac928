#!/usr/bin/python3
"""Crash tests: crash the daemon in the middle of a workload, then check that
the journal brings back a clean image that holds everything fsync'd.

    crash.py --uext4 PATH [--seeds N] [--start S] [--fault-points N]
             [--fault-workloads K] [--variants csum,1k,nocsum,ext3]
             [--keep-failures DIR] [-j J] [--cross-every N]
    crash.py --uext4 PATH --point fault:VARIANT:SEED:STEP[:FSEED]
    crash.py --uext4 PATH --point kill:SEED[:DELAY[:COMMIT[:PACE]]]
    (by hand with PYTHONPATH=tests/lib, the test toolkit; meson sets it)

A crash point runs the seeded workload of workload.py (creates, inline and
multi-block writes, appends, overwrites, truncates, renames, unlinks also of
an open file kept open across fsyncs, mkdir/rmdir, xattrs, hard and symbolic
links, fallocate, fsync/fdatasync/fsync of directories) in a child process on
a fresh image mounted by the daemon, and crashes the daemon in one of two
ways:
  kill    SIGKILL at a seeded time during the workload (seed S: variant
          number S % len(variants), workload seed S, delay and commit
          interval (1 or 5 s) drawn from S; 8% of them are "paced": the
          workload sleeps 10 ms after each operation and commit=1, so that
          timer commits run between the operations);
  fault   UEXT4_FAULT_AT=STEP: the daemon's STEP-th write step (pwrite or
          fdatasync of the image) is a simulated power cut (exit 86).  A clean
          run of the workload (commit=3600, so that steps are deterministic)
          first counts the steps (UEXT4_FAULT_COUNT); the points are the
          first and last 10 steps and N more spread evenly over [1, count],
          each with its own UEXT4_FAULT_SEED.
Then: unmount the dead mount, mount the image again with the daemon (journal
replay), walk and read the whole tree and check it against the workload's
log and model (verify.py states the exact guarantee), unmount (the daemon
must exit 0) and run e2fsck -fn (must exit 0).  Every --cross-every'th point
also replays a copy of the crash image with e2fsck -fy (no repairs allowed
besides the replay, then e2fsck -fn clean, and the same durable state read
through uext4 -o ro), and another point a copy with a kernel loop mount
(same durable state, umount, e2fsck -fn clean) where loop mounts work.

Before all that the verifier must report each of a set of deliberately
broken trees (verify.self_test), and clean runs (no crash, clean unmount)
must end with exactly the final state of the model.

Output: one line per crash point, the failures in detail (seed, step, e2fsck
output, what was lost, the command that reruns the point), and a summary:
crash points tried, images needing repair, fsync'd files lost, other
violations, cross-checks done and failed.  A repair that e2fsck 1.47.0 itself
causes (it leaks the xattr block of an inline-data orphan, see FINDINGS.md)
is recognised and listed as "not counted".  Exit 0 if no failure, 1
otherwise, 77 when the machine cannot run it (no /dev/fuse, not root).
Defaults (what meson runs): 160 SIGKILL seeds, 30 fault points per variant,
one fault workload per variant, 4 variants, -j 2: ~350 points, ~1 min.

Cleanup: every mount made here is unmounted (fusermount3 -u, -uz as a last
resort; umount for loop mounts), every daemon and workload started here is
waited for with a timeout; only their PIDs are ever signalled.
"""
import argparse
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import uext4test as ut      # noqa: E402  (tests/lib, on PYTHONPATH)
import verify               # noqa: E402
import workload             # noqa: E402

IMAGE_SIZE = '64M'
FAULT_EXIT = 86
FAULT_MSG = 'uext4: fault injection: power cut at write step'
WORKLOAD_TIMEOUT = 120      # s, a workload that outlives this is hung
TOOL_TIMEOUT = 120          # s, e2fsck, debugfs, mount, umount
START_TIMEOUT = 15          # s, for the workload's first log line
FAULT_COMMIT = 3600         # commit interval of fault runs: steps repeat
PACED, PACE = 0.08, 0.01    # share of SIGKILL points whose workload sleeps
                            # PACE s after each op (then commit=1)
SAN_MARKERS = ('ERROR: AddressSanitizer', 'runtime error:',
               'ERROR: LeakSanitizer', 'AddressSanitizer:DEADLYSIGNAL')


class Cfg:
    """What every worker needs (picklable)."""

    def __init__(self, a, base, loop_ok):
        self.uext4 = os.path.abspath(a.uext4)
        self.ops = a.ops
        self.base = base
        self.keep = os.path.abspath(a.keep_failures) if a.keep_failures \
            else None
        self.loop_ok = loop_ok
        self.guarantee = a.guarantee
        self.variants = a.variants
        self.mount_opts = [o for o in a.mount_opts.split(',') if o]


# ------------------------------------------------------------------ tools

def run(cmd, timeout=TOOL_TIMEOUT, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, **kw)
    return p.returncode, p.stdout.decode(errors='replace')


def mkfs(path, variant):
    fstype, features, block = workload.VARIANTS[variant]
    ut.mkfs(path, size=IMAGE_SIZE, fstype=fstype, features=features,
            opts=('-b', str(block)))


def copy(src, dst):
    rc, out = run(['cp', '--sparse=always', src, dst])
    if rc:
        raise RuntimeError('cp %s: %s' % (src, out))


def first_lines(text, n=40):
    lines = text.strip().splitlines()
    more = len(lines) - n
    return '\n'.join(lines[:n] + (['... (%d more lines)' % more]
                                  if more > 0 else []))


def kill_and_reap(proc, timeout=10):
    """SIGKILL a child we started, if it still runs, and reap it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


def loop_mount_works(base):
    if os.geteuid() != 0:
        return False
    img = os.path.join(base, 'probe.img')
    mnt = os.path.join(base, 'probe.mnt')
    os.makedirs(mnt)
    try:
        mkfs(img, 'csum')
        rc, _ = run(['mount', '-t', 'ext4', '-o', 'loop', img, mnt])
        if rc:
            return False
        run(['umount', mnt])
        return True
    except Exception:
        return False
    finally:
        if ut.mounted_at(mnt):
            run(['umount', '-l', mnt])
        shutil.rmtree(mnt, ignore_errors=True)
        if os.path.exists(img):
            os.unlink(img)


# ------------------------------------------------------------------ one point

class Point:
    """One run: mode 'clean' | 'kill' | 'fault'."""

    def __init__(self, mode, variant, seed, delay=None, commit=5,
                 step=None, fseed=0, xfsck=False, xkernel=False, pace=0.0):
        self.mode, self.variant, self.seed = mode, variant, seed
        self.pace = pace
        self.delay, self.commit = delay, commit
        self.step, self.fseed = step, fseed
        self.xfsck, self.xkernel = xfsck, xkernel

    def name(self):
        if self.mode == 'fault':
            return 'fault %s seed %d step %d fseed %d' % (
                self.variant, self.seed, self.step, self.fseed)
        if self.mode == 'kill':
            return 'kill %s seed %d (%.3fs, commit=%d%s)' % (
                self.variant, self.seed, self.delay, self.commit,
                ', paced' if self.pace else '')
        return 'clean %s seed %d' % (self.variant, self.seed)

    def rerun(self, cfg):
        if self.mode == 'fault':
            arg = 'fault:%s:%d:%d:%d' % (self.variant, self.seed, self.step,
                                         self.fseed)
        elif self.mode == 'kill':
            arg = 'kill:%d:%.4f:%d:%g' % (self.seed, self.delay, self.commit,
                                          self.pace)
        else:
            arg = 'clean:%s:%d' % (self.variant, self.seed)
        return '%s --uext4 %s --variants %s%s --point %s' % (
            os.path.relpath(os.path.join(HERE, 'crash.py')), cfg.uext4,
            ','.join(cfg.variants), ' --mount-opts ' +
            ','.join(cfg.mount_opts) if cfg.mount_opts else '', arg)


class Result:
    def __init__(self, point):
        self.point = point
        self.crashed = False        # the crash happened as planned
        self.note = ''              # why not, or what happened
        self.problems = []          # (category, text)
        self.warnings = []          # G2 violations under --guarantee posix
        self.known = []             # not uext4's: a known e2fsck bug hit
        self.needs_repair = False
        self.torn = 0
        self.count = None           # clean runs: write steps
        self.duration = None        # clean runs: workload seconds
        self.bounds = None          # (D, L)
        self.xchecks = []           # 'e2fsck', 'kernel'
        self.kept = None

    @property
    def failed(self):
        return bool(self.problems)

    def add(self, cat, text):
        self.problems.append((cat, text))


def run_point(point, cfg):
    """Never raises: every error becomes a problem of the result."""
    res = Result(point)
    tmp = tempfile.mkdtemp(prefix='pt-', dir=cfg.base)
    try:
        _run_point(point, cfg, tmp, res)
    except Exception:
        res.add('harness', traceback.format_exc())
    finally:
        try:
            _cleanup_mounts(tmp)
        except Exception:
            res.add('harness', 'cleanup: ' + traceback.format_exc())
        if res.failed and cfg.keep:
            res.kept = _keep(point, cfg, tmp, res)
        if not ut.mounts_under(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return res


def _cleanup_mounts(tmp):
    for mp in reversed(ut.mounts_under(tmp)):
        if (ut.mounted_at(mp) or '').startswith('fuse'):
            ut.fuse_unmount(mp)
        else:
            rc, _ = run(['umount', mp])
            if rc:
                run(['umount', '-l', mp])


def _run_point(point, cfg, tmp, res):
    img = os.path.join(tmp, 'image')
    mnt = os.path.join(tmp, 'mnt')
    log = os.path.join(tmp, 'workload.log')
    count_file = os.path.join(tmp, 'count')
    mkfs(img, point.variant)

    env = {}
    opts = ['commit=%d' % point.commit]
    if point.mode == 'clean':
        env['UEXT4_FAULT_COUNT'] = count_file
        opts = ['commit=%d' % FAULT_COMMIT]
    elif point.mode == 'fault':
        env['UEXT4_FAULT_AT'] = str(point.step)
        env['UEXT4_FAULT_SEED'] = str(point.fseed)
        opts = ['commit=%d' % FAULT_COMMIT]

    ut.UEXT4 = cfg.uext4
    m = ut.Mount(img, mnt, opts=opts + cfg.mount_opts, env=env,
                 expect_clean_exit=False)
    wl = None
    try:
        try:
            m.start()
            mounted = True
        except ut.MountError:
            if point.mode != 'fault' or m.returncode != FAULT_EXIT:
                raise
            res.note = 'power cut while mounting'
            mounted = False
        if mounted:
            wl = _start_workload(point, cfg, tmp, mnt, log)
            _wait_started(wl, log)
            if point.mode == 'kill':
                deadline = time.monotonic() + point.delay
                while wl.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.001)
                if m.proc.poll() is None:
                    m.proc.send_signal(signal.SIGKILL)
            try:
                wl.wait(WORKLOAD_TIMEOUT)
            except subprocess.TimeoutExpired:
                res.add('hang', 'the workload did not finish within %ds'
                        % WORKLOAD_TIMEOUT)
    finally:
        kill_and_reap(wl)
        try:
            m.stop()        # unmount (a dead mount too) and wait the daemon
        except ut.TestFailure as e:
            res.add('hang', str(e))
    rc = m.returncode if m.returncode is not None else m.proc.poll()
    dlog = m.log()
    _daemon_outcome(point, res, rc, dlog)
    if point.mode == 'clean':
        try:
            with open(count_file) as f:
                res.count = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            res.count = None
    if res.failed:
        return

    info = verify.parse_log(log)
    res.duration = info['seconds']
    w = workload.generate(point.variant, point.seed, cfg.ops)
    if point.mode == 'clean' and not info['end']:
        res.add('workload', 'the clean workload stopped: %s'
                % _tail(os.path.join(tmp, 'workload.out')))
        return
    res.bounds = verify.bounds(w, info, point.mode == 'clean')

    copy(img, os.path.join(tmp, 'crash.img'))       # pristine, for keeping
    # 1. uext4 replays; the durable state is there; clean unmount; e2fsck
    _verify_mount(w, info, point, cfg, img, os.path.join(tmp, 'vmnt'), res,
                  'uext4')
    _fsck(img, res, 'after the uext4 remount')
    # 2. e2fsck replays a copy
    if point.xfsck and point.mode != 'clean':
        x = os.path.join(tmp, 'fsck.img')
        copy(os.path.join(tmp, 'crash.img'), x)
        _cross_e2fsck(w, info, point, cfg, x, os.path.join(tmp, 'xmnt'), res)
        os.unlink(x)
    # 3. the kernel replays a copy
    if point.xkernel and point.mode != 'clean' and cfg.loop_ok:
        if res.needs_repair:
            res.note += ' (kernel cross-check skipped: image needs repair)'
        else:
            k = os.path.join(tmp, 'kernel.img')
            copy(os.path.join(tmp, 'crash.img'), k)
            _cross_kernel(w, info, point, cfg, k, os.path.join(tmp, 'kmnt'),
                          res)
            os.unlink(k)


def _start_workload(point, cfg, tmp, mnt, log):
    with open(os.path.join(tmp, 'workload.out'), 'wb') as out:
        return subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'workload.py'), 'run',
             '--variant', point.variant, '--seed', str(point.seed),
             '--ops', str(cfg.ops), '--mnt', mnt, '--log', log,
             '--pace', str(point.pace)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def _wait_started(wl, log):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and wl.poll() is None:
        try:
            if os.path.getsize(log) > 0:
                return
        except OSError:
            pass
        time.sleep(0.005)


def _tail(path, n=1500):
    try:
        with open(path, 'rb') as f:
            return f.read()[-n:].decode(errors='replace').strip()
    except OSError:
        return ''


def _daemon_outcome(point, res, rc, dlog):
    for mk in SAN_MARKERS:
        if mk in dlog:
            res.add('daemon', 'sanitizer report in the daemon log:\n'
                    + first_lines(dlog[dlog.index(mk):], 30))
            return
    if point.mode == 'kill':
        if rc == -signal.SIGKILL:
            res.crashed = True
        elif rc == 0:
            res.note = 'the workload ended and the daemon exited first'
        else:
            res.add('daemon', 'daemon exited %s before the kill: %s'
                    % (rc, first_lines(dlog, 20)))
    elif point.mode == 'fault':
        if rc == FAULT_EXIT and FAULT_MSG in dlog:
            res.crashed = True
        elif rc == 0:
            res.note = 'fault step not reached'
        else:
            res.add('daemon', 'daemon exited %s (expected %d and "%s"): %s'
                    % (rc, FAULT_EXIT, FAULT_MSG, first_lines(dlog, 20)))
    elif rc != 0:
        res.add('daemon', 'daemon exited %s after unmount: %s'
                % (rc, first_lines(dlog, 20)))


def _check_tree(w, info, point, cfg, root, res, who):
    obs = verify.observe(root)
    problems, torn = verify.check(w, info, obs, point.mode == 'clean')
    if who == 'uext4':
        res.torn += torn
    for cat, text in problems:
        if cat == 'commit' and cfg.guarantee == 'posix':
            res.warnings.append('%s: %s' % (who, text))
            continue
        res.add(cat if who == 'uext4' else '%s:%s' % (who, cat), text)


def _verify_mount(w, info, point, cfg, img, mnt, res, who, opts=()):
    vm = ut.Mount(img, mnt, opts=list(opts), expect_clean_exit=True)
    try:
        vm.start()
    except ut.MountError as e:
        res.add('%s-remount' % who if who != 'uext4' else 'remount', str(e))
        return False
    try:
        _check_tree(w, info, point, cfg, mnt, res, who)
    finally:
        try:
            vm.stop()
        except ut.TestFailure as e:
            res.add('daemon', 'verification mount: %s' % e)
    return True


def _fsck(img, res, when, who='uext4'):
    rc, out = run(['e2fsck', '-fn', img])
    if rc != 0:
        if who == 'uext4':
            res.needs_repair = True
        res.add('repair' if who == 'uext4' else '%s:repair' % who,
                'e2fsck -fn %s exited %d:\n%s' % (when, rc,
                                                  first_lines(out, 60)))
        return False
    return True


# a question e2fsck -fy answered: a repair, except the optimisations that
# e2fsck -fn does not even mention (extent trees that could be shallower)
REPAIR_RE = re.compile(r'^(?!.*Optimize\?).*\?\s+yes\s*$', re.M)


def _cross_e2fsck(w, info, point, cfg, img, mnt, res):
    pristine = os.path.join(os.path.dirname(img), 'crash.img')
    rc, out = run(['e2fsck', '-fy', img])
    res.xchecks.append('e2fsck')
    fixes = REPAIR_RE.findall(out)
    if (rc >= 4 or fixes) and not (rc < 4 and _e2fsck_ea_leak(pristine, out,
                                                               res)):
        res.add('e2fsck:repair', 'e2fsck -fy replaying the crash image '
                'exited %d with %d repair(s):\n%s'
                % (rc, len(fixes), first_lines(out, 60)))
    if not _fsck(img, res, 'after e2fsck -fy', 'e2fsck'):
        return
    _verify_mount(w, info, point, cfg, img, mnt, res, 'e2fsck', ('ro',))


E2FSCK_EA_LEAK = (
    'e2fsck 1.47.0 left the xattr block of an orphan without a block map '
    '(inline data) allocated: its release_inode_blocks() returns before '
    'the xattr block when ext2fs_inode_has_valid_blocks2() is 0 (the '
    'linux-ext4 patch "goto release_acl" by Ye Bin); not a uext4 fault')


def _e2fsck_ea_leak(pristine, out, res):
    """True if the only repairs e2fsck -fy made after its orphan cleanup are
    freeing xattr blocks of orphans without a block map (e2fsck's own bug,
    E2FSCK_EA_LEAK): checked on a copy whose journal e2fsck replayed only."""
    orphans = [int(n) for n in re.findall(r'orphaned inode (\d+)', out)]
    lines = out.splitlines()
    answered = 0
    allowed = ('Block bitmap differences', 'Free blocks count wrong',
               'Fix')
    for i, line in enumerate(lines):
        if re.search(r'\?\s+yes\s*$', line):
            ctx = line if not line.startswith('Fix?') else lines[i - 1]
            if not ctx.strip().startswith(allowed):
                return False
            answered += 1
    freed = set()
    for m in re.finditer(r'Block bitmap differences:\s+(.*)', out):
        for tok in m.group(1).split():
            if not tok.startswith('-'):
                return False
            tok = tok[1:].strip('()')
            a, _, b = tok.partition('--')
            freed.update(range(int(a), int(b or a) + 1))
    if not orphans or not freed or not answered:
        return False
    j = pristine + '.journal-only'
    try:
        copy(pristine, j)
        run(['e2fsck', '-E', 'journal_only', '-y', j])
        leaked = set()
        for ino in orphans:
            _, st = run(['debugfs', '-R', 'stat <%d>' % ino, j])
            acl = re.search(r'File ACL: (\d+)', st)
            flags = re.search(r'Flags: (0x[0-9a-f]+)', st)
            if acl and flags and int(flags.group(1), 16) & 0x10000000:
                leaked.add(int(acl.group(1)))
    finally:
        if os.path.exists(j):
            os.unlink(j)
    if freed <= leaked:
        res.known.append(E2FSCK_EA_LEAK)
        return True
    return False


def _cross_kernel(w, info, point, cfg, img, mnt, res):
    os.makedirs(mnt, exist_ok=True)
    rc, out = run(['mount', '-t', 'ext4', '-o', 'loop', img, mnt])
    if rc:
        res.add('kernel:mount', 'kernel mount -o loop failed: %s' % out)
        return
    res.xchecks.append('kernel')
    try:
        _check_tree(w, info, point, cfg, mnt, res, 'kernel')
    finally:
        rc, out = run(['umount', mnt])
        if rc:
            run(['umount', '-l', mnt])
            res.add('kernel:umount', 'umount failed: %s' % out)
    _fsck(img, res, 'after the kernel mount', 'kernel')


def _keep(point, cfg, tmp, res):
    if point.mode == 'fault':
        tag = 'fault-%s-s%d-n%d-f%d' % (point.variant, point.seed, point.step,
                                        point.fseed)
    else:
        tag = '%s-%s-s%d' % (point.mode, point.variant, point.seed)
    dest = os.path.join(cfg.keep, tag)
    try:
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        for name, as_ in (('crash.img', 'crash.img'), ('image', 'after.img'),
                          ('workload.log', 'workload.log'),
                          ('workload.out', 'workload.out'),
                          ('mnt.log', 'daemon.log'),
                          ('vmnt.log', 'remount-daemon.log')):
            src = os.path.join(tmp, name)
            if os.path.exists(src):
                if name.endswith('img') or name == 'image':
                    copy(src, os.path.join(dest, as_))
                else:
                    shutil.copy(src, os.path.join(dest, as_))
        crash_img = os.path.join(dest, 'crash.img')
        with open(os.path.join(dest, 'report.txt'), 'w') as f:
            f.write(format_result(res, cfg) + '\n')
            if os.path.exists(crash_img):
                rc, out = run(['debugfs', '-R', 'logdump', crash_img])
                f.write('\n--- debugfs -R logdump crash.img\n' +
                        first_lines(out, 200) + '\n')
                rc, out = run(['dumpe2fs', '-h', crash_img])
                f.write('\n--- dumpe2fs -h crash.img\n' + out)
        return dest
    except Exception:
        return 'failed to keep: %s' % traceback.format_exc()


# ------------------------------------------------------------------ report

def format_result(res, cfg):
    p = res.point
    lines = ['FAIL %s' % p.name()]
    if res.bounds:
        lines.append('  durable through op %d, ops possibly run through %d'
                     % res.bounds)
    for cat, text in res.problems:
        lines.append('  [%s] %s' % (cat, text.replace('\n', '\n      ')))
    lines.append('  rerun: %s' % p.rerun(cfg))
    if res.kept:
        lines.append('  kept: %s' % res.kept)
    return '\n'.join(lines)


def one_line(res):
    p = res.point
    status = 'FAIL' if res.failed else 'ok'
    extra = []
    if res.bounds:
        extra.append('D=%d L=%d' % res.bounds)
    if res.torn:
        extra.append('torn=%d' % res.torn)
    if res.xchecks:
        extra.append('+' + '+'.join(res.xchecks))
    if res.count is not None:
        extra.append('%d write steps' % res.count)
    if res.note:
        extra.append(res.note.strip())
    if res.known:
        extra.append('(known e2fsck bug hit, see summary)')
    return '%s %s %s' % (status, p.name(), ' '.join(extra))


# ------------------------------------------------------------------ plan

def spread(count, n):
    pts = set(range(1, min(10, count) + 1))
    pts |= set(range(max(1, count - 9), count + 1))
    if n > 0 and count > 0:
        for k in range(n):
            pts.add(1 + (k * (count - 1)) // max(1, n - 1))
    return sorted(pts)


def kill_point(seed, variants, calib, cross_every, index, ops):
    rng = random.Random('uext4-crash-kill:%d' % seed)
    variant = variants[seed % len(variants)]
    commit = rng.choice([1, 5])
    frac = rng.uniform(0.0, 1.05)
    pace = 0.0
    if rng.random() < PACED:
        # slow enough for commits of the 1 s timer to run during the ops
        commit, pace = 1, PACE
    duration = calib.get(variant, 0.2) + pace * ops
    return Point('kill', variant, seed, delay=frac * duration, commit=commit,
                 pace=pace, **cross(index, cross_every))


def cross(index, every):
    if every <= 0:
        return {}
    return {'xfsck': index % every == 0,
            'xkernel': index % every == every // 2}


def fault_seed(variant, seed, step):
    return random.Random('uext4-crash-fseed:%s:%d:%d'
                         % (variant, seed, step)).randrange(1 << 16)


# ------------------------------------------------------------------ main

def _worker_init():
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent cleans up


def _call(args):
    point, cfg = args
    return run_point(point, cfg)


def run_all(points, cfg, jobs, on_result):
    if jobs <= 1:
        for pt in points:
            on_result(run_point(pt, cfg))
        return
    with multiprocessing.Pool(jobs, initializer=_worker_init) as pool:
        try:
            for res in pool.imap_unordered(_call, [(p, cfg) for p in points]):
                on_result(res)
        except BaseException:
            pool.terminate()
            raise


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--uext4', default=os.environ.get('UEXT4'),
                    help='the daemon (default: $UEXT4)')
    ap.add_argument('--seeds', type=int, default=160,
                    help='SIGKILL points (one workload seed each)')
    ap.add_argument('--start', type=int, default=0, help='first seed')
    ap.add_argument('--fault-points', type=int, default=30,
                    help='fault points spread over each fault workload, '
                    'plus its first and last 10 steps')
    ap.add_argument('--fault-workloads', type=int, default=1,
                    help='fault workloads per variant (seeds start, '
                    'start+1, ...)')
    ap.add_argument('--variants', default='csum,1k,nocsum,ext3',
                    help='comma-separated: %s' % ', '.join(
                        sorted(workload.VARIANTS)))
    ap.add_argument('--ops', type=int, default=200,
                    help='operations per workload')
    ap.add_argument('--keep-failures', metavar='DIR')
    ap.add_argument('--cross-every', type=int, default=10,
                    help='cross-check with e2fsck and with the kernel on one '
                    'crash point in N each (0: never)')
    ap.add_argument('--guarantee', choices=['commit', 'posix'],
                    default='commit', help='commit: a G2 violation fails; '
                    'posix: only G1 violations fail (verify.py)')
    ap.add_argument('--mount-opts', default='', metavar='OPTS',
                    help='more -o options for the mount that crashes '
                    '(e.g. writeback_cache)')
    ap.add_argument('--point', help='run one point (see above)')
    ap.add_argument('--tmpdir', help='where images live (default: /dev/shm '
                    'if possible, else $TMPDIR)')
    ap.add_argument('-j', '--jobs', type=int, default=2)
    a = ap.parse_args(argv)
    a.variants = [v for v in a.variants.split(',') if v]
    for v in a.variants:
        if v not in workload.VARIANTS:
            ap.error('unknown variant %r' % v)
    if not a.uext4:
        ap.error('--uext4 is required (or $UEXT4)')

    if not os.path.exists('/dev/fuse'):
        print('SKIP: /dev/fuse missing')
        return 77
    if os.geteuid() != 0:
        print('SKIP: the crash tests run as root')
        return 77
    if not os.access(a.uext4, os.X_OK):
        print('FAIL: %s is not executable' % a.uext4)
        return 1
    for k in ('UEXT4_FAULT_AT', 'UEXT4_FAULT_SEED', 'UEXT4_FAULT_COUNT'):
        os.environ.pop(k, None)
    os.umask(0o022)

    tmproot = a.tmpdir or ('/dev/shm' if os.access('/dev/shm', os.W_OK)
                           else None)
    base = tempfile.mkdtemp(prefix='uext4-crash-', dir=tmproot)
    os.chmod(base, 0o755)
    t0 = time.monotonic()
    try:
        return _main(a, base, t0)
    finally:
        _cleanup_mounts(base)
        if not ut.mounts_under(base):
            shutil.rmtree(base, ignore_errors=True)
        else:
            print('not removing %s: still mounted' % base)


def _main(a, base, t0):
    loop_ok = a.cross_every > 0 and loop_mount_works(base)
    cfg = Cfg(a, base, loop_ok)
    stats = {'points': 0, 'not_crashed': 0, 'repair': 0, 'lost': 0,
             'name': 0, 'commit': 0, 'other': 0, 'failed': 0, 'torn': 0,
             'e2fsck': 0, 'kernel': 0, 'clean_failed': 0, 'xfail': 0}
    failures = []
    known = {}

    def on_result(res):
        print(one_line(res), flush=True)
        if res.point.mode != 'clean':
            if res.crashed:
                stats['points'] += 1
            else:
                stats['not_crashed'] += 1
        elif res.failed:
            stats['clean_failed'] += 1
        stats['torn'] += res.torn
        for k in res.known:
            known[k] = known.get(k, 0) + 1
        stats['commit'] += len(res.warnings)
        for x in res.xchecks:
            stats[x] += 1
        for wn in res.warnings:
            print('  [warning: G2 only] %s' % wn[:400], flush=True)
        if res.failed:
            stats['failed'] += 1
            failures.append(res)
            print(format_result(res, cfg), flush=True)
            own = [c for c, _ in res.problems if ':' not in c]
            stats['repair'] += 1 if res.needs_repair else 0
            stats['lost'] += own.count('lost')
            stats['name'] += own.count('name')
            stats['commit'] += own.count('commit')
            stats['other'] += sum(1 for c in own if c not in (
                'lost', 'name', 'commit', 'repair'))
            # what a replay by e2fsck or the kernel found: once per point
            stats['xfail'] += 1 if len(own) < len(res.problems) else 0

    bad, tried = [], 0
    for v in a.variants:
        b, t = verify.self_test(workload.generate(v, a.start, a.ops))
        bad += b
        tried += t
    print('# verifier self-test: %d deliberately broken trees, %d not '
          'reported as they should be' % (tried, len(bad)), flush=True)
    for b in bad:
        print('FAIL verifier self-test: %s' % b)
    if bad:
        return 1
    if a.point:
        points = [parse_point(a.point, a)]
    else:
        # clean runs: step counts for the fault points, workload durations
        # for the SIGKILL delays, and a check of the harness itself
        # (twice: the step count of the unmount can differ by a few steps
        # with the timing of FUSE forgets; the smaller count is used)
        clean = [Point('clean', v, s) for v in a.variants
                 for s in range(a.start, a.start + max(1, a.fault_workloads))
                 for _ in range(2)]
        counts, calib = {}, {}

        def on_clean(res):
            on_result(res)
            p = res.point
            if res.duration is not None and not res.failed:
                calib[p.variant] = max(calib.get(p.variant, 0),
                                       res.duration)
            if res.count is not None:
                counts[(p.variant, p.seed)] = min(
                    res.count, counts.get((p.variant, p.seed)) or res.count)

        print('# %d clean runs (%s), then the crash points; images in %s'
              % (len(clean), ', '.join(a.variants), base), flush=True)
        run_all(clean, cfg, a.jobs, on_clean)
        points = []
        fault_ok = a.fault_points >= 0 and a.fault_workloads > 0
        if fault_ok and not any(counts.values()):
            print('# the daemon wrote no UEXT4_FAULT_COUNT file: it has no '
                  'fault injection; fault points skipped', flush=True)
            fault_ok = False
        if fault_ok:
            for v in a.variants:
                for s in range(a.start, a.start + a.fault_workloads):
                    c = counts.get((v, s))
                    if not c:
                        continue
                    for n in spread(c, a.fault_points):
                        points.append(Point('fault', v, s, step=n,
                                            fseed=fault_seed(v, s, n)))
        for i, s in enumerate(range(a.start, a.start + a.seeds)):
            points.append(kill_point(s, a.variants, calib, a.cross_every,
                                     i, a.ops))
        for i, p in enumerate(p for p in points if p.mode == 'fault'):
            for k, v in cross(i + 3, a.cross_every).items():
                setattr(p, k, v)
        # interleave the kinds so that both processes stay busy
        points.sort(key=lambda p: (hash_order(p)))
        print('# %d crash points: %d SIGKILL, %d fault injection%s' % (
            len(points), sum(p.mode == 'kill' for p in points),
            sum(p.mode == 'fault' for p in points),
            '' if loop_ok else '; no kernel cross-checks (loop mounts '
            'unavailable)'), flush=True)
    try:
        run_all(points, cfg, a.jobs, on_result)
    except KeyboardInterrupt:
        print('interrupted')
        return 1

    g2_fatal = a.guarantee == 'commit'   # else G2 problems are warnings
    print('\n%d crash points tried (%d more did not crash: the workload or '
          'the steps ended first); %d images needing repair; %d fsync\'d '
          'files lost; %d durable names lost; %d commit-order violations%s; '
          '%d other problems; %d torn overwrites accepted; cross-checks: '
          '%d e2fsck, %d kernel, %d of them failed; %d clean runs failed; '
          '%.0fs'
          % (stats['points'], stats['not_crashed'], stats['repair'],
             stats['lost'], stats['name'], stats['commit'],
             '' if g2_fatal else ' (not fatal: --guarantee posix)',
             stats['other'], stats['torn'], stats['e2fsck'], stats['kernel'],
             stats['xfail'], stats['clean_failed'], time.monotonic() - t0))
    for k, n in sorted(known.items()):
        print('not counted, %d point(s): %s' % (n, k))
    if failures:
        print('failed points: %s' % ', '.join(r.point.name()
                                              for r in failures[:40]))
    return 1 if stats['failed'] else 0


def hash_order(p):
    return random.Random('%s:%s:%d:%s' % (p.mode, p.variant, p.seed,
                                          p.step)).random()


def parse_point(spec, a):
    parts = spec.split(':')
    if parts[0] == 'fault' and len(parts) in (4, 5):
        v, s, n = parts[1], int(parts[2]), int(parts[3])
        fs = int(parts[4]) if len(parts) == 5 else fault_seed(v, s, n)
        return Point('fault', v, s, step=n, fseed=fs, xfsck=True,
                     xkernel=True)
    if parts[0] == 'kill' and len(parts) in (2, 3, 4, 5):
        p = kill_point(int(parts[1]), a.variants, {}, 0, 0, a.ops)
        if len(parts) > 2:
            p.delay = float(parts[2])
        if len(parts) > 3:
            p.commit = int(parts[3])
        if len(parts) > 4:
            p.pace = float(parts[4])
        p.xfsck = p.xkernel = True
        return p
    if parts[0] == 'clean' and len(parts) == 3:
        return Point('clean', parts[1], int(parts[2]))
    raise SystemExit('bad --point %r' % spec)


if __name__ == '__main__':
    sys.exit(main())
