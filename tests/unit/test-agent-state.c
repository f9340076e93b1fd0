// SPDX-License-Identifier: MIT
// `lars agent-state` on a fake clock (issue 20.1, 20.2): what the agent's
// core says it holds (routes in key order, keys still pulled or absent,
// per host state, picks, counters, window age, the last change and the rule
// that fired, a drained host), and the answer's plumbing in common/wire:
// cut to a budget with the counts kept consistent, encoded and decoded back
// the same, and the JSON both GET /routes and `-o json` print.
#include "test.h"

#include <string.h>

#include "agent_core.h"
#include "agent_state.h"
#include "msg.h"

#define S(sec) ((uint64_t)(sec) * 1000)
#define T0 S(1000)

static const lars_HostInfo A = { 10, 80 }, B = { 11, 80 }, C = { 12, 80 };

static acore_t *new_core(void)
{
	static acore_cfg_t cfg;
	cfg = (acore_cfg_t){ .max_routes = 100, .max_absent = 100, .pull_rate = 1000,
			     .pull_burst = 1000, .report_max_hosts = 1000, .agent_id = 7,
			     .ack_timeout_ms = 5000 };
	lb_cfg_defaults(&cfg.lb);
	acore_t *c;
	assert_int_equal(acore_new(&cfg, T0, &c), 0);
	acore_set_link(c, ACORE_LINK_UP);
	return c;
}

static const lars_HostState *host_of(const as_state_t *st, size_t route, int32_t ip)
{
	size_t hi = 0;
	for (size_t i = 0; i < route; i++)
		hi += st->routes[i].host_listed;
	for (uint32_t j = 0; j < st->routes[route].host_listed; j++)
		if (st->hosts[hi + j].ip == ip)
			return &st->hosts[hi + j];
	fail_msg("host %d not in route %zu", ip, route);
	return NULL;
}

static void test_core_state_shows_rule(void **state)
{
	acore_t *c = new_core();
	lars_HostInfo h;
	/* 1/2 and 1/1 with hosts, 3/3 pulled and unanswered, 2/9 absent. */
	assert_int_equal(acore_get_host(c, 1, 2, T0, &h), ACORE_E_PENDING);
	assert_int_equal(acore_get_host(c, 1, 1, T0, &h), ACORE_E_PENDING);
	assert_int_equal(acore_get_host(c, 3, 3, T0, &h), ACORE_E_PENDING);
	assert_int_equal(acore_get_host(c, 2, 9, T0, &h), ACORE_E_PENDING);
	const lars_HostInfo three[] = { A, B, { .ip = C.ip, .port = C.port, .drain = true } };
	acore_apply_route(c, 1, 1, three, 3, T0);
	acore_apply_route(c, 1, 2, &A, 1, T0);
	acore_apply_route(c, 2, 9, NULL, 0, T0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(acore_get_host(c, 1, 1, T0 + 10, &h), ACORE_OK);
	/* B fails 15 times in a row: sidelined by contin_err_limit. */
	for (int i = 0; i < 15; i++)
		acore_report(c, 1, 1, B.ip, B.port, false, T0 + S(1));

	as_state_t st;
	as_init(&st);
	assert_int_equal(acore_state(c, true, 0, 0, T0 + S(3), &st), 0);
	assert_int_equal(st.route_total, 4);
	assert_int_equal(st.n_routes, 4);
	/* In key order, each with its state. */
	const int32_t want[4][3] = { { 1, 1, AS_ROUTE_READY }, { 1, 2, AS_ROUTE_READY },
				     { 2, 9, AS_ROUTE_ABSENT }, { 3, 3, AS_ROUTE_PULLING } };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(st.routes[i].modid, want[i][0]);
		assert_int_equal(st.routes[i].cmdid, want[i][1]);
		if (st.routes[i].state != (uint32_t)want[i][2])
			fail_msg("route %d/%d state %s", want[i][0], want[i][1],
				 as_route_state_name(st.routes[i].state));
	}
	assert_int_equal(st.routes[0].host_total, 3);
	assert_int_equal(st.routes[0].host_listed, 3);
	assert_int_equal(st.routes[0].age_ms, S(3));
	assert_int_equal(st.routes[3].age_ms, S(3)); /* pulled at T0, no answer */
	const lars_HostState *b = host_of(&st, 0, B.ip);
	assert_int_equal(b->state, AS_HOST_OVERLOADED);
	assert_true(b->overloaded);
	assert_string_equal(b->rule, "15 consecutive errors");
	assert_int_equal(b->since_change_ms, S(2));
	assert_int_equal(b->window_age_ms, S(2));
	assert_int_equal(b->ejections, 1);
	const lars_HostState *a = host_of(&st, 0, A.ip), *cc = host_of(&st, 0, C.ip);
	assert_int_equal(a->state, AS_HOST_IDLE);
	assert_int_equal(a->weight, 100);
	assert_int_equal(a->vsucc, 180); /* init_succ_cnt */
	assert_int_equal(a->rule[0], '\0');
	assert_int_equal(cc->state, AS_HOST_DRAINED);
	assert_int_equal(cc->picks, 0);
	/* Four picks over the two live idle hosts (round robin), none of C. */
	assert_int_equal(a->picks + b->picks, 4);
	as_deinit(&st);

	/* One key; a key the agent does not hold; back to idle by successes. */
	for (int i = 0; i < 15; i++)
		acore_report(c, 1, 1, B.ip, B.port, true, T0 + S(4));
	as_init(&st);
	assert_int_equal(acore_state(c, false, 1, 1, T0 + S(5), &st), 0);
	assert_int_equal(st.route_total, 1);
	assert_int_equal(st.n_routes, 1);
	b = host_of(&st, 0, B.ip);
	assert_int_equal(b->state, AS_HOST_IDLE);
	assert_string_equal(b->rule, "15 consecutive successes");
	as_deinit(&st);
	as_init(&st);
	assert_int_equal(acore_state(c, false, 8, 8, T0 + S(5), &st), 0);
	assert_int_equal(st.route_total, 0);
	assert_int_equal(st.n_routes, 0);
	as_deinit(&st);
	acore_free(c);
}

/* Routes of @hosts hosts each, with a rule text on every host. */
static void fill(as_state_t *st, int routes, int hosts)
{
	as_init(st);
	st->route_total = (uint32_t)routes;
	for (int r = 0; r < routes; r++) {
		lars_RouteState rs = { .modid = r, .cmdid = 1, .version = 1000 + r,
				       .state = AS_ROUTE_READY, .host_total = (uint32_t)hosts };
		assert_int_equal(as_add_route(st, &rs), 0);
		for (int h = 0; h < hosts; h++) {
			lars_HostState hs = { .ip = 0x0a000000 + h, .port = 8000 + h,
					      .state = AS_HOST_OVERLOADED, .weight = 100,
					      .picks = 1u << 20, .verr = 99 };
			snprintf(hs.rule, sizeof(hs.rule), "err rate 0.%02d > 0.10", h % 100);
			assert_int_equal(as_add_host(st, &hs), 0);
		}
	}
}

static void test_fit_and_round_trip(void **state)
{
	as_state_t st, back;
	uint8_t buf[MSG_UDP_DATAGRAM_MAX];
	size_t len;
	fill(&st, 40, 200); /* far more than a datagram */
	size_t kept = as_fit(&st, MSG_UDP_DATAGRAM_MAX - 8);
	assert_true(st.cut);
	assert_true(st.n_routes > 0 && st.n_routes < 40);
	size_t listed = 0;
	for (size_t i = 0; i < st.n_routes; i++)
		listed += st.routes[i].host_listed;
	assert_int_equal(listed, st.n_hosts);
	assert_true(st.routes[st.n_routes - 1].host_listed < 200);
	lars_AgentStateResponse resp = lars_AgentStateResponse_init_zero;
	as_bind(&st, &resp);
	assert_int_equal(msg_frame_encode(LARS_ID_AGENT_STATE_RESP, lars_AgentStateResponse_fields,
					  &resp, buf, sizeof(buf), &len), 0);
	/* The estimate is what the encoder writes, and it fits. */
	assert_true(len - 8 <= kept && kept - (len - 8) <= 8);
	assert_true(len <= MSG_UDP_DATAGRAM_MAX);
	as_init(&back);
	assert_int_equal(as_decode(buf + 8, len - 8, &back, NULL), 0);
	assert_int_equal(back.n_routes, st.n_routes);
	assert_int_equal(back.n_hosts, st.n_hosts);
	assert_int_equal(back.route_total, 40);
	assert_true(back.cut);
	assert_int_equal(back.routes[1].version, 1001);
	assert_string_equal(back.hosts[5].rule, "err rate 0.05 > 0.10");
	assert_int_equal(back.hosts[5].picks, 1u << 20);
	as_deinit(&back);

	/* Hosts that claim more than are there: refused. */
	st.routes[0].host_listed++;
	as_bind(&st, &resp);
	assert_int_equal(msg_frame_encode(LARS_ID_AGENT_STATE_RESP, lars_AgentStateResponse_fields,
					  &resp, buf, sizeof(buf), &len), 0);
	as_init(&back);
	assert_int_equal(as_decode(buf + 8, len - 8, &back, NULL), MSG_E_DECODE);
	as_deinit(&back);
	/* Garbage and a truncated answer: errors, nothing leaked. */
	as_init(&back);
	assert_int_not_equal(as_decode(buf + 8, (len - 8) / 2, &back, NULL), 0);
	as_deinit(&back);
	static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01 };
	as_init(&back);
	assert_int_not_equal(as_decode(junk, sizeof(junk), &back, NULL), 0);
	as_deinit(&back);
	as_deinit(&st);

	/* Small enough: nothing cut. */
	fill(&st, 2, 3);
	as_fit(&st, MSG_UDP_DATAGRAM_MAX - 8);
	assert_false(st.cut);
	assert_int_equal(st.n_hosts, 6);
	as_deinit(&st);
}

static void test_json(void **state)
{
	as_state_t st;
	fill(&st, 1, 2);
	snprintf(st.hosts[1].rule, sizeof(st.hosts[1].rule), "quote \" back \\ nl \n");
	st.routes[0].panic = true;
	size_t len;
	char *j = as_json(&st, &len);
	assert_non_null(j);
	assert_int_equal(strlen(j), len);
	assert_non_null(strstr(j, "{\"routes\":[{\"modid\":0,\"cmdid\":1,\"version\":1000,"));
	assert_non_null(strstr(j, "\"state\":\"ready\",\"panic\":true,\"host_total\":2,\"hosts\":[{"));
	assert_non_null(strstr(j, "\"ip\":\"10.0.0.1\",\"port\":8001,\"state\":\"overloaded\""));
	assert_non_null(strstr(j, "\"rule\":\"quote \\\" back \\\\ nl \\n\"}"));
	assert_non_null(strstr(j, "],\"route_total\":1,\"cut\":false}\n"));
	free(j);
	as_deinit(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_core_state_shows_rule),
		cmocka_unit_test(test_fit_and_round_trip),
		cmocka_unit_test(test_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
