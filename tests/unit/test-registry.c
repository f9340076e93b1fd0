// SPDX-License-Identifier: MIT
// The agent's registrations on a fake clock (agent_svc/core/registry.c): a
// new instance is checked first and registered on its first pass; leases
// are renewed every TTL/3 in one batch; a failing check drains it after
// check_fall failures and stops renewing (lars-dns expires it), rise passes
// register it again; deregistration drains, waits drain_ms from the drain's
// answer, then removes; requests without an answer go again; bad input is
// refused with a reason and nothing is sent.
#include "test.h"

#include <string.h>

#include "msg.h"
#include "registry.h"

#define T0 1000000
#define IP 0x7f000001

static reg_t reg;
static lars_LeaseRequest sent[16];
static size_t n_sent;
static reg_check_t checks[16];
static size_t n_checks;
static bool link_ok;

static int send_cb(void *user, const lars_LeaseRequest *req)
{
	(void)user;
	if (!link_ok)
		return -1;
	if (n_sent < 16)
		sent[n_sent] = *req;
	n_sent++;
	return 0;
}

static void check_cb(void *user, const reg_check_t *c)
{
	(void)user;
	if (n_checks < 16)
		checks[n_checks] = *c;
	n_checks++;
}

static int setup(void **state)
{
	(void)state;
	reg_cfg_t cfg = { .ttl_s = 9, .check_interval_ms = 1000, .check_timeout_ms = 500,
			  .check_fall = 3, .check_rise = 2, .drain_ms = 5000, .max = 4,
			  .caller = IP };
	reg_ops_t ops = { .send = send_cb, .check = check_cb };
	reg_init(&reg, &cfg, &ops);
	n_sent = n_checks = 0;
	link_ok = true;
	reg_set_link(&reg, true, T0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	reg_deinit(&reg);
	return 0;
}

static lars_RegisterResponse request(int port, int check, bool dereg, uint64_t now)
{
	lars_RegisterRequest q = { .seq = 7, .modid = 5, .cmdid = 1, .port = port,
				   .check = (uint32_t)check };
	if (check == LARS_CHECK_HTTP)
		strcpy(q.check_path, "/health");
	lars_RegisterResponse resp;
	reg_request(&reg, &q, dereg, now, &resp);
	return resp;
}

/* lars-dns answers the last request sent with @result for each host. */
static void answer_last(uint32_t result, uint64_t now)
{
	assert_true(n_sent > 0);
	const lars_LeaseRequest *q = &sent[n_sent - 1];
	lars_LeaseResponse resp = { .seq = q->seq, .op = q->op, .result_count = q->host_count };
	for (pb_size_t i = 0; i < q->host_count; i++)
		resp.result[i] = result;
	reg_lease_answer(&reg, &resp, now);
}

static void test_register_without_check(void **state)
{
	lars_RegisterResponse r = request(9001, LARS_CHECK_NONE, false, T0);
	assert_int_equal(r.seq, 7);
	assert_int_equal(r.state, LARS_REG_PENDING);
	assert_int_equal(r.ip, IP); /* ip 0: the agent's caller */
	assert_int_equal(r.ttl_s, 9);
	reg_tick(&reg, T0);
	assert_int_equal(n_sent, 1);
	assert_int_equal(sent[0].op, LARS_LEASE_REGISTER);
	assert_int_equal(sent[0].host[0].port, 9001);
	assert_int_equal(sent[0].host[0].weight, 100);
	assert_int_equal(sent[0].host[0].ttl_s, 9);
	reg_tick(&reg, T0 + 100); /* one in flight: nothing more */
	assert_int_equal(n_sent, 1);
	answer_last(LARS_LEASE_R_ADDED, T0 + 5);
	assert_int_equal(request(9001, LARS_CHECK_NONE, false, T0 + 10).state, LARS_REG_REGISTERED);
	assert_int_equal(reg_count(&reg), 1);
	/* Renewed every TTL/3 (3 s), counted from the request. */
	reg_tick(&reg, T0 + 2999);
	assert_int_equal(n_sent, 1);
	reg_tick(&reg, T0 + 3000);
	assert_int_equal(n_sent, 2);
	assert_int_equal(sent[1].op, LARS_LEASE_RENEW);
	answer_last(LARS_LEASE_R_RENEWED, T0 + 3001);
	/* An app that stops sending keeps its registration: renewed on. */
	reg_tick(&reg, T0 + 6000);
	assert_int_equal(n_sent, 3);
	assert_int_equal(sent[2].op, LARS_LEASE_RENEW);
	/* A renewal lars-dns no longer knows (expired during an outage):
	 * registered again. */
	answer_last(LARS_LEASE_R_ABSENT, T0 + 6001);
	reg_tick(&reg, T0 + 6100);
	assert_int_equal(n_sent, 4);
	assert_int_equal(sent[3].op, LARS_LEASE_REGISTER);
}

static void test_renewals_batched(void **state)
{
	for (int p = 1; p <= 3; p++)
		request(9000 + p, LARS_CHECK_NONE, false, T0);
	reg_tick(&reg, T0);
	assert_int_equal(n_sent, 3);
	for (int k = 0; k < 3; k++) {
		lars_LeaseResponse resp = { .seq = sent[k].seq, .op = sent[k].op, .result_count = 1 };
		resp.result[0] = LARS_LEASE_R_ADDED;
		reg_lease_answer(&reg, &resp, T0 + 1);
	}
	reg_tick(&reg, T0 + 3000);
	assert_int_equal(n_sent, 4);
	assert_int_equal(sent[3].op, LARS_LEASE_RENEW);
	assert_int_equal(sent[3].host_count, 3);
	/* One of the three gone at lars-dns: only it is registered again. */
	lars_LeaseResponse resp = { .seq = sent[3].seq, .op = LARS_LEASE_RENEW, .result_count = 3,
				    .result = { LARS_LEASE_R_RENEWED, LARS_LEASE_R_ABSENT,
						LARS_LEASE_R_RENEWED } };
	reg_lease_answer(&reg, &resp, T0 + 3001);
	reg_tick(&reg, T0 + 3100);
	assert_int_equal(n_sent, 5);
	assert_int_equal(sent[4].op, LARS_LEASE_REGISTER);
	assert_int_equal(sent[4].host[0].port, sent[3].host[1].port);
	/* The table is bounded. */
	request(9004, LARS_CHECK_NONE, false, T0 + 3200);
	lars_RegisterResponse r = request(9005, LARS_CHECK_NONE, false, T0 + 3200);
	assert_int_equal(r.state, LARS_REG_REFUSED);
	assert_non_null(strstr(r.message, "max_registrations"));
}

static void test_check_fail_drain_and_back(void **state)
{
	assert_int_equal(request(9001, LARS_CHECK_TCP, false, T0).state, LARS_REG_PENDING);
	reg_tick(&reg, T0);
	/* Checked first, registered on its first pass. */
	assert_int_equal(n_checks, 1);
	assert_int_equal(n_sent, 0);
	assert_int_equal(checks[0].kind, LARS_CHECK_TCP);
	assert_int_equal(checks[0].timeout_ms, 500);
	reg_tick(&reg, T0 + 500); /* one check at a time */
	assert_int_equal(n_checks, 1);
	reg_check_done(&reg, checks[0].id, checks[0].gen, true, NULL, T0 + 2);
	reg_tick(&reg, T0 + 3);
	assert_int_equal(n_sent, 1);
	answer_last(LARS_LEASE_R_ADDED, T0 + 4);
	/* Two failures: still listed; the third drains it. */
	for (int k = 1; k <= 3; k++) {
		uint64_t t = T0 + (uint64_t)k * 1000;
		reg_tick(&reg, t);
		assert_int_equal(n_checks, 1 + k);
		reg_check_done(&reg, checks[k].id, checks[k].gen, false, "connection refused", t + 1);
	}
	assert_int_equal(n_sent, 1); /* its first renewal is due at T0 + 3003 */
	lars_RegisterResponse r = request(9001, LARS_CHECK_TCP, false, T0 + 3002);
	assert_int_equal(r.state, LARS_REG_FAILING);
	assert_non_null(strstr(r.message, "connection refused"));
	reg_tick(&reg, T0 + 3100);
	assert_int_equal(sent[n_sent - 1].op, LARS_LEASE_DRAIN);
	answer_last(LARS_LEASE_R_DRAINED, T0 + 3101);
	/* Drained and failing: no renewal, so the lease runs out at lars-dns. */
	size_t before = n_sent;
	for (uint64_t t = T0 + 3200; t < T0 + 12000; t += 100)
		reg_tick(&reg, t);
	assert_int_equal(n_sent, before);
	/* One pass is not enough (rise 2); the second registers it again. */
	reg_check_done(&reg, checks[n_checks - 1].id, checks[n_checks - 1].gen, true, NULL,
		       T0 + 12001);
	reg_tick(&reg, T0 + 12002);
	assert_int_equal(n_sent, before);
	reg_tick(&reg, T0 + 13000);
	reg_check_done(&reg, checks[n_checks - 1].id, checks[n_checks - 1].gen, true, NULL,
		       T0 + 13001);
	reg_tick(&reg, T0 + 13002);
	assert_int_equal(n_sent, before + 1);
	assert_int_equal(sent[before].op, LARS_LEASE_REGISTER);
	/* A check result for a slot's previous occupant is ignored. */
	reg_check_done(&reg, checks[0].id, checks[0].gen + 9, false, "old", T0 + 13003);
}

static void test_deregister_drains_then_removes(void **state)
{
	request(9001, LARS_CHECK_NONE, false, T0);
	reg_tick(&reg, T0);
	answer_last(LARS_LEASE_R_ADDED, T0 + 1);
	lars_RegisterResponse r = request(9001, LARS_CHECK_NONE, true, T0 + 100);
	assert_int_equal(r.state, LARS_REG_DRAINING);
	assert_int_equal(r.drain_ms, 5000);
	reg_tick(&reg, T0 + 100);
	assert_int_equal(sent[n_sent - 1].op, LARS_LEASE_DRAIN);
	answer_last(LARS_LEASE_R_DRAINED, T0 + 200);
	/* drain_ms from the drain's answer, renewed meanwhile if due. */
	r = request(9001, LARS_CHECK_NONE, true, T0 + 1200);
	assert_int_equal(r.state, LARS_REG_DRAINING);
	assert_int_equal(r.drain_ms, 4000);
	size_t before = n_sent;
	for (uint64_t t = T0 + 300; t < T0 + 5200; t += 100) {
		size_t had = n_sent;
		reg_tick(&reg, t);
		if (n_sent > had) {
			assert_int_equal(sent[n_sent - 1].op, LARS_LEASE_RENEW);
			answer_last(LARS_LEASE_R_RENEWED, t + 1);
		}
	}
	assert_int_equal(n_sent, before + 1); /* renewed once, at T0 + 3000 */
	reg_tick(&reg, T0 + 5200);
	assert_int_equal(sent[n_sent - 1].op, LARS_LEASE_DEREGISTER);
	answer_last(LARS_LEASE_R_REMOVED, T0 + 5201);
	assert_int_equal(request(9001, 0, true, T0 + 5300).state, LARS_REG_REMOVED);
	assert_int_equal(reg_count(&reg), 0);
	/* Forgotten after a while; then unknown. */
	reg_tick(&reg, T0 + 70000);
	assert_int_equal(request(9001, 0, true, T0 + 70001).state, LARS_REG_UNKNOWN);
	/* Registered again after the removal: a fresh registration. */
	assert_int_equal(request(9001, 0, false, T0 + 70002).state, LARS_REG_PENDING);
}

static void test_deregister_called_off_and_operator(void **state)
{
	request(9001, LARS_CHECK_NONE, false, T0);
	reg_tick(&reg, T0);
	answer_last(LARS_LEASE_R_OPERATOR, T0 + 1);
	assert_int_equal(request(9001, 0, false, T0 + 2).state, LARS_REG_OPERATOR);
	/* The operator's host is asked about again every TTL/3 (removed by the
	 * operator later, it becomes ours). */
	reg_tick(&reg, T0 + 3000);
	assert_int_equal(sent[n_sent - 1].op, LARS_LEASE_REGISTER);
	answer_last(LARS_LEASE_R_ADDED, T0 + 3001);
	request(9001, 0, true, T0 + 3100);
	reg_tick(&reg, T0 + 3100);
	answer_last(LARS_LEASE_R_DRAINED, T0 + 3101);
	/* Registering during the drain calls it off: registered again (undrains). */
	assert_int_equal(request(9001, 0, false, T0 + 4000).state, LARS_REG_PENDING);
	reg_tick(&reg, T0 + 4000);
	assert_int_equal(sent[n_sent - 1].op, LARS_LEASE_REGISTER);
	answer_last(LARS_LEASE_R_RENEWED, T0 + 4001);
	reg_tick(&reg, T0 + 9000);
	assert_int_equal(request(9001, 0, false, T0 + 9001).state, LARS_REG_REGISTERED);
}

static void test_lost_link_and_resend(void **state)
{
	link_ok = false;
	reg_set_link(&reg, false, T0);
	request(9001, LARS_CHECK_NONE, false, T0);
	reg_tick(&reg, T0 + 100);
	assert_int_equal(n_sent, 0);
	link_ok = true;
	reg_set_link(&reg, true, T0 + 200);
	reg_tick(&reg, T0 + 300);
	assert_int_equal(n_sent, 1);
	/* No answer: sent again after 3 s, and at once after a reconnect. */
	reg_tick(&reg, T0 + 3299);
	assert_int_equal(n_sent, 1);
	reg_tick(&reg, T0 + 3300);
	assert_int_equal(n_sent, 2);
	reg_set_link(&reg, true, T0 + 3400);
	reg_tick(&reg, T0 + 3400);
	assert_int_equal(n_sent, 3);
	/* lars-dns failed: tried again a second later. */
	answer_last(LARS_LEASE_R_FAILED, T0 + 3401);
	reg_tick(&reg, T0 + 4000);
	assert_int_equal(n_sent, 3);
	reg_tick(&reg, T0 + 4401);
	assert_int_equal(n_sent, 4);
}

/* A burst of registrations: 8 requests out at a time, the rest wait. */
static void test_burst_bounded(void **state)
{
	reg_deinit(&reg);
	reg_cfg_t cfg = { .ttl_s = 9, .check_interval_ms = 1000, .check_timeout_ms = 500,
			  .check_fall = 3, .check_rise = 2, .drain_ms = 5000, .max = 16,
			  .caller = IP };
	reg_ops_t ops = { .send = send_cb, .check = check_cb };
	reg_init(&reg, &cfg, &ops);
	reg_set_link(&reg, true, T0);
	for (int p = 1; p <= 12; p++)
		request(9000 + p, LARS_CHECK_NONE, false, T0);
	reg_tick(&reg, T0);
	assert_int_equal(n_sent, 8);
	reg_tick(&reg, T0 + 100);
	assert_int_equal(n_sent, 8);
	answer_last(LARS_LEASE_R_ADDED, T0 + 101);
	reg_tick(&reg, T0 + 200);
	assert_int_equal(n_sent, 9);
	/* Unanswered ones stop counting when they are sent again (3 s). */
	reg_tick(&reg, T0 + 3000);
	assert_int_equal(n_sent, 9 + 8);
}

static void test_bad_input(void **state)
{
	struct { lars_RegisterRequest q; const char *why; } bad[] = {
		{ { .modid = -1, .port = 1 }, "modid" },
		{ { .modid = 1, .port = 0 }, "port" },
		{ { .modid = 1, .port = 65536 }, "port" },
		{ { .modid = 1, .port = 1, .weight = 1001 }, "weight" },
		{ { .modid = 1, .port = 1, .ttl_s = 86401 }, "ttl" },
		{ { .modid = 1, .port = 1, .check = 9 }, "check" },
		{ { .modid = 1, .port = 1, .check = LARS_CHECK_HTTP, .check_path = "health" }, "path" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lars_RegisterResponse r;
		reg_request(&reg, &bad[i].q, false, T0, &r);
		assert_int_equal(r.state, LARS_REG_REFUSED);
		assert_non_null(strstr(r.message, bad[i].why));
	}
	reg_tick(&reg, T0);
	assert_int_equal(n_sent, 0);
	assert_int_equal(reg_count(&reg), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_without_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewals_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_fail_drain_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deregister_drains_then_removes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deregister_called_off_and_operator, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lost_link_and_resend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burst_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
