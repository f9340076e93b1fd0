#!/bin/sh
# Regenerates the golden .bin files from their .txtpb sources with the real
# protoc (protobuf-compiler). Run only when a golden case is added: the .bin
# files are the compatibility anchor and must never follow a changed .proto.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto_dir="$here/../../proto"
for t in "$here"/*.txtpb; do
	name=$(basename "$t" .txtpb)
	msg=${name%%_*}
	grep -v '^#' "$t" | protoc --encode="lars.$msg" -I "$proto_dir" "$proto_dir/lars.proto" > "$here/$name.bin"
done
