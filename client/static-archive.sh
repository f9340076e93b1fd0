#!/bin/sh
# static-archive.sh IN.a OUT.a [OBJCOPY [LD]]: the installed static client
# archive. The library's own objects and the wire code it carries (frame,
# msg, the generated descriptors) are joined into one relocatable object in
# which only the lars_ API stays global, as in the shared library: a
# program with its own msg_decode or frame_encode links without a clash.
set -eu
in=$1 out=$2 objcopy=${3:-objcopy} ld=${4:-ld}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ld" -r -o "$tmp/lars_client.o" --whole-archive "$in"
# The generated descriptors (lars_GetHostRequest_msg, ...) are wire code too.
"$objcopy" --wildcard --keep-global-symbol='!lars_[A-Z]*' --keep-global-symbol='lars_*' "$tmp/lars_client.o"
rm -f "$out"
ar rcs "$out" "$tmp/lars_client.o"
