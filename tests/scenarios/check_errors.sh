#!/bin/bash
# Bad scenario files must be refused before anything runs, each problem
# reported as FILE:LINE: problem, with exit status 2.
set -u
RUNNER=$1
HERE=$(cd "$(dirname "$0")" && pwd)
out=$("$RUNNER" "$HERE/bad/errors.scn" "$HERE/bad/noimage.scn" "$HERE/bad/header.scn" 2>&1 >/dev/null)
rc=$?
fail=0
if [ "$rc" -ne 2 ]; then
    echo "FAIL exit status: got $rc, want 2"
    fail=1
fi
while IFS='|' read -r where what; do
    if ! grep -qF -- "$HERE/bad/$where: " <<<"$out" || ! grep -F -- "$HERE/bad/$where: " <<<"$out" | grep -qF -- "$what"; then
        echo "FAIL no '$where: ...$what...' in:"
        echo "$out"
        fail=1
    else
        echo "ok $where $what"
    fi
done <<'LIST'
errors.scn:3|offset 'zero' is not a number
errors.scn:4|unknown step 'frobnicate'
errors.scn:5|unknown check 'colour'
errors.scn:6|unterminated string
errors.scn:7|bad byte specification 'pat:abc'
errors.scn:8|unexpected 'sideways'
errors.scn:9|unknown qualifier 'sometimes'
errors.scn:10|not an errno name
errors.scn:11|belongs in the header
errors.scn:12|at most 4 results
errors.scn:13|seek-data: missing arguments
errors.scn:14|chown: missing arguments
errors.scn:15|'=> EWHATEVER': not an errno name
errors.scn:16|only pat takes an OFFSET
errors.scn:17|a write's result only
errors.scn:18|is not blocks, bfree, bavail, files or ffree
errors.scn:19|open: unexpected 'sideways'
errors.scn:20|mprotect: missing arguments
errors.scn:21|repeat N (1 to
errors.scn:23|stamp cannot run inside a parallel block
errors.scn:26|repeat block without 'end'
noimage.scn:1|no 'image' line
header.scn:2|debugfs takes one quoted command
header.scn:3|fill 'many' is not a number
header.scn:4|is not kernel=OPTS or uext4=OPTS
LIST
exit $fail
