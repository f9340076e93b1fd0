// SPDX-License-Identifier: MIT
// common/loop/handles.c: a group closes all its handles and calls back once,
// after the last close callback, so the owner may free itself there.
#include "test.h"

#include <string.h>

#include "handles.h"
#include "xalloc.h"

typedef struct owner {
	uv_timer_t t1;
	uv_signal_t sig;
	uv_async_t async;
	handles_t handles;
	int *n_done;
	bool *freed;
} owner_t;

static void owner_on_closed(handles_t *g)
{
	owner_t *o = container_of(g, owner_t, handles);
	/* Every handle is through its close callback by now. */
	assert_true(uv_is_closing((uv_handle_t *)&o->t1));
	(*o->n_done)++;
	*o->freed = true;
	free(o);
}

static void on_async(uv_async_t *a)
{
}

static void on_timer(uv_timer_t *t)
{
	fail_msg("a timer of a closed group fired");
}

static void test_close_frees_after_last(void **state)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	int n_done = 0;
	bool freed = false;
	owner_t *o = xcalloc(1, sizeof(*o));
	o->n_done = &n_done;
	o->freed = &freed;
	handles_init(&o->handles);
	assert_int_equal(uv_timer_init(&loop, &o->t1), 0);
	handles_add(&o->handles, &o->t1);
	assert_int_equal(uv_signal_init(&loop, &o->sig), 0);
	handles_add(&o->handles, &o->sig);
	assert_int_equal(uv_async_init(&loop, &o->async, on_async), 0);
	handles_add(&o->handles, &o->async);
	assert_int_equal(uv_timer_start(&o->t1, on_timer, 0, 0), 0);

	assert_false(handles_closing(&o->handles));
	handles_close(&o->handles, owner_on_closed);
	assert_true(handles_closing(&o->handles));
	handles_close(&o->handles, owner_on_closed); /* again: nothing */
	assert_int_equal(n_done, 0);                /* not before the loop runs */
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(n_done, 1);
	assert_true(freed);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int n_empty_done;

static void on_empty_closed(handles_t *g)
{
	n_empty_done++;
}

static void test_empty_group_at_once(void **state)
{
	handles_t g;
	handles_init(&g);
	handles_close(&g, on_empty_closed);
	assert_int_equal(n_empty_done, 1);
	handles_close(&g, on_empty_closed);
	assert_int_equal(n_empty_done, 1);
}

static void test_no_callback(void **state)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_t t;
	handles_t g;
	handles_init(&g);
	assert_int_equal(uv_timer_init(&loop, &t), 0);
	handles_add(&g, &t);
	handles_close(&g, NULL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_frees_after_last),
		cmocka_unit_test(test_empty_group_at_once),
		cmocka_unit_test(test_no_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
