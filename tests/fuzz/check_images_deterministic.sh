#!/bin/bash
# Build every image of images/build.sh twice, in two fresh directories, and
# require byte-identical results. Prints the plain "N passed, N failed" line
# (one case per image).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$HERE/../../images/build.sh
T=$(mktemp -d "${TMPDIR:-/tmp}/uext4-fz-det.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }
trap 'rm -rf "$T"' EXIT

# The two builds run side by side (each is one process at a time, and CI
# has two cores), in different working directories and started two seconds
# apart, so that anything taken from the clock or the path would show.
timeout 300 bash "$BUILD" "$T/a" >"$T/a.log" 2>&1 &
pid_a=$!
sleep 2
timeout 300 bash "$BUILD" "$T/b" >"$T/b.log" 2>&1 &
pid_b=$!
for run in a b; do
    pid=pid_$run
    if ! wait "${!pid}"; then
        cat "$T/$run.log" >&2
        echo "images/build.sh failed (run $run)"
        echo "0 passed, 1 failed"
        wait
        exit 1
    fi
done

pass=0 fail=0
while read -r sum name; do
    other=$(awk -v n="$name" '$2 == n { print $1 }' "$T/b/SHA256SUMS")
    if [ "$sum" = "$other" ] && cmp -s "$T/a/$name" "$T/b/$name"; then
        echo "ok   $name $sum"
        pass=$((pass + 1))
    else
        echo "FAIL $name differs between two builds: $sum vs ${other:-missing}"
        cmp -l "$T/a/$name" "$T/b/$name" 2>/dev/null | head -5 | sed 's/^/     byte /'
        fail=$((fail + 1))
    fi
done <"$T/a/SHA256SUMS"
[ $((pass + fail)) -gt 0 ] || { echo "no images built"; fail=1; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
