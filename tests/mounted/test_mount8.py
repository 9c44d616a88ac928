#!/usr/bin/env python3
"""uext4 through mount(8) and fstab after `meson install`.

mount(8) runs /sbin/mount.fuse3 for the type fuse.uext4, which runs `uext4
IMAGE MNT -o OPTS` found on the default PATH (mount(8) drops the caller's).
Each case runs in a private mount namespace (`unshare -m`) with a tmpfs over
/usr/local into which the build is installed, so the machine's /usr/local
and /etc/fstab are never touched: fstab lines are read with `mount --fstab
FILE` (root) or from a file bound over /etc/fstab inside the namespace (an
ordinary user may not name another fstab). The installed `uext4 -u`
unmounts, so that the image is final when checked.
"""

import os
import shutil
import subprocess

from uext4test import (ensure_user, UEXT4, SkipFile, check, debugfs_cat, eq, fsck,
                       inode_info, main, mkfs, sb_field, test, workdir)

USER = 'uext4test'
BUILD = os.path.dirname(os.path.realpath(UEXT4))

# What mount(8) puts on an fstab line's way to the helper.
MOUNT8_OPTS = 'rw,nosuid,nodev,noexec,relatime,noauto,user,_netdev,' \
              'nofail,x-systemd.automount,x-uext4test.note=1'

# Runs as root in the new namespace: installs the build into a tmpfs over
# /usr/local, then runs the case's script. The EXIT trap unmounts whatever
# is left, so the daemon exits even when the case fails half way.
PRELUDE = r'''
set -u
trap 'umount -l "$MNT" 2>/dev/null' EXIT
mount -t tmpfs uext4-usr-local /usr/local || exit 2
meson install -C "$BUILD" --no-rebuild --quiet >/tmp/uext4-install.log 2>&1 \
  || { cat /tmp/uext4-install.log; exit 3; }
for f in /usr/local/bin/uext4 /usr/local/share/man/man1/uext4.1; do
  [ -e "$f" ] || { echo "meson install did not install $f"; exit 4; }
done
'''


def in_namespace(script, **env):
    """Run PRELUDE + @script with sh in a private mount namespace; return
    its output, failing with it if the exit status is not 0."""
    check(shutil.which('mount.fuse3'),
          'mount.fuse3 is not installed (it comes with fusermount3)')
    check(shutil.which('meson'), 'meson is not on PATH')
    full_env = dict(os.environ, BUILD=BUILD, **env)
    p = subprocess.run(['unshare', '-m', '--propagation', 'private',
                        'sh', '-c', PRELUDE + script], env=full_env,
                       timeout=120, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = p.stdout.decode(errors='replace').strip()
    eq(p.returncode, 0, 'the script\'s exit status (output: %s)' % out)
    return out


def mount_line(out, mnt):
    """The /proc/self/mountinfo line the script printed for @mnt."""
    lines = [ln for ln in out.splitlines() if ' %s ' % mnt in ln]
    eq(len(lines), 1, 'mountinfo lines for %s in %r' % (mnt, out))
    return lines[0]


def final(img):
    fsck(img)
    eq(sb_field(img, 'Filesystem state'), 'clean', 'the superblock state')


@test
def mount_t_fuse_uext4():
    """`mount -t fuse.uext4 IMG MNT -o <every option mount(8) passes>`."""
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='16M')
        mnt = os.path.join(d, 'mnt')
        os.mkdir(mnt)
        out = in_namespace(r'''
mount -t fuse.uext4 "$IMG" "$MNT" -o "$OPTS" || exit 10
grep " $MNT " /proc/self/mountinfo
echo hello > "$MNT/hello" || exit 11
/usr/local/bin/uext4 -u "$MNT" || exit 12
trap - EXIT
''', IMG=img, MNT=mnt, OPTS=MOUNT8_OPTS)
        line = mount_line(out, mnt)
        check(' - fuse.uext4 %s ' % img in line, 'type or source: ' + line)
        flags = line.split()[5].split(',')
        for f in ('rw', 'nosuid', 'nodev', 'noexec', 'relatime'):
            check(f in flags, '%s missing from the mount flags %s' % (f, flags))
        final(img)
        eq(debugfs_cat(img, '/hello'), b'hello\n', 'the file written')


@test
def fstab_line_as_root():
    """`mount --fstab FILE MNT`, the line naming options as fstab does."""
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='16M')
        mnt = os.path.join(d, 'mnt')
        os.mkdir(mnt)
        fstab = os.path.join(d, 'fstab')
        with open(fstab, 'w') as f:
            f.write('# uext4 test\n%s %s fuse.uext4 %s,noatime 0 0\n'
                    % (img, mnt, MOUNT8_OPTS))
        out = in_namespace(r'''
mount --fstab "$FSTAB" "$MNT" || exit 10
grep " $MNT " /proc/self/mountinfo
mkdir "$MNT/dir" && echo one > "$MNT/dir/one" || exit 11
/usr/local/bin/uext4 -u "$MNT" || exit 12
trap - EXIT
''', MNT=mnt, FSTAB=fstab)
        line = mount_line(out, mnt)
        check('user_id=0,' in line, 'root\'s mount is not root\'s: ' + line)
        final(img)
        eq(debugfs_cat(img, '/dir/one'), b'one\n', 'the file written')


@test
def fstab_user_line():
    """A `user,noauto` line mounted by an ordinary user: mount(8) (setuid
    root) runs mount.fuse3 with the user's ids, so the daemon runs as the
    user; the same line mounted by root carries `setuid=USER`, for which
    mount.fuse3 runs the daemon as that user instead of as root. Either
    way the user unmounts with `uext4 -u` and new files are the user's."""
    uid, gid = ensure_user(USER)
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), size='16M',
                   extended=['root_owner=%d:%d' % (uid, gid)])
        os.chown(img, uid, gid)
        mnt = os.path.join(d, 'mnt')
        os.mkdir(mnt)
        os.chown(mnt, uid, gid)
        fstab = os.path.join(d, 'fstab')
        with open(fstab, 'w') as f:
            f.write('%s %s fuse.uext4 noauto,user,setuid=%s,_netdev,'
                    'x-systemd.automount 0 0\n' % (img, mnt, USER))
        out = in_namespace(r'''
mount --bind "$FSTAB" /etc/fstab || exit 5
runuser -u "$USER" -- mount "$MNT" || exit 10
grep " $MNT " /proc/self/mountinfo
runuser -u "$USER" -- sh -c 'echo mine > "$MNT/by-user"' || exit 11
runuser -u "$USER" -- /usr/local/bin/uext4 -u "$MNT" || exit 12
mount "$MNT" || exit 13
grep " $MNT " /proc/self/mountinfo
runuser -u "$USER" -- sh -c 'echo also > "$MNT/by-root-mount"' || exit 14
runuser -u "$USER" -- /usr/local/bin/uext4 -u "$MNT" || exit 15
trap - EXIT
''', MNT=mnt, FSTAB=fstab, USER=USER)
        lines = [ln for ln in out.splitlines() if ' %s ' % mnt in ln]
        eq(len(lines), 2, 'mountinfo lines in %r' % out)
        for who, line in zip(('user', 'root'), lines):
            check('user_id=%d,group_id=%d' % (uid, gid) in line,
                  'the daemon of the %s\'s mount is not %s\'s: %s'
                  % (who, USER, line))
        final(img)
        eq(debugfs_cat(img, '/by-user'), b'mine\n', 'by-user')
        eq(debugfs_cat(img, '/by-root-mount'), b'also\n', 'by-root-mount')
        for name in ('by-user', 'by-root-mount'):
            info = inode_info(img, '/' + name)
            eq((info['uid'], info['gid']), (uid, gid), name + ' owner')


if __name__ == '__main__':
    main()
