#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# larsctl is a command-line tool with no event loop: the built binary needs
# no libuv and no libmicrohttpd symbol (the layers in ARCHITECTURE.md).
set -euo pipefail
bin=$1
[ -x "$bin" ] || { echo "no larsctl at $bin"; exit 1; }
undef=$(nm -u "$bin")
[ -n "$undef" ] || { echo "nm -u found no undefined symbol at all: not a dynamic binary?"; exit 1; }
# The check itself must see symbols it would catch: libpq's are there.
grep -q 'PQconnectdbParams' <<<"$undef" || { echo "nm -u does not list libpq symbols"; exit 1; }
if bad=$(grep -E '\b(uv_|MHD_)' <<<"$undef"); then
	echo "larsctl links loop or HTTP symbols:"
	echo "$bad"
	exit 1
fi
echo "larsctl: $(wc -l <<<"$undef") undefined symbols, none from libuv or libmicrohttpd"
