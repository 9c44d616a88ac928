#!/usr/bin/env python3
"""uext4-scenario fuzz on the lib backend and the fake backend (lib with
PUNCH_HOLE planted as a no-op), no mounts needed:

1. Determinism: the same seed generates the same scenarios (--dump) and
   writes the same findings, byte for byte; another seed does not.
2. No false positives: lib against lib finds nothing.
3. The minimiser: every finding of lib,fake is shrunk to a few steps, one
   of them a punch (the planted fault), with the backends' outcomes in its
   header; the written file is a valid scenario that passes on both
   backends (each qualified line states its own backend's outcome, final
   e2fsck -fn included) and shows the difference as a '# diff' line.

usage: check_fuzz.py UEXT4_SCENARIO
"""

import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile

RUNNER = sys.argv[1]
SEED = 1
COUNT = 9  # scenario 8 of seed 1 punches a hole that matters
MAX_STEPS = 5  # create, write, punch, expect (and one spare)
failures = []


def check(cond, what):
    print(('ok ' if cond else 'FAIL ') + what)
    if not cond:
        failures.append(what)


def fuzz(out, backends, seed, count, dump=True, first=0):
    args = [RUNNER, 'fuzz', '--backend=' + backends, '--seed', str(seed), '--count', str(count),
            '--from', str(first), '--out', out] + (['--dump'] if dump else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=240)


def files(d, prefix):
    return sorted(f for f in os.listdir(d) if f.startswith(prefix)) if os.path.isdir(d) else []


def steps_of(path):
    """Step lines (not comments, not header lines) of a scenario file."""
    header = ('image', 'backends', 'inline-mmap', 'no-final-fsck')
    out = []
    for line in open(path):
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith(header):
            out.append(line)
    return out


tmp = tempfile.mkdtemp(prefix='uext4-fuzz-test-')
try:
    a, b, c, d = (os.path.join(tmp, x) for x in 'abcd')
    ra = fuzz(a, 'lib,fake', SEED, COUNT)
    # Scenario I of a seed alone: the same scenario and the same finding.
    rb = fuzz(b, 'lib,fake', SEED, 1, first=COUNT - 1)
    print(ra.stdout, ra.stderr, sep='')
    check(ra.returncode == 1, 'lib,fake finds the planted difference (exit 1, got %d)'
          % ra.returncode)
    last = [l for l in ra.stdout.splitlines() if l.startswith('diff scenario %d ' % (COUNT - 1))]
    check(len(last) == 1 and last[0].replace(a, 'DIR') in rb.stdout.replace(b, 'DIR'),
          'same seed: scenario %d alone reports the same finding' % (COUNT - 1))
    gen = files(a, 'gen-')
    check(len(gen) == COUNT, 'one dumped scenario per count (%d)' % len(gen))
    same = filecmp.cmpfiles(a, b, files(b, ''), shallow=False)
    check(len(files(b, '')) == 2 and not same[1] and not same[2],
          'same seed: scenario %d and its finding identical, byte for byte (%s)'
          % (COUNT - 1, files(b, '')))
    rc = fuzz(c, 'lib,lib', SEED + 1, 3)
    differ = [f for f in range(3)
              if open(os.path.join(a, 'gen-%d-%d.scn' % (SEED, f))).read()
              != open(os.path.join(c, 'gen-%d-%d.scn' % (SEED + 1, f))).read()]
    check(len(differ) == 3, 'another seed: other scenarios (%d of 3 differ)' % len(differ))

    rd = fuzz(d, 'lib,lib', SEED, 4, dump=False)
    check(rd.returncode == 0 and not files(d, 'fuzz-') and ' 0 differences' in rd.stdout,
          'lib,lib: no differences (exit %d: %s)' % (rd.returncode, rd.stdout.strip()))

    found = files(a, 'fuzz-')
    check(len(found) >= 1, 'at least one finding (%d)' % len(found))
    for f in found:
        path = os.path.join(a, f)
        text = open(path).read()
        steps = steps_of(path)
        # A finding has one line per backend where they differ: count the
        # steps as written once.
        plain = set()
        for s in steps:
            s = re.sub(r'\[(lib|fake)\]', '', s).split(' => ')[0]
            plain.add(' '.join(s.split()[:3]) if s.startswith('expect ') else s)
        check(len(plain) <= MAX_STEPS, '%s: minimised to %d steps (at most %d): %s'
              % (f, len(plain), MAX_STEPS, sorted(plain)))
        check(any(s.startswith('punch ') for s in plain), '%s: keeps the punch' % f)
        check(re.search(r'^# Found by: uext4-scenario fuzz --backend=lib,fake --seed %d '
                        r'\(scenario \d+\)$' % SEED, text, re.M) is not None,
              '%s: header names the seed' % f)
        check(re.search(r'^#   .*  lib=\S+  fake=\S+$', text, re.M) is not None,
              "%s: header gives both backends' outcomes" % f)
        r = subprocess.run([RUNNER, '--backend=lib,fake', path], capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 0 and '2 passed, 0 failed' in r.stdout,
              '%s: passes on lib and fake as written (%s)' % (f, r.stdout.strip()))
        check('# diff ' in r.stdout, '%s: replays the difference' % f)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print('%d failures' % len(failures))
sys.exit(1 if failures else 0)
