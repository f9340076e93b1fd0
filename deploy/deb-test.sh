#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian packages (issue 24.1), as an operator meets them: built with
# dpkg-buildpackage -us -uc -b from the checkout's files, lintian without
# errors, installed on this machine, lars-dns --check on the installed
# configuration, an upgrade over an edited conffile (kept, the new one
# beside it as .dpkg-dist), then purged with nothing of theirs left.
# Needs root (dpkg -i); deploy/lars-local test runs it.
#   deb-test.sh SRC
set -euo pipefail
SRC=$(cd "${1:-$(dirname "$0")/..}" && pwd)
PKGS=(lars-dns lars-reporter lars-agent lars-admin lars-tools liblars-client1 liblars-client-dev)
say() { printf 'deb-test: %s\n' "$*"; }
die() { say "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs the packages)"
for p in "${PKGS[@]}"; do
	! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed' ||
		die "$p is installed already: not touching this machine's Lars"
done
for f in /usr/bin/lars-dns /usr/bin/larsctl /etc/lars; do
	[ ! -e "$f" ] || die "$f exists (a meson install?): not overwriting it"
done
W=$(mktemp -d /tmp/lars-deb.XXXXXX)
installed=false
cleanup() {
	if $installed; then dpkg --purge "${PKGS[@]}" >/dev/null 2>&1 || true; fi
	rm -rf "$W"
}
trap cleanup EXIT

# A tree of the checkout's files (what a clean clone has), built twice.
tree() { # tree DIR
	mkdir -p "$1"
	(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
		grep -zv '^tests/browser/node_modules/' | tar --null -cf - -T -) | tar -xf - -C "$1"
}
build() { # build DIR [DEB_BUILD_OPTIONS]: the .debs in DIR/..
	(cd "$1" && DEB_BUILD_OPTIONS=${2:-} dpkg-buildpackage -us -uc -b >"$1.log" 2>&1) ||
		{ tail -40 "$1.log"; die "dpkg-buildpackage failed ($1.log)"; }
}
debs() { # debs DIR VERSION: the seven packages' files
	local p
	for p in "${PKGS[@]}"; do echo "$1/${p}_$2_$(dpkg --print-architecture).deb"; done
}

t0=$SECONDS
tree "$W/v1/lars"
build "$W/v1/lars"
v1=$(cd "$W/v1/lars" && dpkg-parsechangelog -S Version)
for f in $(debs "$W/v1" "$v1"); do [ -f "$f" ] || die "not built: $f"; done
grep -q 'Ok: *[1-9]' "$W/v1/lars.log" || die "the package build ran no unit tests"
say "built ${#PKGS[@]} packages of $v1 in $((SECONDS - t0)) s (unit tests included)"
out=$(lintian --fail-on error "$W/v1/lars_${v1}_$(dpkg --print-architecture).changes" 2>&1) ||
	die "lintian reports errors: $out"
say "lintian: no errors ($(grep -c '^W:' <<<"$out" || true) warnings)"

# ---- install ----
installed=true
dpkg -i $(debs "$W/v1" "$v1") >"$W/install.log" 2>&1 || { cat "$W/install.log"; die "dpkg -i"; }
for p in "${PKGS[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p")" = "install ok installed" ] || die "$p not installed"
done
getent passwd lars >/dev/null || die "no lars user after the install (sysusers)"
for d in dns reporter agent admin; do
	[ -f "/lib/systemd/system/lars-$d.service" ] || die "no unit lars-$d.service"
	[ -L "/etc/systemd/system/multi-user.target.wants/lars-$d.service" ] || die "lars-$d.service not enabled"
	grep -qx "/etc/lars/lars-$d.ini" "/var/lib/dpkg/info/lars-$d.conffiles" || die "lars-$d.ini is no conffile"
done
/usr/bin/lars-dns --check -c /etc/lars/lars-dns.ini || die "lars-dns --check on the installed configuration"
for d in reporter agent admin; do
	"/usr/bin/lars-$d" --check -c "/etc/lars/lars-$d.ini" >/dev/null || die "lars-$d --check"
done
man -w lars-dns >/dev/null && man -w larsctl >/dev/null || die "man pages not found by man"
/usr/bin/larsctl --version >/dev/null && /usr/bin/lars --version >/dev/null || die "the tools do not run"
[ "$(pkg-config --modversion lars-client)" = "$(grep -oE "client_version = '[0-9.]+'" "$SRC/client/meson.build" | grep -oE '[0-9.]+')" ] ||
	die "pkg-config lars-client"
# A program built against the installed client library.
printf '#include <lars_client.h>\nint main(void) { lars_client_options_t o; lars_client_options_init(&o); return 0; }\n' >"$W/app.c"
cc "$W/app.c" $(pkg-config --cflags --libs lars-client) -o "$W/app" && "$W/app" || die "linking with liblars-client"
say "installed: units enabled, conffiles, the lars user, --check passes"

# ---- upgrade over an edited conffile ----
printf '\n; edited by the operator\n[log]\nstats_interval = 30\n' >>/etc/lars/lars-dns.ini
cp /etc/lars/lars-dns.ini "$W/edited.ini"
tree "$W/v2/lars"
v2="$v1+debtest1"
printf 'lars (%s) unstable; urgency=medium\n\n  * deb-test.sh: the upgrade.\n\n -- %s  %s\n\n' "$v2" \
	"$(cd "$W/v1/lars" && dpkg-parsechangelog -S Maintainer)" "$(date -R)" |
	cat - "$W/v1/lars/debian/changelog" >"$W/v2/lars/debian/changelog"
printf '; (a new release changed this example)\n' >>"$W/v2/lars/deploy/conf/lars-dns.ini"
build "$W/v2/lars" nocheck # the same code: its unit tests ran in the first build
dpkg -i --force-confold $(debs "$W/v2" "$v2") >"$W/upgrade.log" 2>&1 || { cat "$W/upgrade.log"; die "the upgrade"; }
[ "$(dpkg-query -W -f='${Version}' lars-dns)" = "$v2" ] || die "lars-dns not upgraded"
cmp -s "$W/edited.ini" /etc/lars/lars-dns.ini || die "the upgrade replaced the edited /etc/lars/lars-dns.ini"
grep -q 'a new release changed this example' /etc/lars/lars-dns.ini.dpkg-dist ||
	die "the new conffile is not beside it as .dpkg-dist"
/usr/bin/lars-dns --check -c /etc/lars/lars-dns.ini || die "lars-dns --check after the upgrade"
say "upgraded to $v2: the edit kept, the new example as lars-dns.ini.dpkg-dist"

# ---- purge ----
dpkg --purge "${PKGS[@]}" >"$W/purge.log" 2>&1 || { cat "$W/purge.log"; die "dpkg --purge"; }
installed=false
left=()
for f in /etc/lars /usr/bin/lars-dns /usr/bin/lars-reporter /usr/bin/lars-agent /usr/bin/lars-admin \
	 /usr/bin/larsctl /usr/bin/lars /usr/share/lars /usr/include/lars_client.h \
	 /usr/share/bash-completion/completions/larsctl; do
	[ ! -e "$f" ] || left+=("$f")
done
left+=($(ls /lib/systemd/system/lars-* /usr/lib/sysusers.d/lars-* /etc/systemd/system/*/lars-* \
	/usr/lib/*/liblars-client* /usr/share/man/man*/lars* /usr/share/doc/lars-* 2>/dev/null || true))
[ ${#left[@]} = 0 ] || die "left after the purge: ${left[*]}"
for p in "${PKGS[@]}"; do
	! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed\|config-files' || die "$p still known to dpkg"
done
say "purged: nothing left (the lars user stays, as Debian keeps system users)"
say "passed in $((SECONDS - t0)) s"
