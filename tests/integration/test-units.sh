#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The systemd units as `meson install` writes them, checked by
# systemd-analyze verify against the installed tree: any warning fails.
set -euo pipefail
BUILD=$1
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (apt install systemd)"; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$BUILD" --destdir "$root" --no-rebuild --quiet >/dev/null
# verify wants the system's own units (sysinit.target, ...) inside the root.
mkdir -p "$root/usr/lib/systemd" "$root/etc"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp /etc/passwd /etc/group "$root/etc/"
# ExecReload runs /bin/kill (procps, or /usr/bin/kill on a merged /usr).
mkdir -p "$root/bin"
cp "$(readlink -f /bin/kill)" "$root/bin/kill"
units=$(find "$root" -name 'lars-*.service')
[ "$(echo "$units" | wc -l)" = 4 ] || { echo "want 4 units, found: $units"; exit 1; }
for u in $units; do
	grep -q '^Type=notify$' "$u" || { echo "$u: not Type=notify"; exit 1; }
	grep -q '^NoNewPrivileges=yes$' "$u" || { echo "$u: no NoNewPrivileges"; exit 1; }
	grep -q '^ProtectSystem=strict$' "$u" || { echo "$u: no ProtectSystem=strict"; exit 1; }
	grep -q '^Restart=on-failure$' "$u" || { echo "$u: no Restart=on-failure"; exit 1; }
	grep -q '^User=lars$' "$u" || { echo "$u: not a dedicated user"; exit 1; }
	# systemctl reload: SIGHUP, which every daemon takes as a reload.
	grep -q '^ExecReload=/bin/kill -HUP $MAINPID$' "$u" || { echo "$u: no ExecReload"; exit 1; }
	exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
	[ -x "$root$exe" ] || { echo "$u: ExecStart $exe not installed"; exit 1; }
	conf=$(sed -n 's/^ExecStart=.* -c \([^ ]*\).*$/\1/p' "$u")
	[ -f "$root$conf" ] || { echo "$u: config $conf not installed"; exit 1; }
done
# lars-dns waits for a database that comes up later at boot (not Restart=).
dns_unit=$(grep -l 'lars-dns ' $units)
grep -q '^ExecStart=.*/lars-dns .*--wait-for-db' "$dns_unit" || { echo "$dns_unit: no --wait-for-db"; exit 1; }
# The agent has no database: no word of PG* settings in its unit.
agent_unit=$(grep -l 'lars-agent ' $units)
! grep -qi 'postgres\|PG\*' "$agent_unit" || { echo "$agent_unit: speaks of PostgreSQL"; exit 1; }
# (--man=no: man(1) would look on this machine, not in the root.)
out=$(systemd-analyze verify --man=no --root="$root" $units 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify complained:"; echo "$out"; exit 1; }
echo "4 units verified"
