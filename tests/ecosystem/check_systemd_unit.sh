#!/bin/bash
# The systemd mount unit documented in README.md passes `systemd-analyze
# verify` with nothing to say: the unit is taken from the README's text (the
# ```ini block after "mnt-disk.mount"), so the check follows the
# documentation. Exit 77 (skipped) when systemd-analyze is not installed.
set -euo pipefail
readme=$1
if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
name=$(grep -oE '/etc/systemd/system/[a-z0-9-]+\.mount' "$readme" | head -1)
name=${name##*/}
if [ -z "$name" ]; then
    echo "FAIL: no /etc/systemd/system/*.mount unit named in $readme"
    exit 1
fi
awk -v name="$name" '
    index($0, name) { seen = 1 }
    seen && /^```ini$/ { inblock = 1; next }
    inblock && /^```$/ { exit }
    inblock { print }' "$readme" >"$dir/$name"
if ! grep -q '^Type=fuse.uext4$' "$dir/$name"; then
    echo "FAIL: the unit $name in $readme has no Type=fuse.uext4:"
    cat "$dir/$name"
    exit 1
fi
# Where= must match the unit's name: systemd refuses the unit otherwise.
where=$(sed -n 's/^Where=//p' "$dir/$name")
want=$(systemd-escape -p --suffix=mount "$where")
if [ "$want" != "$name" ]; then
    echo "FAIL: $name mounts $where, whose unit name is $want"
    exit 1
fi
out=$(cd "$dir" && systemd-analyze verify --man=no "./$name" 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify $name exited $rc: $out"
    exit 1
fi
echo "ok systemd-unit: $name verified"
echo "1 passed, 0 failed"
