// SPDX-License-Identifier: MIT
// Route snapshots: build (unsorted input, duplicates), lookup, diff, and a
// patch that must equal a full rebuild.
#include "test.h"

#include <string.h>

#include "snapshot.h"

static snapshot_t *build(const snap_entry_t *e, size_t n, int64_t version)
{
	snap_builder_t b;
	snap_builder_init(&b);
	for (size_t i = 0; i < n; i++)
		snap_builder_add(&b, e[i].modid, e[i].cmdid, e[i].ip, e[i].port);
	return snapshot_build(&b, version);
}

static void assert_same(const snapshot_t *a, const snapshot_t *b)
{
	assert_int_equal(a->n_routes, b->n_routes);
	assert_int_equal(a->n_hosts, b->n_hosts);
	/* Field by field: the structs have padding. */
	for (size_t i = 0; i < a->n_routes; i++) {
		const snap_route_t *x = &a->routes[i], *y = &b->routes[i];
		assert_int_equal(x->modid, y->modid);
		assert_int_equal(x->cmdid, y->cmdid);
		assert_int_equal(x->first, y->first);
		assert_int_equal(x->n_hosts, y->n_hosts);
		assert_int_equal(x->policy.has_panic_threshold, y->policy.has_panic_threshold);
		assert_int_equal(x->policy.panic_threshold, y->policy.panic_threshold);
		assert_int_equal(x->policy.max_ejection_percent, y->policy.max_ejection_percent);
		assert_int_equal(x->policy.slow_start_s, y->policy.slow_start_s);
	}
	for (size_t i = 0; i < a->n_hosts; i++) {
		const lars_HostInfo *x = &a->hosts[i], *y = &b->hosts[i];
		assert_int_equal(x->ip, y->ip);
		assert_int_equal(x->port, y->port);
		assert_int_equal(x->weight, y->weight);
		assert_int_equal(x->drain, y->drain);
		assert_int_equal(x->joined_at, y->joined_at);
	}
}

static void test_build_and_find(void **state)
{
	static const snap_entry_t e[] = {
		{ 2, 1, 10, 80 }, { 1, 1, -5, 80 }, { 1, 1, 7, 81 }, { 1, 1, 7, 80 },
		{ 1, 1, 7, 80 }, /* duplicate */
		{ 1, 2, 1, 1 },
	};
	snapshot_t *s = build(e, 6, 42);
	assert_int_equal(s->version, 42);
	assert_int_equal(s->n_routes, 3);
	assert_int_equal(s->n_hosts, 5);
	const snap_route_t *r = snapshot_find(s, 1, 1);
	assert_non_null(r);
	assert_int_equal(r->n_hosts, 3);
	const lars_HostInfo *h = snapshot_hosts(s, r);
	/* Unsigned ip order: 7 < 0xfffffffb (-5). */
	assert_int_equal(h[0].ip, 7);
	assert_int_equal(h[0].port, 80);
	assert_int_equal(h[1].port, 81);
	assert_int_equal(h[2].ip, -5);
	assert_null(snapshot_find(s, 1, 3));
	assert_null(snapshot_find(s, 3, 1));
	assert_non_null(snapshot_find(s, 2, 1));
	snapshot_free(s);

	snap_builder_t b;
	snap_builder_init(&b);
	s = snapshot_build(&b, 0); /* empty database */
	assert_int_equal(s->n_routes, 0);
	assert_null(snapshot_find(s, 0, 0));
	snapshot_free(s);
}

static void test_diff(void **state)
{
	static const snap_entry_t a[] = {
		{ 1, 1, 1, 1 }, { 1, 1, 2, 2 }, { 1, 2, 1, 1 }, { 3, 3, 3, 3 },
	};
	static const snap_entry_t b[] = {
		{ 1, 1, 1, 1 }, { 1, 1, 2, 2 }, /* same */
		{ 1, 2, 1, 2 },                 /* port changed */
		{ 2, 2, 2, 2 },                 /* new route */
		/* 3/3 removed */
	};
	snapshot_t *sa = build(a, 4, 1), *sb = build(b, 4, 2);
	snap_keys_t out = { 0 };
	snapshot_diff(sa, sb, NULL, &out);
	assert_int_equal(out.n, 3);
	assert_int_equal(out.v[0].modid, 1);
	assert_int_equal(out.v[0].cmdid, 2);
	assert_int_equal(out.v[1].modid, 2);
	assert_int_equal(out.v[2].modid, 3);
	snap_keys_deinit(&out);

	/* Restricted to some keys. */
	snap_keys_t only = { 0 };
	snap_keys_add(&only, 3, 3);
	snap_keys_add(&only, 1, 1);
	snap_keys_finish(&only);
	snapshot_diff(sa, sb, &only, &out);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.v[0].modid, 3);
	snap_keys_deinit(&out);
	snap_keys_deinit(&only);

	/* From nothing: every route is a change. */
	snapshot_diff(NULL, sb, NULL, &out);
	assert_int_equal(out.n, 3);
	snap_keys_deinit(&out);
	snapshot_free(sa);
	snapshot_free(sb);
}

static void test_patch_equals_rebuild(void **state)
{
	/* A few thousand routes; change some keys, remove some, add some. */
	snap_builder_t full;
	snap_builder_init(&full);
	for (int m = 0; m < 50; m++)
		for (int c = 0; c < 40; c++)
			for (int h = 0; h < 3; h++)
				snap_builder_add(&full, m, c, 0x0a000000 + h, 8000 + c);
	snapshot_t *old = snapshot_build(&full, 1);

	snap_keys_t keys = { 0 };
	snap_builder_t changes, expect;
	snap_builder_init(&changes);
	snap_builder_init(&expect);
	for (int m = 0; m < 60; m++) {
		for (int c = 0; c < 40; c++) {
			bool touched = (m * 40 + c) % 7 == 0 || m >= 50;
			bool removed = touched && (m * 40 + c) % 3 == 0 && m < 50;
			if (touched)
				snap_keys_add(&keys, m, c);
			int hosts = touched ? (removed ? 0 : 2) : (m < 50 ? 3 : 0);
			for (int h = 0; h < hosts; h++) {
				int32_t ip = touched ? (int32_t)(0xc0a80000u + (unsigned)h) : 0x0a000000 + h;
				int32_t port = touched ? 9000 + h : 8000 + c;
				snap_builder_add(&expect, m, c, ip, port);
				if (touched)
					snap_builder_add(&changes, m, c, ip, port);
			}
		}
	}
	snap_keys_finish(&keys);
	snapshot_t *patched = snapshot_patch(old, &keys, &changes, 2);
	snapshot_t *rebuilt = snapshot_build(&expect, 2);
	assert_same(patched, rebuilt);
	for (size_t i = 0; i < rebuilt->n_routes; i++)
		assert_non_null(snapshot_find(patched, rebuilt->routes[i].modid,
					      rebuilt->routes[i].cmdid));
	snap_keys_t diff = { 0 };
	snapshot_diff(old, patched, NULL, &diff);
	/* Every touched key changed (hosts differ or route removed/added). */
	assert_int_equal(diff.n, keys.n);
	snap_keys_deinit(&diff);
	snap_keys_deinit(&keys);
	snapshot_free(old);
	snapshot_free(patched);
	snapshot_free(rebuilt);
}

static void test_patch_same_routes_keeps_index(void **state)
{
	/* Only hosts of existing routes change: the old index is reused. */
	snap_builder_t b;
	snap_builder_init(&b);
	for (int m = 0; m < 100; m++)
		snap_builder_add(&b, m, 1, 1, 1);
	snapshot_t *old = snapshot_build(&b, 1);
	snap_keys_t keys = { 0 };
	snap_keys_add(&keys, 50, 1);
	snap_keys_finish(&keys);
	snap_builder_init(&b);
	snap_builder_add(&b, 50, 1, 9, 9);
	snap_builder_add(&b, 50, 1, 8, 8);
	snapshot_t *s = snapshot_patch(old, &keys, &b, 2);
	assert_int_equal(s->n_routes, 100);
	assert_int_equal(s->n_hosts, 101);
	for (int m = 0; m < 100; m++) {
		const snap_route_t *r = snapshot_find(s, m, 1);
		assert_non_null(r);
		assert_int_equal(r->modid, m);
		assert_int_equal(r->n_hosts, m == 50 ? 2 : 1);
	}
	assert_int_equal(snapshot_hosts(s, snapshot_find(s, 50, 1))[0].ip, 8);
	assert_int_equal(snapshot_hosts(s, snapshot_find(s, 51, 1))[0].ip, 1);
	snap_keys_deinit(&keys);
	snapshot_free(old);
	snapshot_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_and_find),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_patch_equals_rebuild),
		cmocka_unit_test(test_patch_same_routes_keeps_index),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
