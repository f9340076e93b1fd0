#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# larsctl admin-user: the console's users file (no database needed).
set -euo pipefail
LARSCTL=$1
TMP=$(mktemp -d /tmp/lars-test-admin-user.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
F=$TMP/users
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

out=$(echo "first-pass" | "$LARSCTL" admin-user add alice --users-file "$F") || fail "add exited $?"
[[ $out == "saved user 'alice' in $F" ]] || fail "add said: $out"
[ "$(stat -c %a "$F")" = 600 ] || fail "mode $(stat -c %a "$F")"
grep -q '^alice:\$y\$' "$F" || fail "not a yescrypt hash: $(cat "$F")"
grep -q 'first-pass' "$F" && fail "the password is in the file"
echo "bob-pass" | LARS_ADMIN_USERS=$F "$LARSCTL" admin-user add bob >/dev/null || fail "add via LARS_ADMIN_USERS"
h1=$(grep '^alice:' "$F")
echo "second-pass" | "$LARSCTL" admin-user add alice --users-file "$F" >/dev/null || fail "replace"
h2=$(grep '^alice:' "$F")
[ "$h1" != "$h2" ] || fail "replacing the password kept the hash"
[ "$("$LARSCTL" admin-user list --users-file "$F" | sort | tr '\n' ' ')" = "alice bob " ] || fail "list"
"$LARSCTL" admin-user del bob --users-file "$F" >/dev/null || fail "del"
[ "$("$LARSCTL" admin-user list --users-file "$F")" = alice ] || fail "list after del"
err=$("$LARSCTL" admin-user del bob --users-file "$F" 2>&1) || fail "del of an absent user exited $?"
[[ $err == *"no user 'bob'"*"nothing changed"* ]] || fail "del absent said: $err"

# Bad input: exit 2, one line, nothing changed.
before=$(cat "$F")
for c in "admin-user add" "admin-user add bad:name" "admin-user add $(head -c 65 /dev/zero | tr '\0' a)" \
	"admin-user frob x" "admin-user list extra" "admin-user add 'sp ace'"; do
	rc=0
	# shellcheck disable=SC2086
	err=$(echo pw | "$LARSCTL" $c --users-file "$F" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] || fail "'$c' exited $rc"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "'$c' said more than one line: $err"
done
rc=0
printf '' | "$LARSCTL" admin-user add carol --users-file "$F" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "no password: exit $rc"
rc=0
echo "" | "$LARSCTL" admin-user add carol --users-file "$F" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "empty password: exit $rc"
[ "$(cat "$F")" = "$before" ] || fail "bad input changed the file"
printf 'garbage line\n' >"$TMP/bad"
rc=0
"$LARSCTL" admin-user list --users-file "$TMP/bad" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "a broken file: exit $rc"
"$LARSCTL" admin-user --help | grep -q "admin-user add NAME" || fail "help"

[ "$fails" = 0 ] || exit 1
echo "admin-user checks passed"
