// SPDX-License-Identifier: MIT
// ReportStatusRequests sent to lars-reporter and not yet acknowledged: kept
// (bounded), forgotten by a ReportStatusAck, sent again in seq order after a
// reconnect or an ack timeout. No libuv: every call takes now_ms.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lars.pb.h"

/**
 * struct ra_msg - one message as it was first sent; a resend sends exactly
 * this (same seq, ts and results).
 * @calls: succ + err over the results: what dropping it loses.
 */
typedef struct ra_msg {
	uint64_t seq;
	int32_t modid;
	int32_t cmdid;
	uint32_t ts;
	bool delta;
	lars_HostCallResult *res;
	size_t n;
	uint64_t calls;
} ra_msg_t;

/* What the current lars-reporter connection showed about acknowledgements. */
enum ra_mode {
	RA_UNKNOWN,    /* no ack yet on this connection, ack_timeout not over */
	RA_ACKING,     /* an ack came on this connection: ours */
	RA_NOT_ACKING, /* ack_timeout went by without one: an original lars_reporter */
};

/* After a connection that acked, a new one is given this many ack timeouts
 * to ack before it counts as an original (a restarted reporter of ours may
 * wait for PostgreSQL); otherwise one. */
#define RA_GRACE_AFTER_ACKING 6

/* ra_ack()'s answers. */
enum {
	RA_ACK_OK = 0,
	RA_ACK_OTHER_AGENT = 1, /* for another agent_id: ignored */
	RA_ACK_BEYOND = 2,      /* a seq this agent never sent: ignored */
};

/* ra_tick()'s answers. */
enum ra_event {
	RA_TICK_NONE = 0,
	RA_TICK_RESEND,     /* no ack for ack_timeout: every held message is due again */
	RA_TICK_NOT_ACKING, /* this connection does not ack: the held messages count as stored */
};

/* What ra counts; the agent exports them as metrics. */
typedef struct ra_counts {
	uint64_t acked;         /* messages forgotten by an ack */
	uint64_t resent;        /* messages sent again */
	uint64_t dropped_msgs;  /* messages dropped at the bound, unacknowledged */
	uint64_t dropped_calls; /* calls (succ + err) in them */
	uint64_t ignored_acks;  /* acks for another agent or beyond what was sent */
} ra_counts_t;

/**
 * struct report_acks - the messages of one agent_id waiting for an ack,
 * oldest (lowest seq) first.
 * @next_seq: the seq the next new message gets (the first is 1).
 * @next_send: index (from the oldest) of the next held message to send on
 *             this connection; == @n: all are out, new ones may follow.
 * @resend_on_connect: the last connection judged acked: held messages go
 *                     again on the next one (otherwise they count as stored).
 */
typedef struct report_acks {
	uint64_t agent_id;
	uint64_t ack_timeout_ms;
	size_t max_results;
	uint64_t next_seq;
	ra_msg_t *v;    /* a ring of @cap: the oldest at @head */
	size_t head, n, cap;
	size_t n_results;
	size_t next_send;
	bool connected;
	enum ra_mode mode;
	bool resend_on_connect;
	uint64_t conn_sent_ms; /* first send on this connection (UNKNOWN); 0: none yet */
	uint64_t progress_ms;  /* last ack, or last time all held went out: the timeout runs from it */
	ra_counts_t cnt;
} report_acks_t;

void ra_init(report_acks_t *ra, uint64_t agent_id, size_t max_results,
	     uint64_t ack_timeout_ms);
void ra_deinit(report_acks_t *ra);

/** ra_connected() - a new lars-reporter connection (held messages due again, or forgotten). */
void ra_connected(report_acks_t *ra, uint64_t now_ms);
/** ra_disconnected() - the connection is gone. */
void ra_disconnected(report_acks_t *ra);

/** ra_can_send_new() - connected and every held message out on this connection. */
bool ra_can_send_new(const report_acks_t *ra);
/** ra_peek_seq() - the seq a new message sent now gets. */
static inline uint64_t ra_peek_seq(const report_acks_t *ra)
{
	return ra->next_seq;
}
/**
 * ra_sent() - a new message went out with ra_peek_seq(); kept (copied)
 * unless the connection does not ack. Over the bound the oldest held
 * messages are dropped (counted).
 */
void ra_sent(report_acks_t *ra, int32_t modid, int32_t cmdid, uint32_t ts, bool delta,
	     const lars_HostCallResult *res, size_t n, uint64_t now_ms);

/** ra_next_resend() - the next held message due on this connection, or NULL. */
const ra_msg_t *ra_next_resend(const report_acks_t *ra);
/** ra_resent() - the message ra_next_resend() gave went out. */
void ra_resent(report_acks_t *ra, uint64_t now_ms);

/**
 * ra_ack() - a ReportStatusAck: every message of @agent_id with seq <= @seq
 * is stored. Return: RA_ACK_OK (held ones <= @seq forgotten),
 * RA_ACK_OTHER_AGENT or RA_ACK_BEYOND (ignored).
 */
int ra_ack(report_acks_t *ra, uint64_t agent_id, uint64_t seq, uint64_t now_ms);

/** ra_tick() - the ack timeout. Return: what it decided (see enum ra_event). */
enum ra_event ra_tick(report_acks_t *ra, uint64_t now_ms);

/** ra_held() - messages waiting for an ack. */
static inline size_t ra_held(const report_acks_t *ra)
{
	return ra->n;
}
