// SPDX-License-Identifier: MIT
// lars-dns: serving routes, subscriptions, refresh and push.
//
// DESIGN: the loop owns the current snapshot and the subscriptions. Every
// refresh (NOTIFY, the version poll, the periodic full reload) is one DB job
// at a time: the worker reads the database, builds the next snapshot and the
// list of keys whose hosts changed; the loop swaps the pointer, frees the old
// snapshot and pushes each changed key to its subscribers. Requests are
// answered from memory and never wait for the database.
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "dispatch.h"
#include "frame.h"
#include "log.h"
#include "lru.h"
#include "msg.h"
#include "pg_listen.h"
#include "route_load.h"
#include "snapshot.h"
#include "tcp_server.h"
#include "u64map.h"
#include "xalloc.h"

#define DNS_CHANNEL "lars_route"

typedef struct sub_list {
	tcp_conn_t **v;
	size_t n;
	size_t cap;
} sub_list_t;

/* One subscription of a connection, in its order of asking. */
typedef struct dns_sub dns_sub_t;
struct dns_sub {
	uint64_t key;
	lru_link_t lru; /* on dns_conn_t.lru */
};

/* Per connection: the keys it subscribed to. At max_subscriptions the least
 * recently asked one is dropped for a new one: an agent asks again for the
 * routes it uses (every update_timeout), so those stay. */
typedef struct dns_conn {
	u64map_t keys; /* value: dns_sub_t */
	lru_t lru;     /* head = most recently asked */
	bool warned;   /* dropping logged once per connection */
} dns_conn_t;

typedef struct refresh_job {
	pg_job_t base;
	dns_t *d;
	const snapshot_t *old; /* read-only for the worker; the loop keeps it alive */
	bool full;
	int change_log_days;
	snapshot_t *result;
	snap_keys_t changed;
	bool was_full;
	uint64_t started_ms;
} refresh_job_t;

struct dns {
	uv_loop_t *loop;
	service_t *svc;
	dns_cfg_t cfg;
	metrics_t *m;
	dns_ready_cb on_ready;
	void *ready_user;
	dispatch_t dispatch;
	pg_worker_t *db;
	pg_listen_t *listen;
	tcp_server_t *srv;
	uv_timer_t poll_timer;
	uv_timer_t reload_timer;
	uv_timer_t retry_timer; /* first load, with wait_for_db */
	backoff_t backoff;
	snapshot_t *snap;
	u64map_t subs; /* key -> sub_list_t */
	bool refreshing;
	bool again;      /* another refresh was asked for meanwhile */
	bool again_full;
	bool closing;
	bool db_failing; /* last refresh failed: logged once */
	bool retried;    /* one immediate retry after a lost connection */
	unsigned n_handles; /* timers not yet closed */
	struct {
		metrics_counter_t *requests, *pushes, *push_frames, *refreshes,
			*full_reloads, *refresh_failures, *subscriptions,
			*subs_dropped, *unsubscribes, *routes, *hosts, *version;
	} mt;
};

static void dns_refresh(dns_t *d, bool full);
static void dns_maybe_free(dns_t *d);

/* ---- subscriptions ---- */

/* Take @c off the key's subscriber list (the key's own entry stays). */
static void sub_list_remove(dns_t *d, tcp_conn_t *c, uint64_t key)
{
	sub_list_t *l = u64map_get(&d->subs, key);
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i] == c) {
			l->v[i] = l->v[--l->n];
			break;
		}
	}
	metrics_sub(d->mt.subscriptions, 1);
	if (l->n == 0) {
		u64map_del(&d->subs, key);
		free(l->v);
		free(l);
	}
}

static void sub_del(dns_t *d, tcp_conn_t *c, dns_conn_t *dc, dns_sub_t *sub)
{
	sub_list_remove(d, c, sub->key);
	lru_unlink(&dc->lru, &sub->lru);
	u64map_del(&dc->keys, sub->key);
	free(sub);
}

static void sub_add(dns_t *d, tcp_conn_t *c, int32_t modid, int32_t cmdid)
{
	dns_conn_t *dc = tcp_conn_data(c);
	uint64_t key = u64map_key(modid, cmdid);
	dns_sub_t *sub = u64map_get(&dc->keys, key);
	if (sub) {
		lru_touch(&dc->lru, &sub->lru); /* asked again: the last to go */
		return;
	}
	if (dc->keys.n >= (size_t)d->cfg.max_subscriptions && dc->lru.tail) {
		if (!dc->warned)
			log_warn("dns: %s asks for more than [dns] max_subscriptions = %d routes; "
				 "dropping its least recently asked subscriptions",
				 tcp_conn_peer(c), d->cfg.max_subscriptions);
		dc->warned = true;
		sub_del(d, c, dc, lru_entry(dc->lru.tail, dns_sub_t, lru));
		metrics_inc(d->mt.subs_dropped);
	}
	sub = xcalloc(1, sizeof(*sub));
	sub->key = key;
	lru_push_head(&dc->lru, &sub->lru);
	u64map_put(&dc->keys, key, sub);
	sub_list_t *l = u64map_get(&d->subs, key);
	if (!l) {
		l = xcalloc(1, sizeof(*l));
		u64map_put(&d->subs, key, l);
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = c;
	metrics_inc(d->mt.subscriptions);
}

static void sub_remove_conn(dns_t *d, tcp_conn_t *c, dns_conn_t *dc)
{
	for (lru_link_t *n = dc->lru.head, *next; n; n = next) {
		next = n->next;
		dns_sub_t *sub = lru_entry(n, dns_sub_t, lru);
		sub_list_remove(d, c, sub->key);
		free(sub);
	}
	dc->lru = LRU_INIT;
}

static void dns_on_connect(tcp_conn_t *c, void *user)
{
	tcp_conn_set_data(c, xcalloc(1, sizeof(dns_conn_t)));
}

static void dns_on_close(tcp_conn_t *c, void *user)
{
	dns_t *d = user;
	dns_conn_t *dc = tcp_conn_data(c);
	if (!dc)
		return;
	sub_remove_conn(d, c, dc);
	u64map_deinit(&dc->keys);
	free(dc);
	tcp_conn_set_data(c, NULL);
}

/* ---- answering ---- */

/* GetRouteResponse for a key from the current snapshot (no hosts if absent). */
static int encode_route(const dns_t *d, int32_t modid, int32_t cmdid,
			uint8_t **bufp, size_t *lenp)
{
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	resp.modid = modid;
	resp.cmdid = cmdid;
	const snap_route_t *r = snapshot_find(d->snap, modid, cmdid);
	msg_array_t arr = MSG_HOSTS(r ? snapshot_hosts(d->snap, r) : NULL,
				    r ? r->n_hosts : 0);
	msg_array_bind(&arr, &resp.host);
	int rc = msg_frame_alloc(LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse_fields,
				 &resp, FRAME_TCP_MAX_LIMIT, bufp, lenp);
	if (rc == -ENOMEM) {
		log_error("dns: out of memory encoding a route");
		abort();
	}
	return rc;
}

/* The (modid, cmdid) body of a GetRouteRequest or an UnsubscribeRequest. */
static int decode_key(tcp_conn_t *c, const char *what, const uint8_t *body, size_t len,
		      lars_GetRouteRequest *req)
{
	const char *why;
	*req = (lars_GetRouteRequest)lars_GetRouteRequest_init_zero;
	int r = msg_decode(lars_GetRouteRequest_fields, req, body, len, &why);
	if (r)
		log_debug("dns: bad %s from %s: %s", what, tcp_conn_peer(c), why);
	return r;
}

static int dns_on_get_route(peer_t *peer, void *user, int32_t msgid,
			    const uint8_t *body, size_t len)
{
	dns_t *d = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	lars_GetRouteRequest req;
	int r = decode_key(c, "GetRouteRequest", body, len, &req);
	if (r)
		return r;
	metrics_inc(d->mt.requests);
	/* Subscribe first: a change racing this answer is pushed after it. */
	sub_add(d, c, req.modid, req.cmdid);
	uint8_t *buf;
	size_t n;
	r = encode_route(d, req.modid, req.cmdid, &buf, &n);
	if (r)
		return r;
	r = tcp_conn_send_frame(c, buf, n);
	return r == -ENOBUFS ? 0 : r; /* cut off already: not bad input */
}

/* The agent forgot a key (ours only; the original agent never sends it). */
static int dns_on_unsubscribe(peer_t *peer, void *user, int32_t msgid,
			      const uint8_t *body, size_t len)
{
	dns_t *d = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	lars_GetRouteRequest req;
	int r = decode_key(c, "UnsubscribeRequest", body, len, &req);
	if (r)
		return r;
	dns_conn_t *dc = tcp_conn_data(c);
	dns_sub_t *sub = u64map_get(&dc->keys, u64map_key(req.modid, req.cmdid));
	if (sub) {
		sub_del(d, c, dc, sub);
		metrics_inc(d->mt.unsubscribes);
	}
	return 0;
}

/* ---- pushing ---- */

static void dns_push(dns_t *d, const snap_keys_t *changed)
{
	for (size_t i = 0; i < changed->n; i++) {
		int32_t modid = changed->v[i].modid, cmdid = changed->v[i].cmdid;
		sub_list_t *l = u64map_get(&d->subs, u64map_key(modid, cmdid));
		if (!l || l->n == 0)
			continue;
		uint8_t *frame;
		size_t len;
		if (encode_route(d, modid, cmdid, &frame, &len)) {
			log_error("dns: route %d/%d cannot be encoded (too many hosts); "
				  "its %zu subscribers keep the previous list", modid, cmdid, l->n);
			continue;
		}
		/* A subscriber cut off while we send leaves the list: walk a copy. */
		size_t n = l->n;
		tcp_conn_t **to = xreallocarray(NULL, n, sizeof(*to));
		for (size_t j = 0; j < n; j++)
			to[j] = tcp_conn_ref(l->v[j]);
		for (size_t j = 0; j < n; j++) {
			if (tcp_conn_is_open(to[j])) {
				uint8_t *copy = xmalloc(len);
				memcpy(copy, frame, len);
				if (tcp_conn_send_frame(to[j], copy, len) == 0)
					metrics_inc(d->mt.push_frames);
			}
			tcp_conn_unref(to[j]);
		}
		free(to);
		free(frame);
		metrics_inc(d->mt.pushes);
	}
}

/* ---- refreshing ---- */

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

static int refresh_work(PGconn *conn, pg_job_t *j)
{
	refresh_job_t *job = container_of(j, refresh_job_t, base);
	if (!job->old) {
		int r = route_load_full(conn, &job->result);
		job->was_full = true;
		return r;
	}
	if (job->full) {
		int r = route_load_full(conn, &job->result);
		if (r)
			return r;
		snapshot_diff(job->old, job->result, NULL, &job->changed);
		job->was_full = true;
		/* Housekeeping rides on the periodic reload; a failure is harmless. */
		long long pruned;
		if (route_prune_changes(conn, job->change_log_days, &pruned) == 0 && pruned)
			log_info("dns: pruned %lld route_change rows older than %d days",
				 pruned, job->change_log_days);
		return 0;
	}
	return route_load_changes(conn, job->old, &job->result, &job->changed, &job->was_full);
}

static void dns_start_serving(dns_t *d);

static void on_retry_first_load(uv_timer_t *t)
{
	dns_refresh(t->data, true);
}

static void refresh_done(pg_job_t *j, int status)
{
	refresh_job_t *job = container_of(j, refresh_job_t, base);
	dns_t *d = job->d;
	bool first = d->snap == NULL;

	d->refreshing = false;
	if (status == -ECANCELED || d->closing) {
		snapshot_free(job->result);
		snap_keys_deinit(&job->changed);
		free(job);
		dns_maybe_free(d);
		return;
	}
	if (status) {
		metrics_inc(d->mt.refresh_failures);
		if (first) {
			if (!d->cfg.wait_for_db) {
				log_error("dns: cannot load the routes from PostgreSQL; not "
					  "starting (check [postgres] conninfo / PG* variables, "
					  "run `larsctl migrate`, or start with --wait-for-db)");
				service_fail(d->svc);
			} else {
				uint32_t delay = backoff_next(&d->backoff);
				log_warn("dns: waiting for PostgreSQL to load the routes "
					 "(next try in %u ms)", delay);
				uv_timer_start(&d->retry_timer, on_retry_first_load, delay, 0);
			}
		} else if (!d->db_failing) {
			log_warn("dns: cannot refresh routes; serving version %lld "
				 "from memory until PostgreSQL answers",
				 (long long)d->snap->version);
		}
		d->db_failing = !first;
		bool lost = status == -ENOTCONN && !first;
		snapshot_free(job->result);
		snap_keys_deinit(&job->changed);
		free(job);
		/* A connection found dead (PostgreSQL restarted) is reopened by the
		 * next job: try again now rather than at the next poll. The
		 * worker's backoff keeps this from spinning while it is down. */
		if (!first && (d->again || (lost && !d->retried))) {
			d->retried = lost;
			d->again = false;
			dns_refresh(d, d->again_full);
		}
		return;
	}
	if (d->db_failing)
		log_info("dns: PostgreSQL answers again");
	d->db_failing = false;
	d->retried = false;
	metrics_inc(d->mt.refreshes);
	if (job->was_full)
		metrics_inc(d->mt.full_reloads);
	if (job->result) {
		snapshot_t *old = d->snap;
		d->snap = job->result;
		set_snapshot_gauges(d);
		if (first || job->changed.n)
			log_info("dns: routes at version %lld: %zu routes, %zu hosts, "
				 "%zu changed (%s, %llu ms)",
				 (long long)d->snap->version, d->snap->n_routes,
				 d->snap->n_hosts, job->changed.n,
				 job->was_full ? "full load" : "incremental",
				 (unsigned long long)(uv_now(d->loop) - job->started_ms));
		if (!first)
			dns_push(d, &job->changed);
		snapshot_free(old);
	}
	snap_keys_deinit(&job->changed);
	free(job);
	if (first)
		dns_start_serving(d);
	if (d->again && !d->closing) {
		d->again = false;
		dns_refresh(d, d->again_full);
	}
}

static void dns_refresh(dns_t *d, bool full)
{
	if (d->closing)
		return;
	if (d->refreshing) {
		/* One job at a time keeps the snapshot chain linear. */
		d->again = true;
		d->again_full |= full;
		return;
	}
	if (full)
		d->again_full = false;
	refresh_job_t *job = xcalloc(1, sizeof(*job));
	job->base.work = refresh_work;
	job->base.done = refresh_done;
	job->d = d;
	job->old = d->snap;
	job->full = full;
	job->change_log_days = d->cfg.change_log_days;
	job->started_ms = uv_now(d->loop);
	d->refreshing = true;
	pg_worker_submit(d->db, &job->base);
}

static void on_poll(uv_timer_t *t)
{
	dns_refresh(t->data, false);
}

static void on_reload(uv_timer_t *t)
{
	dns_refresh(t->data, true);
}

static void on_notify(void *user, bool reconnected)
{
	dns_t *d = user;
	if (reconnected)
		log_debug("dns: LISTEN (re)connected: checking for missed changes");
	dns_refresh(d, false);
}

static void dns_start_serving(dns_t *d)
{
	tcp_server_opts_t o = {
		.name = "dns", .ip = d->cfg.ip, .port = d->cfg.port,
		.reuse_port = d->cfg.reuse_port,
		.max_conns = (unsigned)d->cfg.max_conns,
		.max_frame = (uint32_t)d->cfg.max_frame,
		.max_write_queue = (size_t)d->cfg.max_write_queue,
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
	uv_timer_start(&d->poll_timer, on_poll, (uint64_t)d->cfg.poll_interval_ms,
		       (uint64_t)d->cfg.poll_interval_ms);
	uint64_t reload = (uint64_t)d->cfg.reload_interval_s * 1000;
	if (reload)
		uv_timer_start(&d->reload_timer, on_reload, reload, reload);
	d->on_ready(d->ready_user, tcp_server_port(d->srv));
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
	d->mt.subscriptions = metrics_level(m, "lars_dns_subscriptions", "Subscriptions (connection, route) held");
	d->mt.subs_dropped = metrics_counter(m, "lars_dns_subscriptions_dropped_total", "Least recently asked subscriptions dropped at [dns] max_subscriptions");
	d->mt.unsubscribes = metrics_counter(m, "lars_dns_unsubscribes_total", "Subscriptions ended by an agent's UnsubscribeRequest");
	d->mt.routes = metrics_level(m, "lars_dns_routes", "Routes in the current snapshot");
	d->mt.hosts = metrics_level(m, "lars_dns_hosts", "Hosts in the current snapshot");
	d->mt.version = metrics_level(m, "lars_dns_route_version", "Route version of the current snapshot");
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
	backoff_init(&d->backoff, 500, 10000, uv_hrtime());
	uv_timer_init(loop, &d->poll_timer);
	uv_timer_init(loop, &d->reload_timer);
	uv_timer_init(loop, &d->retry_timer);
	d->poll_timer.data = d->reload_timer.data = d->retry_timer.data = d;
	d->n_handles = 3;

	pg_worker_opts_t wo = { .name = "dns-db", .conninfo = cfg->conninfo,
				.n_threads = (unsigned)cfg->db_threads, .metrics = m };
	int r = pg_worker_start(loop, &wo, &d->db);
	if (r) {
		log_error("dns: cannot start the database worker: %s", strerror(-r));
		d->db = NULL;
		dns_close(d);
		return r;
	}
	dns_refresh(d, true);
	*outp = d;
	return 0;
}

/* Freed once its timers are closed and no refresh job can call back. */
static void dns_maybe_free(dns_t *d)
{
	if (!d->closing || d->n_handles || d->refreshing)
		return;
	snapshot_free(d->snap);
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&d->subs, &iter));) {
		sub_list_t *l = s->value;
		free(l->v);
		free(l);
	}
	u64map_deinit(&d->subs);
	free(d);
}

static void dns_on_timer_closed(uv_handle_t *h)
{
	dns_t *d = h->data;
	d->n_handles--;
	dns_maybe_free(d);
}

void dns_close(dns_t *d)
{
	if (!d || d->closing)
		return;
	d->closing = true;
	/* Connections close first: their on_close empties the subscriptions. */
	tcp_server_close(d->srv);
	pg_listen_close(d->listen);
	pg_worker_close(d->db); /* a refresh in flight ends with -ECANCELED */
	uv_close((uv_handle_t *)&d->poll_timer, dns_on_timer_closed);
	uv_close((uv_handle_t *)&d->reload_timer, dns_on_timer_closed);
	uv_close((uv_handle_t *)&d->retry_timer, dns_on_timer_closed);
}
