// SPDX-License-Identifier: MIT
// A program built against liblars-client 1.0, whose lars_client_options_t
// had no size field, still works with this library: it binds the
// LARS_CLIENT_1 versions of the two calls that take the struct.
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* The 1.0 header, as such a program saw it (not lars_client.h). */
typedef struct lars_client lars_client_t;
typedef struct lars_client_options {
	const char *agent_ip;
	int base_port;
	int timeout_ms;
	int retries;
	int sockets;
} lars_client_options_t;
void lars_client_options_init(lars_client_options_t *opts);
int lars_client_new(const lars_client_options_t *opts, lars_client_t **clientp);
void lars_client_free(lars_client_t *client);
__asm__(".symver lars_client_options_init, lars_client_options_init@LARS_CLIENT_1");
__asm__(".symver lars_client_new, lars_client_new@LARS_CLIENT_1");

static void test_init_writes_the_old_layout(void **state)
{
	struct {
		lars_client_options_t o;
		unsigned char canary[32];
	} buf;
	memset(&buf, 0xa5, sizeof(buf));
	lars_client_options_init(&buf.o);
	assert_string_equal(buf.o.agent_ip, "127.0.0.1");
	assert_int_equal(buf.o.base_port, 8888);
	assert_int_equal(buf.o.timeout_ms, 100);
	assert_int_equal(buf.o.retries, 3);
	assert_int_equal(buf.o.sockets, 3);
	/* Nothing written past the old struct's end. */
	for (size_t i = 0; i < sizeof(buf.canary); i++)
		assert_int_equal(buf.canary[i], 0xa5);
}

static void test_new_reads_the_old_layout(void **state)
{
	lars_client_options_t o;
	lars_client_t *c = NULL;
	lars_client_options_init(&o);
	o.base_port = 18888;
	assert_int_equal(lars_client_new(&o, &c), 0);
	lars_client_free(c);

	/* Each field is read where the old layout has it. */
	lars_client_options_init(&o);
	o.sockets = 17;
	assert_int_equal(lars_client_new(&o, &c), -EINVAL);
	lars_client_options_init(&o);
	o.agent_ip = "not-an-address";
	assert_int_equal(lars_client_new(&o, &c), -EINVAL);
	lars_client_options_init(&o);
	o.retries = 0;
	assert_int_equal(lars_client_new(&o, &c), -EINVAL);
	lars_client_options_init(&o);
	o.base_port = 70000;
	assert_int_equal(lars_client_new(&o, &c), -EINVAL);

	c = NULL;
	assert_int_equal(lars_client_new(NULL, &c), 0);
	lars_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_writes_the_old_layout),
		cmocka_unit_test(test_new_reads_the_old_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
