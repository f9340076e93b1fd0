#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Bash completion for larsctl and lars (issue 24.3): the commands and each
# command's options their --help names are offered, and option values
# (-o) complete.
set -uo pipefail
SRC=$1 LARSCTL=$2 LARS=$3
BC=/usr/share/bash-completion/bash_completion
[ -f "$BC" ] || { echo "no $BC (apt install bash-completion)"; exit 1; }
# shellcheck disable=SC1090
. "$BC"
# shellcheck disable=SC1091
. "$SRC/deploy/completion/larsctl"
# shellcheck disable=SC1091
. "$SRC/deploy/completion/lars"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# complete WORDS...: the candidates for the last word (may be "").
complete_line() {
	local fn=$1
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="${COMP_WORDS[*]}"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	"$fn"
	printf '%s\n' "${COMPREPLY[@]}"
}
has() { grep -qxF -- "$2" <<<"$1"; }
options() {
	grep -oE -- '(^|[][ ,(|])(--[a-z][a-z0-9-]*|-[a-z])([^A-Za-z0-9-]|$)' |
		grep -oE -- '--[a-z][a-z0-9-]*|-[a-z]' | sort -u
}

top=$(complete_line _larsctl larsctl "")
for c in $("$LARSCTL" --help | sed -n '/^Commands:/,/^$/p' | grep -oE '^  [a-z][a-z-]+' | sort -u); do
	has "$top" "$c" || fail "larsctl <TAB> lacks $c"
done
subs=$(complete_line _larsctl larsctl route "")
for s in $("$LARSCTL" route --help | grep -E '^ *(Usage: )?larsctl ' | grep -oE ' route [a-z]+' |
	  cut -d' ' -f3 | sort -u); do
	has "$subs" "$s" || fail "larsctl route <TAB> lacks $s"
done
# Each command's options, as its --help lists them (-h/--help and the
# global ones are offered everywhere).
for c in "status" "agents" "changes" "watch" "describe" "route list" "route export" \
	 "route import" "route del" "route drain" "route policy" "admin-user add"; do
	# shellcheck disable=SC2086
	got=$(complete_line _larsctl larsctl $c -)
	if [ "${c%% *}" = route ]; then
		# That subcommand's usage lines (and their continuation).
		help=$("$LARSCTL" route --help | awk -v s="route ${c#* }" '
			/^ *(Usage: )?larsctl / { on = index($0, s " ") || substr($0, length($0) - length(s) + 1) == s }
			/^ +\[/ && on { print; next }
			/^ *(Usage: )?larsctl / && on { print }')
	else
		# shellcheck disable=SC2086
		help=$("$LARSCTL" $c --help)
	fi
	for o in $(options <<<"$help"); do
		case $o in -h | -c) continue ;; esac
		has "$got" "$o" || fail "larsctl $c -<TAB> lacks $o"
	done
done
has "$(complete_line _larsctl larsctl status -o "")" tsv || fail "larsctl status -o <TAB>"
has "$(complete_line _larsctl larsctl route export -o "")" csv || fail "larsctl route export -o <TAB>"
! has "$(complete_line _larsctl larsctl watch -o "")" tsv || fail "larsctl watch -o offers tsv"

top=$(complete_line _lars lars "")
for c in $("$LARS" --help | grep -oE '^  [a-z][a-z-]+'); do
	has "$top" "$c" || fail "lars <TAB> lacks $c"
done
got=$(complete_line _lars lars simulate 1 1 -)
for o in --err-rate --count --fail --latency-us --latency-us-spread --slow --agent --timeout; do
	has "$got" "$o" || fail "lars simulate -<TAB> lacks $o"
done
has "$(complete_line _lars lars get-route 1 1 -o "")" json || fail "lars get-route -o <TAB>"
[ "$fails" = 0 ] || exit 1
echo "completion: all checks passed"
