// SPDX-License-Identifier: MIT
// lars-dns: serving routes, subscriptions, refresh and push.
//
// DESIGN: the loop owns the current snapshot and the subscriptions; the
// decisions are in core/: refresh.c says when to read the database and what
// to do with the result, request.c answers from the snapshot, subs.c keeps
// who subscribed to what. This file carries them out: each refresh is one DB
// job (the worker reads the database, builds the next snapshot and the list
// of keys whose hosts changed); the loop swaps the pointer, frees the old
// snapshot and pushes each changed key to its subscribers. Requests are
// answered from memory and never wait for the database.
//
// Loop work stays small at any size: a route's frame is encoded once (by
// the worker for changed and big routes) and every answer and push of it
// is a reference to the same bytes; pushes go out in slices of at most
// DNS_PUSH_SLICE_NS per loop turn, so requests are answered in between.
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents.h"
#include "dispatch.h"
#include "leases.h"
#include "handles.h"
#include "log.h"
#include "msg.h"
#include "pg_listen.h"
#include "propagation.h"
#include "refresh.h"
#include "request.h"
#include "route_lease.h"
#include "route_load.h"
#include "pg_conn.h"
#include "snapshot.h"
#include "subs.h"
#include "tcp_server.h"
#include "xalloc.h"

#define DNS_CHANNEL "lars_route"
#define DNS_PUSH_SLICE_NS (2 * 1000 * 1000) /* loop time pushes may take per turn */

/* A connection: its subscriptions and, for propagation, who it is. */
typedef struct dns_peer {
	subs_peer_t subs; /* first: subs_collect() hands back subs.conn */
	da_conn_t agent;
	uint64_t conn_id;
	tcp_conn_t *conn;
	struct dns_peer *prev, *next; /* on dns_t.peers */
} dns_peer_t;

/* One write of the connections and propagation to PostgreSQL. */
typedef struct prop_job {
	pg_job_t base;
	dns_t *d;
	char instance[128];
	prop_agent_row_t *rows;
	size_t n, cap_rows;
	da_prop_t *props;
	size_t n_props;
	int ttl_s, keep_days;
} prop_job_t;

/* Changed keys waiting to be pushed, in the order their snapshots came. */
typedef struct push_batch {
	struct push_batch *next;
	snap_keys_t keys;
	size_t i; /* next key */
	uint64_t queued_ns;
} push_batch_t;

/* The key being pushed: its frames and the subscribers still to get it. */
typedef struct push_cur {
	sbuf_t *frame;
	sbuf_t *frame_v; /* with the route version, for agents that said AgentHello */
	int32_t modid, cmdid;
	int64_t version;
	uint64_t queued_ns; /* its batch's */
	tcp_conn_t **to; /* referenced */
	size_t n, i, cap;
} push_cur_t;

typedef struct dns_job {
	pg_job_t base;
	dns_t *d;
	const snapshot_t *old; /* read-only for the worker; the loop keeps it alive */
	enum refresh_job_kind kind;
	int change_log_days;
	bool versioned;        /* agents of ours connected: prefill their frames too */
	snapshot_t *result;
	snap_keys_t changed;
	bool was_full;
} dns_job_t;

struct dns {
	uv_loop_t *loop;
	service_t *svc;
	dns_cfg_t cfg;
	metrics_t *m;
	dns_ready_cb on_ready;
	void *ready_user;
	dispatch_t dispatch;
	pg_worker_t *db;
	pg_worker_t *lease_db;  /* lease requests and the expiry pass: pushes never wait behind them */
	pg_listen_t *listen;
	tcp_server_t *srv;
	uv_timer_t poll_timer;
	uv_timer_t reload_timer;
	uv_timer_t retry_timer; /* first load, with wait_for_db */
	refresh_t refresh;      /* the decisions */
	dns_job_t *job;         /* in flight: its done is still to come */
	snapshot_t *snap;
	subs_t subs;
	push_batch_t *push_head, *push_tail;
	push_cur_t push;
	size_t push_keys;       /* keys waiting in the batches */
	uv_idle_t push_idle;    /* runs a slice each loop turn while pushes wait */
	bool closing;
	handles_t timers;       /* poll, reload, retry, push_idle, agents_timer, agents_idle, lease */
	bool timers_closed;
	/* Propagation (issue 20.3). */
	dns_agents_t agents;
	dns_peer_t *peers;      /* every connection */
	size_t n_peers, n_hello;
	uint64_t next_conn_id;
	uv_timer_t agents_timer;
	uv_idle_t agents_idle;  /* copies the rows in slices, then submits */
	dns_peer_t *prop_cursor; /* the next peer to copy (NULL: done) */
	prop_job_t *prop_job;   /* being copied, or in flight */
	bool prop_submitted;
	bool prop_standby_told;
	char instance[128];     /* "host:port" in lars_dns_agent */
	metrics_histogram_t *push_ack;
	metrics_histogram_t *push_seconds; /* a changed key queued -> sent to all */
	bool db_down;           /* serving from memory (readiness) */
	/* Leases of self-registered hosts (issue 23): the expiry pass. */
	uv_timer_t lease_timer;
	pg_job_t *lease_job;    /* in flight */
	dns_leases_t *leases;   /* our agents' lease requests */
	metrics_counter_t *leases_expired;
	struct {
		metrics_counter_t *requests, *pushes, *push_frames, *refreshes,
			*full_reloads, *refresh_failures, *subscriptions,
			*subs_dropped, *unsubscribes, *routes, *hosts, *version;
	} mt;
};

static void dns_apply(dns_t *d, refresh_action_t a, dns_job_t *job);
static void dns_maybe_free(dns_t *d);

/* ---- connections and requests ---- */

static int64_t wall_s(void)
{
	return (int64_t)time(NULL);
}

static void dns_on_connect(tcp_conn_t *c, void *user)
{
	dns_t *d = user;
	dns_peer_t *p = xcalloc(1, sizeof(*p));
	subs_peer_init(&p->subs, c);
	da_conn_init(&p->agent, wall_s());
	p->conn_id = ++d->next_conn_id;
	p->conn = c;
	p->next = d->peers;
	if (d->peers)
		d->peers->prev = p;
	d->peers = p;
	d->n_peers++;
	tcp_conn_set_data(c, p);
}

static void dns_on_close(tcp_conn_t *c, void *user)
{
	dns_t *d = user;
	dns_peer_t *p = tcp_conn_data(c);
	if (!p)
		return;
	metrics_sub(d->mt.subscriptions, subs_peer_deinit(&d->subs, &p->subs));
	da_conn_deinit(&p->agent);
	if (p->prev)
		p->prev->next = p->next;
	else
		d->peers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	d->n_peers--;
	d->n_hello -= p->agent.hello;
	if (d->prop_cursor == p)
		d->prop_cursor = p->next; /* the rows being copied skip it */
	free(p);
	tcp_conn_set_data(c, NULL);
}

static subs_peer_t *subs_of(tcp_conn_t *c)
{
	dns_peer_t *p = tcp_conn_data(c);
	return &p->subs;
}

/* Count what a request did and log what operators look for. */
static void dns_count(dns_t *d, tcp_conn_t *c, const char *what, const request_out_t *o)
{
	if (!o->decoded) {
		log_debug("dns: bad %s from %s: %s", what, tcp_conn_peer(c), o->why);
		return;
	}
	if (o->subs & SUBS_FIRST_DROP)
		log_warn("dns: %s asks for more than [dns] max_subscriptions = %d routes; "
			 "dropping its least recently asked subscriptions",
			 tcp_conn_peer(c), d->cfg.max_subscriptions);
	if (o->subs & SUBS_DROPPED) {
		metrics_sub(d->mt.subscriptions, 1);
		metrics_inc(d->mt.subs_dropped);
	}
	if (o->subs & SUBS_ADDED)
		metrics_inc(d->mt.subscriptions);
	if (o->unsubscribed) {
		metrics_sub(d->mt.subscriptions, 1);
		metrics_inc(d->mt.unsubscribes);
	}
}

static int dns_on_get_route(peer_t *peer, void *user, int32_t msgid,
			    const uint8_t *body, size_t len)
{
	dns_t *d = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	request_out_t o;
	int r = request_get_route(&d->subs, subs_of(c), d->snap, body, len, &o);
	if (o.decoded)
		metrics_inc(d->mt.requests);
	dns_count(d, c, "GetRouteRequest", &o);
	if (r)
		return r;
	tcp_conn_set_active(c);
	r = tcp_conn_send_shared(c, o.frame);
	sbuf_unref(o.frame);
	return r == -ENOBUFS ? 0 : r; /* cut off already: not bad input */
}

/* The agent forgot a key (ours only; the original agent never sends it). */
static int dns_on_unsubscribe(peer_t *peer, void *user, int32_t msgid,
			      const uint8_t *body, size_t len)
{
	dns_t *d = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	request_out_t o;
	int r = request_unsubscribe(&d->subs, subs_of(c), body, len, &o);
	dns_count(d, c, "UnsubscribeRequest", &o);
	return r;
}

/* Our agent says who it is: from now on its frames carry route versions. */
static int dns_on_hello(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			size_t len)
{
	dns_t *d = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	dns_peer_t *p = tcp_conn_data(c);
	lars_AgentHello h = lars_AgentHello_init_zero;
	const char *why;
	int r = msg_decode(lars_AgentHello_fields, &h, body, len, &why);
	if (r) {
		log_debug("dns: bad AgentHello from %s: %s", tcp_conn_peer(c), why);
		return r;
	}
	if (!p->agent.hello)
		d->n_hello++;
	da_hello(&p->agent, &h);
	p->subs.versioned = true;
	tcp_conn_set_active(c);
	return 0;
}

/* Our agent applied a route: push -> acknowledgement measured. */
static int dns_on_route_ack(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			    size_t len)
{
	dns_t *d = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	dns_peer_t *p = tcp_conn_data(c);
	lars_RouteAck a = lars_RouteAck_init_zero;
	const char *why;
	int r = msg_decode(lars_RouteAck_fields, &a, body, len, &why);
	if (r) {
		log_debug("dns: bad RouteAck from %s: %s", tcp_conn_peer(c), why);
		return r;
	}
	uint64_t us;
	if (da_ack(&d->agents, &p->agent, a.modid, a.cmdid, a.version, uv_hrtime() / 1000,
		   wall_s(), &us))
		metrics_observe(d->push_ack, (double)us / 1e6);
	return 0;
}

/* Our agent registers, renews, drains or deregisters hosts (issue 23). */
static int dns_on_lease(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			size_t len)
{
	dns_t *d = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	dns_peer_t *p = tcp_conn_data(c);
	return dns_leases_request(d->leases, c, p->agent.hello, p->agent.agent_id,
				  p->agent.caller, body, len);
}

/* ---- pushing, in slices ---- */

/* Drop what the current key still had to send. */
static void push_cur_clear(push_cur_t *p)
{
	for (size_t j = p->i; j < p->n; j++)
		tcp_conn_unref(p->to[j]);
	p->frame = sbuf_unref(p->frame);
	p->frame_v = sbuf_unref(p->frame_v);
	p->n = p->i = 0;
}

/* Make the next waiting key current: its frame and its subscribers now.
 * Return: false when no key waits. */
static bool push_next_key(dns_t *d)
{
	push_cur_t *p = &d->push;
	for (push_batch_t *b; (b = d->push_head);) {
		if (b->i == b->keys.n) {
			d->push_head = b->next;
			if (!d->push_head)
				d->push_tail = NULL;
			snap_keys_deinit(&b->keys);
			free(b);
			continue;
		}
		int32_t modid = b->keys.v[b->i].modid, cmdid = b->keys.v[b->i].cmdid;
		b->i++;
		d->push_keys--;
		size_t n = subs_count(&d->subs, modid, cmdid);
		if (n == 0)
			continue;
		/* The newest snapshot's frame: a key changed twice goes out as it is now. */
		if (request_route_frame(d->snap, modid, cmdid, &p->frame)) {
			log_error("dns: route %d/%d cannot be encoded (too many hosts); "
				  "its %zu subscribers keep the previous list", modid, cmdid, n);
			continue;
		}
		if (d->n_hello && request_route_frame_v(d->snap, modid, cmdid, true, &p->frame_v))
			p->frame_v = NULL; /* as big as the other: cannot happen */
		const snap_route_t *rt = snapshot_find(d->snap, modid, cmdid);
		p->modid = modid;
		p->cmdid = cmdid;
		p->queued_ns = b->queued_ns;
		p->version = rt ? rt->version : d->snap->version;
		if (n > p->cap) {
			p->cap = n;
			p->to = xreallocarray(p->to, n, sizeof(*p->to));
		}
		/* Subscribers cut off meanwhile leave the list: keep references. */
		p->n = subs_collect(&d->subs, modid, cmdid, (void **)p->to, n);
		p->i = 0;
		for (size_t j = 0; j < p->n; j++)
			tcp_conn_ref(p->to[j]);
		metrics_inc(d->mt.pushes);
		return true;
	}
	return false;
}

/* Push until the waiting keys are done or the slice's time is up. */
static void dns_push_slice(dns_t *d)
{
	uint64_t end = uv_hrtime() + DNS_PUSH_SLICE_NS;
	push_cur_t *p = &d->push;
	for (unsigned k = 0;; k++) {
		if ((k & 63) == 63 && uv_hrtime() >= end)
			break;
		if (p->i == p->n) {
			if (p->frame)
				metrics_observe(d->push_seconds,
						(double)(uv_hrtime() - p->queued_ns) / 1e9);
			p->frame = sbuf_unref(p->frame);
			p->frame_v = sbuf_unref(p->frame_v);
			if (!push_next_key(d))
				break;
			continue;
		}
		tcp_conn_t *c = p->to[p->i++];
		if (tcp_conn_is_open(c)) {
			dns_peer_t *peer = tcp_conn_data(c);
			bool v = peer->subs.versioned && p->frame_v;
			if (tcp_conn_send_shared(c, v ? p->frame_v : p->frame) == 0) {
				metrics_inc(d->mt.push_frames);
				da_pushed(&d->agents, &peer->agent, p->modid, p->cmdid, p->version,
					  uv_hrtime() / 1000, wall_s());
			}
		}
		tcp_conn_unref(c);
	}
	if (p->i == p->n && !p->frame && !p->frame_v && !d->push_head)
		(void)uv_idle_stop(&d->push_idle);
}

static void on_push_idle(uv_idle_t *h)
{
	dns_push_slice(h->data);
}

/* Queue @changed (taken) for pushing and send the first slice now. */
static void dns_push(dns_t *d, snap_keys_t *changed)
{
	if (!changed->n)
		return;
	push_batch_t *b = xcalloc(1, sizeof(*b));
	b->keys = *changed;
	b->queued_ns = uv_hrtime();
	*changed = (snap_keys_t){ 0 };
	d->push_keys += b->keys.n;
	if (d->push_tail)
		d->push_tail->next = b;
	else
		d->push_head = b;
	d->push_tail = b;
	(void)uv_idle_start(&d->push_idle, on_push_idle);
	dns_push_slice(d);
}

/* Shutting down: what was not pushed yet is not. */
static void dns_push_drop(dns_t *d)
{
	push_cur_clear(&d->push);
	while (d->push_head) {
		push_batch_t *b = d->push_head;
		d->push_head = b->next;
		snap_keys_deinit(&b->keys);
		free(b);
	}
	d->push_tail = NULL;
	d->push_keys = 0;
	free(d->push.to);
	d->push.to = NULL;
	d->push.cap = 0;
}

static double push_backlog_gauge(void *arg)
{
	const dns_t *d = arg;
	return (double)(d->push_keys + (d->push.n - d->push.i > 0));
}

/* ---- leases (issue 23): hosts whose lease ran out removed ---- */

typedef struct lease_job {
	pg_job_t base;
	dns_t *d;
	size_t expired;
	bool standby;
} lease_job_t;

static int lease_job_work(PGconn *conn, pg_job_t *j)
{
	lease_job_t *job = container_of(j, lease_job_t, base);
	/* A standby's lars-dns leaves it to the primary's. */
	if (pg_in_recovery(conn, &job->standby))
		return -EIO;
	if (job->standby)
		return 0;
	return route_lease_expire(conn, "lars-dns (lease expired)", &job->expired);
}

static void lease_job_done(pg_job_t *j, int status)
{
	lease_job_t *job = container_of(j, lease_job_t, base);
	dns_t *d = job->d;
	d->lease_job = NULL;
	if (status == 0 && job->expired) {
		metrics_add(d->leases_expired, job->expired);
		log_info("dns: removed %zu self-registered host%s whose lease ran out", job->expired,
			 job->expired == 1 ? "" : "s");
	} else if (status && status != -ECANCELED) {
		log_debug("dns: lease expiry not run this time (the database failed)");
	}
	free(job);
	dns_maybe_free(d);
}

static void on_lease_timer(uv_timer_t *t)
{
	dns_t *d = t->data;
	if (d->closing || d->lease_job)
		return; /* the last pass still runs */
	lease_job_t *job = xcalloc(1, sizeof(*job));
	job->base.work = lease_job_work;
	job->base.done = lease_job_done;
	job->d = d;
	d->lease_job = &job->base;
	pg_worker_submit(d->lease_db, &job->base);
}

/* ---- propagation written to PostgreSQL (issue 20.3) ---- */

static int prop_job_work(PGconn *conn, pg_job_t *j)
{
	prop_job_t *job = container_of(j, prop_job_t, base);
	return prop_store(conn, job->instance, job->rows, job->n, job->props, job->n_props,
			  job->ttl_s, job->keep_days);
}

static void prop_job_free(prop_job_t *job)
{
	free(job->rows);
	free(job->props);
	free(job);
}

static void prop_job_done(pg_job_t *j, int status)
{
	prop_job_t *job = container_of(j, prop_job_t, base);
	dns_t *d = job->d;
	d->prop_job = NULL;
	d->prop_submitted = false;
	if (status == -EROFS && !d->prop_standby_told) {
		log_info("dns: the database is a hot standby: connected agents and route "
			 "propagation are not written (the primary's lars-dns write theirs)");
		d->prop_standby_told = true;
	} else if (status == 0) {
		d->prop_standby_told = false;
	} else if (status != -ECANCELED && status != -EROFS) {
		log_debug("dns: connected agents not written this time (the database failed)");
	}
	prop_job_free(job);
	dns_maybe_free(d);
}

/* Rows copied per loop turn: the loop's work per turn stays bounded at any
 * fleet size (a connection closed meanwhile is skipped, one opened is not
 * in this round). */
#define PROP_SLICE 1000

static void on_agents_idle(uv_idle_t *h)
{
	dns_t *d = h->data;
	prop_job_t *job = d->prop_job;
	uint64_t now = uv_hrtime() / 1000;
	for (int k = 0; k < PROP_SLICE && d->prop_cursor; k++) {
		dns_peer_t *p = d->prop_cursor;
		d->prop_cursor = p->next;
		if (job->n == job->cap_rows) {
			job->cap_rows = job->cap_rows ? job->cap_rows * 2 : 256;
			job->rows = xreallocarray(job->rows, job->cap_rows, sizeof(*job->rows));
		}
		prop_agent_row_t *r = &job->rows[job->n++];
		*r = (prop_agent_row_t){
			.conn_id = p->conn_id, .acks = p->agent.hello, .agent_id = p->agent.agent_id,
			.caller = p->agent.caller, .connected_unix = p->agent.connected_unix,
			.subscriptions = (uint32_t)subs_peer_count(&p->subs),
			.acked_version = p->agent.acked_version,
			.last_ack_unix = p->agent.last_ack_unix,
			.pending = (uint32_t)da_pending(&p->agent),
			.lag_ms = da_lag_ms(&p->agent, now),
		};
		snprintf(r->peer, sizeof(r->peer), "%s", tcp_conn_peer(p->conn));
		snprintf(r->host_name, sizeof(r->host_name), "%s", p->agent.host_name);
	}
	if (d->prop_cursor)
		return; /* more next turn */
	(void)uv_idle_stop(h);
	job->props = xreallocarray(NULL, DA_PROPS_MAX, sizeof(*job->props));
	job->n_props = da_take_dirty(&d->agents, job->props, DA_PROPS_MAX);
	job->ttl_s = d->cfg.agents_interval_ms * 3 / 1000 + 5;
	job->keep_days = d->cfg.change_log_days;
	job->base.read_only = false;
	d->prop_submitted = true;
	pg_worker_submit(d->db, &job->base);
}

static void on_agents_timer(uv_timer_t *t)
{
	dns_t *d = t->data;
	if (d->closing || d->prop_job || !d->srv)
		return; /* the last round still runs: this one is skipped */
	prop_job_t *job = xcalloc(1, sizeof(*job));
	job->base.work = prop_job_work;
	job->base.done = prop_job_done;
	job->d = d;
	snprintf(job->instance, sizeof(job->instance), "%s", d->instance);
	d->prop_job = job;
	d->prop_cursor = d->peers;
	if (uv_idle_start(&d->agents_idle, on_agents_idle)) {
		d->prop_job = NULL;
		d->prop_cursor = NULL;
		prop_job_free(job);
		return;
	}
	on_agents_idle(&d->agents_idle);
}

static double hello_gauge(void *arg)
{
	const dns_t *d = arg;
	return (double)d->n_hello;
}

/* ---- refreshing: database jobs and timers carry out the core's actions ---- */

static void set_snapshot_gauges(dns_t *d)
{
	/* Levels: set to the new values. */
	metrics_sub(d->mt.routes, metrics_get(d->mt.routes));
	metrics_add(d->mt.routes, d->snap->n_routes);
	metrics_sub(d->mt.hosts, metrics_get(d->mt.hosts));
	metrics_add(d->mt.hosts, d->snap->n_hosts);
	metrics_sub(d->mt.version, metrics_get(d->mt.version));
	metrics_add(d->mt.version, (uint64_t)d->snap->version);
}

static int dns_job_work(PGconn *conn, pg_job_t *j)
{
	dns_job_t *job = container_of(j, dns_job_t, base);
	int r;
	switch (job->kind) {
	case REFRESH_JOB_LOAD:
		job->was_full = true;
		r = route_load_full(conn, &job->result);
		if (r == 0)
			request_prefill(job->result, NULL, job->versioned);
		return r;
	case REFRESH_JOB_RELOAD:
		r = route_load_full(conn, &job->result);
		if (r)
			return r;
		snapshot_diff(job->old, job->result, NULL, &job->changed);
		request_prefill(job->result, &job->changed, job->versioned);
		job->was_full = true;
		/* Housekeeping rides on the periodic reload; a failure is harmless. */
		long long pruned;
		if (route_prune_changes(conn, job->change_log_days, &pruned) == 0 && pruned)
			log_info("dns: pruned %lld route_change rows older than %d days",
				 pruned, job->change_log_days);
		return 0;
	case REFRESH_JOB_CHANGES:
		r = route_load_changes(conn, job->old, &job->result, &job->changed,
				       &job->was_full);
		if (r == 0)
			request_prefill(job->result, &job->changed, job->versioned);
		return r;
	case REFRESH_JOB_NONE:
		break;
	}
	return -EINVAL;
}

static enum refresh_status dns_job_status(int status)
{
	switch (status) {
	case 0:
		return REFRESH_OK;
	case -ENOTCONN:
		return REFRESH_LOST;
	case -ECANCELED:
		return REFRESH_CANCELED;
	}
	return REFRESH_FAILED;
}

static void dns_job_free(dns_job_t *job)
{
	snapshot_free(job->result);
	snap_keys_deinit(&job->changed);
	free(job);
}

static void dns_job_done(pg_job_t *j, int status)
{
	dns_job_t *job = container_of(j, dns_job_t, base);
	dns_t *d = job->d;
	d->job = NULL;
	refresh_action_t a = refresh_done(&d->refresh, dns_job_status(status), uv_now(d->loop));
	dns_apply(d, a, job);
	dns_job_free(job);
	dns_maybe_free(d);
}

static void dns_submit(dns_t *d, enum refresh_job_kind kind)
{
	if (d->closing)
		return;
	dns_job_t *job = xcalloc(1, sizeof(*job));
	job->base.work = dns_job_work;
	job->base.done = dns_job_done;
	job->d = d;
	job->old = d->snap;
	job->kind = kind;
	job->change_log_days = d->cfg.change_log_days;
	job->versioned = d->n_hello > 0;
	d->job = job;
	pg_worker_submit(d->db, &job->base);
}

static void on_retry_first_load(uv_timer_t *t)
{
	dns_t *d = t->data;
	dns_apply(d, refresh_retry(&d->refresh, uv_now(d->loop)), NULL);
}

static void on_poll(uv_timer_t *t)
{
	dns_t *d = t->data;
	dns_apply(d, refresh_poll(&d->refresh, uv_now(d->loop)), NULL);
}

static void on_reload(uv_timer_t *t)
{
	dns_t *d = t->data;
	dns_apply(d, refresh_reload(&d->refresh, uv_now(d->loop)), NULL);
}

static void on_notify(void *user, bool reconnected)
{
	dns_t *d = user;
	if (reconnected)
		log_debug("dns: LISTEN (re)connected: checking for missed changes");
	dns_apply(d, refresh_notify(&d->refresh, uv_now(d->loop)), NULL);
}

static void dns_timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
{
	int r = uv_timer_start(t, cb, timeout, repeat);
	if (r)
		log_error("dns: cannot start a timer: %s", uv_err_name(r));
}

static void dns_start_serving(dns_t *d, const refresh_action_t *a)
{
	tcp_server_opts_t o = {
		.name = "dns", .ip = d->cfg.ip, .port = d->cfg.port,
		.reuse_port = d->cfg.reuse_port,
		.max_conns = (unsigned)d->cfg.max_conns,
		.max_frame = (uint32_t)d->cfg.max_frame,
		.max_write_queue = (size_t)d->cfg.output_hard_limit,
		.soft_write_queue = (size_t)d->cfg.output_soft_limit,
		.soft_write_queue_ms = (unsigned)d->cfg.output_soft_seconds * 1000,
		.max_output_total = (size_t)d->cfg.output_total_limit,
		.hold_while_queued = true,
		.max_conns_per_ip = (unsigned)d->cfg.max_conns_per_ip,
		.hello_timeout_ms = (unsigned)d->cfg.subscribe_timeout_s * 1000,
		.partial_frame_timeout_ms = (unsigned)d->cfg.partial_frame_timeout_s * 1000,
		.dispatch = &d->dispatch, .on_connect = dns_on_connect,
		.on_close = dns_on_close, .user = d, .metrics = d->m,
	};
	if (tcp_server_start(d->loop, &o, &d->srv)) {
		d->srv = NULL;
		service_fail(d->svc);
		return;
	}
	pg_listen_opts_t lo = { .name = "dns-listen", .conninfo = d->cfg.conninfo,
				.channel = DNS_CHANNEL, .cb = on_notify, .user = d,
				.metrics = d->m };
	if (pg_listen_start(d->loop, &lo, &d->listen))
		d->listen = NULL; /* the version poll still finds every change */
	dns_timer_start(&d->poll_timer, on_poll, a->poll_ms, a->poll_ms);
	if (a->reload_ms)
		dns_timer_start(&d->reload_timer, on_reload, a->reload_ms, a->reload_ms);
	char host[64] = "lars-dns";
	size_t hl = sizeof(host);
	(void)uv_os_gethostname(host, &hl);
	snprintf(d->instance, sizeof(d->instance), "%s:%d", host, tcp_server_port(d->srv));
	if (d->cfg.agents_interval_ms > 0)
		dns_timer_start(&d->agents_timer, on_agents_timer,
				(uint64_t)d->cfg.agents_interval_ms,
				(uint64_t)d->cfg.agents_interval_ms);
	if (d->cfg.lease_expiry_interval_ms > 0)
		dns_timer_start(&d->lease_timer, on_lease_timer,
				(uint64_t)d->cfg.lease_expiry_interval_ms,
				(uint64_t)d->cfg.lease_expiry_interval_ms);
	d->on_ready(d->ready_user, tcp_server_port(d->srv));
}

/* Serve a finished job's snapshot: swap, log, push. */
static void dns_serve(dns_t *d, const refresh_action_t *a, dns_job_t *job)
{
	metrics_inc(d->mt.refreshes);
	if (job->was_full)
		metrics_inc(d->mt.full_reloads);
	if (!job->result)
		return; /* the current snapshot is up to date */
	snapshot_t *old = d->snap;
	d->snap = job->result;
	job->result = NULL;
	set_snapshot_gauges(d);
	if (!(a->flags & REFRESH_PUSH) || job->changed.n)
		log_info("dns: routes at version %lld: %zu routes, %zu hosts, "
			 "%zu changed (%s, %llu ms)",
			 (long long)d->snap->version, d->snap->n_routes,
			 d->snap->n_hosts, job->changed.n,
			 job->was_full ? "full load" : "incremental",
			 (unsigned long long)a->took_ms);
	if (a->flags & REFRESH_PUSH)
		dns_push(d, &job->changed);
	snapshot_free(old);
}

/* Carry out the refresh core's actions, in their order. @job: the one that
 * ended, for SERVE. */
static void dns_apply(dns_t *d, refresh_action_t a, dns_job_t *job)
{
	if (a.flags & REFRESH_FAILURE)
		metrics_inc(d->mt.refresh_failures);
	if (a.flags & REFRESH_FAIL_SERVICE) {
		log_error("dns: cannot load the routes from PostgreSQL; not "
			  "starting (check [postgres] conninfo / PG* variables, "
			  "run `larsctl migrate`, or start with --wait-for-db)");
		service_fail(d->svc);
	}
	if (a.flags & REFRESH_RETRY)
		log_warn("dns: waiting for PostgreSQL to load the routes "
			 "(next try in %u ms)", a.delay_ms);
	if (a.flags & REFRESH_DB_DOWN)
		d->db_down = true;
	if (a.flags & REFRESH_DB_BACK)
		d->db_down = false;
	if (a.flags & REFRESH_DB_DOWN)
		log_warn("dns: cannot refresh routes; serving version %lld "
			 "from memory until PostgreSQL answers",
			 (long long)d->snap->version);
	if (a.flags & REFRESH_DB_BACK)
		log_info("dns: PostgreSQL answers again");
	if ((a.flags & REFRESH_SERVE) && job)
		dns_serve(d, &a, job);
	if (a.flags & REFRESH_START)
		dns_start_serving(d, &a);
	if (a.flags & REFRESH_SUBMIT)
		dns_submit(d, a.job);
	if ((a.flags & REFRESH_RETRY) && !d->closing)
		dns_timer_start(&d->retry_timer, on_retry_first_load, a.delay_ms, 0);
}

static void dns_metrics(dns_t *d)
{
	metrics_t *m = d->m;
	d->mt.requests = metrics_counter(m, "lars_dns_requests_total", "GetRouteRequests answered");
	d->mt.pushes = metrics_counter(m, "lars_dns_pushes_total", "Changed routes pushed to their subscribers");
	d->mt.push_frames = metrics_counter(m, "lars_dns_push_frames_total", "GetRouteResponse frames pushed");
	d->mt.refreshes = metrics_counter(m, "lars_dns_refreshes_total", "Successful route refreshes (version checks included)");
	d->mt.full_reloads = metrics_counter(m, "lars_dns_full_reloads_total", "Refreshes that read every route");
	d->mt.refresh_failures = metrics_counter(m, "lars_dns_refresh_failures_total", "Refreshes that failed (database unreachable)");
	d->leases_expired = metrics_counter(m, "lars_dns_leases_expired_total",
					    "Self-registered hosts removed when their lease ran out");
	d->mt.subscriptions = metrics_level(m, "lars_dns_subscriptions", "Subscriptions (connection, route) held");
	d->mt.subs_dropped = metrics_counter(m, "lars_dns_subscriptions_dropped_total", "Least recently asked subscriptions dropped at [dns] max_subscriptions");
	d->mt.unsubscribes = metrics_counter(m, "lars_dns_unsubscribes_total", "Subscriptions ended by an agent's UnsubscribeRequest");
	d->mt.routes = metrics_level(m, "lars_dns_routes", "Routes in the current snapshot");
	d->mt.hosts = metrics_level(m, "lars_dns_hosts", "Hosts in the current snapshot");
	d->mt.version = metrics_level(m, "lars_dns_route_version", "Route version of the current snapshot");
	metrics_gauge(m, "lars_dns_push_backlog", "Changed routes not yet pushed to all their subscribers",
		      push_backlog_gauge, d);
	static const double ack_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					     0.5, 1, 2.5, 5, 10 };
	d->push_ack = metrics_histogram(m, "lars_dns_push_ack_seconds",
		"A push to an agent until it acknowledged applying it (agents that sent AgentHello)",
		ack_bounds, sizeof(ack_bounds) / sizeof(ack_bounds[0]));
	d->push_seconds = metrics_histogram(m, "lars_dns_push_seconds",
		"A changed route from its snapshot being served until queued to all its subscribers",
		ack_bounds, sizeof(ack_bounds) / sizeof(ack_bounds[0]));
	metrics_gauge(m, "lars_dns_agents_acking", "Connections of agents that acknowledge routes (sent AgentHello)",
		      hello_gauge, d);
}

/**
 * dns_new() - start lars-dns: the database worker, then the first load (off
 * the loop); serving starts when it is in (see dns_ready_cb).
 * @loop: the event loop.
 * @svc: the service, failed when the first load fails without wait_for_db.
 * @cfg: copied.
 * @m: the metrics registry; lars_dns_* are registered in it.
 * @on_ready: called with @user and the bound port once serving.
 * @outp: set to the new server on success only.
 *
 * Return: 0, or the worker's negative errno with nothing left behind.
 * Afterwards the caller owns the server: dns_close() it.
 */
/* /readyz: routes loaded and the database answering. */
static bool dns_ready(void *arg, char *why, size_t cap)
{
	const dns_t *d = arg;
	if (!d->snap) {
		snprintf(why, cap, "the routes are not loaded yet");
		return false;
	}
	if (d->db_down) {
		snprintf(why, cap, "the database is unreachable: serving version %lld from memory",
			 (long long)d->snap->version);
		return false;
	}
	return true;
}

int dns_new(uv_loop_t *loop, service_t *svc, const dns_cfg_t *cfg, metrics_t *m,
	    dns_ready_cb on_ready, void *user, dns_t **outp)
{
	dns_t *d = xcalloc(1, sizeof(*d));
	d->loop = loop;
	d->svc = svc;
	d->cfg = *cfg;
	d->m = m;
	d->on_ready = on_ready;
	d->ready_user = user;
	dns_metrics(d);
	dispatch_init(&d->dispatch);
	dispatch_on(&d->dispatch, LARS_ID_GET_ROUTE_REQ, dns_on_get_route, d);
	dispatch_on(&d->dispatch, LARS_ID_UNSUBSCRIBE_REQ, dns_on_unsubscribe, d);
	dispatch_on(&d->dispatch, LARS_ID_AGENT_HELLO, dns_on_hello, d);
	dispatch_on(&d->dispatch, LARS_ID_ROUTE_ACK, dns_on_route_ack, d);
	dispatch_on(&d->dispatch, LARS_ID_LEASE_REQ, dns_on_lease, d);
	da_init(&d->agents);

	pg_worker_opts_t wo = { .name = "dns-db", .conninfo = cfg->conninfo,
				.n_threads = (unsigned)cfg->db_threads, .metrics = m };
	int r = pg_worker_start(loop, &wo, &d->db);
	if (r) {
		/* Nothing of ours is on the loop yet: free it here and now. */
		log_error("dns: cannot start the database worker: %s", strerror(-r));
		free(d);
		return r;
	}
	pg_worker_opts_t lo = { .name = "dns-lease-db", .conninfo = cfg->conninfo,
				.n_threads = (unsigned)cfg->lease_db_threads, .metrics = m };
	r = pg_worker_start(loop, &lo, &d->lease_db);
	if (r) {
		log_error("dns: cannot start the lease database worker: %s", strerror(-r));
		pg_worker_close(d->db);
		free(d);
		return r;
	}
	d->leases = dns_leases_new(d->lease_db, m);
	subs_init(&d->subs, (size_t)cfg->max_subscriptions);
	/* uv_timer_init() only fills in the handle; it cannot fail. */
	(void)uv_timer_init(loop, &d->poll_timer);
	(void)uv_timer_init(loop, &d->reload_timer);
	(void)uv_timer_init(loop, &d->retry_timer);
	(void)uv_idle_init(loop, &d->push_idle);
	(void)uv_timer_init(loop, &d->agents_timer);
	(void)uv_idle_init(loop, &d->agents_idle);
	(void)uv_timer_init(loop, &d->lease_timer);
	d->lease_timer.data = d;
	d->poll_timer.data = d->reload_timer.data = d->retry_timer.data = d;
	d->push_idle.data = d->agents_timer.data = d->agents_idle.data = d;
	handles_init(&d->timers);
	handles_add(&d->timers, &d->poll_timer);
	handles_add(&d->timers, &d->reload_timer);
	handles_add(&d->timers, &d->retry_timer);
	handles_add(&d->timers, &d->push_idle);
	handles_add(&d->timers, &d->agents_timer);
	handles_add(&d->timers, &d->agents_idle);
	handles_add(&d->timers, &d->lease_timer);
	refresh_cfg_t rc = {
		.poll_interval_ms = (uint32_t)cfg->poll_interval_ms,
		.reload_interval_ms = (uint64_t)cfg->reload_interval_s * 1000,
		.wait_for_db = cfg->wait_for_db,
		.seed = uv_hrtime(),
	};
	refresh_init(&d->refresh, &rc);
	dns_apply(d, refresh_start(&d->refresh, uv_now(loop)), NULL);
	service_set_ready_check(svc, dns_ready, d);
	*outp = d;
	return 0;
}

/* Freed once its timers are closed and no refresh job can call back. */
static void dns_maybe_free(dns_t *d)
{
	if (!d->closing || !d->timers_closed || d->job || d->prop_submitted || d->lease_job)
		return;
	if (d->prop_job) { /* copied only partly: never submitted */
		prop_job_free(d->prop_job);
		d->prop_job = NULL;
	}
	snapshot_free(d->snap);
	subs_deinit(&d->subs);
	da_deinit(&d->agents);
	free(d);
}

static void dns_on_timers_closed(handles_t *g)
{
	dns_t *d = container_of(g, dns_t, timers);
	d->timers_closed = true;
	dns_maybe_free(d);
}

/**
 * dns_close() - stop serving and close every handle (NULL is fine). @d is
 * freed once its timers are closed and no database job can call back.
 * @d: the server, or NULL.
 */
void dns_close(dns_t *d)
{
	if (!d || d->closing)
		return;
	d->closing = true;
	service_set_ready_check(d->svc, NULL, NULL);
	refresh_close(&d->refresh);
	/* Connections close first: their on_close empties the subscriptions;
	 * the references of pushes not yet sent go with them. */
	tcp_server_close(d->srv);
	dns_push_drop(d);
	pg_listen_close(d->listen);
	pg_worker_close(d->db); /* a refresh in flight ends with -ECANCELED */
	pg_worker_close(d->lease_db);
	dns_leases_free(d->leases);
	handles_close(&d->timers, dns_on_timers_closed);
}
