// SPDX-License-Identifier: MIT
// The agent's decisions (DESIGN §5), without sockets or a clock of its own.
//
// DESIGN: a request never waits: unknown keys answer NOEXIST and start a
// pull; stale routes are served while the refresh is in flight. Every dns
// (re)connect asks for every known key again, which also re-subscribes that
// connection to their pushes. That re-pull may cover max_routes +
// max_absent keys, so it is carried out in slices (acore_repull_step(), one
// per loop turn) over the keys as they were at the connect: each key is
// looked up again when its turn comes (one forgotten meanwhile is skipped),
// and one already pulled or answered on this connection (pull_gen, the
// connection's number) is not pulled again. App reports go into the
// balancer and into a coalesced buffer that is taken per route every
// [reporter] interval and soon after a host changes state; while
// lars-reporter is away it stays buffered (bounded). Each route's counts go
// out as one ReportStatusRequest with the next seq, and are held as sent
// until lars-reporter acknowledges them (report_acks.c); new counts go out
// only once every held message went out on the current connection, so the
// reporter sees each agent's messages in seq order.
//
// Unknown keys are an app's to choose, so they are bounded apart from the
// routes: pulls for them spend tokens of [agent] pull_rate, and a key without
// hosts (being pulled, absent at lars-dns, or without room) lives in the
// keyset ([agent] max_absent), never in the route table. A route enters the
// table only when lars-dns answers with hosts, so a flood of made-up keys
// cannot evict a route that has hosts. Whatever the agent forgets it
// unsubscribes at lars-dns, so the connection's subscriptions stay within
// max_routes + max_absent.
#include "agent_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "msg.h"
#include "tokens.h"
#include "xalloc.h"

/* Why a pull was queued: what acore_dns_unsent() undoes. */
enum {
	WHY_ROUTE,   /* a route's refresh, or a reconnect: the next one asks again */
	WHY_NEW,     /* a key first asked for by the request just handled */
	WHY_AGAIN,   /* a key without hosts asked for again after update_timeout */
	WHY_FORGOT,  /* an unsubscribe */
};

struct acore {
	acore_cfg_t cfg;
	uint64_t update_ms;
	enum acore_link link;
	route_table_t rt;
	keyset_t ks;          /* keys without hosts */
	tokens_t pull_tokens; /* pulls for keys not in the route table */
	report_buf_t rb;
	report_acks_t ra;     /* sent, not yet acknowledged */
	bool flush_soon;      /* a host changed state: report soon */
	struct {
		acore_dns_msg_t *v;
		size_t n, head, cap;
	} dns;                /* requests for lars-dns, oldest at head */
	struct {
		rb_route_t **v;   /* taken out of rb, being sent */
		size_t n, i;
		lars_HostCallResult *res;
		size_t res_cap;
		acore_report_t last; /* the one returned last: sent unless told otherwise */
		uint32_t ts;
		uint64_t now_ms;
	} out;
	uint32_t conn_gen;    /* lars-dns connections so far: the current one's number */
	struct {
		uint64_t *keys;   /* the keys at the connect: without hosts, then routes */
		size_t n, i;      /* keys[i..n) still to look at */
		size_t n_keys;    /* keys without hosts pulled so far */
		size_t n_routes;  /* routes pulled so far */
	} repull;             /* keys == NULL: none under way */
	uint64_t count[ACORE_N_COUNTERS];
	int64_t wall_ms;      /* unix ms, for slow start (acore_set_wall) */
	size_t n_panic;       /* routes in panic mode */
	u64map_t changed;     /* cfg.track_changes: keys changed, value (void *)1 */
};

/* The route of (@modid, @cmdid) changed: the shared-memory copy follows. */
static void mark_changed(acore_t *c, int32_t modid, int32_t cmdid)
{
	if (c->cfg.track_changes)
		u64map_put(&c->changed, u64map_key(modid, cmdid), (void *)1);
}

bool acore_next_changed(acore_t *c, int32_t *modidp, int32_t *cmdidp)
{
	size_t iter = 0;
	u64map_slot_t *s = u64map_next(&c->changed, &iter);
	if (!s)
		return false;
	uint64_t k = s->key;
	u64map_del(&c->changed, k);
	*modidp = (int32_t)(k >> 32);
	*cmdidp = (int32_t)(uint32_t)k;
	return true;
}

const lb_t *acore_peek_route(const acore_t *c, int32_t modid, int32_t cmdid)
{
	const rt_entry_t *e = rt_peek(&c->rt, modid, cmdid);
	return e ? &e->lb : NULL;
}

int64_t acore_wall(const acore_t *c)
{
	return c->wall_ms;
}

static void dns_push(acore_t *c, enum acore_dns_kind kind, int32_t modid, int32_t cmdid,
		     int why, uint64_t since_ms)
{
	if (c->dns.n == c->dns.cap) {
		c->dns.cap = c->dns.cap ? 2 * c->dns.cap : 16;
		c->dns.v = xreallocarray(c->dns.v, c->dns.cap, sizeof(*c->dns.v));
	}
	c->dns.v[c->dns.n++] = (acore_dns_msg_t){ .kind = kind, .modid = modid, .cmdid = cmdid,
						  ._why = why, ._since_ms = since_ms };
}

/* The agent forgot a key: lars-dns need not push it any more. */
/* A route in panic mode leaves the table: one fewer in panic. */
static void panic_forget(acore_t *c, const rt_entry_t *e)
{
	if (e->lb.in_panic)
		c->n_panic--;
}

/* Panic mode entered (+1) or left (-1) by the route of @e. */
static void panic_changed(acore_t *c, const rt_entry_t *e, int how)
{
	if (how)
		mark_changed(c, e->lb.modid, e->lb.cmdid);
	if (how > 0) {
		c->n_panic++;
		c->count[ACORE_C_PANIC]++;
		log_warn("agent: route %d/%d enters panic mode: under %d %% of its hosts "
			 "available, picking over all of them", e->lb.modid, e->lb.cmdid,
			 e->lb.panic_threshold);
	} else if (how < 0) {
		c->n_panic--;
		log_info("agent: route %d/%d leaves panic mode", e->lb.modid, e->lb.cmdid);
	}
}

void acore_set_wall(acore_t *c, int64_t unix_ms)
{
	c->wall_ms = unix_ms;
}

size_t acore_routes_in_panic(const acore_t *c)
{
	return c->n_panic;
}

static void on_rt_evict(rt_entry_t *e, void *user)
{
	acore_t *c = user;
	panic_forget(c, e);
	c->count[ACORE_C_EVICTED]++;
	mark_changed(c, e->lb.modid, e->lb.cmdid);
	log_debug("agent: evicting route %d/%d (least recently used)", e->lb.modid, e->lb.cmdid);
	dns_push(c, ACORE_UNSUBSCRIBE, e->lb.modid, e->lb.cmdid, WHY_FORGOT, 0);
}

static void on_ks_evict(ks_entry_t *k, void *user)
{
	acore_t *c = user;
	c->count[ACORE_C_ABSENT_EVICTED]++;
	dns_push(c, ACORE_UNSUBSCRIBE, k->modid, k->cmdid, WHY_FORGOT, 0);
}

/**
 * acore_new() - the agent's decisions, empty, with a full pull budget.
 * @cfg: limits and [loadbalance] (copied).
 * @now_ms: the clock.
 * @outp: set to the core on success; the caller frees it with acore_free().
 * Return: 0 (memory failures abort, as everywhere in the daemons).
 */
bool acore_set_lb(acore_t *c, const lb_cfg_t *lb)
{
	if (lb_cfg_equal(&c->cfg.lb, lb))
		return false;
	/* Every balancer and the route table point at c->cfg.lb. */
	c->cfg.lb = *lb;
	c->update_ms = (uint64_t)lb->update_timeout_s * 1000;
	size_t iter = 0; /* probe_num and the rest apply to every route */
	for (u64map_slot_t *s; (s = u64map_next(&c->rt.map, &iter));)
		mark_changed(c, ((rt_entry_t *)s->value)->lb.modid, ((rt_entry_t *)s->value)->lb.cmdid);
	c->rt.min_idle_ms = c->update_ms;
	return true;
}

int acore_new(const acore_cfg_t *cfg, uint64_t now_ms, acore_t **outp)
{
	acore_t *c = xcalloc(1, sizeof(*c));
	c->cfg = *cfg;
	c->update_ms = (uint64_t)cfg->lb.update_timeout_s * 1000;
	c->link = ACORE_LINK_CONNECTING;
	rt_init(&c->rt, cfg->max_routes, c->update_ms, &c->cfg.lb);
	c->rt.on_evict = on_rt_evict;
	c->rt.user = c;
	ks_init(&c->ks, cfg->max_absent);
	c->ks.on_evict = on_ks_evict;
	c->ks.user = c;
	tokens_init(&c->pull_tokens, cfg->pull_rate, cfg->pull_burst, now_ms);
	rb_init(&c->rb, cfg->report_max_hosts);
	ra_init(&c->ra, cfg->agent_id, cfg->report_max_hosts, cfg->ack_timeout_ms);
	*outp = c;
	return 0;
}

/** acore_free() - free @c and what it holds (NULL is fine). Return: NULL. */
acore_t *acore_free(acore_t *c)
{
	if (!c)
		return NULL;
	acore_reports_unsent(c);
	rt_deinit(&c->rt);
	ks_deinit(&c->ks);
	rb_deinit(&c->rb);
	ra_deinit(&c->ra);
	u64map_deinit(&c->changed);
	free(c->repull.keys);
	free(c->dns.v);
	free(c->out.res);
	free(c);
	return NULL;
}

/* The re-pull is over (done, or the connection it was for is gone). */
static void repull_end(acore_t *c)
{
	free(c->repull.keys);
	c->repull.keys = NULL;
	c->repull.n = c->repull.i = 0;
	c->repull.n_keys = c->repull.n_routes = 0;
}

/**
 * acore_set_link() - the lars-dns link as the loop sees it now; the loop
 * says so before each request (a failed attempt has no event of its own).
 * A link that is not up ends a re-pull under way: the next connection
 * starts its own from the beginning.
 */
void acore_set_link(acore_t *c, enum acore_link link)
{
	c->link = link;
	if (link != ACORE_LINK_UP && c->repull.keys) {
		log_info("agent: re-pull stopped after %zu of %zu keys: lars-dns connection "
			 "lost; it starts again at the next connect", c->repull.i, c->repull.n);
		repull_end(c);
	}
}

/*
 * The keys of @m, appended at @v[*np]. Reads the slot array only, in one
 * sequential pass (no entry is touched): 200,000 keys take about a
 * millisecond, the one part of a re-pull not done in slices.
 */
static void snapshot_keys(const u64map_t *m, uint64_t *v, size_t *np)
{
	size_t n = *np;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].value)
			v[n++] = m->slots[i].key;
	*np = n;
}

/**
 * acore_dns_connected() - a new lars-dns connection has no subscriptions:
 * every key without hosts (at most max_absent: those asked for before this
 * connection, and the subscriptions that tell when one appears) and every
 * route is to be pulled again. This only notes which keys there are (their
 * map keys, no entries touched); acore_repull_step() pulls them, a budget at
 * a time, and the pulls come out of acore_next_dns(). A re-pull still under
 * way starts again from the beginning.
 */
void acore_dns_connected(acore_t *c, uint64_t now_ms)
{
	(void)now_ms;
	repull_end(c);
	c->link = ACORE_LINK_UP;
	c->conn_gen++;
	if (c->conn_gen == 0)
		c->conn_gen = 1; /* 0 is "never pulled" */
	size_t n = ks_size(&c->ks) + rt_size(&c->rt);
	if (n == 0)
		return;
	c->repull.keys = xreallocarray(NULL, n, sizeof(*c->repull.keys));
	snapshot_keys(&c->ks.map, c->repull.keys, &c->repull.n);
	snapshot_keys(&c->rt.map, c->repull.keys, &c->repull.n);
	log_debug("agent: re-pulling %zu keys from lars-dns", n);
}

/* One key of the re-pull: pulled unless forgotten or pulled on this connection. */
static void repull_key(acore_t *c, uint64_t key, uint64_t now_ms)
{
	int32_t modid = (int32_t)(uint32_t)(key >> 32), cmdid = (int32_t)(uint32_t)key;
	rt_entry_t *e = rt_peek(&c->rt, modid, cmdid);
	if (e) {
		if (e->pull_gen == c->conn_gen)
			return;
		lb_pulling(&e->lb, now_ms);
		e->pull_gen = c->conn_gen;
		dns_push(c, ACORE_PULL, modid, cmdid, WHY_ROUTE, 0);
		c->repull.n_routes++;
		return;
	}
	ks_entry_t *k = ks_peek(&c->ks, modid, cmdid);
	if (!k || k->pull_gen == c->conn_gen)
		return; /* forgotten meanwhile (unsubscribed), or already pulled */
	k->since_ms = now_ms;
	k->pull_gen = c->conn_gen;
	dns_push(c, ACORE_PULL, modid, cmdid, WHY_ROUTE, 0);
	c->repull.n_keys++;
}

/**
 * acore_repull_step() - go on with the re-pull of acore_dns_connected():
 * look at the next @budget keys of it (at most @budget pulls come out of
 * acore_next_dns()). A key forgotten since the connect is skipped, and so is
 * one pulled or answered on this connection already (a request that asked
 * for it meanwhile). When the last key is looked at, says in the log how
 * many were asked for.
 * @now_ms: the clock (a route pulled is PULLING from now on).
 * Return: whether keys are left for another step.
 */
bool acore_repull_step(acore_t *c, uint64_t now_ms, size_t budget)
{
	if (!c->repull.keys)
		return false;
	size_t end = c->repull.n - c->repull.i > budget ? c->repull.i + budget : c->repull.n;
	while (c->repull.i < end)
		repull_key(c, c->repull.keys[c->repull.i++], now_ms);
	if (c->repull.i < c->repull.n)
		return true;
	if (c->repull.n_keys)
		log_info("agent: asked lars-dns for %zu keys without hosts after connecting",
			 c->repull.n_keys);
	if (c->repull.n_routes)
		log_info("agent: asked lars-dns for %zu routes after connecting",
			 c->repull.n_routes);
	repull_end(c);
	return false;
}

/** acore_repulling() - whether a re-pull has keys left for acore_repull_step(). */
bool acore_repulling(const acore_t *c)
{
	return c->repull.keys != NULL;
}

/* A pull for a key not in the route table, within pull_rate. */
static bool pull_unknown(acore_t *c, int32_t modid, int32_t cmdid, int why, uint64_t since_ms,
			 uint64_t now_ms)
{
	if (!tokens_take(&c->pull_tokens, now_ms)) {
		c->count[ACORE_C_PULLS_LIMITED]++;
		return false;
	}
	if (c->link == ACORE_LINK_UP)
		dns_push(c, ACORE_PULL, modid, cmdid, why, since_ms);
	return true;
}

/*
 * The balancer for a request, or NULL with *rcp saying why there is none:
 * PENDING while the first pull is out, ABSENT when lars-dns says there is
 * no such route; UNREACHABLE, LIMITED or NO_ROOM when the agent cannot know
 * or hold it.
 */
static rt_entry_t *route_for(acore_t *c, int32_t modid, int32_t cmdid, uint64_t now_ms,
			     int *rcp)
{
	rt_entry_t *e = rt_find(&c->rt, modid, cmdid, now_ms);
	if (e) {
		if (lb_needs_pull(&e->lb, now_ms)) {
			/* Served from what it has meanwhile. Not connected: the
			 * reconnect asks for every key anyway. */
			lb_pulling(&e->lb, now_ms);
			if (c->link == ACORE_LINK_UP) {
				dns_push(c, ACORE_PULL, modid, cmdid, WHY_ROUTE, 0);
				e->pull_gen = c->conn_gen;
			}
		}
		return e;
	}
	bool up = c->link == ACORE_LINK_UP;
	bool unreachable = c->link == ACORE_LINK_DOWN;
	ks_entry_t *k = ks_find(&c->ks, modid, cmdid);
	if (k) {
		/* Asked again after update_timeout: the answer was lost, or the
		 * route may exist by now (a push would have said so, unless
		 * lars-dns dropped the subscription at its cap). The state stays
		 * until the answer. */
		if (up && now_ms - k->since_ms >= c->update_ms &&
		    pull_unknown(c, modid, cmdid, WHY_AGAIN, k->since_ms, now_ms)) {
			k->since_ms = now_ms;
			k->pull_gen = c->conn_gen;
		}
		if (k->state == KS_ABSENT)
			*rcp = ACORE_E_ABSENT; /* what lars-dns said last */
		else if (k->state == KS_PENDING)
			*rcp = unreachable ? ACORE_E_UNREACHABLE : ACORE_E_PENDING;
		else
			*rcp = ACORE_E_NO_ROOM;
		return NULL;
	}
	/* Connecting (the agent just started): remembered as pending, pulled
	 * by acore_dns_connected(). Unreachable: the agent cannot know. */
	if (unreachable) {
		*rcp = ACORE_E_UNREACHABLE;
		return NULL;
	}
	if (!pull_unknown(c, modid, cmdid, WHY_NEW, 0, now_ms)) {
		*rcp = ACORE_E_LIMITED;
		return NULL;
	}
	k = ks_put(&c->ks, modid, cmdid, KS_PENDING, now_ms);
	if (up)
		k->pull_gen = c->conn_gen;
	*rcp = ACORE_E_PENDING;
	return NULL;
}

/**
 * acore_get_host() - a host for an app's call.
 * @hostp: set on ACORE_OK only.
 * Return: ACORE_OK, ACORE_E_OVERLOAD, or why there is no host (ACORE_E_PENDING:
 * a pull for it may now wait in acore_next_dns()).
 */
int acore_get_host(acore_t *c, int32_t modid, int32_t cmdid, uint64_t now_ms,
		   lars_HostInfo *hostp)
{
	int rc;
	rt_entry_t *e = route_for(c, modid, cmdid, now_ms, &rc);
	if (!e)
		return rc;
	bool was = e->lb.in_panic;
	lb_set_wall(&e->lb, c->wall_ms);
	int r = lb_get_host(&e->lb, now_ms, hostp);
	if (e->lb.in_panic != was)
		panic_changed(c, e, was ? -1 : 1);
	switch (r) {
	case LB_OK:
		return ACORE_OK;
	case LB_E_OVERLOAD:
		return ACORE_E_OVERLOAD;
	default:
		return ACORE_E_ABSENT; /* a route without hosts */
	}
}

/**
 * acore_get_route() - every host of a route, for the API's get_route.
 * @itp: set to a walk over the hosts (empty without a route), valid until
 *       the next call into @c.
 * Return: ACORE_OK, or why there is no route (as acore_get_host()).
 */
int acore_get_route(acore_t *c, int32_t modid, int32_t cmdid, uint64_t now_ms,
		    lb_iter_t *itp)
{
	int rc = ACORE_OK;
	rt_entry_t *e = route_for(c, modid, cmdid, now_ms, &rc);
	lb_iter_init(itp, e ? &e->lb : NULL);
	return rc;
}

/* A host changed state: its route is reported soon, counts or not. */
static void state_changed(acore_t *c, rt_entry_t *e, int32_t ip, int32_t port)
{
	c->count[ACORE_C_STATE_CHANGES]++;
	mark_changed(c, e->lb.modid, e->lb.cmdid);
	rb_add(&c->rb, e->lb.modid, e->lb.cmdid, ip, port, 0, 0);
	c->flush_soon = true;
	panic_changed(c, e, lb_check_panic(&e->lb));
}

/**
 * acore_report() - an app's call result (@ok: it succeeded) for a host:
 * into the balancer and the report buffer.
 * Return: ACORE_OK, or ACORE_E_UNKNOWN_HOST (not counted anywhere else).
 */
int acore_report(acore_t *c, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		 bool ok, uint64_t now_ms)
{
	return acore_report_call(c, modid, cmdid, ip, port, ok, 0, now_ms);
}

/**
 * acore_report_call() - acore_report() with the call's duration @latency_us
 * (0: not measured), added to the host's latency counts.
 * Return: as acore_report().
 */
int acore_report_call(acore_t *c, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		      bool ok, uint32_t latency_us, uint64_t now_ms)
{
	rt_entry_t *e = rt_peek(&c->rt, modid, cmdid);
	int changed = e ? lb_report(&e->lb, ip, port, ok, now_ms) : -ENOENT;
	if (changed < 0) {
		c->count[ACORE_C_UNKNOWN_HOST]++; /* not (any more) in the route */
		return ACORE_E_UNKNOWN_HOST;
	}
	if (rb_add_call(&c->rb, modid, cmdid, ip, port, ok, latency_us))
		c->count[ACORE_C_REPORT_DROPPED]++;
	if (changed == LB_CHANGED)
		state_changed(c, e, ip, port);
	return ACORE_OK;
}

int acore_report_batch(acore_t *c, const lars_ReportBatchEntry *b, uint64_t now_ms)
{
	rt_entry_t *e = rt_find(&c->rt, b->modid, b->cmdid, now_ms); /* in use: kept */
	if (!e || !lb_find(&e->lb, b->ip, b->port)) {
		c->count[ACORE_C_UNKNOWN_HOST]++;
		return ACORE_E_UNKNOWN_HOST;
	}
	/* Each call into the balancer, successes and errors interleaved evenly
	 * (their order within the batch is not known), at most
	 * ACORE_BATCH_CALLS_MAX of them; the counts upstream are whole. */
	uint64_t total = (uint64_t)b->succ + b->err, n = total;
	if (n > ACORE_BATCH_CALLS_MAX)
		n = ACORE_BATCH_CALLS_MAX;
	bool changed = false;
	for (uint64_t i = 0; i < n; i++) {
		bool ok = (i + 1) * b->succ / n > i * b->succ / n;
		changed |= lb_report(&e->lb, b->ip, b->port, ok, now_ms) == LB_CHANGED;
	}
	rb_counts_t add = { .ip = b->ip, .port = b->port, .succ = b->succ, .err = b->err,
			    .lat_count = b->lat_count, .lat_sum_us = b->lat_sum_us };
	for (pb_size_t i = 0; i < b->lat_buckets_count && i < MSG_LAT_BUCKETS; i++)
		add.lat_buckets[i] = b->lat_buckets[i];
	if (rb_add_counts(&c->rb, b->modid, b->cmdid, &add))
		c->count[ACORE_C_REPORT_DROPPED]++;
	if (changed)
		state_changed(c, e, b->ip, b->port);
	return ACORE_OK;
}

/**
 * acore_apply_route() - a route answer or push from lars-dns: @n hosts
 * (none: deleted there). Routes with hosts enter the table (evicting an idle
 * one at max_routes: its unsubscribe comes out of acore_next_dns()); keys
 * without hosts are remembered as absent; a key already forgotten changes
 * nothing. lars-dns answers only what this connection is subscribed to, so
 * the key counts as pulled on it (a re-pull under way skips it).
 */
void acore_apply_route(acore_t *c, int32_t modid, int32_t cmdid, const lars_HostInfo *hosts,
		       size_t n, uint64_t now_ms)
{
	acore_apply_route_policy(c, modid, cmdid, hosts, n, NULL, now_ms);
}

/* The route's hosts and policy into its balancer; panic mode re-evaluated. */
static void route_update(acore_t *c, rt_entry_t *e, const lars_HostInfo *hosts, size_t n,
			 const lars_RoutePolicy *policy, uint64_t now_ms)
{
	lb_update(&e->lb, hosts, n, now_ms);
	lb_set_policy(&e->lb, policy);
	mark_changed(c, e->lb.modid, e->lb.cmdid);
	panic_changed(c, e, lb_check_panic(&e->lb));
	e->pull_gen = c->conn_gen;
}

void acore_apply_route_policy(acore_t *c, int32_t modid, int32_t cmdid,
			      const lars_HostInfo *hosts, size_t n,
			      const lars_RoutePolicy *policy, uint64_t now_ms)
{
	rt_entry_t *e = rt_peek(&c->rt, modid, cmdid);
	ks_entry_t *k = e ? NULL : ks_peek(&c->ks, modid, cmdid);
	if (e && n == 0) {
		/* Deleted at lars-dns: remembered as absent, out of the table. */
		panic_forget(c, e);
		rt_remove(&c->rt, e);
		mark_changed(c, modid, cmdid);
		ks_put(&c->ks, modid, cmdid, KS_ABSENT, now_ms)->pull_gen = c->conn_gen;
	} else if (e) {
		route_update(c, e, hosts, n, policy, now_ms);
	} else if (k && n == 0) {
		k->state = KS_ABSENT;
		k->since_ms = now_ms;
		k->pull_gen = c->conn_gen;
	} else if (k) {
		/* Hosts: now it is a route. Only routes idle for update_timeout
		 * make room (LRU); otherwise it waits, answering NO_ROOM. */
		e = rt_create(&c->rt, modid, cmdid, now_ms);
		if (e) {
			ks_del(&c->ks, k);
			route_update(c, e, hosts, n, policy, now_ms);
		} else {
			if (k->state != KS_NO_ROOM)
				c->count[ACORE_C_NO_ROOM]++;
			k->state = KS_NO_ROOM;
			k->since_ms = now_ms;
			k->pull_gen = c->conn_gen;
		}
	} else {
		/* Neither: a key already forgotten (or a lars-dns that ignores
		 * unsubscribing). Nothing to do. */
		return;
	}
	c->count[ACORE_C_ROUTE_UPDATES]++;
}

static void on_tick_change(rt_entry_t *e, void *user)
{
	acore_t *c = user;
	/* Which host moved is not known here: report the route's hosts. */
	lb_iter_t it;
	lb_iter_init(&it, &e->lb);
	for (const lb_host_t *h; (h = lb_iter_next(&it));)
		rb_add(&c->rb, e->lb.modid, e->lb.cmdid, h->ip, h->port, 0, 0);
	c->count[ACORE_C_STATE_CHANGES]++;
	mark_changed(c, e->lb.modid, e->lb.cmdid);
	c->flush_soon = true;
	panic_changed(c, e, lb_check_panic(&e->lb));
}

/**
 * acore_tick() - window and overload expiry without reports, over at most
 * ACORE_TICK_BUDGET balancers (the next call goes on from there).
 */
void acore_tick(acore_t *c, uint64_t now_ms)
{
	rt_tick(&c->rt, now_ms, ACORE_TICK_BUDGET, on_tick_change, c);
}

/**
 * acore_next_dns() - the oldest request for lars-dns not yet taken.
 * @msgp: set to it; if it cannot be sent, tell acore_dns_unsent() before
 *        the next call into the core.
 * Return: whether there was one.
 */
bool acore_next_dns(acore_t *c, acore_dns_msg_t *msgp)
{
	if (c->dns.head == c->dns.n) {
		c->dns.head = c->dns.n = 0;
		return false;
	}
	*msgp = c->dns.v[c->dns.head++];
	return true;
}

/**
 * acore_dns_unsent() - @msg (from acore_next_dns()) could not be sent.
 * A key first asked for by the request just handled is forgotten, as if
 * never asked for; one asked for again may be pulled at its next request.
 * Everything else is asked for again anyway (refresh, reconnect). A key
 * whose pull was not sent does not count as pulled on this connection: a
 * re-pull that has not reached it yet still pulls it.
 * Return: ACORE_E_BUSY when the request's answer is that instead, else 0.
 */
int acore_dns_unsent(acore_t *c, const acore_dns_msg_t *msg)
{
	if (msg->kind != ACORE_PULL)
		return 0;
	rt_entry_t *e = rt_peek(&c->rt, msg->modid, msg->cmdid);
	if (e)
		e->pull_gen = 0;
	ks_entry_t *k = e ? NULL : ks_peek(&c->ks, msg->modid, msg->cmdid);
	if (!k)
		return 0;
	k->pull_gen = 0;
	if (msg->_why == WHY_NEW) {
		ks_del(&c->ks, k);
		return ACORE_E_BUSY;
	}
	if (msg->_why == WHY_AGAIN)
		k->since_ms = msg->_since_ms;
	return 0;
}

/** acore_take_flush_soon() - whether a state change wants the reports out soon (cleared). */
bool acore_take_flush_soon(acore_t *c)
{
	bool r = c->flush_soon;
	c->flush_soon = false;
	return r;
}

/**
 * acore_take_reports() - take every route's counts out of the buffer, to be
 * walked with acore_next_report(), stamped @ts; what comes in meanwhile is
 * buffered anew. Nothing is taken while held messages are still to go out
 * on this connection (acore_next_resend() first) or lars-reporter is away.
 * Return: the number of routes taken.
 */
size_t acore_take_reports(acore_t *c, uint32_t ts, uint64_t now_ms)
{
	acore_reports_unsent(c); /* a walk left unfinished */
	if (!ra_can_send_new(&c->ra))
		return 0;
	c->out.v = rb_take_all(&c->rb, &c->out.n);
	c->out.i = 0;
	c->out.ts = ts;
	c->out.now_ms = now_ms;
	return c->out.n;
}

/* The report acore_next_report() returned last went out: held until acked. */
static void report_sent(acore_t *c)
{
	const acore_report_t *r = &c->out.last;
	ra_sent(&c->ra, r->modid, r->cmdid, r->ts, r->delta, r->results, r->n, c->out.now_ms);
	rb_route_free(c->out.v[c->out.i - 1]);
	c->out.v[c->out.i - 1] = NULL;
}

/* One host's result as sent: the buffered counts, or in cumulative mode the
 * balancer's totals of its current window (the original's rsucc/rerr; the
 * buffered counts if the host left the route meanwhile), without latency. */
static lars_HostCallResult host_result(const acore_t *c, const rb_counts_t *n,
				       const lb_host_t *h)
{
	lars_HostCallResult res = { .ip = n->ip, .port = n->port, .succ = n->succ,
				    .err = n->err, .overload = h && h->overload };
	if (c->cfg.cumulative) {
		if (h) {
			res.succ = h->rsucc;
			res.err = h->rerr;
		}
		return res;
	}
	if (n->lat_count) {
		res.lat_count = n->lat_count;
		res.lat_sum_us = n->lat_sum_us;
		res.lat_buckets_count = MSG_LAT_BUCKETS;
		for (int i = 0; i < MSG_LAT_BUCKETS; i++)
			res.lat_buckets[i] = n->lat_buckets[i];
	}
	return res;
}

/**
 * acore_next_report() - the next taken route's counts with its seq, each
 * host marked overload as its balancer has it now. The previous one counts
 * as sent: it is held until acknowledged.
 * @rp: set to the route; its results are valid until the next call.
 * Return: false when every taken route was seen (the walk is over).
 */
bool acore_next_report(acore_t *c, acore_report_t *rp)
{
	if (c->out.i > 0)
		report_sent(c);
	if (c->out.i == c->out.n) {
		free(c->out.v);
		c->out.v = NULL;
		c->out.n = c->out.i = 0;
		return false;
	}
	rb_route_t *r = c->out.v[c->out.i++];
	if (r->hosts.n > c->out.res_cap) {
		c->out.res_cap = r->hosts.n;
		c->out.res = xreallocarray(c->out.res, c->out.res_cap, sizeof(*c->out.res));
	}
	rt_entry_t *e = rt_peek(&c->rt, r->modid, r->cmdid);
	size_t k = 0, iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&r->hosts, &iter));) {
		rb_counts_t *n = s->value;
		c->out.res[k++] = host_result(c, n, e ? lb_find(&e->lb, n->ip, n->port) : NULL);
	}
	c->out.last = (acore_report_t){ .modid = r->modid, .cmdid = r->cmdid,
					.results = c->out.res, .n = k,
					.agent_id = c->cfg.agent_id, .seq = ra_peek_seq(&c->ra),
					.ts = c->out.ts, .delta = !c->cfg.cumulative };
	*rp = c->out.last;
	return true;
}

/**
 * acore_reports_unsent() - the route last returned by acore_next_report()
 * and the rest of the walk were not sent: their counts go back into the
 * buffer, coalesced with what came meanwhile; no seq was used. The walk is over.
 */
void acore_reports_unsent(acore_t *c)
{
	for (size_t i = c->out.i ? c->out.i - 1 : 0; i < c->out.n; i++)
		if (c->out.v[i])
			rb_put_back(&c->rb, c->out.v[i]);
	free(c->out.v);
	c->out.v = NULL;
	c->out.n = c->out.i = 0;
}

/**
 * acore_reporter_connected() - a new lars-reporter connection: the held
 * messages are due on it first (acore_next_resend()), or count as stored
 * if the last connection did not ack (report_acks.c).
 */
void acore_reporter_connected(acore_t *c, uint64_t now_ms)
{
	acore_reports_unsent(c);
	ra_connected(&c->ra, now_ms);
}

/** acore_reporter_lost() - the lars-reporter connection is gone. */
void acore_reporter_lost(acore_t *c)
{
	acore_reports_unsent(c);
	ra_disconnected(&c->ra);
}

/**
 * acore_reporter_ack() - a ReportStatusAck from lars-reporter.
 * Return: RA_ACK_OK, or RA_ACK_OTHER_AGENT / RA_ACK_BEYOND (ignored).
 */
int acore_reporter_ack(acore_t *c, uint64_t agent_id, uint64_t seq, uint64_t now_ms)
{
	return ra_ack(&c->ra, agent_id, seq, now_ms);
}

/**
 * acore_reporter_tick() - the ack timeout (from a timer).
 * Return: RA_TICK_RESEND: held messages are due again (acore_next_resend());
 * RA_TICK_NOT_ACKING: the reporter does not ack (an original); else RA_TICK_NONE.
 */
enum ra_event acore_reporter_tick(acore_t *c, uint64_t now_ms)
{
	return ra_tick(&c->ra, now_ms);
}

/**
 * acore_next_resend() - the next held message due on this connection, as
 * first sent; acore_resent() once it went out. Return: whether there is one.
 */
bool acore_next_resend(acore_t *c, acore_report_t *rp)
{
	const ra_msg_t *m = ra_next_resend(&c->ra);
	if (!m)
		return false;
	*rp = (acore_report_t){ .modid = m->modid, .cmdid = m->cmdid, .results = m->res,
				.n = m->n, .agent_id = c->ra.agent_id, .seq = m->seq,
				.ts = m->ts, .delta = m->delta };
	return true;
}

/** acore_resent() - the message from acore_next_resend() went out. */
void acore_resent(acore_t *c, uint64_t now_ms)
{
	ra_resent(&c->ra, now_ms);
}

/**
 * acore_retcode() - the wire return code (DESIGN: 0 SUCC, 1 OVERLOAD,
 * 2 SYSTEM_ERROR, 3 NOEXIST) of a core answer: the one place they meet.
 */
int acore_retcode(int rc)
{
	switch (rc) {
	case ACORE_OK:
		return LARS_RET_SUCC;
	case ACORE_E_OVERLOAD:
		return LARS_RET_OVERLOAD;
	case ACORE_E_PENDING: /* as the original answers while the first pull is out */
	case ACORE_E_ABSENT:
		return LARS_RET_NOEXIST;
	default: /* unreachable, over pull_rate, no room, busy */
		return LARS_RET_SYSTEM_ERROR;
	}
}

/** acore_count() - how often counter @i happened so far. */
uint64_t acore_count(const acore_t *c, enum acore_counter i)
{
	switch (i) {
	case ACORE_C_REPORT_DROPPED: /* refused by the buffer, or dropped unacknowledged */
		return c->count[i] + c->ra.cnt.dropped_calls;
	case ACORE_C_REPORTS_DROPPED:
		return c->ra.cnt.dropped_calls;
	case ACORE_C_REPORTS_RESENT:
		return c->ra.cnt.resent;
	case ACORE_C_REPORTS_ACKED:
		return c->ra.cnt.acked;
	default:
		return c->count[i];
	}
}

/** acore_routes() - the route table (read-only: sizes, invariants). */
const route_table_t *acore_routes(const acore_t *c)
{
	return &c->rt;
}

/** acore_keyset() - the keys without hosts (read-only). */
const keyset_t *acore_keyset(const acore_t *c)
{
	return &c->ks;
}

/** acore_report_buf() - the counts waiting for lars-reporter (read-only). */
const report_buf_t *acore_report_buf(const acore_t *c)
{
	return &c->rb;
}

/** acore_report_acks() - the messages waiting for an ack (read-only). */
const report_acks_t *acore_report_acks(const acore_t *c)
{
	return &c->ra;
}

/* ---- introspection ---- */

void acore_count_hosts(const acore_t *c, size_t counts[3])
{
	counts[AS_HOST_IDLE] = counts[AS_HOST_OVERLOADED] = counts[AS_HOST_DRAINED] = 0;
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&c->rt.map, &iter));) {
		const lb_t *lb = &((const rt_entry_t *)s->value)->lb;
		counts[AS_HOST_DRAINED] += lb->n_drained;
		counts[AS_HOST_OVERLOADED] += lb->overload.n - (lb->n_drained - lb->n_idle_drained);
		counts[AS_HOST_IDLE] += lb->idle.n - lb->n_idle_drained;
	}
}

bool acore_set_route_version(acore_t *c, int32_t modid, int32_t cmdid, int64_t version)
{
	rt_entry_t *e = rt_peek(&c->rt, modid, cmdid);
	if (e) {
		if (e->lb.version != version)
			mark_changed(c, modid, cmdid);
		e->lb.version = version;
		return true;
	}
	/* Applied as absent (no hosts): held as a key, acknowledged too. */
	return ks_peek(&c->ks, modid, cmdid) != NULL;
}

/* One balancer as a RouteState and its HostStates. */
static int state_route(as_state_t *out, const lb_t *lb, uint64_t now_ms)
{
	size_t n = lb_n_hosts(lb);
	lars_RouteState r = {
		.modid = lb->modid, .cmdid = lb->cmdid, .version = lb->version,
		.age_ms = lb->has_data ? now_ms - lb->updated_ms : now_ms - lb->pulled_ms,
		.state = !lb->has_data ? AS_ROUTE_PULLING : n ? AS_ROUTE_READY : AS_ROUTE_ABSENT,
		.panic = lb->in_panic, .host_total = (uint32_t)n,
	};
	if (as_add_route(out, &r))
		return -ENOMEM;
	lb_iter_t it;
	lb_iter_init(&it, lb);
	for (const lb_host_t *h; (h = lb_iter_next(&it));) {
		lars_HostState hs = {
			.ip = h->ip, .port = h->port,
			.state = h->drain ? AS_HOST_DRAINED
				 : h->overload ? AS_HOST_OVERLOADED : AS_HOST_IDLE,
			.overloaded = h->overload, .weight = lb_weight(lb, h), .picks = h->picks,
			.vsucc = h->vsucc, .verr = h->verr, .rsucc = h->rsucc, .rerr = h->rerr,
			.contin_succ = h->contin_succ, .contin_err = h->contin_err,
			.window_age_ms = now_ms - (h->overload ? h->overload_since_ms
							       : h->idle_since_ms),
			.since_change_ms = now_ms - h->changed_ms, .ejections = h->eject_n,
		};
		snprintf(hs.rule, sizeof(hs.rule), "%s", h->rule);
		if (as_add_host(out, &hs))
			return -ENOMEM;
	}
	return 0;
}

/* A key without hosts: pulled (no answer yet), or absent at lars-dns. */
static int state_key(as_state_t *out, const ks_entry_t *k, uint64_t now_ms)
{
	lars_RouteState r = {
		.modid = k->modid, .cmdid = k->cmdid, .age_ms = now_ms - k->since_ms,
		.state = k->state == KS_ABSENT ? AS_ROUTE_ABSENT : AS_ROUTE_PULLING,
	};
	return as_add_route(out, &r);
}

typedef struct state_item {
	int32_t modid, cmdid;
	const lb_t *lb;       /* a route, or */
	const ks_entry_t *k;  /* a key without hosts */
} state_item_t;

static int state_item_cmp(const void *a, const void *b)
{
	const state_item_t *x = a, *y = b;
	if (x->modid != y->modid)
		return x->modid < y->modid ? -1 : 1;
	return x->cmdid < y->cmdid ? -1 : x->cmdid > y->cmdid;
}

int acore_state(const acore_t *c, bool all, int32_t modid, int32_t cmdid, uint64_t now_ms,
		as_state_t *out)
{
	if (!all) {
		const rt_entry_t *e = rt_peek(&c->rt, modid, cmdid);
		const ks_entry_t *k = e ? NULL : ks_peek(&c->ks, modid, cmdid);
		out->route_total = e || k;
		return e ? state_route(out, &e->lb, now_ms) : k ? state_key(out, k, now_ms) : 0;
	}
	size_t n = rt_size(&c->rt) + ks_size(&c->ks), i = 0;
	state_item_t *items = malloc((n ? n : 1) * sizeof(*items));
	if (!items)
		return -ENOMEM;
	size_t iter = 0;
	for (u64map_slot_t *s; i < n && (s = u64map_next(&c->rt.map, &iter));) {
		const rt_entry_t *e = s->value;
		items[i++] = (state_item_t){ e->lb.modid, e->lb.cmdid, &e->lb, NULL };
	}
	iter = 0;
	for (u64map_slot_t *s; i < n && (s = u64map_next(&c->ks.map, &iter));) {
		const ks_entry_t *k = s->value;
		items[i++] = (state_item_t){ k->modid, k->cmdid, NULL, k };
	}
	qsort(items, i, sizeof(*items), state_item_cmp);
	out->route_total = (uint32_t)i;
	int r = 0;
	for (size_t j = 0; j < i && r == 0; j++)
		r = items[j].lb ? state_route(out, items[j].lb, now_ms)
				: state_key(out, items[j].k, now_ms);
	free(items);
	return r;
}
