# SPDX-License-Identifier: MIT
# Sourced by shell tests: waits that end at a deadline in wall-clock time,
# never after a count of tries (a loaded machine makes each try slower).
#
#   wait_for SECONDS CMD [ARG...]   run CMD every 0.1 s until it succeeds;
#                                   1 if SECONDS passed first
#   now_ms                          monotonic-enough milliseconds (date)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_for() {
	local end=$(( $(now_ms) + $1 * 1000 ))
	shift
	while :; do
		"$@" && return 0
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}
