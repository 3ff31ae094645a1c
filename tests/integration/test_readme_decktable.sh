#!/usr/bin/env bash
# The README's deck table is exactly what `lethe train --help-markdown` prints: the same
# rows in the same order, right after the same header.
source "$(dirname "$0")/common.sh"
"$LETHE" train --help-markdown > table.md
# the README's block: from the table's first line to the last row
first=$(head -1 table.md)
awk -v first="$first" 'found && !/^\|/ {exit} $0 == first {found = 1} found' "$SRC/README.md" > readme_table.md
if [ -s table.md ] && cmp -s table.md readme_table.md; then
  ok "README deck table matches lethe train --help-markdown ($(wc -l < table.md) lines)"
else
  bad "README deck table differs from lethe train --help-markdown:"
  diff readme_table.md table.md | head -20
fi
finish
