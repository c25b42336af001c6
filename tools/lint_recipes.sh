#!/bin/sh
# lint_recipes.sh: fails when a recipe touches a private field — one whose
# name starts with "_" (x._h, x:_step(), x["_h"]). Recipes use the public
# moonhub API only (DESIGN.md section 1). Layer: tools (POSIX sh + grep).
# Usage: tools/lint_recipes.sh [DIR...] (default recipes); comments, _G, _ENV ignored.
status=0
for dir in "${@:-recipes}"; do
    hits=$(find "$dir" -name '*.lua' -exec grep -nH '' {} + 2>/dev/null \
        | sed -E 's/--.*$//' \
        | grep -E '[][A-Za-z0-9_)"'"'"'][.:]_[A-Za-z0-9_]|\[[[:space:]]*["'"'"']_[A-Za-z0-9_]' \
        | grep -vE '[.:](_G|_ENV|_VERSION)([^A-Za-z0-9_]|$)')
    if [ -n "$hits" ]; then
        echo "$hits"
        status=1
    fi
done
if [ $status -ne 0 ]; then
    echo "lint: recipes must not touch fields starting with '_' (add a public method instead)"
fi
exit $status
