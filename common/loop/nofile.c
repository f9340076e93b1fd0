// SPDX-License-Identifier: MIT
// How far to raise the open-file limit for a connection limit.
#include "nofile.h"

/**
 * nofile_plan() - decide the open-file soft limit for a connection limit.
 * @soft: the current soft limit (rlim_cur).
 * @hard: the current hard limit (rlim_max); RLIM_INFINITY is UINT64_MAX.
 * @n_conns: the connections the daemon may hold at once (max_conns).
 *
 * Raises the soft limit to what @n_conns needs, at most to @hard (an
 * unprivileged process cannot go higher); a soft limit already high enough
 * stays, however high.
 * Return: the plan; .too_low when even @hard is short of .need.
 */
nofile_plan_t nofile_plan(uint64_t soft, uint64_t hard, unsigned n_conns)
{
	nofile_plan_t p = { .need = (uint64_t)n_conns + NOFILE_MARGIN, .soft = soft };
	if (soft >= p.need)
		return p;
	p.too_low = hard < p.need;
	uint64_t want = p.too_low ? hard : p.need;
	if (want > soft) {
		p.soft = want;
		p.raise = true;
	}
	return p;
}
