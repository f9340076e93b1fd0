// SPDX-License-Identifier: MIT
// The shared-memory route table and picking from it (common/wire/shm_snap.c,
// shm_pick.c; issue 22), in a plain buffer: routes published, found,
// removed, their slots reused along a probe chain, a full table and an
// oversized route refused; a hostile or broken file (wrong magic or layout,
// truncated, counts or offsets out of range, a slot that stays odd) is
// refused or given up, never read past; picks follow the agent's rules:
// round robin, smooth weighted round robin, drain, probes of overloaded
// hosts every probe_num picks, panic and fail-open over every non-drained
// host, slow start's ramp.
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_pick.h"
#include "shm_snap.h"

static void *base;
static size_t size;

static void *table(uint32_t slots, uint32_t max_hosts)
{
	free(base);
	size = shm_file_size(slots, max_hosts);
	base = calloc(1, size);
	shm_format(base, size, slots, max_hosts, 42, 10);
	return base;
}

static shm_host_t host(int port, uint32_t weight, int state, bool drain)
{
	return (shm_host_t){ .ip = 0x7f000001, .port = port, .weight = weight,
			     .state = (uint8_t)state, .drain = drain };
}

static int put(int32_t modid, int32_t cmdid, const shm_host_t *h, size_t n, uint32_t flags)
{
	shm_route_t r = { .modid = modid, .cmdid = cmdid, .version = 7, .flags = flags };
	return shm_publish(base, &r, h, n);
}

static void test_publish_find_remove(void **state)
{
	table(4, 8);
	shm_view_t v;
	assert_int_equal(shm_view_open(&v, base, size), 0);
	assert_int_equal(v.pid, 42);
	assert_int_equal(v.probe_num, 10);
	shm_host_t h[3] = { host(1, 100, 0, false), host(2, 100, 1, false), host(3, 100, 0, true) };
	for (int k = 1; k <= 4; k++)
		assert_int_equal(put(k, 1, h, 3, 0), 0);
	assert_int_equal(put(5, 1, h, 3, 0), -ENOSPC); /* four slots */
	shm_route_t r;
	shm_host_t got[8];
	for (int k = 1; k <= 4; k++) {
		assert_int_equal(shm_read_route(&v, k, 1, &r, got), 0);
		assert_int_equal(r.n_hosts, 3);
		assert_int_equal(r.version, 7);
		assert_int_equal(got[1].state, SHM_HOST_OVERLOADED);
		assert_true(got[2].drain);
	}
	assert_int_equal(shm_read_route(&v, 9, 9, &r, got), -ENOENT);
	/* Removed: gone, its slot reused; the others (maybe behind it on a
	 * chain) still found. */
	shm_unpublish(base, 2, 1);
	assert_int_equal(shm_read_route(&v, 2, 1, &r, got), -ENOENT);
	assert_int_equal(put(5, 1, h, 1, 0), 0);
	for (int k = 1; k <= 5; k++)
		assert_int_equal(shm_read_route(&v, k, 1, &r, got), k == 2 ? -ENOENT : 0);
	/* Republished: the same slot, a new gen. */
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), 0);
	uint64_t gen = r.gen;
	assert_int_equal(put(1, 1, h, 2, SHM_ROUTE_PANIC), 0);
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), 0);
	assert_true(r.gen > gen);
	assert_int_equal(r.n_hosts, 2);
	assert_int_equal(r.flags, SHM_ROUTE_PANIC);
	/* More hosts than a slot holds: taken out, clients ask over UDP. */
	shm_host_t many[9] = { 0 };
	assert_int_equal(put(1, 1, many, 9, 0), -E2BIG);
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), -ENOENT);
	shm_set_heartbeat(base, 123456);
	assert_int_equal(shm_view_heartbeat(&v), 123456);
}

static void test_hostile_files(void **state)
{
	table(8, 4);
	shm_view_t v;
	shm_header_t *h = base;
	shm_header_t good = *h;
	assert_int_equal(shm_view_open(&v, base, size - 1), -EINVAL); /* truncated */
	assert_int_equal(shm_view_open(&v, base, sizeof(*h) - 1), -EINVAL);
	assert_int_equal(shm_view_open(&v, NULL, size), -EINVAL);
	struct { const char *what; void (*poke)(shm_header_t *); } bad[] = {
		{ "magic", NULL }, { "layout", NULL }, { "slots", NULL }, { "slot size", NULL },
		{ "hosts", NULL }, { "offset", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		*h = good;
		switch (i) {
		case 0: h->magic ^= 1; break;
		case 1: h->layout = SHM_LAYOUT + 1; break;
		case 2: h->n_slots = 0; break;
		case 3: h->slot_size = sizeof(shm_route_t); break;
		case 4: h->max_hosts = SHM_HOSTS_MAX + 1; break;
		default: h->slots_off = (uint32_t)size; break;
		}
		if (shm_view_open(&v, base, size) != -EINVAL)
			fail_msg("a header with a bad %s was accepted", bad[i].what);
	}
	*h = good;
	assert_int_equal(shm_view_open(&v, base, size), 0);
	shm_host_t hs[2] = { host(1, 100, 0, false), host(2, 100, 0, false) };
	assert_int_equal(put(1, 1, hs, 2, 0), 0);
	shm_route_t *slot = NULL, r;
	shm_host_t got[4];
	/* Find the slot by scanning: the one holding 1/1. */
	for (uint32_t i = 0; i < h->n_slots; i++) {
		shm_route_t *s = (shm_route_t *)((uint8_t *)base + h->slots_off + (size_t)i * h->slot_size);
		if (s->state == SHM_SLOT_ROUTE)
			slot = s;
	}
	assert_non_null(slot);
	/* A writer that never finishes: given up, bounded. */
	atomic_store(&slot->seq, 1);
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), -EAGAIN);
	atomic_store(&slot->seq, 2);
	/* A consistent slot with a count beyond the header's bound. */
	slot->n_hosts = 5;
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), -EINVAL);
	slot->n_hosts = 2;
	/* A slot state that is none of ours. */
	slot->state = 77;
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), -EINVAL);
	slot->state = SHM_SLOT_ROUTE;
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), 0);
	/* Every slot DELETED: the search ends after one round. */
	for (uint32_t i = 0; i < h->n_slots; i++)
		((shm_route_t *)((uint8_t *)base + h->slots_off + (size_t)i * h->slot_size))->state =
			SHM_SLOT_DELETED;
	assert_int_equal(shm_read_route(&v, 3, 3, &r, got), -ENOENT);
}

/* @n picks of a route; counts per host index. */
static void picks(shm_pick_t *p, const shm_route_t *r, const shm_host_t *h, int n, bool open,
		  int *count, int *overload)
{
	for (int i = 0; i < n; i++) {
		size_t idx;
		int rc = shm_pick_host(p, r, h, 10, open, 0, &idx);
		if (rc == SHM_PICK_OK)
			count[idx]++;
		else
			(*overload)++;
	}
}

static void test_pick_rules(void **state)
{
	shm_pick_t p = { 0 };
	shm_route_t r = { .gen = 1, .n_hosts = 3 };
	shm_host_t h[4] = { host(1, 100, 0, false), host(2, 100, 0, false), host(3, 100, 0, false) };
	int c[4] = { 0 }, ov = 0;
	shm_pick_reset(&p, 1, 1, 0);
	picks(&p, &r, h, 300, false, c, &ov);
	assert_int_equal(c[0], 100);
	assert_int_equal(c[1], 100);
	assert_int_equal(c[2], 100);
	/* Weights 100:300: smooth weighted round robin, exact over 400. */
	memset(c, 0, sizeof(c));
	r.n_hosts = 2;
	r.flags = SHM_ROUTE_WEIGHTED;
	r.gen = 2;
	h[1].weight = 300;
	picks(&p, &r, h, 400, false, c, &ov);
	assert_int_equal(c[0], 100);
	assert_int_equal(c[1], 300);
	/* Drained: never; an overloaded host gets a probe after 10 picks. */
	memset(c, 0, sizeof(c));
	r = (shm_route_t){ .gen = 3, .n_hosts = 3 };
	h[1] = host(2, 100, 0, true);
	h[2] = host(3, 100, SHM_HOST_OVERLOADED, false);
	shm_pick_reset(&p, 1, 1, 0);
	picks(&p, &r, h, 110, false, c, &ov);
	assert_int_equal(c[1], 0);
	assert_int_equal(c[2], 10);
	assert_int_equal(c[0], 100);
	/* All overloaded: OVERLOAD, and a probe every 11th. */
	memset(c, 0, sizeof(c));
	ov = 0;
	h[0].state = SHM_HOST_OVERLOADED;
	shm_pick_reset(&p, 1, 1, 0);
	picks(&p, &r, h, 110, false, c, &ov);
	assert_int_equal(c[0] + c[2], 10);
	assert_int_equal(ov, 100);
	/* Panic, and failing open: every non-drained host, state aside. */
	memset(c, 0, sizeof(c));
	ov = 0;
	r.flags = SHM_ROUTE_PANIC;
	picks(&p, &r, h, 100, false, c, &ov);
	assert_int_equal(ov, 0);
	assert_int_equal(c[0], 50);
	assert_int_equal(c[2], 50);
	assert_int_equal(c[1], 0);
	memset(c, 0, sizeof(c));
	r.flags = 0;
	picks(&p, &r, h, 100, true, c, &ov);
	assert_int_equal(ov, 0);
	assert_int_equal(c[0] + c[2], 100);
	/* Every host drained: OVERLOAD; none: NOEXIST. */
	h[0].drain = h[2].drain = true;
	size_t idx;
	assert_int_equal(shm_pick_host(&p, &r, h, 10, false, 0, &idx), SHM_PICK_OVERLOAD);
	r.n_hosts = 0;
	assert_int_equal(shm_pick_host(&p, &r, h, 10, false, 0, &idx), SHM_PICK_NOEXIST);
	shm_pick_free(&p);
	/* Slow start: 10 % at the join, 55 % half way, 100 % after. */
	assert_int_equal(shm_slow_start_weight(100, 60, 1000, 1000 * 1000), 10);
	assert_int_equal(shm_slow_start_weight(100, 60, 1000, 1030 * 1000), 55);
	assert_int_equal(shm_slow_start_weight(100, 60, 1000, 1060 * 1000), 100);
	assert_int_equal(shm_slow_start_weight(5, 60, 1000, 1000 * 1000), 1);
	assert_int_equal(shm_slow_start_weight(100, 0, 1000, 0), 100);
}

/* The fuzz corpus's seed file (written by tests/fuzz/make-corpus.py) is the
 * layout this code reads: the seeds reach past the header. */
static void test_corpus_seed_is_our_layout(void **state)
{
	char path[1024];
	size_t len;
	snprintf(path, sizeof(path), "%s/../fuzz/corpus/shm/two-routes", TEST_GOLDEN_DIR);
	uint8_t *file = test_read_file(path, &len);
	shm_view_t v;
	assert_int_equal(shm_view_open(&v, file, len), 0);
	shm_route_t r;
	shm_host_t got[2];
	assert_int_equal(shm_read_route(&v, 1, 1, &r, got), 0);
	assert_int_equal(r.n_hosts, 2);
	assert_int_equal(got[1].port, 9002);
	assert_int_equal(got[1].state, SHM_HOST_OVERLOADED);
	assert_int_equal(shm_read_route(&v, 2, 1, &r, got), 0);
	assert_int_equal(r.flags, SHM_ROUTE_WEIGHTED);
	assert_true(got[1].drain);
	assert_int_equal(shm_read_route(&v, 3, 1, &r, got), -ENOENT);
	free(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish_find_remove),
		cmocka_unit_test(test_hostile_files),
		cmocka_unit_test(test_pick_rules),
		cmocka_unit_test(test_corpus_seed_is_our_layout),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	free(base);
	return r;
}
