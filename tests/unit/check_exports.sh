#!/bin/bash
# The shared library exports the uext4_* API and nothing else
# (src/libuext4.map): every defined dynamic symbol must start with uext4_,
# and the API's entry points must all be there.
set -euo pipefail
lib=$1
header=$2
fail=0
defined=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)
bad=$(printf '%s\n' "$defined" | grep -v '^uext4_' || true)
if [ -n "$bad" ]; then
    echo "FAIL exports: symbols outside the uext4_ API: $(echo $bad | head -c 400)"
    fail=1
else
    echo "ok exports: $(printf '%s\n' "$defined" | wc -l) symbols, all uext4_*"
fi
# Every function the header declares is exported.
declared=$(grep -oE '\buext4_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u)
missing=$(comm -23 <(printf '%s\n' "$declared") <(printf '%s\n' "$defined"))
if [ -n "$missing" ]; then
    echo "FAIL api: declared in uext4.h but not exported: $missing"
    fail=$((fail + 1))
else
    echo "ok api: the $(printf '%s\n' "$declared" | wc -l) functions of uext4.h are exported"
fi
echo "$((2 - fail)) passed, $fail failed"
exit $fail
