#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `meson install` into a scratch root, then build client/examples as an
# outside project would: Meson + pkg-config against the installed
# lars-client.pc and header. Run it with no agent: it must say so and exit
# with SYSTEM_ERROR (2), promptly.
set -euo pipefail
BUILD=$1
SRC=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$BUILD" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name lars-client.pc | head -n 1)
[ -n "$pc" ] || { echo "lars-client.pc not installed"; exit 1; }
hdr=$(find "$tmp/root" -name lars_client.h | head -n 1)
[ -n "$hdr" ] || { echo "lars_client.h not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/root
# A sanitized library wants a sanitized program (the ASan runtime first).
sanitize=$(meson introspect --buildoptions "$BUILD" |
	/usr/bin/python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "b_sanitize"))')
meson setup "$tmp/ex" "$SRC/client/examples" -Db_sanitize="$sanitize" >/dev/null
meson compile -C "$tmp/ex" >/dev/null
lib=$(dirname "$(find "$tmp/root" -name 'liblars-client.so.1' | head -n 1)")
# Only the API is exported, and the SONAME carries the major version.
exported=$(nm -D --defined-only "$lib/liblars-client.so.1" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort -u)
for s in $exported; do
	case $s in lars_*) ;; *) echo "exported non-API symbol: $s"; exit 1 ;; esac
done
readelf -d "$lib/liblars-client.so.1" | grep -q 'SONAME.*liblars-client.so.1' || { echo "bad SONAME"; exit 1; }
# New calls come as new symbol versions; the old ones keep theirs (a program
# built against 1.0 or 1.1 binds the same symbols as before).
symver() { objdump -T "$lib/liblars-client.so.1" | awk -v s="$1" '$NF == s && $(NF-1) !~ /^\(/ {print $(NF-1)}'; }
for want in lars_report:LARS_CLIENT_1 lars_get_host:LARS_CLIENT_1 lars_get_route_ex:LARS_CLIENT_2 \
	    lars_client_new:LARS_CLIENT_2 lars_report_latency:LARS_CLIENT_3 \
	    lars_get_route_flags:LARS_CLIENT_4 lars_register:LARS_CLIENT_5 lars_deregister:LARS_CLIENT_5 \
	    lars_register_lease:LARS_CLIENT_5 lars_register_options_init:LARS_CLIENT_5; do
	got=$(symver "${want%%:*}")
	[ "$got" = "${want#*:}" ] || { echo "${want%%:*} has symbol version '$got', want ${want#*:}"; exit 1; }
done
[ -f "$lib/liblars-client.a" ] || { echo "static library not installed"; exit 1; }
set +e
start=$(date +%s%N)
out=$(LD_LIBRARY_PATH=$lib "$tmp/ex/example" 1 1 3 2>&1)
rc=$?
end=$(date +%s%N)
set -e
[ "$rc" = 2 ] || { echo "example exited $rc, want 2: $out"; exit 1; }
[[ $out == *"agent"* ]] || { echo "example did not explain: $out"; exit 1; }
[ $(( (end - start) / 1000000 )) -lt 3000 ] || { echo "example took too long"; exit 1; }
# The static archive, too, defines only the API globally: a program with
# functions named like the library's internals (msg_decode, frame_encode)
# links against it without a clash and keeps its own.
static_exported=$(nm -g --defined-only "$lib/liblars-client.a" | awk 'NF == 3 {print $3}' | sort -u)
[ "$static_exported" = "$exported" ] || {
	echo "the static archive exports other symbols than the shared library:"
	diff <(echo "$exported") <(echo "$static_exported") || true
	exit 1
}
cat >"$tmp/own.c" <<'C'
#include <stdio.h>
#include "lars_client.h"
int msg_decode(void);
int frame_encode(void);
int msg_decode(void) { return 7; }
int frame_encode(void) { return 8; }
int main(void)
{
	lars_client_options_t o;
	lars_client_t *c = NULL;
	lars_client_options_init(&o);
	if (lars_client_new(&o, &c) != 0)
		return 1;
	lars_client_free(c);
	return msg_decode() + frame_encode() == 15 ? 0 : 1;
}
C
san=()
[ "$sanitize" = none ] || san=(-fsanitize="$sanitize")
cc -std=c11 "${san[@]}" -I"$(dirname "$hdr")" -o "$tmp/own" "$tmp/own.c" "$lib/liblars-client.a" -lprotobuf-nanopb ||
	{ echo "a program with its own msg_decode does not link against liblars-client.a"; exit 1; }
"$tmp/own" || { echo "the program linked against liblars-client.a failed"; exit 1; }
echo "example built against the installed lars-client.pc and ran: $out"
