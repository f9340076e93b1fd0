// SPDX-License-Identifier: MIT
// The TCP server and the reconnecting TCP client against each other over
// loopback, in one loop: request/response, reconnect after the server
// restarts (hook runs again), failover past a dead endpoint, and a client
// that gets garbage drops the connection and reconnects.
#include "test.h"

#include <errno.h>
#include <string.h>

#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "tcp_client.h"
#include "tcp_server.h"

typedef struct fixture {
	uv_loop_t loop;
	uv_timer_t deadline;
	uv_timer_t later;
	tcp_server_t *srv;
	tcp_client_t *cli;
	dispatch_t srv_d, cli_d;
	int port;
	int n_connects;
	int n_disconnects;
	int n_replies;
	bool garbage; /* the server answers with an unknown msgid */
	int phase;
} fixture_t;

static fixture_t fx;

static void fx_finish(void)
{
	uv_timer_stop(&fx.deadline);
	tcp_client_close(fx.cli);
	tcp_server_close(fx.srv);
	fx.cli = NULL;
	fx.srv = NULL;
	uv_close((uv_handle_t *)&fx.deadline, NULL);
	uv_close((uv_handle_t *)&fx.later, NULL);
}

static void on_deadline(uv_timer_t *t)
{
	fail_msg("test did not finish in time (phase %d, connects %d, replies %d)",
		 fx.phase, fx.n_connects, fx.n_replies);
}

static int srv_on_get_host(peer_t *peer, void *user, int32_t msgid,
			   const uint8_t *body, size_t len)
{
	/* The typed peer: an accepted connection, named by its address. */
	assert_int_equal(peer_kind(peer), PEER_TCP_CONN);
	assert_string_equal(peer_name(peer), tcp_conn_peer(tcp_conn_of(peer)));
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	int r = msg_decode(lars_GetHostRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	lars_GetHostResponse resp = lars_GetHostResponse_init_zero;
	resp.seq = req.seq;
	return peer_send(peer, fx.garbage ? 77 : LARS_ID_GET_HOST_RESP,
			 lars_GetHostResponse_fields, &resp);
}

static void start_server(int port)
{
	tcp_server_opts_t o = { .name = "srv", .ip = "127.0.0.1", .port = port,
				.dispatch = &fx.srv_d };
	assert_int_equal(tcp_server_start(&fx.loop, &o, &fx.srv), 0);
	fx.port = tcp_server_port(fx.srv);
}

static void send_request(tcp_client_t *cli)
{
	lars_GetHostRequest req = { .seq = (uint32_t)fx.n_connects, .modid = 1, .cmdid = 1 };
	assert_int_equal(tcp_client_send(cli, LARS_ID_GET_HOST_REQ,
					 lars_GetHostRequest_fields, &req), 0);
}

static void cli_on_connect(tcp_client_t *cli, void *user)
{
	fx.n_connects++;
	send_request(cli);
}

static void cli_on_disconnect(tcp_client_t *cli, void *user)
{
	fx.n_disconnects++;
}

static void on_restart(uv_timer_t *t)
{
	start_server(fx.port); /* same port: the client's retries find it */
}

static int cli_on_reply(peer_t *peer, void *user, int32_t msgid,
			const uint8_t *body, size_t len)
{
	/* The typed peer: the client itself, named by its endpoint. */
	assert_int_equal(peer_kind(peer), PEER_TCP_CLIENT);
	assert_ptr_equal(tcp_client_of(peer), fx.cli);
	assert_string_equal(peer_name(peer), tcp_client_endpoint(fx.cli));
	fx.n_replies++;
	if (fx.phase == 0) {
		/* First answer: take the server away, bring it back shortly. */
		fx.phase = 1;
		tcp_server_close(fx.srv);
		fx.srv = NULL;
		uv_timer_start(&fx.later, on_restart, 300, 0);
	} else {
		fx_finish();
	}
	return 0;
}

static void fx_init(void)
{
	memset(&fx, 0, sizeof(fx));
	uv_loop_init(&fx.loop);
	uv_timer_init(&fx.loop, &fx.deadline);
	uv_timer_init(&fx.loop, &fx.later);
	uv_timer_start(&fx.deadline, on_deadline, 10000, 0);
	dispatch_init(&fx.srv_d);
	dispatch_on(&fx.srv_d, LARS_ID_GET_HOST_REQ, srv_on_get_host, NULL);
	dispatch_init(&fx.cli_d);
	dispatch_on(&fx.cli_d, LARS_ID_GET_HOST_RESP, cli_on_reply, NULL);
}

static void fx_run_and_close(void)
{
	uv_run(&fx.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx.loop), 0);
}

static void start_client(const char *endpoints)
{
	net_endpoint_t eps[NET_MAX_ENDPOINTS];
	int n = net_endpoints_parse(endpoints, eps, NET_MAX_ENDPOINTS);
	assert_true(n > 0);
	tcp_client_opts_t o = {
		.name = "cli", .endpoints = eps, .n_endpoints = (size_t)n,
		.backoff_base_ms = 20, .backoff_max_ms = 200,
		.dispatch = &fx.cli_d, .on_connect = cli_on_connect,
		.on_disconnect = cli_on_disconnect,
	};
	assert_int_equal(tcp_client_start(&fx.loop, &o, &fx.cli), 0);
}

static void test_reconnect_after_server_restart(void **state)
{
	fx_init();
	start_server(0);
	char ep[64];
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", fx.port);
	start_client(ep);
	fx_run_and_close();
	assert_int_equal(fx.n_connects, 2);     /* the hook ran after the reconnect */
	assert_int_equal(fx.n_disconnects, 1);
	assert_int_equal(fx.n_replies, 2);
}

static int reserve_dead_port(void)
{
	/* Bind and close: nothing listens there afterwards. */
	uv_loop_t l;
	uv_tcp_t t;
	int port;
	uv_loop_init(&l);
	assert_int_equal(net_listen_tcp(&l, &t, "127.0.0.1", 0, 1, false, NULL, &port), 0);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&l, UV_RUN_DEFAULT);
	uv_loop_close(&l);
	return port;
}

static int failover_on_reply(peer_t *peer, void *user, int32_t msgid,
			     const uint8_t *body, size_t len)
{
	fx.n_replies++;
	fx_finish();
	return 0;
}

static void test_failover_past_dead_endpoint(void **state)
{
	fx_init();
	dispatch_on(&fx.cli_d, LARS_ID_GET_HOST_RESP, failover_on_reply, NULL);
	start_server(0);
	char eps[128], good[64];
	snprintf(eps, sizeof(eps), "127.0.0.1:%d, 127.0.0.1:%d", reserve_dead_port(), fx.port);
	snprintf(good, sizeof(good), "127.0.0.1:%d", fx.port);
	start_client(eps);
	uv_run(&fx.loop, UV_RUN_DEFAULT);
	assert_int_equal(fx.n_replies, 1);
	assert_int_equal(uv_loop_close(&fx.loop), 0);
}


static void garbage_on_connect(tcp_client_t *cli, void *user)
{
	fx.n_connects++;
	if (fx.n_connects == 3) {
		fx_finish();
		return;
	}
	send_request(cli);
}

static void test_client_drops_garbage_and_reconnects(void **state)
{
	fx_init();
	fx.garbage = true;
	start_server(0);
	char ep[64];
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", fx.port);
	net_endpoint_t e[1];
	assert_int_equal(net_endpoints_parse(ep, e, 1), 1);
	tcp_client_opts_t o = {
		.name = "cli", .endpoints = e, .n_endpoints = 1,
		.backoff_base_ms = 10, .backoff_max_ms = 50, .dispatch = &fx.cli_d,
		.on_connect = garbage_on_connect, .on_disconnect = cli_on_disconnect,
	};
	assert_int_equal(tcp_client_start(&fx.loop, &o, &fx.cli), 0);
	uv_run(&fx.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx.loop), 0);
	/* Each unknown-id answer dropped the connection; it came back each time. */
	assert_int_equal(fx.n_connects, 3);
	assert_int_equal(fx.n_disconnects, 2);
	assert_int_equal(fx.n_replies, 0);
}

static void test_send_when_disconnected(void **state)
{
	fx_init();
	char ep[64];
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", reserve_dead_port());
	net_endpoint_t e[1];
	net_endpoints_parse(ep, e, 1);
	tcp_client_opts_t o = { .name = "cli", .endpoints = e, .n_endpoints = 1,
				.dispatch = &fx.cli_d };
	assert_int_equal(tcp_client_start(&fx.loop, &o, &fx.cli), 0);
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	assert_int_equal(tcp_client_send(fx.cli, LARS_ID_GET_HOST_REQ,
					 lars_GetHostRequest_fields, &req), -ENOTCONN);
	assert_false(tcp_client_connected(fx.cli));
	fx_finish();
	fx_run_and_close();
}

static void close_at_once(tcp_conn_t *c, void *user)
{
	tcp_conn_close(c, "test: full");
}

static void on_flap_window(uv_timer_t *t)
{
	fx_finish();
}

static void count_connect(tcp_client_t *cli, void *user)
{
	fx.n_connects++;
}

static void test_backoff_grows_against_flapping_server(void **state)
{
	/* A server that accepts and closes at once (as at its connection
	 * limit) must see a growing delay, not a retry every base interval. */
	fx_init();
	tcp_server_opts_t so = { .name = "srv", .ip = "127.0.0.1", .port = 0,
				 .dispatch = &fx.srv_d, .on_connect = close_at_once };
	assert_int_equal(tcp_server_start(&fx.loop, &so, &fx.srv), 0);
	char ep[64];
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", tcp_server_port(fx.srv));
	net_endpoint_t e[1];
	assert_int_equal(net_endpoints_parse(ep, e, 1), 1);
	tcp_client_opts_t o = {
		.name = "cli", .endpoints = e, .n_endpoints = 1,
		.backoff_base_ms = 20, .backoff_max_ms = 5000, .dispatch = &fx.cli_d,
		.on_connect = count_connect, .on_disconnect = cli_on_disconnect,
	};
	assert_int_equal(tcp_client_start(&fx.loop, &o, &fx.cli), 0);
	uv_timer_start(&fx.later, on_flap_window, 1500, 0);
	uv_run(&fx.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx.loop), 0);
	/* 20 ms steady retries would be ~75; doubling from 20 ms gives ≤ 8. */
	assert_in_range(fx.n_connects, 2, 10);
}

int main(void)
{
	log_init(LOG_LVL_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reconnect_after_server_restart),
		cmocka_unit_test(test_failover_past_dead_endpoint),
		cmocka_unit_test(test_client_drops_garbage_and_reconnects),
		cmocka_unit_test(test_send_when_disconnected),
		cmocka_unit_test(test_backoff_grows_against_flapping_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
