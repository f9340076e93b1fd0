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

out=$(echo "first-password" | "$LARSCTL" admin-user add alice --users-file "$F") || fail "add exited $?"
[[ $out == "created $F (owner root, group root, mode 0640)"$'\n'"saved user 'alice' (role write) in $F" ]] || fail "add said: $out"
[ "$(stat -c %a "$F")" = 640 ] || fail "mode $(stat -c %a "$F")"
grep -q '^alice:\$y\$' "$F" || fail "not a yescrypt hash: $(cat "$F")"
grep -q 'first-password' "$F" && fail "the password is in the file"
echo "bob-password" | LARS_ADMIN_USERS=$F "$LARSCTL" admin-user add bob >/dev/null || fail "add via LARS_ADMIN_USERS"
h1=$(grep '^alice:' "$F")
echo "second-password" | "$LARSCTL" admin-user add alice --users-file "$F" >/dev/null || fail "replace"
h2=$(grep '^alice:' "$F")
[ "$h1" != "$h2" ] || fail "replacing the password kept the hash"
[ "$("$LARSCTL" admin-user list --users-file "$F" | sort | tr '\n' ' ')" = "alice write bob write " ] || fail "list"
# Roles: --role read makes a read user (NAME:HASH:read); a new password keeps
# the role; --role write gives it back; a write user's line stays NAME:HASH.
out=$(echo "bob-password-2" | "$LARSCTL" admin-user add bob --role read --users-file "$F") || fail "--role read exited $?"
[[ $out == "saved user 'bob' (role read) in $F" ]] || fail "--role read said: $out"
grep -q '^bob:\$y\$[^:]*:read$' "$F" || fail "no read role in the file: $(grep '^bob:' "$F")"
echo "bob-password-3" | "$LARSCTL" admin-user add bob --users-file "$F" >/dev/null || fail "new password for bob"
grep -q '^bob:.*:read$' "$F" || fail "a new password dropped the read role"
[ "$("$LARSCTL" admin-user list --users-file "$F" | sort | tr '\n' ' ')" = "alice write bob read " ] || fail "list with roles"
echo "bob-password-3" | "$LARSCTL" admin-user add bob --role=write --users-file "$F" >/dev/null || fail "--role=write"
grep -q '^bob:\$y\$[^:]*$' "$F" || fail "a write user's line is not NAME:HASH: $(grep '^bob:' "$F")"
echo "carl-password-1" | "$LARSCTL" admin-user add carl --role read --users-file "$F" >/dev/null || fail "a new read user"
grep -q '^carl:.*:read$' "$F" || fail "a new read user has no read role"
"$LARSCTL" admin-user del carl --users-file "$F" >/dev/null || fail "del carl"
"$LARSCTL" admin-user del bob --users-file "$F" >/dev/null || fail "del"
[ "$("$LARSCTL" admin-user list --users-file "$F")" = "alice write" ] || fail "list after del"
err=$("$LARSCTL" admin-user del bob --users-file "$F" 2>&1) || fail "del of an absent user exited $?"
[[ $err == *"no user 'bob'"*"nothing changed"* ]] || fail "del absent said: $err"

# Bad input: exit 2, one line, nothing changed.
before=$(cat "$F")
for c in "admin-user add" "admin-user add bad:name" "admin-user add $(head -c 65 /dev/zero | tr '\0' a)" \
	"admin-user frob x" "admin-user list extra" "admin-user add 'sp ace'" \
	"admin-user add zed --role admin" "admin-user add zed --role" "admin-user del alice --role read"; do
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

# Minimum password length: 11 characters refused (exit 2, the rule named,
# nothing changed); 12 taken; --force takes a short one.
before=$(cat "$F")
rc=0
err=$(echo "elevenchars" | "$LARSCTL" admin-user add carol --users-file "$F" 2>&1 >/dev/null) || rc=$?
[ "$rc" = 2 ] || fail "an 11-character password: exit $rc"
[[ $err == *"shorter than 12 characters (the minimum length; --force takes it)"* ]] || fail "short password said: $err"
rc=0
echo "x" | "$LARSCTL" admin-user add carol --users-file "$F" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "a 1-character password: exit $rc"
[ "$(cat "$F")" = "$before" ] || fail "a short password changed the file"
echo "twelve-chars" | "$LARSCTL" admin-user add carol --users-file "$F" >/dev/null || fail "a 12-character password refused"
echo "x" | "$LARSCTL" admin-user add dave --users-file "$F" --force >/dev/null || fail "--force refused a short password"
[ "$("$LARSCTL" admin-user list --users-file "$F" | cut -d' ' -f1 | sort | tr '\n' ' ')" = "alice carol dave " ] || fail "list after the length checks"
rc=0
"$LARSCTL" admin-user del dave --force --users-file "$F" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "--force with del: exit $rc"

# The owner, group and mode the operator gave the file survive add and del
# (the guide says chown root:lars, chmod 0640); the file is replaced
# atomically, no temporary file is left.
if [ "$(id -u)" = 0 ]; then
	G=daemon; getent group daemon >/dev/null || G=nogroup
	chown "root:$G" "$F"
	chmod 0640 "$F"
	echo "another-password" | "$LARSCTL" admin-user add erin --users-file "$F" >/dev/null || fail "add erin"
	[ "$(stat -c '%U:%G %a' "$F")" = "root:$G 640" ] || fail "add reset the file to $(stat -c '%U:%G %a' "$F")"
	"$LARSCTL" admin-user del erin --users-file "$F" >/dev/null || fail "del erin"
	[ "$(stat -c '%U:%G %a' "$F")" = "root:$G 640" ] || fail "del reset the file to $(stat -c '%U:%G %a' "$F")"
	chmod 0600 "$F"
	chown "$G:$G" "$F"
	"$LARSCTL" admin-user del carol --users-file "$F" >/dev/null || fail "del carol"
	[ "$(stat -c '%U:%G %a' "$F")" = "$G:$G 600" ] || fail "del changed $G:$G 0600 to $(stat -c '%U:%G %a' "$F")"
	[ "$(ls -A "$TMP" | grep -c tmp)" = 0 ] || fail "a temporary file was left: $(ls -A "$TMP")"
	# A new file: --group GROUP, said so.
	out=$(echo "new-file-password" | "$LARSCTL" admin-user add fay --users-file "$TMP/new" --group "$G")
	[[ $out == "created $TMP/new (owner root, group $G, mode 0640)"* ]] || fail "--group: $out"
	[ "$(stat -c '%U:%G %a' "$TMP/new")" = "root:$G 640" ] || fail "--group gave $(stat -c '%U:%G %a' "$TMP/new")"
	# Default: the directory's group, unless the directory is world-writable.
	mkdir "$TMP/d" "$TMP/w"
	chgrp "$G" "$TMP/d" "$TMP/w"
	chmod 0750 "$TMP/d"
	chmod 1777 "$TMP/w"
	echo "new-file-password" | "$LARSCTL" admin-user add fay --users-file "$TMP/d/users" >/dev/null
	[ "$(stat -c '%G %a' "$TMP/d/users")" = "$G 640" ] || fail "directory's group: $(stat -c '%G %a' "$TMP/d/users")"
	echo "new-file-password" | "$LARSCTL" admin-user add fay --users-file "$TMP/w/users" >/dev/null
	[ "$(stat -c '%G %a' "$TMP/w/users")" = "root 640" ] || fail "world-writable directory: $(stat -c '%G %a' "$TMP/w/users")"
	rc=0
	echo "new-file-password" | "$LARSCTL" admin-user add fay --users-file "$TMP/x" --group no-such-group-here 2>/dev/null || rc=$?
	[ "$rc" = 2 ] || fail "an unknown --group: exit $rc"
else
	echo "not root: owner and group checks skipped"
fi

[ "$fails" = 0 ] || exit 1
echo "admin-user checks passed"
