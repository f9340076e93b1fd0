// SPDX-License-Identifier: MIT
// The load balancer of one (modid, cmdid). Rules: DESIGN §5, the original
// Lars agent's algorithm, with window and overload expiry also from a timer.
#include "balancer.h"
#include "shm_pick.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "xalloc.h"

void lb_cfg_defaults(lb_cfg_t *c)
{
	*c = (lb_cfg_t){
		.probe_num = 10,
		.init_succ_cnt = 180,
		.init_err_cnt = 5,
		.err_rate = 0.1,
		.succ_rate = 0.95,
		.contin_err_limit = 15,
		.contin_succ_limit = 15,
		.window_err_rate = 0.7,
		.idle_timeout_s = 15,
		.overload_timeout_s = 15,
		.update_timeout_s = 15,
		.panic_threshold = 0,
		.max_overload_timeout_s = 300,
	};
}

static uint64_t host_key(int32_t ip, int32_t port)
{
	return (uint64_t)(uint32_t)ip << 32 | (uint32_t)port;
}

/* ---- lists ---- */

static void list_push_tail(lb_list_t *l, lb_host_t *h)
{
	h->next = NULL;
	h->prev = l->tail;
	if (l->tail)
		l->tail->next = h;
	else
		l->head = h;
	l->tail = h;
	l->n++;
}

static void list_remove(lb_list_t *l, lb_host_t *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		l->head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		l->tail = h->prev;
	h->prev = h->next = NULL;
	l->n--;
}

/* Round robin: take the head, move it to the tail. */
static lb_host_t *list_rotate(lb_list_t *l)
{
	lb_host_t *h = l->head;
	if (h && l->n > 1) {
		list_remove(l, h);
		list_push_tail(l, h);
	}
	return h;
}

/* ---- states ---- */

static void set_idle_counters(lb_t *lb, lb_host_t *h, uint64_t now_ms)
{
	h->vsucc = (uint32_t)lb->cfg->init_succ_cnt;
	h->verr = h->rsucc = h->rerr = 0;
	h->contin_succ = h->contin_err = 0;
	h->idle_since_ms = now_ms;
}

/* One log line per state change: route, host, old -> new, and the rule. */
static void log_change(const lb_t *lb, lb_host_t *h, uint64_t now_ms, bool overload,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void log_change(const lb_t *lb, lb_host_t *h, uint64_t now_ms, bool overload,
		       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->rule, sizeof(h->rule), fmt, ap);
	va_end(ap);
	h->changed_ms = now_ms;
	char ip[16];
	msg_ip_to_str(h->ip, ip);
	if (overload)
		log_warn("route %d/%d host %s:%d idle -> overloaded: %s", lb->modid, lb->cmdid,
			 ip, h->port, h->rule);
	else
		log_info("route %d/%d host %s:%d overloaded -> idle: %s", lb->modid, lb->cmdid,
			 ip, h->port, h->rule);
}

static void to_idle(lb_t *lb, lb_host_t *h, uint64_t now_ms)
{
	list_remove(&lb->overload, h);
	h->overload = false;
	set_idle_counters(lb, h, now_ms);
	h->returned_ms = now_ms ? now_ms : 1;
	if (h->drain)
		lb->n_idle_drained++;
	list_push_tail(&lb->idle, h);
}

/*
 * The ejection limit (issue 19.6): one more overloaded host leaves at most
 * max_ejection_pct of the route's hosts overloaded; the first one always may.
 */
static bool may_eject(const lb_t *lb)
{
	if (lb->overload.n == 0)
		return true;
	return (uint64_t)(lb->overload.n + 1) * 100 <=
	       (uint64_t)lb->max_ejection_pct * lb_n_hosts(lb);
}

/*
 * The backoff (issue 19.7): ejected again within overload_timeout x 4 of its
 * last return, the n-th consecutive ejection lasts overload_timeout x n, at
 * most max_overload_timeout (never less than overload_timeout).
 */
static void set_backoff(lb_t *lb, lb_host_t *h, uint64_t now_ms)
{
	uint64_t base = (uint64_t)lb->cfg->overload_timeout_s * 1000;
	if (h->returned_ms && now_ms - h->returned_ms < base * 4)
		h->eject_n++;
	else
		h->eject_n = 1;
	uint64_t d = base * h->eject_n;
	uint64_t cap = (uint64_t)lb->cfg->max_overload_timeout_s * 1000;
	if (d > cap)
		d = cap > base ? cap : base;
	h->overload_ms = d;
}

static void to_overload(lb_t *lb, lb_host_t *h, uint64_t now_ms)
{
	list_remove(&lb->idle, h);
	if (h->drain)
		lb->n_idle_drained--;
	set_backoff(lb, h, now_ms);
	h->overload = true;
	h->vsucc = 0;
	h->verr = (uint32_t)lb->cfg->init_err_cnt;
	h->rsucc = h->rerr = 0;
	h->contin_succ = h->contin_err = 0;
	h->overload_since_ms = now_ms;
	list_push_tail(&lb->overload, h);
}

/* The timed rules; they also run when no report arrives. */
static int check_windows(lb_t *lb, lb_host_t *h, uint64_t now_ms)
{
	if (!h->overload) {
		if (now_ms - h->idle_since_ms < (uint64_t)lb->cfg->idle_timeout_s * 1000)
			return LB_NO_CHANGE;
		uint32_t total = h->rsucc + h->rerr;
		if (total && (double)h->rerr / total >= lb->cfg->window_err_rate && may_eject(lb)) {
			log_change(lb, h, now_ms, true, "window err rate %.2f >= %.2f",
				   (double)h->rerr / total, lb->cfg->window_err_rate);
			to_overload(lb, h, now_ms);
			return LB_CHANGED;
		}
		if (!(total && (double)h->rerr / total >= lb->cfg->window_err_rate))
			h->eject_n = 0; /* a full window idle: the backoff starts over */
		set_idle_counters(lb, h, now_ms); /* a new window */
		return LB_NO_CHANGE;
	}
	if (now_ms - h->overload_since_ms >= h->overload_ms) {
		log_change(lb, h, now_ms, false, "overload timeout %llu s",
			   (unsigned long long)(h->overload_ms / 1000));
		to_idle(lb, h, now_ms);
		return LB_CHANGED;
	}
	return LB_NO_CHANGE;
}

/* ---- the API ---- */

bool lb_cfg_equal(const lb_cfg_t *a, const lb_cfg_t *b)
{
	return a->probe_num == b->probe_num && a->init_succ_cnt == b->init_succ_cnt &&
	       a->init_err_cnt == b->init_err_cnt && a->err_rate == b->err_rate &&
	       a->succ_rate == b->succ_rate && a->contin_err_limit == b->contin_err_limit &&
	       a->contin_succ_limit == b->contin_succ_limit &&
	       a->window_err_rate == b->window_err_rate && a->idle_timeout_s == b->idle_timeout_s &&
	       a->overload_timeout_s == b->overload_timeout_s &&
	       a->update_timeout_s == b->update_timeout_s &&
	       a->panic_threshold == b->panic_threshold &&
	       a->max_overload_timeout_s == b->max_overload_timeout_s;
}

void lb_init(lb_t *lb, int32_t modid, int32_t cmdid, const lb_cfg_t *cfg)
{
	*lb = (lb_t){ .modid = modid, .cmdid = cmdid, .status = LB_PULLING, .cfg = cfg };
	lb_set_policy(lb, NULL);
}

/* Whether picks need weights: weights differ, or slow start may ramp a host. */
static void set_weighted(lb_t *lb)
{
	uint32_t w0 = 0;
	bool weighted = false;
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&lb->hosts, &iter));) {
		const lb_host_t *h = s->value;
		if (lb->slow_start_s && h->joined_at)
			weighted = true;
		if (w0 && h->weight != w0)
			weighted = true;
		w0 = h->weight;
	}
	lb->weighted = weighted;
}

void lb_set_policy(lb_t *lb, const lars_RoutePolicy *p)
{
	lb->panic_threshold = p && p->has_panic_threshold ? (int)p->panic_threshold
							  : lb->cfg->panic_threshold;
	if (lb->panic_threshold > 100)
		lb->panic_threshold = 100;
	lb->max_ejection_pct = p && p->max_ejection_percent && p->max_ejection_percent < 100
				       ? p->max_ejection_percent
				       : 100;
	lb->slow_start_s = p ? p->slow_start_s : 0;
	set_weighted(lb);
}

uint32_t lb_weight(const lb_t *lb, const lb_host_t *h)
{
	/* The same ramp as the clients reading the shared memory (shm_pick.c). */
	return shm_slow_start_weight(h->weight, lb->slow_start_s, h->joined_at, lb->wall_ms);
}

/* Whether the share of idle, non-drained hosts is under the panic threshold. */
static bool panic_now(const lb_t *lb)
{
	size_t n = lb_n_hosts(lb);
	if (!lb->panic_threshold || !n)
		return false;
	size_t avail = lb->idle.n - lb->n_idle_drained;
	return (uint64_t)avail * 100 < (uint64_t)lb->panic_threshold * n;
}

int lb_check_panic(lb_t *lb)
{
	bool p = panic_now(lb);
	if (p == lb->in_panic)
		return 0;
	lb->in_panic = p;
	return p ? 1 : -1;
}

void lb_deinit(lb_t *lb)
{
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&lb->hosts, &iter));)
		free(s->value);
	u64map_deinit(&lb->hosts);
	lb->idle = lb->overload = (lb_list_t){ 0 };
}

lb_host_t *lb_find(const lb_t *lb, int32_t ip, int32_t port)
{
	return u64map_get(&lb->hosts, host_key(ip, port));
}

/**
 * lb_iter_init() - start a walk over @lb's hosts: idle first, then overloaded.
 * @it: the walk, valid until @lb changes.
 * @lb: the balancer, or NULL for an empty walk.
 */
void lb_iter_init(lb_iter_t *it, const lb_t *lb)
{
	*it = lb ? (lb_iter_t){ lb->idle.head, lb->overload.head, lb_n_hosts(lb) }
		 : (lb_iter_t){ NULL, NULL, 0 };
	if (!it->next) {
		it->next = it->overload;
		it->overload = NULL;
	}
}

/**
 * lb_iter_next() - the next host of the walk.
 * Return: the host (owned by the balancer), or NULL when every host was seen.
 */
const lb_host_t *lb_iter_next(lb_iter_t *it)
{
	const lb_host_t *h = it->next;
	if (!h)
		return NULL;
	it->next = h->next;
	if (!it->next) {
		it->next = it->overload;
		it->overload = NULL;
	}
	return h;
}

/* The next non-drained host of @l, rotated to the tail; NULL if none. */
static lb_host_t *list_rotate_live(lb_list_t *l)
{
	for (size_t i = 0; i < l->n; i++) {
		lb_host_t *h = list_rotate(l);
		if (!h->drain)
			return h;
	}
	return NULL;
}

/* One smooth weighted round robin step over @l's non-drained hosts. */
static void swrr_scan(const lb_t *lb, const lb_list_t *l, lb_host_t **best, int64_t *total)
{
	for (lb_host_t *h = l->head; h; h = h->next) {
		if (h->drain)
			continue;
		uint32_t w = lb_weight(lb, h);
		h->cur += w;
		*total += w;
		if (!*best || h->cur > (*best)->cur)
			*best = h;
	}
}

/* A pick over the idle hosts: round robin as the original, or by weight. */
static lb_host_t *pick_idle(lb_t *lb)
{
	if (!lb->weighted)
		return lb->n_idle_drained ? list_rotate_live(&lb->idle) : list_rotate(&lb->idle);
	lb_host_t *best = NULL;
	int64_t total = 0;
	swrr_scan(lb, &lb->idle, &best, &total);
	if (best)
		best->cur -= total;
	return best;
}

/* Panic mode: by weight over every non-drained host, overloaded or not. */
static lb_host_t *pick_panic(lb_t *lb)
{
	lb_host_t *best = NULL;
	int64_t total = 0;
	swrr_scan(lb, &lb->idle, &best, &total);
	swrr_scan(lb, &lb->overload, &best, &total);
	if (best)
		best->cur -= total;
	return best;
}

/**
 * lb_get_host() - pick a host, as the original agent does (DESIGN §5), by
 * weight, never a drained one, and in panic mode over every host (issue 19).
 * @lb: the balancer.
 * @now_ms: the clock (unused by the pick itself; windows run on reports).
 * @out: set to the host on LB_OK, untouched otherwise.
 * Return: LB_OK, LB_E_OVERLOAD or LB_E_NOEXIST.
 */
int lb_get_host(lb_t *lb, uint64_t now_ms, lars_HostInfo *out)
{
	lb_host_t *h;

	(void)now_ms;
	if (lb_n_hosts(lb) == 0)
		return LB_E_NOEXIST; /* still pulling, or the route is absent */
	if (lb->panic_threshold) {
		lb_check_panic(lb);
		if (lb->in_panic) {
			h = pick_panic(lb);
			if (!h)
				return LB_E_OVERLOAD; /* every host drained */
			goto found;
		}
	}
	size_t live_overload = lb->overload.n;
	if (lb->n_drained > lb->n_idle_drained)
		live_overload -= lb->n_drained - lb->n_idle_drained;
	if (lb->idle.n == lb->n_idle_drained) {
		if (live_overload && lb->access_cnt >= (uint32_t)lb->cfg->probe_num) {
			lb->access_cnt = 0;
			h = list_rotate_live(&lb->overload); /* a probe */
		} else {
			lb->access_cnt++;
			return LB_E_OVERLOAD;
		}
	} else if (live_overload == 0) {
		h = pick_idle(lb);
	} else if (lb->access_cnt >= (uint32_t)lb->cfg->probe_num) {
		lb->access_cnt = 0;
		h = list_rotate_live(&lb->overload);
	} else {
		lb->access_cnt++;
		h = pick_idle(lb);
	}
found:
	h->picks++;
	out->ip = h->ip;
	out->port = h->port;
	return LB_OK;
}

bool lb_needs_pull(const lb_t *lb, uint64_t now_ms)
{
	uint64_t timeout = (uint64_t)lb->cfg->update_timeout_s * 1000;
	if (lb->status == LB_PULLING)
		return now_ms - lb->pulled_ms >= timeout; /* the answer got lost */
	return now_ms - lb->updated_ms >= timeout;
}

void lb_pulling(lb_t *lb, uint64_t now_ms)
{
	lb->status = LB_PULLING;
	lb->pulled_ms = now_ms;
}

void lb_update(lb_t *lb, const lars_HostInfo *hosts, size_t n, uint64_t now_ms)
{
	u64map_t fresh = U64MAP_INIT;

	/* Who stays and who is new. */
	for (size_t i = 0; i < n; i++) {
		uint64_t k = host_key(hosts[i].ip, hosts[i].port);
		if (u64map_get(&fresh, k))
			continue; /* listed twice */
		lb_host_t *h = u64map_del(&lb->hosts, k);
		if (!h) {
			h = xcalloc(1, sizeof(*h));
			h->ip = hosts[i].ip;
			h->port = hosts[i].port;
			h->changed_ms = now_ms;
			set_idle_counters(lb, h, now_ms);
			list_push_tail(&lb->idle, h);
		}
		uint32_t w = hosts[i].weight;
		h->weight = w == 0 ? 100 : w > 1000 ? 1000 : w;
		h->drain = hosts[i].drain;
		h->joined_at = hosts[i].joined_at;
		u64map_put(&fresh, k, h);
	}
	/* What is left in the old map is gone from the route. */
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&lb->hosts, &iter));) {
		lb_host_t *h = s->value;
		list_remove(h->overload ? &lb->overload : &lb->idle, h);
		free(h);
	}
	u64map_deinit(&lb->hosts);
	lb->hosts = fresh;
	lb->n_drained = lb->n_idle_drained = 0;
	iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&lb->hosts, &iter));) {
		const lb_host_t *h = s->value;
		lb->n_drained += h->drain;
		lb->n_idle_drained += h->drain && !h->overload;
	}
	set_weighted(lb);
	lb->status = LB_NEW;
	lb->has_data = true;
	lb->updated_ms = now_ms;
}

int lb_report(lb_t *lb, int32_t ip, int32_t port, bool ok, uint64_t now_ms)
{
	lb_host_t *h = lb_find(lb, ip, port);
	if (!h)
		return -ENOENT;
	if (ok) {
		h->vsucc++;
		h->rsucc++;
		h->contin_succ++;
		h->contin_err = 0;
	} else {
		h->verr++;
		h->rerr++;
		h->contin_err++;
		h->contin_succ = 0;
	}
	const lb_cfg_t *c = lb->cfg;
	if (!h->overload && !ok) {
		double rate = (double)h->verr / (h->vsucc + h->verr);
		bool by_rate = rate > c->err_rate;
		if ((by_rate || h->contin_err >= (uint32_t)c->contin_err_limit) && may_eject(lb)) {
			if (by_rate)
				log_change(lb, h, now_ms, true, "err rate %.2f > %.2f", rate, c->err_rate);
			else
				log_change(lb, h, now_ms, true, "%u consecutive errors", h->contin_err);
			to_overload(lb, h, now_ms);
			return LB_CHANGED;
		}
	} else if (h->overload && ok) {
		double rate = (double)h->vsucc / (h->vsucc + h->verr);
		bool by_rate = rate > c->succ_rate;
		if (by_rate || h->contin_succ >= (uint32_t)c->contin_succ_limit) {
			if (by_rate)
				log_change(lb, h, now_ms, false, "succ rate %.2f > %.2f", rate,
					   c->succ_rate);
			else
				log_change(lb, h, now_ms, false, "%u consecutive successes",
					   h->contin_succ);
			to_idle(lb, h, now_ms);
			return LB_CHANGED;
		}
	}
	return check_windows(lb, h, now_ms);
}

int lb_tick(lb_t *lb, uint64_t now_ms)
{
	int changed = LB_NO_CHANGE;
	/* Walk the lists: a host moving lists is appended, seen at most twice. */
	for (lb_host_t *h = lb->idle.head, *next; h; h = next) {
		next = h->next;
		changed |= check_windows(lb, h, now_ms);
	}
	size_t n = lb->overload.n;
	for (lb_host_t *h = lb->overload.head, *next; h && n; h = next, n--) {
		next = h->next;
		changed |= check_windows(lb, h, now_ms);
	}
	return changed;
}
