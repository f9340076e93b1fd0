// SPDX-License-Identifier: MIT
// Console login sessions on a fake clock: idle and absolute expiry, logout,
// a bounded table that loses the least recently used, bad tokens.
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "session.h"

static const session_opts_t opts = { .idle_ms = 1000, .max_ms = 5000, .max_sessions = 3 };

static const char *tok(int i)
{
	static char buf[4][SESSION_TOKEN_LEN + 1];
	char *b = buf[i % 4];
	for (int k = 0; k < SESSION_TOKEN_LEN; k++)
		b[k] = "0123456789abcdef"[(i * 7 + k) % 16];
	b[SESSION_TOKEN_LEN] = '\0';
	return b;
}

static void test_idle_and_absolute(void **state)
{
	(void)state;
	session_store_t *st = session_store_new(&opts);
	session_info_t info;
	assert_int_equal(session_create(st, tok(1), "alice", 42, 10000), 0);
	assert_int_equal(session_use(st, tok(1), 10999, &info), SESSION_OK);
	assert_string_equal(info.user, "alice");
	assert_int_equal(info.hash_tag, 42);
	assert_int_equal(info.expires_ms, 11999);
	/* Used within idle_ms each time: it lives on, up to max_ms. */
	for (uint64_t t = 11900; t < 15000; t += 900)
		assert_int_equal(session_use(st, tok(1), t, NULL), SESSION_OK);
	assert_int_equal(session_use(st, tok(1), 14999, &info), SESSION_OK);
	assert_int_equal(info.expires_ms, 15000); /* the absolute end comes first */
	assert_int_equal(session_use(st, tok(1), 15000, NULL), SESSION_EXPIRED);
	assert_int_equal(session_use(st, tok(1), 15001, NULL), SESSION_NONE);
	/* Unused for idle_ms: gone. */
	assert_int_equal(session_create(st, tok(2), "bob", 1, 20000), 0);
	assert_int_equal(session_use(st, tok(2), 21000, NULL), SESSION_IDLE);
	assert_int_equal(session_count(st), 0);
	session_store_free(st);
}

static void test_logout_and_users(void **state)
{
	(void)state;
	session_store_t *st = session_store_new(&opts);
	assert_int_equal(session_create(st, tok(1), "alice", 0, 0), 0);
	assert_int_equal(session_create(st, tok(2), "alice", 0, 0), 0);
	assert_int_equal(session_create(st, tok(3), "bob", 0, 0), 0);
	assert_true(session_end(st, tok(1)));
	assert_false(session_end(st, tok(1)));
	assert_int_equal(session_use(st, tok(1), 10, NULL), SESSION_NONE);
	assert_int_equal(session_use(st, tok(2), 10, NULL), SESSION_OK);
	assert_int_equal(session_end_user(st, "alice"), 1);
	assert_int_equal(session_use(st, tok(2), 20, NULL), SESSION_NONE);
	assert_int_equal(session_use(st, tok(3), 20, NULL), SESSION_OK);
	assert_int_equal(session_sweep(st, 2000), 1);
	assert_int_equal(session_count(st), 0);
	session_store_free(st);
}

static void test_bounded(void **state)
{
	(void)state;
	session_store_t *st = session_store_new(&opts);
	assert_int_equal(session_create(st, tok(1), "a", 0, 100), 0);
	assert_int_equal(session_create(st, tok(2), "b", 0, 200), 0);
	assert_int_equal(session_create(st, tok(3), "c", 0, 300), 0);
	assert_int_equal(session_use(st, tok(1), 400, NULL), SESSION_OK); /* 2 is now the idlest */
	assert_int_equal(session_create(st, tok(4), "d", 0, 500), 0);
	assert_int_equal(session_count(st), 3);
	assert_int_equal(session_use(st, tok(2), 600, NULL), SESSION_NONE);
	assert_int_equal(session_use(st, tok(1), 600, NULL), SESSION_OK);
	assert_int_equal(session_use(st, tok(4), 600, NULL), SESSION_OK);
	/* A session that ran out makes room before the idlest live one goes. */
	assert_int_equal(session_use(st, tok(1), 1500, NULL), SESSION_OK);
	assert_int_equal(session_use(st, tok(4), 1500, NULL), SESSION_OK);
	assert_int_equal(session_create(st, tok(2), "b", 0, 1500), 0); /* 3 had run out */
	assert_int_equal(session_use(st, tok(1), 1600, NULL), SESSION_OK);
	assert_int_equal(session_use(st, tok(4), 1600, NULL), SESSION_OK);
	session_store_free(st);
}

static void test_bad_tokens(void **state)
{
	(void)state;
	session_store_t *st = session_store_new(&opts);
	char t[SESSION_TOKEN_LEN + 2];
	memcpy(t, tok(1), SESSION_TOKEN_LEN + 1);
	assert_true(session_valid_token(t));
	t[3] = 'G';
	assert_false(session_valid_token(t));
	assert_int_equal(session_create(st, t, "alice", 0, 0), -EINVAL);
	memcpy(t, tok(1), SESSION_TOKEN_LEN);
	t[SESSION_TOKEN_LEN] = 'a';
	t[SESSION_TOKEN_LEN + 1] = '\0';
	assert_false(session_valid_token(t));
	assert_false(session_valid_token(""));
	assert_int_equal(session_create(st, tok(1), "", 0, 0), -EINVAL);
	assert_int_equal(session_create(st, tok(1), "alice", 0, 0), 0);
	/* A token one digit off is no session. */
	memcpy(t, tok(1), SESSION_TOKEN_LEN + 1);
	t[SESSION_TOKEN_LEN - 1] = t[SESSION_TOKEN_LEN - 1] == '0' ? '1' : '0';
	assert_int_equal(session_use(st, t, 1, NULL), SESSION_NONE);
	assert_int_equal(session_use(st, "short", 1, NULL), SESSION_NONE);
	session_store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_and_absolute),
		cmocka_unit_test(test_logout_and_users),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_bad_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
