// SPDX-License-Identifier: MIT
// One framed TCP stream, under both the TCP server and the TCP client.
//
// The stream does the transport work; what a failure means is its owner's
// business (stream_fail_cb): the server closes that connection, the client
// drops it and reconnects. Both see the same failures for the same causes.
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "net.h"
#include "xalloc.h"

/*
 * A queued write: the request and what is left of the frame, one allocation;
 * or the request and a reference to a shared frame, written from @off.
 */
typedef struct stream_write {
	uv_write_t req;
	sbuf_t *shared; /* NULL: the bytes follow in data[] */
	size_t len;     /* bytes left to write */
	uint8_t data[];
} stream_write_t;

static void stream_fail(stream_t *s, int what, int code, const frame_hdr_t *hdr)
{
	if (stream_is_open(s))
		s->cfg_->on_fail(s, what, code, hdr);
}

/* ---- lifetime ---- */

/**
 * stream_init() - set up @s on @loop.
 * @s:    embedded in its owner; nothing of it needs freeing before stream_init().
 * @cfg:  kept by reference: it must outlive @s.
 * @peer: what the handlers of its frames get.
 * Return: 0, or the UV_E* error of uv_tcp_init(); then @s was never
 * registered with the loop and the owner frees it directly.
 */
int stream_init(stream_t *s, uv_loop_t *loop, const stream_cfg_t *cfg, peer_t *peer)
{
	memset(s, 0, sizeof(*s));
	int r = uv_tcp_init(loop, &s->tcp);
	if (r)
		return r;
	s->cfg_ = cfg;
	s->peer_ = peer;
	frame_buf_init(&s->in_, cfg->max_frame, &cfg->dispatch->ids);
	return 0;
}

static void stream_pace_unlink(stream_t *s);

static void stream_on_closed(uv_handle_t *h)
{
	stream_t *s = container_of((uv_tcp_t *)h, stream_t, tcp);
	frame_buf_deinit(&s->in_);
	s->closed_cb_(s);
}

/**
 * stream_close() - close the handle; pending writes are cancelled first.
 * @cb: runs once, after every write callback, when the owner may free @s.
 * A second call does nothing.
 */
void stream_close(stream_t *s, stream_closed_cb cb)
{
	if (!stream_is_open(s))
		return;
	s->closed_cb_ = cb;
	stream_pace_unlink(s);
	uv_close((uv_handle_t *)&s->tcp, stream_on_closed);
}

/** stream_is_open() - whether @s is not yet closing. */
bool stream_is_open(const stream_t *s)
{
	return !uv_is_closing((const uv_handle_t *)&s->tcp);
}

/* ---- reading ---- */

/* One input buffer per connection: hand libuv its free tail. */
static void stream_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	stream_t *s = container_of((uv_tcp_t *)h, stream_t, tcp);
	uint8_t *p;
	size_t n;
	(void)suggested;
	if (frame_buf_space(&s->in_, &p, &n)) {
		*buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
		return;
	}
	*buf = uv_buf_init((char *)p, n > UINT32_MAX ? UINT32_MAX : (unsigned)n);
}

static void stream_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

/* ---- pacing: a budget of loop time per turn ---- */

static void stream_pace_unlink(stream_t *s)
{
	stream_pacer_t *p = s->cfg_ ? s->cfg_->pacer : NULL;
	if (!s->deferred_ || !p)
		return;
	if (s->pace_prev_)
		s->pace_prev_->pace_next_ = s->pace_next_;
	else
		p->head_ = s->pace_next_;
	if (s->pace_next_)
		s->pace_next_->pace_prev_ = s->pace_prev_;
	else
		p->tail_ = s->pace_prev_;
	s->pace_prev_ = s->pace_next_ = NULL;
	s->deferred_ = false;
	if (!p->head_)
		(void)uv_idle_stop(&p->idle_);
}

/* Is this turn's budget of loop time spent? */
static bool stream_turn_spent(const stream_t *s)
{
	const stream_pacer_t *p = s->cfg_->pacer;
	return p && uv_hrtime() - p->turn_start_ > p->budget_ns_;
}

static void stream_pacer_on_idle(uv_idle_t *h);

/* Wait for the next turn, with @err (a read error) if there is one. */
static void stream_defer(stream_t *s, int err)
{
	stream_pacer_t *p = s->cfg_->pacer;
	s->deferred_err_ = err;
	if (s->deferred_)
		return;
	s->deferred_ = true;
	if (s->reading_ && !s->held_)
		(void)uv_read_stop((uv_stream_t *)&s->tcp);
	s->pace_prev_ = p->tail_;
	s->pace_next_ = NULL;
	if (p->tail_)
		p->tail_->pace_next_ = s;
	else
		p->head_ = s;
	p->tail_ = s;
	(void)uv_idle_start(&p->idle_, stream_pacer_on_idle);
}

static void stream_dispatch(stream_t *s);

/* Read again unless something still says wait. */
static void stream_read_resume(stream_t *s)
{
	if (s->held_ || s->deferred_ || !s->reading_ || !stream_is_open(s))
		return;
	int r = uv_read_start((uv_stream_t *)&s->tcp, stream_alloc, stream_on_read);
	if (r)
		stream_fail(s, STREAM_F_READ, r, NULL);
}

static void stream_pacer_on_prepare(uv_prepare_t *h)
{
	stream_pacer_t *p = container_of(h, stream_pacer_t, prep_);
	p->turn_start_ = uv_hrtime();
}

/* A new turn: the streams that waited go first, in order, within the budget. */
static void stream_pacer_on_idle(uv_idle_t *h)
{
	stream_pacer_t *p = container_of(h, stream_pacer_t, idle_);
	p->turn_start_ = uv_hrtime();
	for (stream_t *s; (s = p->head_);) {
		if (stream_turn_spent(s))
			return; /* the rest wait for the next turn */
		int err = s->deferred_err_;
		stream_pace_unlink(s);
		if (err) {
			stream_fail(s, STREAM_F_READ, err, NULL);
			continue;
		}
		stream_dispatch(s);
		stream_read_resume(s);
	}
}

static void stream_pacer_on_closed(uv_handle_t *h)
{
	stream_pacer_t *p = h->data;
	if (--p->n_open_ == 0 && p->closed_cb_)
		p->closed_cb_(p);
}

void stream_pacer_init(stream_pacer_t *p, uv_loop_t *loop, uint64_t budget_ns)
{
	memset(p, 0, sizeof(*p));
	p->budget_ns_ = budget_ns;
	(void)uv_prepare_init(loop, &p->prep_);
	(void)uv_idle_init(loop, &p->idle_);
	p->prep_.data = p->idle_.data = p;
	p->n_open_ = 2;
	/* The idle handle runs only while streams wait (stream_defer()). */
	(void)uv_prepare_start(&p->prep_, stream_pacer_on_prepare);
	uv_unref((uv_handle_t *)&p->prep_);
	p->turn_start_ = uv_hrtime();
}

void stream_pacer_close(stream_pacer_t *p, void (*cb)(stream_pacer_t *p))
{
	p->closed_cb_ = cb;
	uv_close((uv_handle_t *)&p->prep_, stream_pacer_on_closed);
	uv_close((uv_handle_t *)&p->idle_, stream_pacer_on_closed);
}

/* Answers wait: stop reading until they are written (stream_after_write). */
static bool stream_hold(stream_t *s)
{
	if (!s->cfg_->hold_while_queued || s->queued_ == 0)
		return false;
	if (!s->held_) {
		s->held_ = true;
		s->held_since_ = uv_now(s->tcp.loop);
		if (s->reading_ && !s->deferred_)
			(void)uv_read_stop((uv_stream_t *)&s->tcp);
	}
	return true;
}

/* Dispatch the whole frames in the buffer, unless answers make us wait. */
static void stream_dispatch(stream_t *s)
{
	if (s->deferred_)
		return; /* the pacer's turn comes */
	/* A handler may close the stream: its memory lasts until the close
	 * callback, which never runs inside this one. */
	while (stream_is_open(s) && !stream_hold(s)) {
		frame_hdr_t hdr;
		const uint8_t *body;
		if (frame_buf_pending(&s->in_) && stream_turn_spent(s)) {
			stream_defer(s, 0);
			break;
		}
		/* Refuses a bad header as soon as its 8 bytes are in. */
		int r = frame_buf_next(&s->in_, &hdr, &body);
		if (r == FRAME_E_NEED_MORE) {
			/* What is left is the start of a frame still coming in
			 * (not whole frames waiting for a hold or the pacer). */
			if (frame_buf_pending(&s->in_) && !s->partial_since_)
				s->partial_since_ = uv_now(s->tcp.loop) | 1;
			break;
		}
		if (r) {
			stream_fail(s, STREAM_F_FRAME, r, &hdr);
			break;
		}
		s->partial_since_ = 0;
		metrics_inc(s->cfg_->frames);
		r = dispatch_run(s->cfg_->dispatch, s->peer_, hdr.msgid, body,
				 (size_t)hdr.msglen);
		if (r)
			stream_fail(s, STREAM_F_MESSAGE, r, &hdr);
	}
	if (frame_buf_pending(&s->in_) == 0)
		s->partial_since_ = 0;
}

static void stream_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
	stream_t *s = container_of((uv_tcp_t *)h, stream_t, tcp);
	(void)buf; /* the free tail of s->in_ */

	if (nread < 0) {
		/* A storm of closes is paced like one of requests. */
		if (stream_turn_spent(s))
			stream_defer(s, (int)nread);
		else
			stream_fail(s, STREAM_F_READ, (int)nread, NULL);
		return;
	}
	if (nread == 0)
		return;
	frame_buf_commit(&s->in_, (size_t)nread);
	stream_dispatch(s);
}

/** stream_read_start() - start reading frames into the stream's buffer. Return: 0 or UV_E*. */
int stream_read_start(stream_t *s)
{
	s->reading_ = true;
	if (s->held_ || s->deferred_)
		return 0; /* resumes once the answers are written / next turn */
	return uv_read_start((uv_stream_t *)&s->tcp, stream_alloc, stream_on_read);
}

/** stream_read_stop() - stop reading; the peer's sends wait in the kernel. */
void stream_read_stop(stream_t *s)
{
	s->reading_ = false;
	int r = uv_read_stop((uv_stream_t *)&s->tcp);
	if (r) /* libuv 1.44 always returns 0; a later one might not */
		log_warn("stream: cannot stop reading: %s", uv_err_name(r));
}

/* The queue drained: take the frames that waited, then read again. */
static void stream_unhold(stream_t *s)
{
	s->held_ = false;
	/* We did not read meanwhile (the rest of the frame may be waiting in
	 * the kernel): the peer's clock for its unfinished frame stood still. */
	if (s->partial_since_ && s->partial_since_ < s->held_since_)
		s->partial_since_ += uv_now(s->tcp.loop) - s->held_since_;
	stream_dispatch(s);
	stream_read_resume(s);
}

/** stream_held() - whether @s waits for its answers to be written before reading on. */
bool stream_held(const stream_t *s)
{
	return s->held_;
}

/** stream_partial_since() - when the peer began the frame it has not finished, 0 if none. */
uint64_t stream_partial_since(const stream_t *s)
{
	return s->held_ ? 0 : s->partial_since_;
}

/* ---- writing ---- */

/** stream_write_queue() - real bytes queued for @s (frames and their requests). */
size_t stream_write_queue(const stream_t *s)
{
	return s->queued_;
}

/* What a queued write of @len bytes holds in the budget: its request and
 * its bytes; for a shared frame only the request (the frame itself counts
 * once, while any queue holds it). */
static size_t stream_write_cost(size_t len, const sbuf_t *shared)
{
	return sizeof(stream_write_t) + (shared ? 0 : len);
}

/* Would queueing @len bytes (of @shared, if not NULL) pass the budget? */
static bool stream_over_budget(const stream_t *s, size_t len, const sbuf_t *shared)
{
	const stream_budget_t *b = s->cfg_->budget;
	if (!b || !b->max)
		return false;
	size_t cost = stream_write_cost(len, shared);
	if (shared && !shared->queued)
		cost += sbuf_cost(shared->len);
	return b->used + cost > b->max;
}

/* May @len more bytes be queued? 0, -ENOTCONN or -ENOBUFS. */
static int stream_admit(stream_t *s, size_t len, const sbuf_t *shared)
{
	if (!stream_is_open(s))
		return -ENOTCONN;
	size_t queued = s->queued_;
	size_t cost = sizeof(stream_write_t) + len;
	if (queued > 0 && queued + cost > s->cfg_->max_write_queue) {
		/* Still behind on earlier frames: a peer that does not read. A
		 * single big frame to a peer that keeps up is always accepted. */
		if (s->cfg_->on_overflow)
			s->cfg_->on_overflow(s, queued, len, false);
		return -ENOBUFS;
	}
	/* Behind already: all of it would wait. A peer that keeps up costs
	 * the budget only what the kernel does not take (stream_queue). */
	if (queued > 0 && stream_over_budget(s, len, shared)) {
		if (s->cfg_->on_overflow)
			s->cfg_->on_overflow(s, queued, len, true);
		return -ENOBUFS;
	}
	return 0;
}

/*
 * Nothing queued: most frames leave in one syscall, without a request, and
 * what is sent just before a close is not cancelled with the handle.
 * Return: 1 if all of it went, 0 if *lenp bytes (now at the front of @data)
 * must be queued, or a UV_E* error (the owner was told).
 */
static int stream_write_now(stream_t *s, uint8_t *data, size_t *lenp)
{
	if (s->queued_ > 0)
		return 0; /* behind earlier frames, keep the order */
	int n = net_write_now((uv_stream_t *)&s->tcp, data, lenp);
	if (n < 0)
		stream_fail(s, STREAM_F_WRITE, n, NULL);
	return n;
}

static void stream_after_write(uv_write_t *req, int status)
{
	stream_t *s = container_of((uv_tcp_t *)req->handle, stream_t, tcp);
	stream_write_t *w = container_of(req, stream_write_t, req);
	s->queued_ -= sizeof(*w) + w->len;
	stream_budget_t *b = s->cfg_->budget;
	if (b)
		b->used -= stream_write_cost(w->len, w->shared);
	if (w->shared) {
		/* The shared bytes count once, while any queue holds them. */
		if (--w->shared->queued == 0 && b)
			b->used -= sbuf_cost(w->shared->len);
		sbuf_unref(w->shared);
	}
	free(w);
	/* Cancelled: the stream is closing already. */
	if (status < 0 && status != UV_ECANCELED)
		stream_fail(s, STREAM_F_WRITE, status, NULL);
	else if (s->held_ && s->queued_ == 0 && stream_is_open(s))
		stream_unhold(s);
}

/* Queue @len bytes at @p for @w (which holds them); takes @w. */
static int stream_queue(stream_t *s, stream_write_t *w, const uint8_t *p, size_t len)
{
	w->len = len;
	if (stream_over_budget(s, len, w->shared)) {
		/* What the kernel left of a frame to an empty queue: the peer
		 * has part of it, the stream cannot go on without the rest. */
		size_t queued = s->queued_;
		if (w->shared)
			sbuf_unref(w->shared);
		free(w);
		if (s->cfg_->on_overflow)
			s->cfg_->on_overflow(s, queued, len, true);
		stream_fail(s, STREAM_F_WRITE, UV_ENOBUFS, NULL);
		return -ENOBUFS;
	}
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
	int r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, stream_after_write);
	if (r) {
		if (w->shared)
			sbuf_unref(w->shared);
		free(w);
		stream_fail(s, STREAM_F_WRITE, r, NULL);
		return r;
	}
	s->queued_ += sizeof(*w) + len;
	stream_budget_t *bud = s->cfg_->budget;
	if (bud)
		bud->used += stream_write_cost(len, w->shared);
	if (w->shared && w->shared->queued++ == 0 && bud)
		bud->used += sbuf_cost(w->shared->len);
	return 0;
}

/**
 * stream_send_frame() - write a whole frame, or queue what the kernel did not take.
 * @buf: malloc'd; the stream takes it in every case.
 * Return: 0; -ENOTCONN (closing); -ENOBUFS (over the write-queue bound or
 * the shared budget, see stream_overflow_cb; nothing was sent, unless the
 * queue was empty and the stream failed); or a UV_E* write error, after
 * stream_fail_cb ran.
 */
int stream_send_frame(stream_t *s, uint8_t *buf, size_t len)
{
	int r = stream_admit(s, len, NULL);
	if (r == 0)
		r = stream_write_now(s, buf, &len);
	if (r) {
		free(buf);
		return r < 0 ? r : 0;
	}
	stream_write_t *w = xmalloc(sizeof(*w) + len);
	w->shared = NULL;
	memcpy(w->data, buf, len);
	free(buf);
	return stream_queue(s, w, w->data, len);
}

/**
 * stream_send_shared() - write a shared frame, or queue a reference to what
 * the kernel did not take (the bytes are never copied).
 * @b: the caller keeps its reference; the queue takes one of its own.
 * Return: as stream_send_frame().
 */
int stream_send_shared(stream_t *s, sbuf_t *b)
{
	int r = stream_admit(s, b->len, b);
	if (r)
		return r;
	size_t off = 0;
	if (s->queued_ == 0) {
		uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
		int n = uv_try_write((uv_stream_t *)&s->tcp, &ub, 1);
		if (n == (int)b->len)
			return 0;
		if (n < 0 && n != UV_EAGAIN) {
			stream_fail(s, STREAM_F_WRITE, n, NULL);
			return n;
		}
		off = n > 0 ? (size_t)n : 0;
	}
	stream_write_t *w = xmalloc(sizeof(*w));
	w->shared = sbuf_ref(b);
	return stream_queue(s, w, b->data + off, b->len - off);
}

/**
 * stream_send() - encode @msg as frame @msgid and send or queue it. The
 * frame is encoded into the request that queues it, so a frame the kernel
 * does not take at once costs no copy.
 * Return: as stream_send_frame(), or -EMSGSIZE (above FRAME_TCP_MAX_LIMIT)
 * or -EINVAL (cannot be encoded), which leave the stream as it was.
 */
int stream_send(stream_t *s, int32_t msgid, const pb_msgdesc_t *fields, const void *msg)
{
	size_t body, len;

	if (!stream_is_open(s))
		return -ENOTCONN;
	/* max_frame bounds what peers send us; what we send is bounded by the
	 * protocol's ceiling (a route of thousands of hosts may exceed it). */
	if (msg_encoded_size(fields, msg, &body))
		return -EINVAL;
	if (body > FRAME_TCP_MAX_LIMIT - FRAME_HDR_LEN)
		return -EMSGSIZE;
	int r = stream_admit(s, FRAME_HDR_LEN + body, NULL);
	if (r)
		return r;
	stream_write_t *w = xmalloc(sizeof(*w) + FRAME_HDR_LEN + body);
	w->shared = NULL;
	if (msg_frame_encode(msgid, fields, msg, w->data, FRAME_HDR_LEN + body, &len)) {
		free(w);
		return -EINVAL;
	}
	r = stream_write_now(s, w->data, &len);
	if (r) {
		free(w);
		return r < 0 ? r : 0;
	}
	return stream_queue(s, w, w->data, len);
}
