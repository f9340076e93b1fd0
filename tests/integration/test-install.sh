#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# meson install twice into a scratch DESTDIR, the way an upgrade goes: an
# edited configuration survives the second install, a removed one comes back,
# the examples are in share/doc/lars/examples, and lars-admin.ini does not
# name a users file that no install creates.
set -euo pipefail
BUILD=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
meson install -C "$BUILD" --destdir "$root" --no-rebuild --quiet >/dev/null
conf=$(dirname "$(find "$root" -path '*/lars/lars-dns.ini' -not -path '*/examples/*')")
examples=$(dirname "$(find "$root" -path '*/doc/lars/examples/lars-dns.ini')")
[ -d "$conf" ] && [ -d "$examples" ] || { echo "FAIL: no configuration or examples directory under $root"; exit 1; }
for f in lars-dns.ini lars-reporter.ini lars-agent.ini lars-admin.ini; do
	[ -f "$examples/$f" ] || fail "example $f missing"
	cmp -s "$examples/$f" "$conf/$f" || fail "first install: $conf/$f is not the example"
done
if grep -q '^users_file *=' "$conf/lars-admin.ini"; then
	users=$(sed -n 's/^users_file *= *//p' "$conf/lars-admin.ini")
	[ -f "$root$users" ] || fail "lars-admin.ini names $users, which the install does not create"
fi
# Man pages (when scdoc was there to build them) and bash completion.
if command -v scdoc >/dev/null; then
	for m in man1/lars.1 man1/larsctl.1 man8/lars-dns.8 man8/lars-reporter.8 man8/lars-agent.8 \
		 man8/lars-admin.8; do
		[ -n "$(find "$root" -path "*/man/$m")" ] || fail "man page $m not installed"
	done
fi
for c in larsctl lars; do
	[ -n "$(find "$root" -path "*/bash-completion/completions/$c")" ] || fail "completion for $c not installed"
done

# The operator's edits, a file removed, then the upgrade.
printf '\n[dns]\nport = 17778\n' >>"$conf/lars-dns.ini"
cp "$conf/lars-dns.ini" "$root/edited"
rm "$conf/lars-agent.ini"
meson install -C "$BUILD" --destdir "$root" --no-rebuild --quiet >/dev/null
cmp -s "$root/edited" "$conf/lars-dns.ini" || fail "the re-install replaced the edited lars-dns.ini"
cmp -s "$examples/lars-agent.ini" "$conf/lars-agent.ini" || fail "the removed lars-agent.ini was not installed again"
cmp -s "$examples/lars-dns.ini" "$root/edited" && fail "the example changed with the edit"

[ "$fails" = 0 ] || exit 1
echo "install twice: edits kept, examples in $examples"
