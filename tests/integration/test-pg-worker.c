// SPDX-License-Identifier: MIT
// The PostgreSQL worker against a real server (a database of its own from
// the fixture every test uses, tests/tools/lars-test-pg): results come back on the loop thread, SQL is
// parameterised, errors do not stop the worker, a killed backend is
// reconnected, an unreachable server fails jobs fast, and closing cancels
// what has not started.
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "pg_worker.h"
#include "xalloc.h"

typedef struct job {
	pg_job_t base;
	const char *sql;
	const char *param;
	char result[256];
	int status;
	bool done;
	bool on_loop;
} job_t;

static pthread_t loop_thread;
static int n_done;

static int job_work(PGconn *conn, pg_job_t *j)
{
	job_t *job = container_of(j, job_t, base);
	const char *params[1] = { job->param };
	PGresult *res = pg_exec(conn, job->sql, job->param ? 1 : 0, params, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		snprintf(job->result, sizeof(job->result), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static void job_done(pg_job_t *j, int status)
{
	job_t *job = container_of(j, job_t, base);
	job->status = status;
	job->done = true;
	job->on_loop = pthread_equal(pthread_self(), loop_thread);
	n_done++;
}

static void job_init(job_t *job, const char *sql, const char *param)
{
	memset(job, 0, sizeof(*job));
	job->base.work = job_work;
	job->base.done = job_done;
	job->sql = sql;
	job->param = param;
}

/* Run the loop until @n jobs are done (bounded by 20 s). */
static void run_until(uv_loop_t *loop, int n)
{
	uint64_t start = uv_hrtime();
	while (n_done < n) {
		uv_run(loop, UV_RUN_NOWAIT);
		if (uv_hrtime() - start > 20000000000ull)
			fail_msg("jobs did not finish: %d of %d", n_done, n);
		usleep(1000);
	}
}

static void close_loop(uv_loop_t *loop, pg_worker_t *w)
{
	pg_worker_close(w);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void test_jobs_and_parameters(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	pg_worker_t *w;
	pg_worker_opts_t o = { .name = "test", .conninfo = "", .n_threads = 2 };
	assert_int_equal(pg_worker_start(&loop, &o, &w), 0);

	enum { N = 40 };
	static job_t jobs[N];
	static char params[N][16];
	n_done = 0;
	for (int i = 0; i < N; i++) {
		snprintf(params[i], sizeof(params[i]), "%d", i);
		job_init(&jobs[i], "SELECT $1::int * 2", params[i]);
		pg_worker_submit(w, &jobs[i].base);
	}
	/* Hostile text is data, never SQL. */
	static job_t quoted, bad, after;
	const char *evil = "x'); DROP TABLE pg_class; -- \"quoted\" $1 \\";
	job_init(&quoted, "SELECT $1::text", evil);
	job_init(&bad, "SELECT no_such_column FROM no_such_table", NULL);
	job_init(&after, "SELECT 'still serving'", NULL);
	pg_worker_submit(w, &quoted.base);
	pg_worker_submit(w, &bad.base);
	pg_worker_submit(w, &after.base);
	run_until(&loop, N + 3);

	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].status, 0);
		assert_true(jobs[i].on_loop);
		assert_int_equal(atoi(jobs[i].result), 2 * i);
	}
	assert_int_equal(quoted.status, 0);
	assert_string_equal(quoted.result, evil);
	assert_int_equal(bad.status, -EIO);
	assert_int_equal(after.status, 0);
	assert_string_equal(after.result, "still serving");
	assert_int_equal(pg_worker_pending(w), 0);
	close_loop(&loop, w);
}

static void test_reconnects_after_backend_killed(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	pg_worker_t *w;
	pg_worker_opts_t o = { .name = "test", .conninfo = "", .n_threads = 1,
			       .backoff_base_ms = 10 };
	assert_int_equal(pg_worker_start(&loop, &o, &w), 0);
	static job_t kill, next;
	job_init(&kill, "SELECT pg_terminate_backend(pg_backend_pid())", NULL);
	job_init(&next, "SELECT 'back'", NULL);
	n_done = 0;
	pg_worker_submit(w, &kill.base);
	pg_worker_submit(w, &next.base);
	run_until(&loop, 2);
	assert_int_equal(kill.status, -ENOTCONN); /* the connection died under it */
	assert_int_equal(next.status, 0);         /* and the worker reconnected */
	assert_string_equal(next.result, "back");
	close_loop(&loop, w);
}

/* Ends backend @pid from a connection of our own and waits (10 s at most)
 * until it is gone: the worker's connection is then stale, as after a
 * server restart, while PQstatus() still says CONNECTION_OK. */
static void terminate_backend(const char *pid)
{
	PGconn *c = PQconnectdb("");
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	const char *params[1] = { pid };
	PGresult *res = PQexecParams(c, "SELECT pg_terminate_backend($1::int)", 1, NULL, params,
				     NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	uint64_t start = uv_hrtime();
	for (;;) {
		res = PQexecParams(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1,
				   NULL, params, NULL, NULL, 0);
		assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
		bool gone = strcmp(PQgetvalue(res, 0, 0), "0") == 0;
		PQclear(res);
		if (gone)
			break;
		if (uv_hrtime() - start > 10000000000ull)
			fail_msg("backend %s did not end", pid);
		usleep(10000);
	}
	PQfinish(c);
}

static void test_read_retried_on_stale_connection(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	pg_worker_t *w;
	pg_worker_opts_t o = { .name = "test", .conninfo = "", .n_threads = 1 };
	assert_int_equal(pg_worker_start(&loop, &o, &w), 0);
	static job_t pid, read, write, after;
	n_done = 0;
	job_init(&pid, "SELECT pg_backend_pid()", NULL);
	pg_worker_submit(w, &pid.base);
	run_until(&loop, 1);
	assert_int_equal(pid.status, 0);
	terminate_backend(pid.result);
	/* A read on the stale connection runs again on a new one. */
	job_init(&read, "SELECT pg_backend_pid()", NULL);
	read.base.read_only = true;
	pg_worker_submit(w, &read.base);
	run_until(&loop, 2);
	assert_int_equal(read.status, 0);
	assert_string_not_equal(read.result, pid.result);
	/* A write is not: it reports the lost connection; the next job works. */
	terminate_backend(read.result);
	job_init(&write, "SELECT 'written'", NULL);
	job_init(&after, "SELECT 'after'", NULL);
	pg_worker_submit(w, &write.base);
	pg_worker_submit(w, &after.base);
	run_until(&loop, 4);
	assert_int_equal(write.status, -ENOTCONN);
	assert_string_equal(write.result, "");
	assert_int_equal(after.status, 0);
	assert_string_equal(after.result, "after");
	close_loop(&loop, w);
}

static void test_unreachable_fails_fast(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	pg_worker_t *w;
	/* Port 1 on loopback: connection refused at once. */
	pg_worker_opts_t o = { .name = "test", .conninfo = "host=127.0.0.1 port=1",
			       .n_threads = 2, .backoff_base_ms = 1000 };
	assert_int_equal(pg_worker_start(&loop, &o, &w), 0);
	static job_t jobs[10];
	n_done = 0;
	uint64_t start = uv_hrtime();
	for (int i = 0; i < 10; i++) {
		job_init(&jobs[i], "SELECT 1", NULL);
		pg_worker_submit(w, &jobs[i].base);
	}
	run_until(&loop, 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(jobs[i].status, -ENOTCONN);
	/* One refused attempt, then the backoff answers the rest without trying. */
	assert_true(uv_hrtime() - start < 5000000000ull);
	close_loop(&loop, w);
}

static void test_close_cancels_queued(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	pg_worker_t *w;
	pg_worker_opts_t o = { .name = "test", .conninfo = "", .n_threads = 1 };
	assert_int_equal(pg_worker_start(&loop, &o, &w), 0);
	static job_t slow, queued[5];
	n_done = 0;
	job_init(&slow, "SELECT pg_sleep(0.3)::text", NULL);
	pg_worker_submit(w, &slow.base);
	for (int i = 0; i < 5; i++) {
		job_init(&queued[i], "SELECT 1", NULL);
		pg_worker_submit(w, &queued[i].base);
	}
	usleep(100000); /* the slow one is running now */
	pg_worker_close(w);
	/* Submitting after close is answered at once, never lost. */
	static job_t late;
	job_init(&late, "SELECT 1", NULL);
	pg_worker_submit(w, &late.base);
	assert_true(late.done);
	assert_int_equal(late.status, -ECANCELED);
	n_done--;
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(n_done, 6);
	assert_true(slow.done);
	for (int i = 0; i < 5; i++)
		assert_int_equal(queued[i].status, -ECANCELED);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_cancels_running(void **state)
{
	/* A statement that would run for a minute does not hold up shutdown. */
	uv_loop_t loop;
	uv_loop_init(&loop);
	pg_worker_t *w;
	pg_worker_opts_t o = { .name = "test", .conninfo = "", .n_threads = 1 };
	assert_int_equal(pg_worker_start(&loop, &o, &w), 0);
	static job_t sleeper;
	n_done = 0;
	job_init(&sleeper, "SELECT pg_sleep(60)::text", NULL);
	pg_worker_submit(w, &sleeper.base);
	usleep(300000); /* connected and sleeping by now */
	uint64_t start = uv_hrtime();
	pg_worker_close(w);
	assert_true(uv_hrtime() - start < 100000000ull); /* close itself does not wait */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(uv_hrtime() - start < 10000000000ull);
	assert_true(sleeper.done);
	assert_int_equal(sleeper.status, -EIO); /* canceling statement due to user request */
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	log_init(LOG_LVL_WARN);
	loop_thread = pthread_self();
	harness_pg_t pg;
	if (harness_pg_start(&pg, "pg_worker", false))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_and_parameters),
		cmocka_unit_test(test_reconnects_after_backend_killed),
		cmocka_unit_test(test_read_retried_on_stale_connection),
		cmocka_unit_test(test_unreachable_fails_fast),
		cmocka_unit_test(test_close_cancels_queued),
		cmocka_unit_test(test_close_cancels_running),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	harness_pg_stop(&pg);
	return r;
}
