// SPDX-License-Identifier: MIT
// lars-dns's refresh decisions.
#include "refresh.h"

void refresh_init(refresh_t *r, const refresh_cfg_t *cfg)
{
	*r = (refresh_t){ .cfg = *cfg };
	backoff_init(&r->backoff, REFRESH_RETRY_BASE_MS, REFRESH_RETRY_MAX_MS, cfg->seed);
}

/* A refresh is asked for: submit it, or remember it for when the job in
 * flight is done. */
static void refresh_want(refresh_t *r, bool full, uint64_t now_ms, refresh_action_t *a)
{
	if (r->closing)
		return;
	if (r->running) {
		r->again = true;
		r->again_full |= full;
		return;
	}
	if (full)
		r->again_full = false;
	r->running = true;
	r->started_ms = now_ms;
	a->flags |= REFRESH_SUBMIT;
	a->job = !r->loaded ? REFRESH_JOB_LOAD : full ? REFRESH_JOB_RELOAD : REFRESH_JOB_CHANGES;
}

refresh_action_t refresh_start(refresh_t *r, uint64_t now_ms)
{
	refresh_action_t a = { 0 };
	refresh_want(r, true, now_ms, &a);
	return a;
}

refresh_action_t refresh_notify(refresh_t *r, uint64_t now_ms)
{
	refresh_action_t a = { 0 };
	refresh_want(r, false, now_ms, &a);
	return a;
}

refresh_action_t refresh_poll(refresh_t *r, uint64_t now_ms)
{
	return refresh_notify(r, now_ms);
}

refresh_action_t refresh_reload(refresh_t *r, uint64_t now_ms)
{
	return refresh_start(r, now_ms);
}

refresh_action_t refresh_retry(refresh_t *r, uint64_t now_ms)
{
	return refresh_start(r, now_ms);
}

static void refresh_failed(refresh_t *r, enum refresh_status status, uint64_t now_ms,
			   refresh_action_t *a)
{
	bool first = !r->loaded;
	a->flags |= REFRESH_FAILURE;
	if (first) {
		if (!r->cfg.wait_for_db) {
			a->flags |= REFRESH_FAIL_SERVICE;
		} else {
			a->flags |= REFRESH_RETRY;
			a->delay_ms = backoff_next(&r->backoff);
		}
		return;
	}
	if (!r->db_failing)
		a->flags |= REFRESH_DB_DOWN;
	r->db_failing = true;
	/* A connection found dead (PostgreSQL restarted) is reopened by the
	 * next job: try again now rather than at the next poll, once. */
	bool lost = status == REFRESH_LOST;
	if (r->again || (lost && !r->retried)) {
		r->retried = lost;
		r->again = false;
		refresh_want(r, r->again_full, now_ms, a);
	}
}

refresh_action_t refresh_done(refresh_t *r, enum refresh_status status, uint64_t now_ms)
{
	refresh_action_t a = { 0 };
	if (!r->running)
		return a; /* no job of ours */
	r->running = false;
	if (status == REFRESH_CANCELED || r->closing)
		return a;
	if (status != REFRESH_OK) {
		refresh_failed(r, status, now_ms, &a);
		return a;
	}
	if (r->db_failing)
		a.flags |= REFRESH_DB_BACK;
	r->db_failing = false;
	r->retried = false;
	a.flags |= REFRESH_SERVE;
	a.took_ms = now_ms - r->started_ms;
	if (r->loaded) {
		a.flags |= REFRESH_PUSH;
	} else {
		r->loaded = true;
		a.flags |= REFRESH_START;
		a.poll_ms = r->cfg.poll_interval_ms;
		a.reload_ms = r->cfg.reload_interval_ms;
	}
	if (r->again) {
		r->again = false;
		refresh_want(r, r->again_full, now_ms, &a);
	}
	return a;
}

void refresh_close(refresh_t *r)
{
	r->closing = true;
}
