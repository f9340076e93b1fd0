// SPDX-License-Identifier: MIT
// The load balancer of one (modid, cmdid). Rules: DESIGN §5, the original
// Lars agent's algorithm, with window and overload expiry also from a timer.
#include "balancer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

static void to_idle(lb_t *lb, lb_host_t *h, uint64_t now_ms)
{
	list_remove(&lb->overload, h);
	h->overload = false;
	set_idle_counters(lb, h, now_ms);
	list_push_tail(&lb->idle, h);
}

static void to_overload(lb_t *lb, lb_host_t *h, uint64_t now_ms)
{
	list_remove(&lb->idle, h);
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
		if (total && (double)h->rerr / total >= lb->cfg->window_err_rate) {
			to_overload(lb, h, now_ms);
			return LB_CHANGED;
		}
		set_idle_counters(lb, h, now_ms); /* a new window */
		return LB_NO_CHANGE;
	}
	if (now_ms - h->overload_since_ms >= (uint64_t)lb->cfg->overload_timeout_s * 1000) {
		to_idle(lb, h, now_ms);
		return LB_CHANGED;
	}
	return LB_NO_CHANGE;
}

/* ---- the API ---- */

void lb_init(lb_t *lb, int32_t modid, int32_t cmdid, const lb_cfg_t *cfg)
{
	*lb = (lb_t){ .modid = modid, .cmdid = cmdid, .status = LB_PULLING, .cfg = cfg };
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

/**
 * lb_get_host() - pick a host, as the original agent does (DESIGN §5).
 * @lb: the balancer.
 * @now_ms: the clock (unused by the pick itself; windows run on reports).
 * @out: set to the host on LB_OK, untouched otherwise.
 * Return: LB_OK, LB_E_OVERLOAD or LB_E_NOEXIST.
 */
int lb_get_host(lb_t *lb, uint64_t now_ms, lars_HostInfo *out)
{
	lb_host_t *h;

	if (lb_n_hosts(lb) == 0)
		return LB_E_NOEXIST; /* still pulling, or the route is absent */
	if (lb->idle.n == 0) {
		if (lb->access_cnt >= (uint32_t)lb->cfg->probe_num) {
			lb->access_cnt = 0;
			h = list_rotate(&lb->overload); /* a probe */
		} else {
			lb->access_cnt++;
			return LB_E_OVERLOAD;
		}
	} else if (lb->overload.n == 0) {
		h = list_rotate(&lb->idle);
	} else if (lb->access_cnt >= (uint32_t)lb->cfg->probe_num) {
		lb->access_cnt = 0;
		h = list_rotate(&lb->overload);
	} else {
		lb->access_cnt++;
		h = list_rotate(&lb->idle);
	}
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
			set_idle_counters(lb, h, now_ms);
			list_push_tail(&lb->idle, h);
		}
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
		if ((double)h->verr / (h->vsucc + h->verr) > c->err_rate ||
		    h->contin_err >= (uint32_t)c->contin_err_limit) {
			to_overload(lb, h, now_ms);
			return LB_CHANGED;
		}
	} else if (h->overload && ok) {
		if ((double)h->vsucc / (h->vsucc + h->verr) > c->succ_rate ||
		    h->contin_succ >= (uint32_t)c->contin_succ_limit) {
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
