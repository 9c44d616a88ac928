#!/usr/bin/env python3
"""Run a mounted test file again with FUSE over io_uring: every mount gets
-o io_uring and must serve requests through the rings (uext4test.Mount).

    with_io_uring.py test_files.py [case ...]

The kernel offers io_uring only while the fuse module's enable_uring is Y:
set for the run, and the previous value put back afterwards, whatever the
outcome.  Exits 77 (skipped) where the kernel has no such parameter, not
as root, or with a uext4 built without liburing.
"""

import os
import subprocess
import sys

PARAM = '/sys/module/fuse/parameters/enable_uring'


def skip(why):
    print('SKIP: %s' % why)
    sys.exit(77)


def uring_built(uext4):
    out = subprocess.run([uext4, '--version'], stdout=subprocess.PIPE,
                         timeout=30).stdout.decode()
    return 'FUSE over io_uring: built in' in out


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: with_io_uring.py TEST_FILE [CASE ...]')
    here = os.path.dirname(os.path.abspath(__file__))
    uext4 = os.environ.get('UEXT4') or os.path.join(here, '..', '..',
                                                    'build', 'uext4')
    if os.geteuid() != 0:
        skip('setting %s needs root' % PARAM)
    if not os.path.exists(PARAM):
        skip('this kernel has no FUSE over io_uring (%s)' % PARAM)
    if not uring_built(uext4):
        skip('%s was built without liburing' % uext4)
    with open(PARAM) as f:
        old = f.read().strip()
    env = dict(os.environ, UEXT4_TEST_IO_URING='1')
    try:
        with open(PARAM, 'w') as f:
            f.write('Y')
        rc = subprocess.call([sys.executable,
                              os.path.join(here, sys.argv[1])] + sys.argv[2:],
                             env=env)
    finally:
        with open(PARAM, 'w') as f:
            f.write(old)
    sys.exit(rc)


if __name__ == '__main__':
    main()
