#!/usr/bin/python3
"""The crash workload: a seeded list of file operations, the model of what each
one does, and the process that runs them on a mount and logs what is durable.

    workload.py run --variant V --seed S --mnt DIR --log FILE [--ops N]
                    [--pace SECONDS]
    workload.py show --variant V --seed S        (list the operations)

generate(variant, seed, n_ops) is a pure function: the harness, the workload
process and the verifier all call it and get the same operations, with the
same bytes, and the same model states.  states[j + 1] is the state of the
tree after operation j has returned (states[0]: the fresh image).

One operation is one mutating system call (create, pwrite, O_APPEND write,
truncate, rename, unlink, link, symlink, mkdir, rmdir, setxattr, removexattr,
fallocate, unlink-while-open, close of such a file), or one durability call
(fsync, fdatasync, fsync of a directory, fsync of an unlinked open file) or
syncfs.  Writes are at most 64 KiB, so that each is one FUSE request: a
write(2) split into several requests would have intermediate states the model
does not list.

The log (JSON lines, written by the workload process itself):
    {"start": N, "variant": V, "seed": S, "fp": OPS_FINGERPRINT,
     "t": MONOTONIC_SECONDS}
    {"done": j}               operation j returned successfully
    {"durable": j, "how": "fsync"|"fdatasync"|"fsyncdir"|"ofsync",
     "target": PATH, "files": {PATH: SHA256}, "names": {PATH: KIND|null}}
                              written, then fsync'd, after the call returned:
                              "files" are the paths of the fsync'd file and
                              the sha256 of its bytes at that moment; "names"
                              (after fsync of a directory) every name the
                              directory ever held until then, with its kind
                              then ("f", "d", "l") or null if it was gone.
    {"fail": j, "errno": E}   operation j failed (the daemon died); the
                              process exits 3
    {"end": N, "t": MONOTONIC_SECONDS}   every operation returned
syncfs(2) is issued but is not a durability point: Linux does not forward
syncfs to /dev/fuse servers (only virtiofs gets FUSE_SYNCFS), so it never
reaches the daemon.
"""
import ctypes
import errno
import hashlib
import json
import os
import random
import sys
import time

VARIANTS = {
    # name: mke2fs type, features, block size
    'csum': ('ext4', ('inline_data', 'metadata_csum', '64bit'), 4096),
    '1k': ('ext4', ('inline_data', 'metadata_csum', '64bit'), 1024),
    'nocsum': ('ext4', ('inline_data', '^metadata_csum', '64bit'), 4096),
    'ext3': ('ext3', (), 4096),
    # 16-block (64 KiB) clusters; not in crash.py's default list.
    'bigalloc': ('ext4', ('bigalloc', 'metadata_csum', '64bit'), 4096),
}

DURABLE = ('fsync', 'fdatasync', 'fsyncdir', 'ofsync')

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

MAX_WRITE = 64 << 10          # one FUSE request
MAX_FILE = 384 << 10          # keeps a workload far from ENOSPC on 64 MiB
DIR_NAMES = ['da', 'db', 'dc', 'dd']
FILE_NAMES = ['f%d' % i for i in range(10)]
LINK_NAMES = ['s0', 's1', 's2']
XATTR_NAMES = ['user.a', 'user.b', 'user.c']

# relative weights of the operation kinds
WEIGHTS = [
    ('create', 8), ('write_small', 6), ('write', 7), ('append', 8),
    ('overwrite', 8), ('truncate', 6), ('rename', 5), ('rename_over', 4),
    ('rename_dir', 1), ('unlink', 4), ('link', 3), ('symlink', 3),
    ('mkdir', 3), ('rmdir', 2), ('setxattr', 4), ('removexattr', 2),
    ('fallocate', 4), ('orphan_write', 3), ('oclose', 1),
    ('fsync', 8), ('fdatasync', 4), ('fsyncdir', 3), ('ofsync', 2),
    ('syncfs', 1),
]


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ model

class Node:
    __slots__ = ('kind', 'data', 'target', 'xattrs', 'entries')

    def __init__(self, kind, target=None):
        self.kind = kind            # 'f', 'd', 'l'
        self.data = b''             # file bytes
        self.target = target        # symlink target
        self.xattrs = {}            # name -> bytes (files, directories)
        self.entries = {} if kind == 'd' else None   # name -> nid


class State:
    """The tree after an operation: paths and what each node holds."""
    __slots__ = ('paths', 'data', 'xattrs', 'target')

    def __init__(self, paths, data, xattrs, target):
        self.paths = paths          # path -> (kind, nid)
        self.data = data            # nid -> bytes, every live file node
        self.xattrs = xattrs        # nid -> tuple(sorted items)
        self.target = target        # nid -> symlink target


class Model:
    ROOT = 1

    def __init__(self):
        self.nodes = {1: Node('d'), 2: Node('d')}
        self.nodes[1].entries['lost+found'] = 2
        self.next_nid = 3
        self.orphans = {}           # oid -> nid, files open and unlinked

    def new(self, kind, target=None):
        nid = self.next_nid
        self.next_nid += 1
        self.nodes[nid] = Node(kind, target)
        return nid

    def paths(self):
        out = {}

        def walk(nid, prefix):
            for name, child in self.nodes[nid].entries.items():
                p = prefix + name
                out[p] = (self.nodes[child].kind, child)
                if self.nodes[child].kind == 'd':
                    walk(child, p + '/')
        walk(self.ROOT, '')
        return out

    def lookup(self, path):
        nid = self.ROOT
        for part in path.split('/') if path else []:
            nid = self.nodes[nid].entries.get(part)
            if nid is None:
                return None
        return nid

    def parent(self, path):
        head, _, name = path.rpartition('/')
        return self.lookup(head), name

    def links(self, nid):
        return [p for p, (_, n) in self.paths().items() if n == nid]

    def snapshot(self):
        paths = self.paths()
        live = {n for _, n in paths.values()} | set(self.orphans.values())
        data, xattrs, target = {}, {}, {}
        for nid in live:
            node = self.nodes[nid]
            if node.kind == 'f':
                data[nid] = node.data
            if node.kind == 'l':
                target[nid] = node.target
            else:
                xattrs[nid] = tuple(sorted(node.xattrs.items()))
        return State(paths, data, xattrs, target)

    # -------------------------------------------------------- effects

    def apply(self, op):
        k = op['k']
        if k == 'create':
            d, name = self.parent(op['p'])
            self.nodes[d].entries[name] = self.new('f')
        elif k in ('write', 'owrite'):
            node = self.file_node(op)
            node.data = put(node.data, op['off'], op['data'])
        elif k == 'append':
            node = self.nodes[self.lookup(op['p'])]
            node.data = node.data + op['data']
        elif k == 'truncate':
            node = self.nodes[self.lookup(op['p'])]
            node.data = resize(node.data, op['size'])
        elif k == 'fallocate':
            node = self.nodes[self.lookup(op['p'])]
            node.data = falloc(node.data, op['mode'], op['off'], op['len'])
        elif k == 'rename':
            sd, sname = self.parent(op['src'])
            dd, dname = self.parent(op['dst'])
            nid = self.nodes[sd].entries.pop(sname)
            self.nodes[dd].entries[dname] = nid
        elif k in ('unlink', 'rmdir'):
            d, name = self.parent(op['p'])
            del self.nodes[d].entries[name]
        elif k == 'orphan_open':
            d, name = self.parent(op['p'])
            self.orphans[op['oid']] = self.nodes[d].entries.pop(name)
        elif k == 'oclose':
            del self.orphans[op['oid']]
        elif k == 'link':
            d, name = self.parent(op['dst'])
            self.nodes[d].entries[name] = self.lookup(op['src'])
        elif k == 'symlink':
            d, name = self.parent(op['p'])
            self.nodes[d].entries[name] = self.new('l', op['target'])
        elif k == 'mkdir':
            d, name = self.parent(op['p'])
            self.nodes[d].entries[name] = self.new('d')
        elif k == 'setxattr':
            self.nodes[self.lookup(op['p'])].xattrs[op['name']] = op['value']
        elif k == 'removexattr':
            del self.nodes[self.lookup(op['p'])].xattrs[op['name']]
        elif k in DURABLE or k == 'syncfs':
            pass
        else:
            raise ValueError('unknown op %r' % k)

    def file_node(self, op):
        if 'oid' in op:
            return self.nodes[self.orphans[op['oid']]]
        return self.nodes[self.lookup(op['p'])]


def put(old, off, data):
    if off > len(old):
        old = old + bytes(off - len(old))
    return old[:off] + data + old[off + len(data):]


def resize(old, size):
    return old[:size] if size <= len(old) else old + bytes(size - len(old))


def falloc(old, mode, off, length):
    end = off + length
    if mode & FALLOC_FL_PUNCH_HOLE or mode & FALLOC_FL_ZERO_RANGE:
        zend = min(end, len(old)) if mode & FALLOC_FL_KEEP_SIZE else end
        new = resize(old, max(len(old), zend))
        if zend > off:
            new = new[:off] + bytes(zend - off) + new[zend:]
        return new
    if mode & FALLOC_FL_KEEP_SIZE:
        return old
    return resize(old, max(len(old), end))


# ------------------------------------------------------------------ generator

class Workload:
    """ops, states (len(ops) + 1), and the block size of the variant."""

    def __init__(self, variant, seed, ops, states, block):
        self.variant, self.seed = variant, seed
        self.ops, self.states, self.block = ops, states, block


_cache = {}


def generate(variant, seed, n_ops=200):
    key = (variant, seed, n_ops)
    if key not in _cache:
        if len(_cache) > 8:
            _cache.clear()
        _cache[key] = _generate(variant, seed, n_ops)
    return _cache[key]


def _generate(variant, seed, n_ops):
    fstype, features, block = VARIANTS[variant]
    rng = random.Random('uext4-crash:%s:%d' % (variant, seed))
    g = _Gen(rng, fstype == 'ext4', block)
    m = g.m
    ops, states = [], [m.snapshot()]
    orphan_at = rng.randrange(n_ops // 8, n_ops // 3)
    while len(ops) < n_ops:
        if len(ops) == orphan_at or (len(ops) > orphan_at and not m.orphans
                                     and rng.random() < 0.02):
            op = g.orphan_open()
        else:
            op = None
        while not op:
            kind = rng.choices([w[0] for w in WEIGHTS],
                               [w[1] for w in WEIGHTS])[0]
            op = getattr(g, kind)()
        m.apply(op)
        ops.append(op)
        states.append(m.snapshot())
    return Workload(variant, seed, ops, states, block)


class _Gen:
    """Picks a valid operation of a kind, or None if there is none now."""

    def __init__(self, rng, extents, block):
        self.rng, self.extents, self.block = rng, extents, block
        self.m = Model()
        self.next_oid = 0
        self.ops_since_oopen = 0

    # helpers
    def of_kind(self, kinds):
        return sorted(p for p, (k, _) in self.m.paths().items()
                      if k in kinds and not p.startswith('lost+found'))

    def dirs(self):
        return [''] + self.of_kind('d')

    def free_name(self, names, max_depth=2):
        ds = [d for d in self.dirs() if d.count('/') + (1 if d else 0)
              < max_depth]
        d = self.rng.choice(ds)
        name = self.rng.choice(names)
        p = (d + '/' + name) if d else name
        return None if p in self.m.paths() else p

    def file(self, max_size=None):
        fs = self.of_kind('f')
        if max_size is not None:
            fs = [p for p in fs
                  if len(self.m.nodes[self.m.lookup(p)].data) <= max_size]
        return self.rng.choice(fs) if fs else None

    def size(self, p):
        return len(self.m.nodes[self.m.lookup(p)].data)

    def data(self, n):
        return self.rng.randbytes(n)

    def length(self):
        r = self.rng.random()
        if r < 0.35:
            return self.rng.randint(1, 150)
        if r < 0.75:
            return self.rng.randint(151, 3 * self.block)
        return self.rng.randint(3 * self.block, MAX_WRITE)

    # kinds
    def create(self):
        p = self.free_name(FILE_NAMES)
        return p and {'k': 'create', 'p': p}

    def write_small(self):
        p = self.file(max_size=150)
        if not p:
            return None
        n = self.rng.randint(1, 150)
        return {'k': 'write', 'p': p, 'off': 0, 'data': self.data(n)}

    def write(self):
        p = self.file()
        if not p:
            return None
        size = self.size(p)
        off = self.rng.randint(0, size + 2 * self.block)
        n = min(self.length(), MAX_FILE - off)
        if n <= 0:
            return None
        return {'k': 'write', 'p': p, 'off': off, 'data': self.data(n)}

    def append(self):
        p = self.file()
        if not p:
            return None
        n = min(self.length(), MAX_FILE - self.size(p))
        return n > 0 and {'k': 'append', 'p': p, 'data': self.data(n)}

    def overwrite(self):
        p = self.file()
        size = self.size(p) if p else 0
        if size < 2:
            return None
        off = self.rng.randrange(size - 1)
        n = self.rng.randint(1, min(size - off, MAX_WRITE))
        if self.rng.random() < 0.5:
            n = min(n, self.block - off % self.block)   # within one block
        return {'k': 'write', 'p': p, 'off': off, 'data': self.data(n)}

    def truncate(self):
        p = self.file()
        if not p:
            return None
        size = self.size(p)
        if self.rng.random() < 0.5 or size == 0:
            new = self.rng.randint(size, min(MAX_FILE, size + 6 * self.block))
        else:
            new = self.rng.choice([0, self.rng.randint(0, size),
                                   self.rng.randint(0, min(size, 200))])
        return {'k': 'truncate', 'p': p, 'size': new}

    def rename(self):
        src = self.rng.choice(self.of_kind('fl') or [None])
        dst = self.free_name(FILE_NAMES + LINK_NAMES)
        return src and dst and {'k': 'rename', 'src': src, 'dst': dst}

    def rename_over(self):
        cands = self.of_kind('fl')
        if len(cands) < 2:
            return None
        src, dst = self.rng.sample(cands, 2)
        if self.m.lookup(src) == self.m.lookup(dst):
            return None     # hard links of one inode: rename does nothing
        return {'k': 'rename', 'src': src, 'dst': dst}

    def rename_dir(self):
        src = self.rng.choice(self.of_kind('d') or [None])
        dst = self.free_name(DIR_NAMES, max_depth=1)
        if not src or not dst or dst.startswith(src + '/'):
            return None
        depth = max([p.count('/') for p in self.m.paths()
                     if p.startswith(src + '/')] + [src.count('/')])
        if depth - src.count('/') + dst.count('/') > 2:
            return None
        return {'k': 'rename', 'src': src, 'dst': dst}

    def unlink(self):
        p = self.rng.choice(self.of_kind('fl') or [None])
        return p and {'k': 'unlink', 'p': p}

    def link(self):
        src = self.file()
        dst = self.free_name(FILE_NAMES)
        return src and dst and {'k': 'link', 'src': src, 'dst': dst}

    def symlink(self):
        p = self.free_name(LINK_NAMES)
        if not p:
            return None
        if self.rng.random() < 0.5:
            target = self.rng.choice(FILE_NAMES)
        else:
            target = '/'.join(self.rng.choice(DIR_NAMES + FILE_NAMES)
                              for _ in range(self.rng.randint(20, 60)))
        return {'k': 'symlink', 'p': p, 'target': target}

    def mkdir(self):
        p = self.free_name(DIR_NAMES)
        return p and {'k': 'mkdir', 'p': p}

    def rmdir(self):
        ds = [d for d in self.of_kind('d')
              if not self.m.nodes[self.m.lookup(d)].entries]
        return ds and {'k': 'rmdir', 'p': self.rng.choice(ds)}

    def setxattr(self):
        p = self.rng.choice(self.of_kind('fd') or [None])
        if not p:
            return None
        name = self.rng.choice(XATTR_NAMES)
        xs = self.m.nodes[self.m.lookup(p)].xattrs
        room = (600 if self.block == 1024 else 2400) - sum(
            len(v) for n, v in xs.items() if n != name)
        n = self.rng.choice([self.rng.randint(1, 40),
                             self.rng.randint(100, 900)])
        if n > room:
            return None
        return {'k': 'setxattr', 'p': p, 'name': name, 'value': self.data(n)}

    def removexattr(self):
        cands = [(p, n) for p in self.of_kind('fd')
                 for n in sorted(self.m.nodes[self.m.lookup(p)].xattrs)]
        if not cands:
            return None
        p, name = self.rng.choice(cands)
        return {'k': 'removexattr', 'p': p, 'name': name}

    def fallocate(self):
        p = self.file()
        if not p:
            return None
        modes = ([0, FALLOC_FL_KEEP_SIZE,
                  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  FALLOC_FL_ZERO_RANGE,
                  FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE]
                 if self.extents else
                 [FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE])
        mode = self.rng.choice(modes)
        size = self.size(p)
        off = self.rng.randint(0, size + self.block)
        n = self.rng.randint(1, 8 * self.block)
        ind = 12 * self.block       # first block mapped by the ind. block
        if not self.extents and size > ind and self.rng.random() < 0.3:
            # block-mapped files: a range from the direct blocks into the
            # indirect ones (libext2fs 1.47.0 stops at the boundary)
            off = self.rng.randint(6 * self.block, ind - 1)
            n = self.rng.randint(ind - off + 1, ind - off + 6 * self.block)
        if off + n > MAX_FILE:
            return None
        return {'k': 'fallocate', 'p': p, 'mode': mode, 'off': off, 'len': n}

    def orphan_open(self):
        p = self.file()
        if not p or len(self.m.orphans) >= 2:
            return None
        oid = self.next_oid
        self.next_oid += 1
        return {'k': 'orphan_open', 'p': p, 'oid': oid}

    def orphan_write(self):
        if not self.m.orphans:
            return None
        oid = self.rng.choice(sorted(self.m.orphans))
        size = len(self.m.nodes[self.m.orphans[oid]].data)
        off = self.rng.randint(0, size + self.block)
        n = min(self.length(), MAX_FILE - off)
        if n <= 0:
            return None
        return {'k': 'owrite', 'oid': oid, 'off': off, 'data': self.data(n)}

    def ofsync(self):
        if not self.m.orphans:
            return None
        oid = self.rng.choice(sorted(self.m.orphans))
        return {'k': 'ofsync', 'oid': oid, 'nid': self.m.orphans[oid]}

    def oclose(self):
        if not self.m.orphans or self.rng.random() < 0.6:
            return None     # mostly keep them open, across many fsyncs
        return {'k': 'oclose', 'oid': self.rng.choice(sorted(self.m.orphans))}

    def fsync(self):
        p = self.file()
        return p and {'k': 'fsync', 'p': p}

    def fdatasync(self):
        p = self.file()
        return p and {'k': 'fdatasync', 'p': p}

    def fsyncdir(self):
        return {'k': 'fsyncdir', 'p': self.rng.choice(self.dirs())}

    def syncfs(self):
        return {'k': 'syncfs'}


def fingerprint(w):
    """Identifies the operations: the verifier's model must be the one the
    workload process ran (not so if workload.py changed in between)."""
    return hashlib.sha256(repr(w.ops).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ durable

def durable_record(w, j):
    """What the log says is durable once operation j returned."""
    op, st = w.ops[j], w.states[j + 1]
    rec = {'durable': j, 'how': op['k'], 'target': op.get('p', ''),
           'files': {}, 'names': {}}
    if op['k'] in ('fsync', 'fdatasync', 'ofsync'):
        if op['k'] == 'ofsync':
            rec['target'] = '<unlinked #%d>' % op['oid']
            nid = op['nid']
        else:
            nid = st.paths[op['p']][1]
        for p, (kind, n) in st.paths.items():
            if n == nid:
                rec['files'][p] = sha(st.data[nid])
    elif op['k'] == 'fsyncdir':
        d = op['p']
        pre = d + '/' if d else ''
        names = set()
        for s in w.states[:j + 2]:
            for p in s.paths:
                if p.startswith(pre) and '/' not in p[len(pre):]:
                    names.add(p)
        for p in sorted(names):
            ent = st.paths.get(p)
            rec['names'][p] = ent[0] if ent else None
    return rec


# ------------------------------------------------------------------ executor

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate64.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                              ctypes.c_int64]


def _check(r):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _write_all(fd, data, off=None):
    n = os.pwrite(fd, data, off) if off is not None else os.write(fd, data)
    if n != len(data):
        # a second call would be a second request: not one operation
        raise OSError(errno.EIO, 'short write %d of %d' % (n, len(data)))


class Runner:
    def __init__(self, mnt):
        self.mnt = mnt
        self.ofds = {}

    def path(self, p):
        return os.path.join(self.mnt, p) if p else self.mnt

    def run(self, op):
        k, P = op['k'], self.path
        if k == 'create':
            os.close(os.open(P(op['p']), os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o644))
        elif k == 'write':
            self._with_fd(op['p'], os.O_WRONLY,
                          lambda fd: _write_all(fd, op['data'], op['off']))
        elif k == 'append':
            self._with_fd(op['p'], os.O_WRONLY | os.O_APPEND,
                          lambda fd: _write_all(fd, op['data']))
        elif k == 'truncate':
            os.truncate(P(op['p']), op['size'])
        elif k == 'fallocate':
            self._with_fd(op['p'], os.O_WRONLY, lambda fd: _check(
                _libc.fallocate64(fd, op['mode'], op['off'], op['len'])))
        elif k == 'rename':
            os.rename(P(op['src']), P(op['dst']))
        elif k == 'unlink':
            os.unlink(P(op['p']))
        elif k == 'rmdir':
            os.rmdir(P(op['p']))
        elif k == 'orphan_open':
            fd = os.open(P(op['p']), os.O_RDWR)
            try:
                os.unlink(P(op['p']))
            except OSError:
                os.close(fd)
                raise
            self.ofds[op['oid']] = fd
        elif k == 'owrite':
            _write_all(self.ofds[op['oid']], op['data'], op['off'])
        elif k == 'ofsync':
            os.fsync(self.ofds[op['oid']])
        elif k == 'oclose':
            os.close(self.ofds.pop(op['oid']))
        elif k == 'link':
            os.link(P(op['src']), P(op['dst']))
        elif k == 'symlink':
            os.symlink(op['target'], P(op['p']))
        elif k == 'mkdir':
            os.mkdir(P(op['p']), 0o755)
        elif k == 'setxattr':
            os.setxattr(P(op['p']), op['name'], op['value'])
        elif k == 'removexattr':
            os.removexattr(P(op['p']), op['name'])
        elif k == 'fsync':
            self._with_fd(op['p'], os.O_RDONLY, os.fsync)
        elif k == 'fdatasync':
            self._with_fd(op['p'], os.O_RDONLY, os.fdatasync)
        elif k == 'fsyncdir':
            self._with_fd(op['p'], os.O_RDONLY | os.O_DIRECTORY, os.fsync)
        elif k == 'syncfs':
            self._with_fd('', os.O_RDONLY | os.O_DIRECTORY,
                          lambda fd: _check(_libc.syncfs(fd)))
        else:
            raise ValueError(k)

    def _with_fd(self, p, flags, fn):
        fd = os.open(self.path(p), flags)
        try:
            fn(fd)
        finally:
            os.close(fd)


def run_workload(variant, seed, mnt, log_path, n_ops, pace=0.0):
    w = generate(variant, seed, n_ops)
    runner = Runner(mnt)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def emit(rec, sync=False):
        os.write(log, (json.dumps(rec, sort_keys=True) + '\n').encode())
        if sync:
            os.fsync(log)

    emit({'start': len(w.ops), 'variant': variant, 'seed': seed,
          'fp': fingerprint(w), 't': time.monotonic()}, True)
    for j, op in enumerate(w.ops):
        try:
            runner.run(op)
        except OSError as e:
            emit({'fail': j, 'errno': e.errno, 'msg': str(e)}, True)
            return 3
        emit({'done': j})
        if op['k'] in DURABLE:
            emit(durable_record(w, j), True)
        if pace:
            time.sleep(pace)
    emit({'end': len(w.ops), 't': time.monotonic()}, True)
    for fd in runner.ofds.values():
        os.close(fd)
    return 0


def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument('cmd', choices=['run', 'show'])
    ap.add_argument('--variant', default='csum', choices=sorted(VARIANTS))
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--ops', type=int, default=200)
    ap.add_argument('--mnt')
    ap.add_argument('--log')
    ap.add_argument('--pace', type=float, default=0.0,
                    help='seconds to sleep after each operation')
    a = ap.parse_args(argv)
    if a.cmd == 'show':
        w = generate(a.variant, a.seed, a.ops)
        for j, op in enumerate(w.ops):
            print(j, describe(op))
        return 0
    return run_workload(a.variant, a.seed, a.mnt, a.log, a.ops, a.pace)


def describe(op):
    parts = []
    for key, v in op.items():
        if key == 'k':
            continue
        if isinstance(v, bytes):
            v = '<%d bytes %s>' % (len(v), sha(v)[:8])
        parts.append('%s=%s' % (key, v))
    return op['k'] + ' ' + ' '.join(parts)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
