#!/bin/sh
# SPDX-License-Identifier: MIT
# meson install script: copy each example configuration into the configuration
# directory only when no file of that name is there, so a re-install (the
# upgrade path) never replaces what an operator edited.
#   install-config.sh EXAMPLES_DIR CONF_DIR FILE...
# Both directories are absolute; $DESTDIR (meson install --destdir) is put
# before them.
set -eu
examples=$1
conf=$2
shift 2
dest=${DESTDIR:-}$conf
mkdir -p "$dest"
for f in "$@"; do
	src=${DESTDIR:-}$examples/$f
	if [ -e "$dest/$f" ]; then
		if ! cmp -s "$src" "$dest/$f"; then
			echo "kept $conf/$f (it differs from the new example $examples/$f)"
		fi
	else
		cp "$src" "$dest/$f.tmp"
		chmod 0644 "$dest/$f.tmp"
		mv "$dest/$f.tmp" "$dest/$f"
		echo "installed $conf/$f from $examples/$f"
	fi
done
