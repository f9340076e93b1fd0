#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every configuration key the documentation names exists: each `[section] key`
# in README.md and deploy/README.md (prose `[s] a/b`, `[s] key = value`, and
# table rows | `[s]` | `key` |) must be known to at least one daemon. The list
# comes from the documents themselves, so a key added or renamed there is
# checked without editing this test.
# How: each daemon reads one file with every documented key (value "x") and a
# syntax error at the end, so it stops after parsing (exit 2) and never
# starts; a key it does not know it reports as "unknown key [s] k".
#   test-doc-keys.sh SRCDIR DAEMON...
set -euo pipefail
SRC=$1
shift
TMP=$(mktemp -d /tmp/lars-test-doc-keys.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

docs=("$SRC/README.md" "$SRC/deploy/README.md")
# "section key" lines, one per documented key, with where it was named.
for doc in "${docs[@]}"; do
	{ grep -noE '`\[[A-Za-z_]+\] +[A-Za-z_]+(/[A-Za-z_]+)*' "$doc" || true; } |
		sed -E 's/^([0-9]+):`\[([A-Za-z_]+)\] +/\1 \2 /' |
		while read -r line sec names; do
			tr '/' '\n' <<<"$names" | while read -r k; do echo "$sec $k ${doc#"$SRC/"}:$line"; done
		done
	{ grep -noE '^\| *`\[[A-Za-z_]+\]` *\| *`[A-Za-z_]+`' "$doc" || true; } |
		sed -E 's/^([0-9]+):\| *`\[([A-Za-z_]+)\]` *\| *`([A-Za-z_]+)`/\2 \3 \1/' |
		while read -r sec k line; do echo "$sec $k ${doc#"$SRC/"}:$line"; done
done >"$TMP/named"
n=$(sort -u -k1,2 "$TMP/named" | wc -l)
[ "$n" -ge 10 ] || fail "only $n keys found in the documents: is the pattern still right?"

# One file: every key once, a key no daemon has (proves detection works),
# then a syntax error so that loading fails after everything was read.
{
	sort -u -k1,2 "$TMP/named" | awk '{print $1, $2}' | while read -r sec k; do
		printf '[%s]\n%s = x\n' "$sec" "$k"
	done
	printf '[lars_doc_check]\nno_such_key = x\n[lars_doc_check_end]\nthis line is not a key\n'
} >"$TMP/all.ini"

for bin in "$@"; do
	rc=0
	"$bin" -c "$TMP/all.ini" --log-level info >"$TMP/out" 2>&1 </dev/null || rc=$?
	[ "$rc" = 2 ] || fail "$(basename "$bin") exited $rc on the syntax error, want 2: $(head -c 2000 "$TMP/out")"
	grep -q 'unknown key \[lars_doc_check\] no_such_key' "$TMP/out" ||
		fail "$(basename "$bin") did not report an unknown key (the check cannot work): $(head -c 2000 "$TMP/out")"
	{ grep -oE 'unknown key \[[A-Za-z_]+\] [A-Za-z_]+' "$TMP/out" || true; } |
		sed -E 's/^unknown key \[([A-Za-z_]+)\] /\1 /' >"$TMP/unknown.$(basename "$bin")"
done
# Known to somebody = not reported unknown by every daemon.
while read -r sec k where; do
	unknown_to_all=1
	for bin in "$@"; do
		grep -qx "$sec $k" "$TMP/unknown.$(basename "$bin")" || unknown_to_all=0
	done
	[ "$unknown_to_all" = 0 ] || fail "$where names [$sec] $k, which no daemon knows (they ignore it with a warning)"
done < <(sort -u "$TMP/named")

[ "$fails" = 0 ] || exit 1
echo "doc keys: all $n keys the documents name are known to a daemon"
