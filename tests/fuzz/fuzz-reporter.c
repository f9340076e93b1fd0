// SPDX-License-Identifier: MIT
// The report service's data path, through the functions lars-reporter
// calls: TCP frames of ReportStatusRequest go through intake_report() (from
// a trusted, an untrusted IPv4 and an IPv6 peer in turn) into the pending
// map, flush_t decides the batches, and each batch comes back stored, timed
// out, refused or cancelled as the input's bytes say, then everything left
// is stored by the shutdown flush. No count may be lost or invented.
#include <stdlib.h>
#include <string.h>

#include "flush.h"
#include "fuzz.h"
#include "intake.h"
#include "log.h"

#define FUZZ_MAX_RESULTS 1024
#define FUZZ_WALL_S 1800000000ull
#define FUZZ_MAX_FLIGHT 4096

typedef struct fuzz_rep {
	intake_t in;
	flush_t f;
	flush_batch_t flight[FUZZ_MAX_FLIGHT];
	size_t n_flight;
	uint64_t sent, sent_results;     /* admitted: succ + err, results */
	uint64_t stored, stored_results; /* in batches that came back stored */
	uint64_t now, wall_us;           /* the fake clocks */
} fuzz_rep_t;

static uint64_t entries_sum(const report_entry_t *v, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		for (unsigned m = 0; m < v[i].n_mins; m++)
			s += v[i].mins[m].succ + v[i].mins[m].err;
	return s;
}

static uint64_t pending_sum(const pending_t *p)
{
	return entries_sum(p->v, p->n) + entries_sum(p->bl + p->bl_pos, p->bl_n - p->bl_pos);
}

/* Carry out the actions, as server.c's rep_act() does. */
static void fuzz_act(fuzz_rep_t *r, uint64_t now)
{
	flush_batch_t b;
	enum flush_act a;
	while ((a = flush_next(&r->f, now, &b)) != FLUSH_ACT_NONE) {
		if (a != FLUSH_ACT_SUBMIT)
			continue;
		if (r->n_flight == FUZZ_MAX_FLIGHT || b.n == 0)
			__builtin_trap();
		r->flight[r->n_flight++] = b;
	}
	if (r->f.n_batches != r->n_flight)
		__builtin_trap();
}

/* The oldest batch in flight comes back with @o. */
static void fuzz_done(fuzz_rep_t *r, enum batch_outcome o, uint64_t now)
{
	flush_batch_t b = r->flight[0];
	memmove(r->flight, r->flight + 1, --r->n_flight * sizeof(b));
	if (o == BATCH_STORED) {
		r->stored += entries_sum(b.v, b.n);
		r->stored_results += b.n_results;
	}
	flush_batch_done(&r->f, &b, o, now);
	fuzz_act(r, now);
}

/* What a report should add: decoded apart from intake_report(). */
static void fuzz_expect(const uint8_t *body, size_t len, uint64_t *sump, size_t *np)
{
	lars_ReportStatusRequest q = lars_ReportStatusRequest_init_zero;
	msg_vec_t vec;
	msg_results_init(&vec, FUZZ_MAX_RESULTS);
	msg_vec_bind(&vec, &q.results);
	*sump = 0;
	*np = 0;
	if (msg_decode(lars_ReportStatusRequest_fields, &q, body, len, NULL) == 0) {
		const lars_HostCallResult *res = vec.v;
		for (size_t i = 0; i < vec.n; i++)
			*sump += (uint64_t)res[i].succ + res[i].err;
		*np = vec.n;
	}
	msg_vec_deinit(&vec);
}

static const char *const fuzz_peers[3] = { "127.0.0.1:40000", "10.1.2.3:40001",
					   "[2001:db8::1]:40002" };

/* Frame number @i, as on_report() handles it, then a batch comes back. */
static void fuzz_frame(fuzz_rep_t *r, intake_conn_t conns[3], unsigned i, const uint8_t *body,
		       size_t len)
{
	static const enum batch_outcome outcomes[4] = { BATCH_STORED, BATCH_TIMED_OUT,
							BATCH_FAILED, BATCH_CANCELLED };
	r->now += 50;
	r->wall_us += 50000;
	uint64_t want, before = pending_sum(&r->f.pending);
	uint64_t results_before = r->f.pending.n_results;
	size_t n_want;
	fuzz_expect(body, len, &want, &n_want);
	intake_result_t res;
	/* Every fourth frame as if its connection were closing. */
	intake_conn_t *c = i % 4 == 3 ? NULL : &conns[i % 3];
	if (intake_report(&r->in, c, fuzz_peers[i % 3], body, len, r->wall_us, r->now,
			  &r->f.pending, &res) == 0) {
		if (res.n_results != n_want)
			__builtin_trap();
		/* Added whole, or not at all. */
		uint64_t got = pending_sum(&r->f.pending) - before;
		uint64_t got_results = r->f.pending.n_results - results_before;
		if (got != (res.added ? want : 0) || got_results != (res.added ? n_want : 0))
			__builtin_trap();
		if (res.added) {
			r->sent += want;
			r->sent_results += n_want;
			flush_received(&r->f);
			fuzz_act(r, r->now);
		}
	}
	/* The body's length picks how the oldest batch comes back. */
	if (r->n_flight)
		fuzz_done(r, outcomes[(len + i) % 4], r->now);
	if (i % 4 == 0) {
		flush_tick(&r->f);
		fuzz_act(r, r->now);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_set_level(LOG_LVL_ERROR);
	fuzz_rep_t *r = calloc(1, sizeof(*r));
	const char *why;
	if (!r || intake_init(&r->in, "", true, 300, FUZZ_MAX_RESULTS, &why))
		__builtin_trap();
	flush_init(&r->f, &(flush_cfg_t){ .batch_size = 8, .batch_keys = 6, .max_batches = 2,
					   .max_pending_keys = 64, .seed = size });
	r->wall_us = FUZZ_WALL_S * 1000000;
	intake_conn_t conns[3];
	for (int i = 0; i < 3; i++)
		intake_conn_init(&r->in, fuzz_peers[i], &conns[i]);

	/* The input as one TCP stream, read in the pieces the buffer takes. */
	frame_idset_t ids;
	frame_idset_clear(&ids);
	frame_idset_add(&ids, LARS_ID_REPORT_STATUS_REQ);
	frame_buf_t fb;
	frame_buf_init(&fb, 1 << 16, &ids);
	unsigned n_frames = 0;
	int rc = FRAME_E_NEED_MORE;
	for (size_t pos = 0; pos < size && rc == FRAME_E_NEED_MORE;) {
		uint8_t *dst;
		size_t room;
		if (frame_buf_space(&fb, &dst, &room))
			break;
		size_t k = size - pos < room ? size - pos : room;
		memcpy(dst, data + pos, k);
		frame_buf_commit(&fb, k);
		pos += k;
		frame_hdr_t hdr;
		const uint8_t *body;
		while ((rc = frame_buf_next(&fb, &hdr, &body)) == FRAME_OK)
			fuzz_frame(r, conns, n_frames++, body, (size_t)hdr.msglen);
	}
	frame_buf_deinit(&fb);

	/* Shutdown: the database works again; everything must get stored. */
	flush_close(&r->f);
	fuzz_act(r, r->now);
	uint64_t deadline = r->now + 3600 * 1000;
	while (!flush_drained(&r->f)) {
		if (r->now > deadline)
			__builtin_trap();
		r->now += 200;
		flush_tick(&r->f);
		fuzz_act(r, r->now);
		while (r->n_flight)
			fuzz_done(r, BATCH_STORED, r->now);
	}
	if (r->stored != r->sent || r->stored_results != r->sent_results)
		__builtin_trap();
	flush_deinit(&r->f);
	free(r);
	return 0;
}
