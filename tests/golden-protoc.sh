#!/bin/sh
# Golden bytes against the real protoc (protobuf-compiler):
#  1. protoc --encode of every tests/golden/*.txtpb still gives the checked-in
#     .bin (the .proto and the golden files agree);
#  2. protoc --decode reads our encoding (golden-tool) back to exactly what it
#     reads from protoc's own bytes.
# Usage: golden-protoc.sh GOLDEN_TOOL SOURCE_ROOT
set -eu
tool=$1
root=$2
golden=$root/tests/golden
proto_dir=$root/proto
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v protoc >/dev/null || { echo "protoc not found (apt install protobuf-compiler)"; exit 1; }

fail=0
n=0
for name in $("$tool" list); do
	msg=${name%%_*}
	txt=$golden/$name.txtpb
	grep -v '^#' "$txt" | protoc --encode="lars.$msg" -I "$proto_dir" "$proto_dir/lars.proto" > "$tmp/protoc.bin"
	if ! cmp -s "$tmp/protoc.bin" "$golden/$name.bin"; then
		echo "FAIL $name: protoc --encode differs from the checked-in $name.bin"
		fail=1
	fi
	"$tool" encode "$name" > "$tmp/ours.bin"
	protoc --decode="lars.$msg" -I "$proto_dir" "$proto_dir/lars.proto" < "$tmp/ours.bin" > "$tmp/ours.txt"
	protoc --decode="lars.$msg" -I "$proto_dir" "$proto_dir/lars.proto" < "$golden/$name.bin" > "$tmp/protoc.txt"
	if ! cmp -s "$tmp/ours.txt" "$tmp/protoc.txt"; then
		echo "FAIL $name: protoc --decode of our bytes differs:"
		diff "$tmp/protoc.txt" "$tmp/ours.txt" || true
		fail=1
	fi
	n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no golden cases"; exit 1; }
echo "$n golden cases checked against protoc"
exit $fail
