// SPDX-License-Identifier: MIT
// The console's list queries: what a search is read as, names and
// directions, and a page split over the unhealthy routes and the rest.
#include "test.h"

#include <errno.h>
#include <string.h>

#include "listq.h"

static listq_search_t parse_ok(const char *q)
{
	listq_search_t s;
	const char *why = NULL;
	assert_int_equal(listq_parse_search(q, &s, &why), 0);
	return s;
}

static void test_search_kinds(void **state)
{
	(void)state;
	assert_int_equal(parse_ok(NULL).kind, LISTQ_NONE);
	assert_int_equal(parse_ok("   ").kind, LISTQ_NONE);
	listq_search_t s = parse_ok(" 5/12 ");
	assert_int_equal(s.kind, LISTQ_ROUTE);
	assert_int_equal(s.modid, 5);
	assert_int_equal(s.cmdid, 12);
	s = parse_ok("7/");
	assert_int_equal(s.kind, LISTQ_ROUTE);
	assert_int_equal(s.modid, 7);
	assert_int_equal(s.cmdid, -1);
	s = parse_ok("17");
	assert_int_equal(s.kind, LISTQ_ID);
	assert_int_equal(s.id, 17);
	/* Larger than any id: matches nothing, but is a number. */
	s = parse_ok("99999999999");
	assert_int_equal(s.kind, LISTQ_ID);
}

static void test_search_net(void **state)
{
	(void)state;
	listq_search_t s = parse_ok("10.0.0.7");
	assert_int_equal(s.kind, LISTQ_NET);
	assert_string_equal(s.net, "10.0.0.7/32");
	assert_true(s.host);
	s = parse_ok("10.1.2.3/24");
	assert_string_equal(s.net, "10.1.2.0/24");
	assert_false(s.host);
	s = parse_ok("10.0.");
	assert_int_equal(s.kind, LISTQ_NET);
	assert_string_equal(s.net, "10.0.0.0/16");
	s = parse_ok("192.");
	assert_string_equal(s.net, "192.0.0.0/8");
	s = parse_ok("0.0.0.0/0");
	assert_string_equal(s.net, "0.0.0.0/0");
	/* Not addresses: text. */
	assert_int_equal(parse_ok("10.0.0.256").kind, LISTQ_TEXT);
	assert_int_equal(parse_ok("1.2.3.4.5").kind, LISTQ_TEXT);
	assert_int_equal(parse_ok("1.2.3.4/33").kind, LISTQ_TEXT);
	assert_int_equal(parse_ok("10.0").kind, LISTQ_TEXT);
	assert_int_equal(parse_ok("1.2.3./8").kind, LISTQ_TEXT);
}

static void test_search_text(void **state)
{
	(void)state;
	listq_search_t s = parse_ok("Orders");
	assert_int_equal(s.kind, LISTQ_TEXT);
	assert_string_equal(s.like, "%Orders%");
	/* LIKE's own characters match themselves. */
	s = parse_ok("50%_a\\b");
	assert_string_equal(s.like, "%50\\%\\_a\\\\b%");
	/* "a/b" is no route. */
	assert_int_equal(parse_ok("a/b").kind, LISTQ_TEXT);
	assert_int_equal(parse_ok("5/x").kind, LISTQ_TEXT);
}

static void test_search_refused(void **state)
{
	(void)state;
	listq_search_t s;
	const char *why = NULL;
	char long_q[LISTQ_TEXT_MAX + 2];
	memset(long_q, 'x', sizeof(long_q) - 1);
	long_q[sizeof(long_q) - 1] = '\0';
	assert_int_equal(listq_parse_search(long_q, &s, &why), -EINVAL);
	assert_non_null(why);
	long_q[LISTQ_TEXT_MAX] = '\0';
	assert_int_equal(listq_parse_search(long_q, &s, &why), 0);
	/* Every byte escaped still fits. */
	memset(long_q, '%', LISTQ_TEXT_MAX);
	assert_int_equal(listq_parse_search(long_q, &s, &why), 0);
	assert_int_equal(strlen(s.like), 2 * LISTQ_TEXT_MAX + 2);
	why = NULL;
	assert_int_equal(listq_parse_search("a\nb", &s, &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(listq_parse_search("2147483648/1", &s, &why), -EINVAL);
	assert_int_equal(listq_parse_search("2147483647/2147483647", &s, &why), 0);
}

static void test_names(void **state)
{
	(void)state;
	static const char *const names[] = { "health", "route", "hosts" };
	int v = -1;
	assert_int_equal(listq_parse_name(NULL, names, 3, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(listq_parse_name("hosts", names, 3, 0, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(listq_parse_name("Hosts", names, 3, 0, &v), -EINVAL);
	bool desc = false;
	assert_int_equal(listq_parse_order(NULL, true, &desc), 0);
	assert_true(desc);
	assert_int_equal(listq_parse_order("asc", true, &desc), 0);
	assert_false(desc);
	assert_int_equal(listq_parse_order("up", true, &desc), -EINVAL);
}

/* split(offset, limit, n_first) → first_from, first_n, second_from, second_n */
static void check_split(uint64_t off, uint64_t lim, uint64_t nf, uint64_t ff, uint64_t fn,
			uint64_t sf, uint64_t sn)
{
	uint64_t a, b, c, d;
	listq_split(off, lim, nf, &a, &b, &c, &d);
	assert_int_equal(a, ff);
	assert_int_equal(b, fn);
	assert_int_equal(c, sf);
	assert_int_equal(d, sn);
}

static void test_split(void **state)
{
	(void)state;
	/* No unhealthy routes: the page is the second list's. */
	check_split(0, 100, 0, 0, 0, 0, 101);
	check_split(200, 100, 0, 0, 0, 200, 101);
	/* A few: they come first, the rest fills the page. */
	check_split(0, 100, 3, 0, 3, 0, 98);
	check_split(100, 100, 3, 3, 0, 97, 101);
	/* The page ends inside the first list: nothing of the second. */
	check_split(0, 100, 250, 0, 100, 0, 0);
	check_split(100, 100, 250, 100, 100, 0, 0);
	/* It ends exactly with the first list: one of the second, to know if there is more. */
	check_split(150, 100, 250, 150, 100, 0, 1);
	check_split(200, 100, 250, 200, 50, 0, 51);
	check_split(300, 100, 250, 250, 0, 50, 101);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_search_kinds),
		cmocka_unit_test(test_search_net),
		cmocka_unit_test(test_search_text),
		cmocka_unit_test(test_search_refused),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
