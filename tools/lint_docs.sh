#!/bin/sh
# lint_docs.sh: no machine-specific absolute path in the docs (README.md and
# docs/*.md): a path under the work, home, root or tmp top-level folders used
# as a real path fails; a reader's machine has none of them. Placeholders
# pass: the next part of the path in capitals or <angle brackets> (USER, <you>).
# Layer: tools (POSIX sh + grep; run by `make lint`). Usage: tools/lint_docs.sh [ROOT]
root=${1:-.}
cd "$root" || exit 2

hits=$(grep -nE '(^|[^A-Za-z0-9_.~$-])/(work|home|root|tmp)/' README.md docs/*.md 2>/dev/null |
    grep -vE '/(work|home|root|tmp)/(<[^>]*>|[A-Z][A-Z_]*)(/|[^A-Za-z0-9_.-]|$)')
if [ -n "$hits" ]; then
    printf '%s\n' "$hits"
    echo "lint_docs: machine-specific absolute paths above; write them relative to the repo or ../shared"
    exit 1
fi
