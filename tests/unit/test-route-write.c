// SPDX-License-Identifier: MIT
// route_describe_check(), the description rule larsctl and the console share:
// text as given, and what is refused (controls, bidi overrides, bad UTF-8);
// and the traffic-control values (weight, policy fields) both accept.
#include "test.h"

#include <errno.h>
#include <string.h>

#include "route_write.h"

static void ok(const char *s)
{
	const char *why = NULL;
	if (route_describe_check(s, &why))
		fail_msg("refused '%s': %s", s, why);
}

static void refused(const char *s, const char *want)
{
	const char *why = NULL;
	assert_int_equal(route_describe_check(s, &why), -EINVAL);
	assert_non_null(why);
	if (!strstr(why, want))
		fail_msg("'%s' refused with '%s', want '%s'", s, why, want);
}

static void test_accepted(void **state)
{
	ok("");
	ok("orders \"v2\" <b> it's; DROP TABLE x; --");
	ok("tab\there");
	ok("caf\xc3\xa9 \xe6\x9c\x8d\xe5\x8a\xa1 \xf0\x9f\x9a\x80"); /* é, 服务, U+1F680 */
	ok("\xc2\xa0nbsp, \xc2\xa9"); /* U+00A0, U+00A9: just above C1 */
	ok("\xe2\x80\x8e mark"); /* U+200E LRM: a mark, not an override */
	ok("\xe2\x81\xa5"); /* U+2065: between the refused ranges */
	ok("\xe2\x80\xaf"); /* U+202F: just after the overrides */
	ok("\xef\xbf\xbd \xf4\x8f\xbf\xbf"); /* U+FFFD, U+10FFFF */
	char big[ROUTE_DESC_MAX + 2];
	memset(big, 'x', sizeof(big));
	big[ROUTE_DESC_MAX] = '\0';
	ok(big);
	big[ROUTE_DESC_MAX] = 'x';
	big[ROUTE_DESC_MAX + 1] = '\0';
	refused(big, "at most 4096 bytes");
}

static void test_controls_and_bidi(void **state)
{
	refused("a\nb", "control");
	refused("a\rb", "control");
	refused("\x1b[31mred", "U+001B");
	refused("del\x7f", "U+007F");
	/* C1 controls, U+0080..U+009F (CSI U+009B works in many terminals). */
	refused("\xc2\x80", "U+0080");
	refused("x\xc2\x9b" "31m", "U+009B");
	refused("\xc2\x9f", "U+009F");
	/* Bidi embeddings and overrides U+202A..U+202E, isolates U+2066..U+2069. */
	static const char *const bidi[] = {
		"\xe2\x80\xaa", "\xe2\x80\xab", "\xe2\x80\xac", "\xe2\x80\xad", "\xe2\x80\xae",
		"\xe2\x81\xa6", "\xe2\x81\xa7", "\xe2\x81\xa8", "\xe2\x81\xa9",
	};
	for (size_t i = 0; i < sizeof(bidi) / sizeof(bidi[0]); i++) {
		char s[32];
		snprintf(s, sizeof(s), "txt.%sexe", bidi[i]);
		refused(s, "bidirectional-override");
	}
	refused("line\xe2\x80\xa8two", "U+2028");
	refused("line\xe2\x80\xa9two", "U+2029");
}

static void test_invalid_utf8(void **state)
{
	static const char *const bad[] = {
		"\xff",                 /* never in UTF-8 */
		"\x80",                 /* a lone continuation byte */
		"caf\xc3",              /* cut short at the end */
		"\xc3x",                /* cut short in the middle */
		"\xc0\xaf",             /* overlong '/' */
		"\xc1\xbf",             /* overlong */
		"\xe0\x80\xaf",         /* overlong, 3 bytes */
		"\xf0\x80\x80\xaf",     /* overlong, 4 bytes */
		"\xed\xa0\x80",         /* U+D800, a surrogate */
		"\xed\xbf\xbf",         /* U+DFFF */
		"\xf4\x90\x80\x80",     /* above U+10FFFF */
		"\xf5\x80\x80\x80",
		"\xf8\x88\x80\x80\x80", /* 5-byte form */
		"latin-1 caf\xe9",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(bad[i], "invalid UTF-8");
}

/* Traffic-control values: the ranges larsctl and the console accept. */
static void test_traffic_values(void **state)
{
	const char *why;
	int w;
	assert_int_equal(route_parse_weight("1", &w, &why), 0);
	assert_int_equal(w, 1);
	assert_int_equal(route_parse_weight("1000", &w, &why), 0);
	assert_int_equal(w, 1000);
	static const char *const bad_w[] = { "0", "1001", "-1", "", "10x", " 5", "+5", "1e2", NULL };
	for (int i = 0; bad_w[i]; i++)
		assert_int_equal(route_parse_weight(bad_w[i], &w, &why), -EINVAL);
	assert_int_equal(route_parse_weight(NULL, &w, &why), -EINVAL);

	route_policy_set_t set = { 0 };
	assert_int_equal(route_parse_policy_value("panic_threshold", "0", &set, &why), 0);
	assert_true(set.panic);
	assert_int_equal(set.v.panic_threshold, 0);
	assert_int_equal(route_parse_policy_value("panic_threshold", "default", &set, &why), 0);
	assert_int_equal(set.v.panic_threshold, ROUTE_PANIC_AGENT);
	assert_int_equal(route_parse_policy_value("panic_threshold", "100", &set, &why), 0);
	assert_int_equal(route_parse_policy_value("panic_threshold", "101", &set, &why), -EINVAL);
	assert_int_equal(route_parse_policy_value("max_ejection_percent", "1", &set, &why), 0);
	assert_true(set.ejection);
	assert_int_equal(route_parse_policy_value("max_ejection_percent", "0", &set, &why), -EINVAL);
	assert_int_equal(route_parse_policy_value("max_ejection_percent", "101", &set, &why), -EINVAL);
	assert_int_equal(route_parse_policy_value("slow_start", "86400", &set, &why), 0);
	assert_true(set.slow_start);
	assert_int_equal(set.v.slow_start_s, 86400);
	assert_int_equal(route_parse_policy_value("slow_start", "86401", &set, &why), -EINVAL);
	assert_int_equal(route_parse_policy_value("slow_start", "-1", &set, &why), -EINVAL);
	assert_int_equal(route_parse_policy_value("slow_start", NULL, &set, &why), -EINVAL);

	char text[160];
	route_policy_t p = ROUTE_POLICY_DEFAULT;
	route_policy_text(text, sizeof(text), &p);
	assert_string_equal(text, "panic_threshold the agent's default, max_ejection_percent 100 %, "
				  "slow_start 0 s (off)");
	p = (route_policy_t){ 0, 20, 30 };
	route_policy_text(text, sizeof(text), &p);
	assert_string_equal(text, "panic_threshold 0 (off), max_ejection_percent 20 %, slow_start 30 s");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_controls_and_bidi),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_traffic_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
