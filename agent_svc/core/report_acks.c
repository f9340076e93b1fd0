// SPDX-License-Identifier: MIT
// ReportStatusRequests waiting for lars-reporter's ReportStatusAck.
//
// DESIGN: a message is kept, exactly as first sent (seq, ts, results), from
// its send until an ack with seq >= its own; the reporter applies an agent's
// messages only in seq order (one with seq <= the stored one is a repeat), so
// on every connection the held messages go first, oldest first, and new ones
// only after all of them (ra_can_send_new()). They go again after a
// reconnect and when ack_timeout passes without an ack. At most
// max_results results are held; a new message makes room by dropping the
// oldest (counted, unless it would not have been sent again anyway: on an
// UNKNOWN connection when no earlier one acked).
//
// An original lars_reporter never acks, and must not get any message twice.
// So a connection proves itself: until its first ack it is UNKNOWN and held
// messages are not sent again on the timer; if ack_timeout passes after the
// first send on it without an ack (RA_GRACE_AFTER_ACKING times that when the
// connection before it acked: a restarted reporter of ours may be waiting for
// PostgreSQL), it is an original (NOT_ACKING): what it was sent counts as
// stored, as before acks existed, and nothing is held on it. A late ack makes
// it ACKING from then on. After a reconnect the held messages
// are sent again only if the last connection that showed either way acked;
// otherwise they count as stored (an original gets no repeats; against ours,
// a reporter lost before its first ack of a connection loses what it had not
// stored, as an agent without acks did).
#include "report_acks.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void ra_init(report_acks_t *ra, uint64_t agent_id, size_t max_results,
	     uint64_t ack_timeout_ms)
{
	*ra = (report_acks_t){ .agent_id = agent_id, .ack_timeout_ms = ack_timeout_ms,
			       .max_results = max_results, .next_seq = 1 };
}

static ra_msg_t *at(const report_acks_t *ra, size_t i)
{
	return &ra->v[(ra->head + i) % ra->cap];
}

/* The oldest held message out, freed; its results no longer count. */
static void pop_oldest(report_acks_t *ra)
{
	ra_msg_t *m = at(ra, 0);
	ra->n_results -= m->n;
	free(m->res);
	ra->head = (ra->head + 1) % ra->cap;
	ra->n--;
	if (ra->next_send)
		ra->next_send--;
}

static void forget_all(report_acks_t *ra)
{
	while (ra->n)
		pop_oldest(ra);
	ra->next_send = 0;
}

void ra_deinit(report_acks_t *ra)
{
	forget_all(ra);
	free(ra->v);
	ra->v = NULL;
	ra->cap = 0;
}

/**
 * ra_connected() - a new connection to lars-reporter. Held messages are due
 * on it, oldest first, if the last connection that showed it acked; otherwise
 * they count as stored and are forgotten. It is UNKNOWN until it acks.
 */
void ra_connected(report_acks_t *ra, uint64_t now_ms)
{
	ra->connected = true;
	ra->mode = RA_UNKNOWN;
	ra->conn_sent_ms = 0;
	ra->progress_ms = now_ms;
	if (!ra->resend_on_connect)
		forget_all(ra);
	ra->next_send = 0;
}

/** ra_disconnected() - the connection is gone; what it showed is remembered. */
void ra_disconnected(report_acks_t *ra)
{
	if (ra->connected && ra->mode == RA_ACKING)
		ra->resend_on_connect = true;
	else if (ra->connected && ra->mode == RA_NOT_ACKING)
		ra->resend_on_connect = false;
	ra->connected = false;
	ra->next_send = 0;
}

bool ra_can_send_new(const report_acks_t *ra)
{
	return ra->connected && ra->next_send == ra->n;
}

static void note_send(report_acks_t *ra, uint64_t now_ms)
{
	if (!ra->conn_sent_ms)
		ra->conn_sent_ms = now_ms ? now_ms : 1;
}

static void grow(report_acks_t *ra)
{
	size_t cap = ra->cap ? 2 * ra->cap : 16;
	ra_msg_t *v = xreallocarray(NULL, cap, sizeof(*v));
	for (size_t i = 0; i < ra->n; i++)
		v[i] = *at(ra, i);
	free(ra->v);
	ra->v = v;
	ra->cap = cap;
	ra->head = 0;
}

void ra_sent(report_acks_t *ra, int32_t modid, int32_t cmdid, uint32_t ts, bool delta,
	     const lars_HostCallResult *res, size_t n, uint64_t now_ms)
{
	uint64_t seq = ra->next_seq++;
	note_send(ra, now_ms);
	if (ra->mode == RA_NOT_ACKING)
		return; /* an original: sent is stored */
	/* Dropped counts are lost only if they would have been sent again: not
	 * on a connection yet to show it acks after one that did not (or none). */
	bool lost = ra->mode == RA_ACKING || ra->resend_on_connect;
	while (ra->n && ra->n_results + n > ra->max_results) {
		if (lost) {
			ra->cnt.dropped_msgs++;
			ra->cnt.dropped_calls += at(ra, 0)->calls;
		}
		pop_oldest(ra);
	}
	if (ra->n == ra->cap)
		grow(ra);
	if (!ra->n)
		ra->progress_ms = now_ms; /* the timeout runs from the oldest held */
	ra_msg_t *m = &ra->v[(ra->head + ra->n) % ra->cap];
	*m = (ra_msg_t){ .seq = seq, .modid = modid, .cmdid = cmdid, .ts = ts, .delta = delta,
			 .res = xreallocarray(NULL, n ? n : 1, sizeof(*res)), .n = n };
	if (n)
		memcpy(m->res, res, n * sizeof(*res));
	for (size_t i = 0; i < n; i++)
		m->calls += (uint64_t)res[i].succ + res[i].err;
	ra->n++;
	ra->n_results += n;
	ra->next_send = ra->n;
}

const ra_msg_t *ra_next_resend(const report_acks_t *ra)
{
	if (!ra->connected || ra->next_send >= ra->n)
		return NULL;
	return at(ra, ra->next_send);
}

void ra_resent(report_acks_t *ra, uint64_t now_ms)
{
	if (ra->next_send >= ra->n)
		return;
	ra->next_send++;
	ra->cnt.resent++;
	ra->progress_ms = now_ms;
	note_send(ra, now_ms);
}

int ra_ack(report_acks_t *ra, uint64_t agent_id, uint64_t seq, uint64_t now_ms)
{
	if (agent_id != ra->agent_id) {
		ra->cnt.ignored_acks++;
		return RA_ACK_OTHER_AGENT;
	}
	if (seq >= ra->next_seq) {
		ra->cnt.ignored_acks++;
		return RA_ACK_BEYOND;
	}
	if (ra->connected)
		ra->mode = RA_ACKING;
	ra->progress_ms = now_ms;
	while (ra->n && at(ra, 0)->seq <= seq) {
		ra->cnt.acked++;
		pop_oldest(ra);
	}
	return RA_ACK_OK;
}

/**
 * ra_tick() - on an UNKNOWN connection ack_timeout (RA_GRACE_AFTER_ACKING
 * times that after an acking one) after its first send without an ack: NOT_ACKING, the held messages forgotten (stored, as far
 * as an original says). On an ACKING one with every held message out and
 * no ack for ack_timeout: all of them due again, oldest first.
 */
enum ra_event ra_tick(report_acks_t *ra, uint64_t now_ms)
{
	if (!ra->connected)
		return RA_TICK_NONE;
	uint64_t judge_ms = ra->ack_timeout_ms * (ra->resend_on_connect ? RA_GRACE_AFTER_ACKING : 1);
	if (ra->mode == RA_UNKNOWN && ra->conn_sent_ms && now_ms - ra->conn_sent_ms >= judge_ms) {
		ra->mode = RA_NOT_ACKING;
		ra->resend_on_connect = false;
		forget_all(ra);
		return RA_TICK_NOT_ACKING;
	}
	if (ra->mode == RA_ACKING && ra->n && ra->next_send == ra->n &&
	    now_ms - ra->progress_ms >= ra->ack_timeout_ms) {
		ra->next_send = 0;
		ra->progress_ms = now_ms;
		return RA_TICK_RESEND;
	}
	return RA_TICK_NONE;
}
