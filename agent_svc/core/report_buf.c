// SPDX-License-Identifier: MIT
// Call results waiting to go to lars-reporter.
#include "report_buf.h"

#include <errno.h>
#include <stdlib.h>

#include "xalloc.h"

static uint64_t host_key(int32_t ip, int32_t port)
{
	return (uint64_t)(uint32_t)ip << 32 | (uint32_t)port;
}

void rb_init(report_buf_t *b, size_t max_hosts)
{
	*b = (report_buf_t){ .routes = U64MAP_INIT, .max_hosts = max_hosts };
}

void rb_route_free(rb_route_t *r)
{
	if (!r)
		return;
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&r->hosts, &iter));)
		free(s->value);
	u64map_deinit(&r->hosts);
	free(r);
}

void rb_deinit(report_buf_t *b)
{
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&b->routes, &iter));)
		rb_route_free(s->value);
	u64map_deinit(&b->routes);
	b->n_hosts = 0;
}

/* The host's counts, made if there is room; NULL (@calls counted) if not. */
static rb_counts_t *host_counts(report_buf_t *b, int32_t modid, int32_t cmdid, int32_t ip,
				int32_t port, uint64_t calls)
{
	uint64_t rk = u64map_key(modid, cmdid);
	rb_route_t *r = u64map_get(&b->routes, rk);
	rb_counts_t *c = r ? u64map_get(&r->hosts, host_key(ip, port)) : NULL;
	if (!c) {
		if (b->n_hosts >= b->max_hosts) {
			b->n_dropped += calls;
			return NULL;
		}
		if (!r) {
			r = xcalloc(1, sizeof(*r));
			r->modid = modid;
			r->cmdid = cmdid;
			u64map_put(&b->routes, rk, r);
		}
		c = xcalloc(1, sizeof(*c));
		c->ip = ip;
		c->port = port;
		u64map_put(&r->hosts, host_key(ip, port), c);
		b->n_hosts++;
	}
	return c;
}

int rb_add(report_buf_t *b, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
	   uint32_t succ, uint32_t err)
{
	rb_counts_t *c = host_counts(b, modid, cmdid, ip, port, (uint64_t)succ + err);
	if (!c)
		return -ENOSPC;
	c->succ += succ;
	c->err += err;
	return 0;
}

int rb_add_call(report_buf_t *b, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		bool ok, uint32_t latency_us)
{
	rb_counts_t *c = host_counts(b, modid, cmdid, ip, port, 1);
	if (!c)
		return -ENOSPC;
	c->succ += ok;
	c->err += !ok;
	if (latency_us) {
		c->lat_count++;
		c->lat_sum_us += latency_us;
		c->lat_buckets[msg_lat_bucket(latency_us)]++;
	}
	return 0;
}

int rb_add_counts(report_buf_t *b, int32_t modid, int32_t cmdid, const rb_counts_t *add)
{
	rb_counts_t *c = host_counts(b, modid, cmdid, add->ip, add->port,
				     (uint64_t)add->succ + add->err);
	if (!c)
		return -ENOSPC;
	c->succ += add->succ;
	c->err += add->err;
	c->lat_count += add->lat_count;
	c->lat_sum_us += add->lat_sum_us;
	for (int i = 0; i < MSG_LAT_BUCKETS; i++)
		c->lat_buckets[i] += add->lat_buckets[i];
	return 0;
}

rb_route_t **rb_take_all(report_buf_t *b, size_t *np)
{
	*np = b->routes.n;
	if (!*np)
		return NULL;
	rb_route_t **v = xreallocarray(NULL, *np, sizeof(*v));
	size_t iter = 0, i = 0;
	for (u64map_slot_t *s; (s = u64map_next(&b->routes, &iter));)
		v[i++] = s->value;
	u64map_deinit(&b->routes);
	b->n_hosts = 0;
	return v;
}

void rb_put_back(report_buf_t *b, rb_route_t *r)
{
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&r->hosts, &iter));) {
		/* Over the bound the oldest counts go; host_counts() counts them. */
		(void)rb_add_counts(b, r->modid, r->cmdid, s->value);
	}
	rb_route_free(r);
}
