#!/usr/bin/env bash
# The README's deck table is exactly what `lethe train --help-markdown` prints.
source "$(dirname "$0")/common.sh"
"$LETHE" train --help-markdown > table.md
if grep -qxF -f table.md "$SRC/README.md" && [ "$(grep -cxF -f table.md "$SRC/README.md")" = "$(wc -l < table.md)" ]; then
  ok "README deck table matches lethe train --help-markdown ($(wc -l < table.md) lines)"
else
  bad "README deck table differs from lethe train --help-markdown:"
  diff <(grep -F '| `[' "$SRC/README.md") <(grep -F '| `[' table.md)
fi
finish
