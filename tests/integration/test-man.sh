#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man pages (issue 24.3) say what the programs do: every option and
# subcommand their --help names (larsctl: each command's --help too), every
# key of a daemon's example configuration, and an EXIT STATUS section, are
# in the page's source (deploy/man/*.scd, includes expanded); when scdoc was
# found, the rendered pages exist and man(1) formats them.
set -euo pipefail
SRC=$1 BUILD=$2
shift 2
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
page() { /usr/bin/python3 "$SRC/deploy/man/build-man.py" --expand "$SRC/deploy/man/$1.scd"; }
# The --name and -x options a help text mentions.
options() {
	grep -oE -- '(^|[][ ,(|])(--[a-z][a-z0-9-]*|-[a-z])([^A-Za-z0-9-]|$)' |
		grep -oE -- '--[a-z][a-z0-9-]*|-[a-z]' | sort -u
}

check_options() { # NAME PAGE-TEXT HELP-TEXT
	local o
	for o in $(options <<<"$3"); do
		grep -qF -- "$o" <<<"$2" || fail "$1: option $o of --help is not in its man page"
	done
}

for arg in "$@"; do
	bin=${arg%%:*} sec=${arg##*:}
	name=$(basename "$bin")
	text=$(page "$name.$sec")
	help=$("$bin" --help)
	check_options "$name" "$text" "$help"
	grep -q '^# EXIT STATUS' <<<"$text" || fail "$name: no EXIT STATUS section"
	grep -q "^$name($sec)" <<<"$text" || fail "$name: the page is not $name($sec)"
	case $name in
	larsctl)
		# "  route add MODID ...", "  admin-user add|del NAME": the words before
		# the first argument in capitals or brackets.
		while read -r cmd; do
			for c in $(tr '|' ' ' <<<"${cmd#* }"); do
				w="${cmd%% *} $c"
				[ "$cmd" = "${cmd%% *}" ] && w=$cmd
				grep -qF -- "*$w" <<<"$text" || grep -qF -- "$w" <<<"$text" ||
					fail "larsctl: command '$w' is not in its man page"
			done
		done < <(sed -n '/^Commands:/,/^$/p' <<<"$help" | grep -E '^  [a-z]' |
			 sed -E 's/^  ([a-z-]+( [a-z|]+)?).*/\1/' | sed -E 's/ (MODID|FILE|NAME|IP)$//' | sort -u)
		for c in migrate route describe status agents changes watch admin-user; do
			check_options "larsctl $c" "$text" "$("$bin" "$c" --help)"
		done
		;;
	lars)
		for c in $(grep -oE '^  [a-z][a-z-]+ ' <<<"$help" | tr -d ' '); do
			grep -qF -- "*$c*" <<<"$text" || fail "lars: command '$c' is not in its man page"
		done
		;;
	lars-*)
		ini="$SRC/deploy/conf/$name.ini"
		for k in $(grep -E '^;?[a-zA-Z_]+ ?=' "$ini" | sed -E 's/^;?([a-zA-Z_]+).*/\1/' | sort -u); do
			grep -qF -- "*$k*" <<<"$text" || fail "$name: key $k of $ini is not in its man page"
		done
		grep -q '^\*SIGHUP\*' <<<"$text" || fail "$name: SIGHUP not described"
		;;
	esac
	if [ -f "$BUILD/deploy/man/$name.$sec" ]; then
		out=$(MANWIDTH=80 man -l "$BUILD/deploy/man/$name.$sec" 2>&1) || fail "$name: man -l failed"
		grep -q "^NAME" <<<"$out" || fail "$name: the rendered page has no NAME: $out"
	fi
done
[ "$fails" = 0 ] || exit 1
echo "man pages: all checks passed"
