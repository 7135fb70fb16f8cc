#!/usr/bin/env bash
# The man pages render without a warning (groff -man -ww -z) and document
# what they must: every launcher option in greenld(1), every GREENLD_*
# variable the library reads in greenld(7), every function of greenld.h in
# greenld(3).
set -u
cd "$(dirname "$0")/../.."
pass=0 fail=0
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}
for page in man/greenld.1 man/greenld.3 man/greenld.7; do
    out=$(groff -man -ww -z "$page" 2>&1)
    check "$page renders with no warning" '[ $? -eq 0 ] && [ -z "$out" ]'
    [ -n "$out" ] && sed 's/^/#   /' <<<"$out"
done
# Man text escapes '-' as '\-'.
plain() { sed 's/\\-/-/g' "$1"; }
for opt in $(scripts/greenld --help | grep -oE '^  --[a-z-]+' | tr -d ' '); do
    check "greenld(1) documents $opt" 'plain man/greenld.1 | grep -qF -- "$opt"'
done
# The library reads its variables through config::setting() (or getenv).
vars=$(grep -ohE '(getenv|setting)\("GREENLD_[A-Z_]+"\)' runtime/*.cpp preload/*.cpp | sort -u | sed -E 's/.*"(.*)".*/\1/')
check "the library's GREENLD_* variables are found in its sources" '[ "$(wc -w <<<"$vars")" -ge 8 ]'
for var in $vars; do
    check "greenld(7) documents $var" 'grep -qF "$var" man/greenld.7'
done
for fn in $(grep -oE '\bgreenld_[a-z_]+\(' preload/greenld.h | tr -d '(' | sort -u); do
    check "greenld(3) documents $fn()" 'grep -qE "^\.BR? $fn \(\)|^\.BI \"[^\"]*$fn\(" man/greenld.3'
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
