// SPDX-License-Identifier: MIT
// One framed TCP stream: the input buffer, the read loop, dispatch, and the
// bounded write queue, shared by tcp_server (accepted) and tcp_client (connected).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>
#include <uv.h>

#include "dispatch.h"
#include "frame.h"
#include "metrics.h"
#include "sbuf.h"

typedef struct stream stream_t;

/* What went wrong, for stream_fail_cb (the owner closes the stream). */
enum {
	STREAM_F_READ = 1, /* @code: UV_EOF or a read error */
	STREAM_F_WRITE,    /* @code: a UV_E* error writing */
	STREAM_F_FRAME,    /* @code: the decoder's FRAME_E_* refusal of @hdr */
	STREAM_F_MESSAGE,  /* @code: the handler's nonzero return for frame @hdr */
};

/**
 * stream_fail_cb - the stream cannot go on; the owner must stream_close() it.
 * @what: STREAM_F_*. @hdr is the frame's header for FRAME and MESSAGE, else NULL.
 * Runs at most once while the stream is open (never after stream_close()).
 */
typedef void (*stream_fail_cb)(stream_t *s, int what, int code, const frame_hdr_t *hdr);
/**
 * stream_overflow_cb - a send of @len bytes was refused: @queued bytes are
 * still waiting and both together exceed max_write_queue (@global false), or
 * the streams' shared budget is spent (@global true). The send returns
 * -ENOBUFS; the owner decides whether that peer is cut off. Only what must
 * wait counts against the budget: a frame to an empty queue is offered to
 * the kernel first, and if what it left does not fit, the frame is cut and
 * the stream fails after this callback (STREAM_F_WRITE, UV_ENOBUFS).
 */
typedef void (*stream_overflow_cb)(stream_t *s, size_t queued, size_t len, bool global);
/** stream_closed_cb - the handle is closed and the stream deinitialised: free its owner. */
typedef void (*stream_closed_cb)(stream_t *s);

/**
 * struct stream_budget - what every stream of one owner may queue together,
 * in real bytes: frames plus their bookkeeping, a shared frame once however
 * many queues hold it.
 */
typedef struct stream_budget {
	size_t used;
	size_t max; /* 0 = no limit */
} stream_budget_t;

/**
 * struct stream_pacer - a budget of loop time per turn for the frames of
 * many streams. A storm (thousands of peers sending or closing at once, all
 * ready in one poll) would otherwise be handled in one go while timers wait;
 * past the budget a stream stops reading and its frames (or its EOF) wait
 * for the next turn, in the order they came. Private: use the functions.
 */
typedef struct stream_pacer {
	uv_prepare_t prep_;   /* a new turn: the budget starts again */
	uv_idle_t idle_;      /* while streams wait: resume them next turn */
	uint64_t budget_ns_;
	uint64_t turn_start_;
	stream_t *head_, *tail_;
	unsigned n_open_;     /* handles not yet closed */
	void (*closed_cb_)(struct stream_pacer *p);
} stream_pacer_t;

/** stream_pacer_init() - @budget_ns of frame handling per loop turn. */
void stream_pacer_init(stream_pacer_t *p, uv_loop_t *loop, uint64_t budget_ns);
/** stream_pacer_close() - close its handles; @cb once they are (its streams must be closed). */
void stream_pacer_close(stream_pacer_t *p, void (*cb)(stream_pacer_t *p));

/* The settings a server's or a client's streams share; outlives them. */
typedef struct stream_cfg {
	uint32_t max_frame;         /* header + body a peer may send; bigger fails the stream */
	size_t max_write_queue;     /* real bytes that may wait behind a slow reader */
	stream_budget_t *budget;    /* shared by the streams; may be NULL */
	/* Read no further frame while answers wait to be written: a peer that
	 * does not read cannot make us queue more than one answer. */
	bool hold_while_queued;
	stream_pacer_t *pacer;      /* may be NULL: no budget per turn */
	const dispatch_t *dispatch; /* a frame's handler gets the stream's peer */
	stream_fail_cb on_fail;         /* required */
	stream_overflow_cb on_overflow; /* may be NULL */
	metrics_counter_t *frames;      /* frames dispatched; may be NULL */
} stream_cfg_t;

/** struct stream - embed it in the connection's owner and get back with container_of. */
struct stream {
	/* public, for accept/connect and socket options; closed by stream_close() */
	uv_tcp_t tcp;
	/* private */
	frame_buf_t in_;
	const stream_cfg_t *cfg_;
	peer_t *peer_;
	stream_closed_cb closed_cb_;
	size_t queued_;          /* real bytes of the queued writes */
	uint64_t partial_since_; /* loop ms an unfinished frame began, or 0 */
	uint64_t held_since_;    /* loop ms held_ was set */
	bool reading_;           /* the owner wants frames */
	bool held_;              /* not reading: answers wait (hold_while_queued) */
	bool deferred_;          /* on the pacer's list: over this turn's budget */
	int deferred_err_;       /* a read error (EOF) that waits with it, or 0 */
	stream_t *pace_prev_, *pace_next_;
};

/** stream_init() - init the handle on @loop; on failure nothing is left to close. */
int stream_init(stream_t *s, uv_loop_t *loop, const stream_cfg_t *cfg, peer_t *peer);
/** stream_close() - close (idempotent); @cb runs once the handle is closed. */
void stream_close(stream_t *s, stream_closed_cb cb);
/** stream_is_open() - not yet closing. */
bool stream_is_open(const stream_t *s);

/** stream_read_start() - read and dispatch frames; 0 or a UV_E* error. */
int stream_read_start(stream_t *s);
/** stream_read_stop() - stop reading (backpressure); frames already read stay queued. */
void stream_read_stop(stream_t *s);

/** stream_send() - encode @msg as frame @msgid and send or queue it. */
int stream_send(stream_t *s, int32_t msgid, const pb_msgdesc_t *fields, const void *msg);
/** stream_send_frame() - send or queue an encoded frame; takes @buf (malloc'd) in every case. */
int stream_send_frame(stream_t *s, uint8_t *buf, size_t len);
/** stream_send_shared() - send or queue a shared frame; takes a reference only if queued. */
int stream_send_shared(stream_t *s, sbuf_t *b);
/** stream_write_queue() - real bytes queued but not yet written (frames and bookkeeping). */
size_t stream_write_queue(const stream_t *s);
/** stream_partial_since() - loop ms the peer's unfinished frame began; 0 if none (or held). */
uint64_t stream_partial_since(const stream_t *s);
/** stream_held() - not reading because answers wait to be written. */
bool stream_held(const stream_t *s);
