"""Check a recovered tree against the workload's model and log.

The guarantee checked (see also the README's "Crash tests"):

  G1 (POSIX + ext4, the log's own records).  After fsync(f) or fdatasync(f)
     returned at operation i, each path that named f at i holds f's bytes of
     that moment, or a state that a later operation (i, L] gave that path.
     After fsync(dir) returned at i, every name the directory had ever held
     until i is present (with its kind at i) or absent as it was at i, unless
     an operation in (i, L] changed it.
  G2 (uext4's whole-file-system commit: an fsync commits everything before
     it).  Let D be the last operation logged durable.  Every path of the
     tree (every name the workload ever made, and any other name) is in a
     state it had at some point in [D, L]: present or absent, its kind, its
     symlink target, its user.* xattrs, its size and its bytes.

L is the last operation that may have reached the daemon: the one after the
last logged "done" (it may have been in flight), or the failed one.
Without any durable operation D is the fresh image ("before operation 0"):
nothing is required to survive, but nothing may appear that the workload
never made and no file may hold bytes it never had.

"A state it had" for file bytes: the sha256 equals one of the file's
versions in [D, L] (the digests the log and model list), or one of two
states ordered mode allows (ext4 allows them too):
  - torn: data overwritten in place is not journaled, so it can reach the
    disk without the metadata of its operation (or of the operations after
    it).  The size is one the path had in [D, L] and every fs block of the
    bytes is that block of some version in [D, L], or the bytes of a version
    whose end of file is inside the block followed by zeros or by older
    bytes of another version (data_matches() has the exact rule);
  - a commit inside an extending write: the write is durable up to a block
    boundary S inside it, the file is then the new bytes up to S
    (Checker.partials()).
Torn files are accepted and counted.  Not accepted, among others: blocks
past every version's end of file that no version had (stale or unwritten
blocks exposed by a committed size), sizes that are no block boundary and
no version's size, bytes no version had.

A G2 violation that also breaks a G1 record is reported as an fsync'd file
(or a durable name) lost; otherwise as a commit-order violation.
"""
import os
import stat

from workload import sha


class Observed:
    """The tree as read back through a mount."""

    def __init__(self):
        self.paths = {}     # path -> ('f', bytes, xattrs) | ('d', None,
                            # xattrs) | ('l', target, None) | ('?', mode, None)
        self.errors = []    # unreadable / unwalkable, as strings


def observe(root):
    obs = Observed()

    def xattrs(full):
        out = {}
        for name in os.listxattr(full, follow_symlinks=False):
            if name.startswith('user.'):
                out[name] = os.getxattr(full, name, follow_symlinks=False)
        return tuple(sorted(out.items()))

    def walk(rel):
        full = os.path.join(root, rel) if rel else root
        try:
            names = sorted(os.listdir(full))
        except OSError as e:
            obs.errors.append('listdir %s: %s' % (rel or '/', e))
            return
        for name in names:
            p = rel + '/' + name if rel else name
            fp = os.path.join(root, p)
            try:
                st = os.lstat(fp)
                if stat.S_ISREG(st.st_mode):
                    with open(fp, 'rb') as f:
                        data = f.read()
                    if len(data) != st.st_size:
                        obs.errors.append('%s: read %d bytes, size %d'
                                          % (p, len(data), st.st_size))
                    obs.paths[p] = ('f', data, xattrs(fp))
                elif stat.S_ISDIR(st.st_mode):
                    obs.paths[p] = ('d', None, xattrs(fp))
                    walk(p)
                elif stat.S_ISLNK(st.st_mode):
                    obs.paths[p] = ('l', os.readlink(fp), None)
                else:
                    obs.paths[p] = ('?', st.st_mode, None)
            except OSError as e:
                obs.errors.append('%s: %s' % (p, e))
    walk('')
    return obs


def parse_log(path):
    """-> dict(done=last done index or -1, fail=index|None, end=bool,
    durable=[records], started=bool)."""
    import json
    info = {'done': -1, 'fail': None, 'end': False, 'durable': [],
            'started': False, 'seconds': None}
    t_start = None
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return info
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue        # a torn last line cannot happen, but be lenient
        if 'start' in rec:
            info['started'] = True
            info['fp'] = rec.get('fp')
            t_start = rec.get('t')
        elif 'done' in rec:
            info['done'] = max(info['done'], rec['done'])
        elif 'durable' in rec:
            info['durable'].append(rec)
        elif 'fail' in rec:
            info['fail'] = rec['fail']
        elif 'end' in rec:
            info['end'] = True
            if t_start is not None and 't' in rec:
                info['seconds'] = rec['t'] - t_start
    return info


def bounds(w, info, clean=False):
    """(D, L) as op indices; D == -1: nothing durable (fresh image)."""
    n = len(w.ops)
    if not info['started']:
        last = -1               # the daemon died before the workload began
    elif info['end']:
        last = n - 1
    elif info['fail'] is not None:
        last = info['fail']
    else:
        last = min(info['done'] + 1, n - 1)
    if clean:
        return last, last       # after a clean unmount everything is durable
    d = max([r['durable'] for r in info['durable']] + [-1])
    return d, last


def describe_obs(o):
    if o is None:
        return 'absent'
    kind, v, x = o
    if kind == 'f':
        return 'file %d bytes sha %s xattrs %s' % (len(v), sha(v)[:12],
                                                  _xs(x))
    if kind == 'd':
        return 'dir xattrs %s' % _xs(x)
    if kind == 'l':
        return 'symlink -> %.40s' % v
    return 'mode %o' % v


def _xs(x):
    return '{%s}' % ','.join('%s:%d' % (n, len(v)) for n, v in x)


class Checker:
    """Acceptable states of a path over a window [i, L] of the model."""

    def __init__(self, w, last):
        self.w = w
        self.last = last
        self.torn = 0

    def window(self, i):
        # states[j + 1] is after op j; i == -1 includes the fresh image
        return self.w.states[i + 1:self.last + 2]

    def ok(self, p, o, i, names_only=False):
        win = self.window(i)
        ents = [s.paths.get(p) for s in win]
        if o is None:
            return None in ents
        kind = o[0]
        cands = [(s, e) for s, e in zip(win, ents) if e and e[0] == kind]
        if not cands:
            return False
        if names_only:
            return True
        if kind == 'l':
            return any(s.target[e[1]] == o[1] for s, e in cands)
        nids = sorted({e[1] for _, e in cands})
        for nid in nids:
            xs = {s.xattrs[nid] for s, e in cands if e[1] == nid}
            if o[2] not in xs:
                continue
            if kind == 'd':
                return True
            sizes = {len(s.data[nid]) for s, e in cands if e[1] == nid}
            versions = [s.data[nid] for s in win if nid in s.data]
            psizes, pversions = self.partials(nid, p, i)
            if self.data_ok(o[1], sizes | psizes, versions + pversions):
                return True
        return False

    def partials(self, nid, p, i):
        """States inside the writes in (i, L] that extend file nid: the
        write made durable up to a block boundary S only (a commit ran while
        the write was in progress, as ext4 can commit in the middle of a
        buffered write): the file is then the new bytes up to S.  Returns
        (sizes S while p named nid, those versions)."""
        sizes, versions = set(), []
        bs = self.w.block
        for j in range(i + 1, self.last + 1):
            if self.w.ops[j]['k'] not in ('write', 'append', 'owrite'):
                continue
            before, after = self.w.states[j], self.w.states[j + 1]
            old, new = before.data.get(nid), after.data.get(nid)
            if old is None or new is None or len(new) <= len(old):
                continue
            named = after.paths.get(p, (None, None))[1] == nid
            for s in range((len(old) // bs + 1) * bs, len(new), bs):
                versions.append(new[:s])
                if named:
                    sizes.add(s)
        return sizes, versions

    def data_ok(self, data, sizes, versions):
        got = data_matches(data, sizes, versions, self.w.block)
        if got == 'torn':
            self.torn += 1
        return got is not None

    def acceptable(self, p, i):
        out = []
        for s in self.window(i):
            e = s.paths.get(p)
            if e is None:
                d = 'absent'
            elif e[0] == 'f':
                v = s.data[e[1]]
                d = 'file %d bytes sha %s xattrs %s' % (
                    len(v), sha(v)[:12], _xs(s.xattrs[e[1]]))
            elif e[0] == 'd':
                d = 'dir xattrs %s' % _xs(s.xattrs[e[1]])
            else:
                d = 'symlink -> %.40s' % s.target[e[1]]
            if d not in out:
                out.append(d)
        return out


def data_matches(data, sizes, versions, bs):
    """'exact' if data is one of versions, 'torn' if it is a mix the fs
    blocks of versions can make (below), else None.

    Torn: len(data) is one of sizes (sizes come from metadata, which is
    journaled), and every block [off, end) of data is
      - that block of a version at least end bytes long, or
      - the bytes of a version whose end of file is inside the block, then
        past its end zeros (ext4 zeroes the block past EOF when it
        truncates, punches or extends) or the bytes of another version
        there (what the block held before): data written in place (not
        journaled) reached the disk while the metadata of those versions
        did not.
    A block wholly past the end of every version that is not itself a
    version's block is not accepted: that is how stale or unwritten blocks
    exposed by a committed size (an ordered-mode violation) look."""
    h = sha(data)
    if any(sha(v) == h for v in versions):
        return 'exact'
    if len(data) not in sizes:
        return None

    def zeros(t):
        return not t.strip(b'\0')

    def tail_ok(t, a, end):
        if zeros(t):
            return True
        for w in versions:
            if len(w) >= end and w[a:end] == t:
                return True
            if a < len(w) < end and w[a:] == t[:len(w) - a] and \
                    zeros(t[len(w) - a:]):
                return True
        return False

    for off in range(0, len(data), bs):
        end = min(off + bs, len(data))
        chunk = data[off:end]
        for v in versions:
            if len(v) >= end:
                if v[off:end] == chunk:
                    break
            elif off < len(v) and v[off:] == chunk[:len(v) - off] and \
                    tail_ok(chunk[len(v) - off:], len(v), end):
                break
        else:
            return None
    return 'torn'


def check(w, info, obs, clean=False):
    """-> (problems, torn): problems is a list of (category, text), category
    one of 'lost' (a G1 file record broken), 'name' (a G1 directory record
    broken), 'commit' (G2 only), 'unreadable', 'harness'."""
    problems = []
    d, last = bounds(w, info, clean)
    chk = Checker(w, last)

    # the log and the model agree (the workload is deterministic)
    from workload import fingerprint
    if info.get('fp') and info['fp'] != fingerprint(w):
        return [('harness', 'the workload process ran other operations '
                 'than the model (workload.py changed during the run?)')], 0
    for rec in info['durable']:
        st = w.states[rec['durable'] + 1]
        for p, h in rec['files'].items():
            e = st.paths.get(p)
            if not e or sha(st.data[e[1]]) != h:
                problems.append(('harness', 'log record at op %d: %s sha %s '
                                 'differs from the model' % (rec['durable'],
                                                             p, h[:12])))

    g1_file, g1_name = {}, {}       # path -> (op index, record)
    for rec in info['durable']:
        for p in rec['files']:
            g1_file[p] = max(g1_file.get(p, (-1,)), (rec['durable'], rec))
        for p in rec['names']:
            g1_name[p] = max(g1_name.get(p, (-1,)), (rec['durable'], rec))

    universe = set(obs.paths)
    for s in w.states[:last + 2]:
        universe.update(s.paths)
    for p in sorted(universe):
        if p.startswith('lost+found/'):
            continue
        o = obs.paths.get(p)
        if chk.ok(p, o, d):
            continue
        why = 'since op %d' % d if d >= 0 else 'no durable op yet'
        cat = 'commit'
        if p in g1_file and not chk.ok(p, o, g1_file[p][0]):
            cat = 'lost'
            why = '%s at op %d' % (g1_file[p][1]['how'], g1_file[p][0])
        elif p in g1_name and not chk.ok(p, o, g1_name[p][0], True):
            cat = 'name'
            why = 'fsync of directory /%s at op %d' % (
                g1_name[p][1]['target'], g1_name[p][0])
        problems.append((cat, '%s: found %s; acceptable (%s, ops %d..%d): %s'
                         % (p, describe_obs(o), why, max(d, -1), last,
                            '; '.join(chk.acceptable(p, d)[:6]))))
    for e in obs.errors:
        problems.append(('unreadable', e))
    return problems, chk.torn


# ------------------------------------------------------------------ self-test

def observed_from(state):
    obs = Observed()
    for p, (kind, nid) in state.paths.items():
        if kind == 'f':
            obs.paths[p] = ('f', state.data[nid], state.xattrs[nid])
        elif kind == 'd':
            obs.paths[p] = ('d', None, state.xattrs[nid])
        else:
            obs.paths[p] = ('l', state.target[nid], None)
    return obs


def self_test(w):
    """Show that the checks can fail: trees built from the model pass, and
    each deliberate breakage of them is reported in the right category.
    Returns a list of what went wrong (empty: fine) and the number of
    breakages tried."""
    from workload import DURABLE, durable_record
    bad, tried = [], 0
    recs = [durable_record(w, j) for j, op in enumerate(w.ops)
            if op['k'] in DURABLE]
    if not recs:
        return ['workload %s/%d has no durable operation' % (
            w.variant, w.seed)], 0

    def expect(name, info, obs, clean, want):
        nonlocal tried
        tried += 1
        cats = sorted({c for c, _ in check(w, info, obs, clean)[0]})
        if cats != want and not (want is None and cats):
            bad.append('%s: categories %s, want %s' % (name, cats, want))

    # crash right after the last file fsync: the tree of that moment passes
    last_f = max((r for r in recs if r['files']), key=lambda r: r['durable'],
                 default=None)
    if last_f is None:
        return ['workload %s/%d has no file fsync' % (w.variant, w.seed)], 0
    i = last_f['durable']
    info = {'done': i, 'fail': None, 'end': False, 'started': True,
            'durable': [r for r in recs if r['durable'] <= i]}
    st = w.states[i + 1]
    expect('tree at the last fsync', info, observed_from(st), False, [])
    p = sorted(last_f['files'])[0]
    o = observed_from(st)
    del o.paths[p]
    expect('fsync\'d file removed', info, o, False, ['lost'])
    o = observed_from(st)
    data = bytearray(o.paths[p][1])
    if data:
        data[len(data) // 2] ^= 1
        o.paths[p] = ('f', bytes(data), o.paths[p][2])
        expect('fsync\'d file with one bit flipped', info, o, False,
               ['lost'])
    o = observed_from(st)
    o.paths[p] = ('f', o.paths[p][1] + b'x', o.paths[p][2])
    expect('fsync\'d file one byte longer', info, o, False, ['lost'])
    o = observed_from(st)
    o.paths['zz-phantom'] = ('f', b'', ())
    expect('a name never made', info, o, False, ['commit'])
    o = observed_from(st)
    o.errors.append('x: [Errno 5] Input/output error')
    expect('an unreadable file', info, o, False, ['unreadable'])
    # a commit in the middle of an extending write: the file ends at a
    # block boundary inside the write, with the new bytes below it
    bs = w.block
    for j, op in enumerate(w.ops):
        if op['k'] not in ('write', 'append'):
            continue
        nid = w.states[j + 1].paths[op['p']][1]
        old, new = w.states[j].data[nid], w.states[j + 1].data[nid]
        if len(new) - len(old) <= 2 * bs:
            continue
        s = (len(old) // bs + 1) * bs
        info = {'done': j - 1, 'fail': None, 'end': False, 'started': True,
                'durable': [r for r in recs if r['durable'] < j]}
        o = observed_from(w.states[j])
        o.paths[op['p']] = ('f', new[:s], o.paths[op['p']][2])
        if len(o.paths) == len(w.states[j].paths):
            expect('write %d committed up to a block boundary' % j, info, o,
                   False, [])
            o.paths[op['p']] = ('f', new[:s + 1], o.paths[op['p']][2])
            expect('write %d committed up to a byte that is no block '
                   'boundary' % j, info, o, False, None)
        break
    # the torn-block rule on synthetic versions (4 KiB blocks)
    import random
    r = random.Random(1)
    A, B, X = r.randbytes(100), r.randbytes(60), r.randbytes(100)
    vers = [A, A[:29], B[:51]]
    for name, obs_data, want in (
            ('in-place write before the truncate commits',
             B[:51] + bytes(49), 'torn'),
            ('old bytes past the new EOF', B[:51] + A[51:], 'torn'),
            ('foreign bytes past EOF', B[:51] + X[51:], None),
            ('a version', A[:29], 'exact')):
        tried += 1
        got = data_matches(obs_data, {100, 29, 51}, vers, 4096)
        if got != want:
            bad.append('torn rule, %s: %s, want %s' % (name, got, want))
    P, Q = r.randbytes(5000), r.randbytes(10000)
    for name, obs_data, want in (
            ('append exposed as zeros', P + bytes(10000), None),
            ('append half written', P + Q[:4000] + bytes(6000), None),
            ('append', P + Q, 'exact')):
        tried += 1
        got = data_matches(obs_data, {5000, 15000}, [P, P + Q], 4096)
        if got != want:
            bad.append('torn rule, %s: %s, want %s' % (name, got, want))
    # after a clean unmount: exactly the final tree, xattrs included
    n = len(w.ops)
    info = {'done': n - 1, 'fail': None, 'end': True, 'started': True,
            'durable': recs}
    final = w.states[-1]
    expect('final tree', info, observed_from(final), True, [])
    withx = [q for q, (k, nid) in final.paths.items()
             if k in 'fd' and final.xattrs[nid]]
    if withx:
        o = observed_from(final)
        k, v, x = o.paths[withx[0]]
        o.paths[withx[0]] = (k, v, x[1:])
        expect('an xattr dropped', info, o, True, None)
    return bad, tried
