#!/bin/bash
# The layering of doc/design.md ("Layers"), checked on the sources: every
# #include "dir/..." in src/LAYER/ names a folder LAYER may use. A layer
# includes only the headers of the layers below it; src/jbd2/ sits below
# src/e2/ and uses no other layer.
# usage: check_layers.sh SRC-DIR
set -u
src=$1
declare -A allowed=(
    [base]="base"
    [jbd2]="jbd2"
    [e2]="e2 jbd2 base"
    [pcache]="pcache base"
    [fs]="fs e2 pcache base"
    [frontend]="frontend base"
    [scenario]="scenario"
    [tools]="tools"
)
bad=0
checked=0
for layer in "${!allowed[@]}"; do
    for f in "$src/$layer"/*.[ch]; do
        [ -e "$f" ] || continue
        checked=$((checked + 1))
        while IFS= read -r dir; do
            if [[ " ${allowed[$layer]} " != *" $dir "* ]]; then
                echo "FAIL: ${f#"$src"/} includes \"$dir/...\": $layer/ may include only ${allowed[$layer]}"
                bad=1
            fi
        done < <(sed -n 's|^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z0-9_]*\)/.*|\1|p' "$f")
    done
done
# Every folder of src/ is in the table, so a new layer is a decision.
for d in "$src"/*/; do
    d=$(basename "$d")
    if [ -z "${allowed[$d]+x}" ]; then
        echo "FAIL: src/$d/ is not in the layer table of check_layers.sh (doc/design.md, Layers)"
        bad=1
    fi
done
if [ "$checked" -lt 50 ]; then
    echo "FAIL: only $checked source files found under $src"
    bad=1
fi
[ "$bad" = 0 ] && echo "ok: $checked files, every include within its layer"
exit $bad
