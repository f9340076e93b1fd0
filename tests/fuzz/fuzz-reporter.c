// SPDX-License-Identifier: MIT
// The report service's data path, through the functions lars-reporter
// calls: TCP frames of ReportStatusRequest go through intake_report() (from
// a trusted, an untrusted IPv4 and an IPv6 peer in turn) into the pending
// map, flush_t decides the batches, and each batch comes back stored, timed
// out, refused or cancelled as the input's bytes say, then everything left
// is stored by the shutdown flush. No count may be lost or invented.
// Issue 21: a report with agent_id and seq goes to its agent's own map and
// is taken in only if its seq is new (a model of the largest seq taken in
// per agent says which); a report without the delta marker carries running
// totals, and a model of the last totals per key says what it adds.
#include <stdlib.h>
#include <string.h>

#include "flush.h"
#include "fuzz.h"
#include "intake.h"
#include "log.h"

#define FUZZ_MAX_RESULTS 1024
#define FUZZ_WALL_S 1800000000ull
#define FUZZ_MAX_FLIGHT 4096

#define FUZZ_MODEL_MAX 65536

/* The last totals of a key, as the test models them (apart from cum.c). */
typedef struct fuzz_total {
	int32_t k[5];
	uint32_t succ, err;
} fuzz_total_t;

typedef struct fuzz_seq {
	uint64_t id, max;
} fuzz_seq_t;

typedef struct fuzz_rep {
	intake_t in;
	flush_t f;
	flush_batch_t flight[FUZZ_MAX_FLIGHT];
	size_t n_flight;
	uint64_t sent, sent_results;     /* admitted: succ + err, results */
	uint64_t stored, stored_results; /* in batches that came back stored */
	uint64_t now, wall_us;           /* the fake clocks */
	fuzz_total_t totals[FUZZ_MODEL_MAX];
	size_t n_totals;
	fuzz_seq_t seqs[FUZZ_MODEL_MAX];
	size_t n_seqs;
} fuzz_rep_t;

static uint64_t entries_sum(const report_entry_t *v, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		for (unsigned m = 0; m < v[i].n_mins; m++)
			s += v[i].mins[m].succ + v[i].mins[m].err;
	return s;
}

static uint64_t map_sum(const pending_t *p)
{
	return entries_sum(p->v, p->n) + entries_sum(p->bl + p->bl_pos, p->bl_n - p->bl_pos);
}

/* What waits in the map and in the acknowledged agents' maps. */
static uint64_t pending_sum(const flush_t *f)
{
	uint64_t s = map_sum(&f->pending);
	size_t it = 0;
	u64map_slot_t *sl;
	while ((sl = u64map_next(&f->agents.map, &it)))
		s += map_sum(&((rep_agent_t *)sl->value)->pending);
	return s;
}

static uint64_t pending_results(const flush_t *f)
{
	return f->pending.n_results + f->agents.results;
}

/* The model: what running totals @succ/@err of @k add (all of it: first or reset). */
static uint64_t model_total(fuzz_rep_t *r, const int32_t k[5], uint32_t succ, uint32_t err)
{
	for (size_t i = 0; i < r->n_totals; i++) {
		fuzz_total_t *t = &r->totals[i];
		if (memcmp(t->k, k, sizeof(t->k)))
			continue;
		uint64_t d = succ < t->succ || err < t->err ? (uint64_t)succ + err :
			     (uint64_t)(succ - t->succ) + (err - t->err);
		t->succ = succ;
		t->err = err;
		return d;
	}
	if (r->n_totals == FUZZ_MODEL_MAX)
		__builtin_trap(); /* inputs are far smaller */
	fuzz_total_t *t = &r->totals[r->n_totals++];
	memcpy(t->k, k, sizeof(t->k));
	t->succ = succ;
	t->err = err;
	return (uint64_t)succ + err;
}

/* The model: the largest seq taken in of agent @id (0: none), as a slot. */
static fuzz_seq_t *model_seq(fuzz_rep_t *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_seqs; i++)
		if (r->seqs[i].id == id)
			return &r->seqs[i];
	if (r->n_seqs == FUZZ_MODEL_MAX)
		__builtin_trap();
	r->seqs[r->n_seqs] = (fuzz_seq_t){ .id = id };
	return &r->seqs[r->n_seqs++];
}

/* Carry out the actions, as server.c's rep_act() does. */
static void fuzz_act(fuzz_rep_t *r, uint64_t now)
{
	flush_batch_t b;
	enum flush_act a;
	while ((a = flush_next(&r->f, now, &b)) != FLUSH_ACT_NONE) {
		if (a != FLUSH_ACT_SUBMIT)
			continue;
		if (r->n_flight == FUZZ_MAX_FLIGHT || (b.n == 0 && b.n_agents == 0))
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
		for (size_t i = 0; i < b.n_agents; i++)
			b.agents[i].stored = b.agents[i].max_seq; /* as the database would */
	}
	flush_batch_done(&r->f, &b, o, now);
	fuzz_act(r, now);
}

/* What a report should add if admitted under @caller: decoded apart from
 * intake_report(); the totals model moves only if @commit. */
static void fuzz_expect(fuzz_rep_t *r, const uint8_t *body, size_t len, int32_t caller,
			bool commit, uint64_t *sump, size_t *np, lars_ReportStatusRequest *qp)
{
	lars_ReportStatusRequest q = lars_ReportStatusRequest_init_zero;
	msg_vec_t vec;
	msg_results_init(&vec, FUZZ_MAX_RESULTS);
	msg_vec_bind(&vec, &q.results);
	*sump = 0;
	*np = 0;
	if (msg_decode(lars_ReportStatusRequest_fields, &q, body, len, NULL) == 0) {
		const lars_HostCallResult *res = vec.v;
		for (size_t i = 0; i < vec.n; i++) {
			int32_t k[5] = { q.modid, q.cmdid, res[i].ip, res[i].port, caller };
			if (q.delta)
				*sump += (uint64_t)res[i].succ + res[i].err;
			else if (commit)
				*sump += model_total(r, k, res[i].succ, res[i].err);
		}
		*np = vec.n;
	}
	msg_vec_deinit(&vec);
	*qp = q;
	qp->results = (pb_callback_t){ 0 };
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
	uint64_t want, before = pending_sum(&r->f);
	uint64_t results_before = pending_results(&r->f);
	size_t n_want;
	lars_ReportStatusRequest q;
	intake_result_t res;
	/* Every fourth frame as if its connection were closing. */
	intake_conn_t *c = i % 4 == 3 ? NULL : &conns[i % 3];
	if (intake_report_to(&r->in, c, fuzz_peers[i % 3], body, len, r->wall_us, r->now,
			     &r->f.pending, &r->f.agents, &res) == 0) {
		int32_t caller = conns[i % 3].peer.trusted ? 0 : conns[i % 3].peer.caller;
		fuzz_expect(r, body, len, 0, false, &want, &n_want, &q);
		if (conns[i % 3].peer.trusted)
			caller = q.caller;
		if (res.n_results != n_want)
			__builtin_trap();
		bool acked = q.agent_id && q.seq;
		if (acked && (res.added || res.duplicate)) {
			fuzz_seq_t *m = model_seq(r, q.agent_id);
			/* Taken in exactly when the seq is new. */
			if (res.added != (q.seq > m->max) || res.duplicate == res.added)
				__builtin_trap();
			if (res.added)
				m->max = q.seq;
		}
		/* What it adds: the totals model moves only for what is applied. */
		fuzz_expect(r, body, len, caller, res.added, &want, &n_want, &q);
		/* Added whole, or not at all. */
		uint64_t got = pending_sum(&r->f) - before;
		uint64_t got_results = pending_results(&r->f) - results_before;
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
	intake_deinit(&r->in);
	free(r);
	return 0;
}
