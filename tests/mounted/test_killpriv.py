#!/usr/bin/env python3
"""setuid/setgid removal on modification, compared with the kernel's ext4.

The daemon negotiates FUSE_HANDLE_KILLPRIV_V2, which tells the kernel that
the daemon clears S_ISUID/S_ISGID itself when a file is modified by a caller
without CAP_FSETID.  Every way of modifying a file's data or size is run by
root, by the owner, by a member of the file's group and by another user on
files of several set-id modes, on a kernel loop mount of a fresh image and on
a uext4 `allow_other` mount of a copy of it.  The errno of each operation and
the resulting modes (through the mount, by statx(2) for the mode alone
from the kernel's attribute cache, and on disk by debugfs after unmount)
must be the kernel's.  Only freshly made images are loop-mounted.
"""

import ctypes
import mmap
import os
import shutil
import stat
import subprocess

from uext4test import require_kernel_loop_mount
from uext4test import kernel_mount
from uext4test import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
                       FALLOC_FL_ZERO_RANGE, Mount, SkipFile, TestFailure,
                       errno_of, fallocate, fsck, inode_info, main, mkfs, run,
                       run_as, test, workdir, write_file)

G1, G2, G3 = 20001, 20002, 20003
OWNER = (10001, G1, [G1])
ROOT = (0, 0, [0])
ACTORS = {
    'root': None,                      # CAP_FSETID: keeps the bits
    'root_nofsetid': ROOT,             # uid 0 without CAP_FSETID
    'owner': OWNER,
    'member': (10002, G2, [G2, G1]),   # G1 as a supplementary group
    'other': (10003, G3, [G3]),
}
MODES = (0o6666, 0o6777, 0o4777, 0o4666, 0o2666, 0o2676, 0o6755, 0o2775)
SIZE = 8192


def _direct_buf():
    buf = mmap.mmap(-1, 4096)      # page-aligned, as O_DIRECT wants
    buf.write(b'd' * 4096)
    return buf


def op_write(p, src):
    fd = os.open(p, os.O_WRONLY)
    try:
        os.pwrite(fd, b'w', 0)
    finally:
        os.close(fd)


def op_append(p, src):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b'appended\n')
    finally:
        os.close(fd)


def op_direct(p, src):
    fd = os.open(p, os.O_WRONLY | os.O_DIRECT)
    try:
        os.pwrite(fd, _direct_buf(), 4096)
    finally:
        os.close(fd)


def _falloc(mode, off, length):
    def op(p, src):
        fd = os.open(p, os.O_WRONLY)
        try:
            fallocate(fd, mode, off, length)
        finally:
            os.close(fd)
    return op


def op_copy_range(p, src):
    fi = os.open(src, os.O_RDONLY)
    try:
        fo = os.open(p, os.O_WRONLY)
        try:
            n = os.copy_file_range(fi, fo, 4096, 0, 0)
            if n != 4096:
                raise TestFailure('copy_file_range copied %d of 4096' % n)
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def op_truncate(p, src):
    os.truncate(p, 100)


def op_ftruncate(p, src):
    fd = os.open(p, os.O_WRONLY)
    try:
        os.ftruncate(fd, SIZE * 2)
    finally:
        os.close(fd)


def op_open_trunc(p, src):
    os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))


def op_mmap(p, src):
    fd = os.open(p, os.O_RDWR)
    try:
        m = mmap.mmap(fd, SIZE)
        try:
            m[10:14] = b'mmap'
            m.flush()
        finally:
            m.close()
    finally:
        os.close(fd)


OPS = {
    'write': op_write,
    'append': op_append,
    'direct': op_direct,
    'falloc': _falloc(0, 0, SIZE * 2),
    'falloc_keep': _falloc(FALLOC_FL_KEEP_SIZE, SIZE, SIZE),
    'punch': _falloc(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096),
    'zero': _falloc(FALLOC_FL_ZERO_RANGE, 0, 4096),
    'copy_range': op_copy_range,
    'truncate': op_truncate,
    'ftruncate': op_ftruncate,
    'open_trunc': op_open_trunc,
    'mmap': op_mmap,
}


def name_of(mode, actor, op):
    return 'f%o-%s-%s' % (mode, actor, op)


def make_files(top):
    """As root: one file per case, owned by OWNER, then its set-id mode
    (chmod after chown: chown would clear the bits)."""
    os.chmod(top, 0o777)
    src = os.path.join(top, 'src')
    write_file(src, b's' * SIZE, 0o644)
    for mode in MODES:
        for actor in ACTORS:
            for op in OPS:
                p = os.path.join(top, name_of(mode, actor, op))
                write_file(p, b'x' * SIZE, 0o600)
                os.chown(p, OWNER[0], OWNER[1])
                os.chmod(p, mode)
    return src


CAP_FSETID = 4


def drop_fsetid():
    """Clear CAP_FSETID from this process's effective set (capset(2))."""
    class Header(ctypes.Structure):
        _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [('effective', ctypes.c_uint32),
                    ('permitted', ctypes.c_uint32),
                    ('inheritable', ctypes.c_uint32)]
    libc = ctypes.CDLL(None, use_errno=True)
    hdr = Header(0x20080522, 0)             # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), 'capget')
    data[0].effective &= ~(1 << CAP_FSETID)
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), 'capset')


def run_ops(top, src, actor):
    """In the actor's process: every op on its files; {name: errno}."""
    if actor == 'root_nofsetid':
        drop_fsetid()
    out = {}
    for mode in MODES:
        for op, fn in OPS.items():
            name = name_of(mode, actor, op)
            out[name] = errno_of(fn, os.path.join(top, name), src)
    return out


def cached_modes(top, names):
    """Modes as GNU stat shows them: it asks statx(2) for the mode alone,
    which the kernel answers from the attributes it cached, while a full
    stat(2) would also want the times a write invalidated and refresh
    everything (fstests generic/355)."""
    out = run(['stat', '-c', '%n %a'] + [os.path.join(top, n) for n in names])
    modes = {}
    for line in out.stdout.decode().splitlines():
        path, mode = line.rsplit(' ', 1)
        modes[os.path.basename(path)] = int(mode, 8)
    return modes


def script(top):
    """Run every case under @top; returns ({name: errno}, {name: mode},
    {name: mode by statx(STATX_MODE)})."""
    src = make_files(top)
    results = {}
    for actor, cred in ACTORS.items():
        if cred is None:
            results.update(run_ops(top, src, actor))
        else:
            results.update(run_as(*cred, run_ops, top, src, actor))
    # Before any full stat(2), which would refresh the cache.
    cached = cached_modes(top, sorted(results))
    modes = {name: stat.S_IMODE(os.stat(os.path.join(top, name)).st_mode)
             for name in results}
    return results, modes, cached


def disk_modes(image, names):
    """Modes on disk, one debugfs run for all files."""
    req = '\n'.join('stat /t/%s' % n for n in names) + '\n'
    p = run(['debugfs', '-f', '-', image], input=req.encode())
    out = p.stdout.decode(errors='replace')
    modes = []
    for line in out.splitlines():
        if line.startswith('Inode:') and 'Mode:' in line:
            modes.append(int(line.split('Mode:')[1].split()[0], 8) & 0o7777)
    if len(modes) != len(names):
        raise TestFailure('debugfs gave %d modes for %d files'
                          % (len(modes), len(names)))
    return dict(zip(names, modes))


def diff(what, kern, ours, show=repr):
    lines = ['  %s: kernel %s, uext4 %s' % (k, show(kern.get(k)),
                                            show(ours.get(k)))
             for k in sorted(set(kern) | set(ours))
             if kern.get(k) != ours.get(k)]
    if lines:
        return '%s differ (%d):\n%s' % (what, len(lines),
                                       '\n'.join(lines[:40]))
    return None


def octal(mode):
    return '%04o' % mode if isinstance(mode, int) else repr(mode)


def compare(opts):
    with workdir() as d:
        kimg = mkfs(d + '/kernel.img')
        uimg = d + '/uext4.img'
        shutil.copyfile(kimg, uimg)
        kmnt = d + '/kmnt'
        with kernel_mount(kimg, kmnt):
            os.mkdir(os.path.join(kmnt, 't'))
            kres, kmodes, kcached = script(os.path.join(kmnt, 't'))
        fsck(kimg)
        with Mount(uimg, opts=['allow_other'] + list(opts)) as m:
            os.chmod(m.mnt, 0o755)
            os.mkdir(m.path('t'))
            ures, umodes, ucached = script(m.path('t'))
        fsck(uimg)
        names = sorted(kres)
        problems = [diff('operation errno', kres, ures),
                    diff('modes through the mount', kmodes, umodes, octal),
                    diff('modes by statx(STATX_MODE), from the kernel\'s '
                         'cache', kcached, ucached, octal),
                    diff('modes on disk', disk_modes(kimg, names),
                         disk_modes(uimg, names), octal)]
        problems = [p for p in problems if p]
        if problems:
            raise TestFailure('\n'.join(problems))
        # The comparison is only worth something if the kernel did clear
        # bits in some cases and kept them in others.
        kept = sum(1 for n in names if kmodes[n] & 0o6000)
        if not 0 < kept < len(names):
            raise TestFailure('kernel kept set-id bits on %d of %d files'
                              % (kept, len(names)))


def setup():
    require_kernel_loop_mount()


@test
def killpriv_default():
    compare([])


@test
def killpriv_no_default_permissions():
    compare(['no_default_permissions'])


@test
def killpriv_writeback_cache():
    compare(['writeback_cache'])


def _falloc_in_place(path, mode):
    fd = os.open(path, os.O_WRONLY)
    try:
        fallocate(fd, mode, 0, 4096)
    finally:
        os.close(fd)


@test
def killpriv_fallocate_cached_mode():
    """stat(2) right after another user's fallocate shows the dropped bits.

    The kernel keeps a file's mode cached and after FALLOCATE refreshes
    only size and times, so the daemon must tell it that the mode changed
    (fstests generic/683-685 stat before and right after with GNU stat)."""
    falls = {'alloc': 0, 'keep': FALLOC_FL_KEEP_SIZE,
             'punch': FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
             'zero': FALLOC_FL_ZERO_RANGE}
    with workdir() as d:
        img = mkfs(d + '/u.img')
        seen = {}
        with Mount(img, opts=['allow_other']) as m:
            os.chmod(m.mnt, 0o755)
            for name, fmode in falls.items():
                p = m.path(name)
                write_file(p, b'X' * SIZE)
                os.chmod(p, 0o6666)
                if stat.S_IMODE(os.stat(p).st_mode) != 0o6666:
                    raise TestFailure('%s: chmod 6666 not seen' % name)
                run_as(*ACTORS['other'], _falloc_in_place, p, fmode)
                # GNU stat asks statx(2) for the mode alone, which the
                # kernel answers from its cache when that is still valid.
                seen[name] = int(run(['stat', '-c', '%a', p]).stdout, 8)
        fsck(img)
        req = '\n'.join('stat /%s' % n for n in falls) + '\n'
        out = run(['debugfs', '-f', '-', img],
                  input=req.encode()).stdout.decode(errors='replace')
        disk = [int(line.split('Mode:')[1].split()[0], 8) & 0o7777
                for line in out.splitlines()
                if line.startswith('Inode:') and 'Mode:' in line]
        bad = ['%s: through the mount %s, on disk %s'
               % (n, octal(seen[n]), octal(k))
               for n, k in zip(falls, disk)
               if seen[n] != k or k & stat.S_ISUID]
        if len(disk) != len(falls) or bad:
            raise TestFailure('mode after fallocate by another user:\n  '
                              + '\n  '.join(bad or ['debugfs: %r' % disk]))


if __name__ == '__main__':
    main(setup)
