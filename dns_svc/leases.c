// SPDX-License-Identifier: MIT
// Our agents' lease requests (leases.h).
//
// DESIGN: a request is checked on the loop (bad hosts are answered at once
// and nothing is stored), then becomes one job on the database workers: one
// transaction through the route write path (version, change record with the
// actor "agent <caller>", NOTIFY, so the push follows as for larsctl), or
// for a renewal one statement over the batch. The answer goes back on the
// agent's connection if it is still open (the job holds a reference).
#include "leases.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lars.pb.h"
#include "log.h"
#include "msg.h"
#include "route_lease.h"
#include "xalloc.h"

struct dns_leases {
	pg_worker_t *db;
	size_t inflight;
	bool freeing; /* dns_leases_free() called: the last job frees it */
	metrics_counter_t *requests[5]; /* by op (0: refused before the database) */
	metrics_counter_t *failed;
};

typedef struct lease_req_job {
	pg_job_t base;
	dns_leases_t *l;
	tcp_conn_t *conn; /* referenced */
	uint64_t owner;
	char actor[40];
	uint32_t seq, op;
	size_t n;
	route_entry_t e[LARS_LEASE_BATCH_MAX];
	int weight, ttl_s; /* register */
	int result[LARS_LEASE_BATCH_MAX];
	int64_t version;
} lease_req_job_t;

static const char *const op_names[5] = { "refused", "register", "renew", "drain", "deregister" };

dns_leases_t *dns_leases_new(pg_worker_t *db, metrics_t *m)
{
	dns_leases_t *l = xcalloc(1, sizeof(*l));
	l->db = db;
	for (int op = 0; op < 5; op++) {
		char name[80];
		snprintf(name, sizeof(name), "lars_dns_lease_requests_total{op=\"%s\"}",
			 op_names[op]);
		l->requests[op] = metrics_counter(m, name, "Lease requests from agents (issue 23), "
						  "by operation; refused: answered without the database");
	}
	l->failed = metrics_counter(m, "lars_dns_lease_failures_total",
				    "Lease requests the database could not carry out");
	return l;
}

size_t dns_leases_inflight(const dns_leases_t *l)
{
	return l->inflight;
}

void dns_leases_free(dns_leases_t *l)
{
	if (!l)
		return;
	l->freeing = true;
	if (l->inflight == 0)
		free(l);
}

static void answer(tcp_conn_t *c, uint32_t seq, uint32_t op, const int *result, size_t n,
		   int64_t version, const char *why)
{
	lars_LeaseResponse resp = lars_LeaseResponse_init_zero;
	resp.seq = seq;
	resp.op = op;
	resp.result_count = (pb_size_t)n;
	for (size_t i = 0; i < n; i++)
		resp.result[i] = (uint32_t)result[i];
	resp.version = version;
	if (why)
		snprintf(resp.message, sizeof(resp.message), "%s", why);
	int r = tcp_conn_send(c, LARS_ID_LEASE_RESP, lars_LeaseResponse_fields, &resp);
	if (r && r != -ENOBUFS)
		log_debug("dns: LeaseResponse to %s not sent: %d", tcp_conn_peer(c), r);
}

/* Refuse the whole request: every host "failed", @why said. */
static int refuse(tcp_conn_t *c, const lars_LeaseRequest *req, const char *why)
{
	int result[LARS_LEASE_BATCH_MAX];
	for (pb_size_t i = 0; i < req->host_count; i++)
		result[i] = LARS_LEASE_R_FAILED;
	answer(c, req->seq, req->op, result, req->host_count, 0, why);
	return 0;
}

/* A host of the request as the write path takes it, or why not. */
static const char *lease_host(const lars_LeaseHost *h, uint32_t op, route_entry_t *e,
			      int *weightp, int *ttlp)
{
	if (h->modid < 0 || h->cmdid < 0)
		return "modid and cmdid must be 0 or more";
	if (h->port < 1 || h->port > 65535)
		return "port must be 1..65535";
	if (h->ip == 0)
		return "no address";
	e->modid = h->modid;
	e->cmdid = h->cmdid;
	e->port = h->port;
	msg_ip_to_str(h->ip, e->ip);
	if (op != LARS_LEASE_REGISTER)
		return NULL;
	*weightp = h->weight == 0 ? ROUTE_WEIGHT_DEFAULT
		   : (int)(h->weight > ROUTE_WEIGHT_MAX ? ROUTE_WEIGHT_MAX + 1 : h->weight);
	*ttlp = h->ttl_s > ROUTE_LEASE_TTL_MAX ? ROUTE_LEASE_TTL_MAX + 1 : (int)h->ttl_s;
	const char *why = NULL;
	return route_lease_check(*ttlp, *weightp, &why) ? why : NULL;
}

static int lease_work(PGconn *conn, pg_job_t *j)
{
	lease_req_job_t *job = container_of(j, lease_req_job_t, base);
	int r = 0;
	switch (job->op) {
	case LARS_LEASE_REGISTER:
		r = route_lease_register(conn, &job->e[0], job->weight, job->owner, job->ttl_s,
					 job->actor, &job->result[0], &job->version);
		break;
	case LARS_LEASE_DRAIN:
		r = route_lease_drain(conn, &job->e[0], job->owner, job->actor, &job->result[0],
				      &job->version);
		break;
	case LARS_LEASE_DEREGISTER:
		r = route_lease_deregister(conn, &job->e[0], job->owner, job->actor,
					   &job->result[0], &job->version);
		break;
	default: { /* renew */
		bool renewed[LARS_LEASE_BATCH_MAX];
		size_t n;
		r = route_lease_renew(conn, job->owner, job->e, job->n, &n, renewed);
		for (size_t i = 0; r == 0 && i < job->n; i++)
			job->result[i] = renewed[i] ? LARS_LEASE_R_RENEWED : LARS_LEASE_R_ABSENT;
		break;
	}
	}
	return r;
}

static void lease_done(pg_job_t *j, int status)
{
	lease_req_job_t *job = container_of(j, lease_req_job_t, base);
	const char *why = NULL;
	if (status) {
		metrics_inc(job->l->failed);
		for (size_t i = 0; i < job->n; i++)
			job->result[i] = LARS_LEASE_R_FAILED;
		why = status == -ECANCELED ? "lars-dns is stopping" : "the database failed";
	}
	if (status != -ECANCELED && tcp_conn_is_open(job->conn))
		answer(job->conn, job->seq, job->op, job->result, job->n, job->version, why);
	tcp_conn_unref(job->conn);
	dns_leases_t *l = job->l;
	free(job);
	if (--l->inflight == 0 && l->freeing)
		free(l);
}

int dns_leases_request(dns_leases_t *l, tcp_conn_t *c, bool hello, uint64_t owner,
		       int32_t caller, const uint8_t *body, size_t len)
{
	lars_LeaseRequest req = lars_LeaseRequest_init_zero;
	const char *why;
	int r = msg_decode(lars_LeaseRequest_fields, &req, body, len, &why);
	if (r) {
		log_debug("dns: bad LeaseRequest from %s: %s", tcp_conn_peer(c), why);
		return r;
	}
	tcp_conn_set_active(c);
	why = NULL;
	if (req.op < LARS_LEASE_REGISTER || req.op > LARS_LEASE_DEREGISTER)
		why = "unknown lease operation";
	else if (!hello)
		why = "AgentHello first: it names the lease owner";
	else if (req.host_count == 0 || (req.op != LARS_LEASE_RENEW && req.host_count != 1))
		why = "renew takes 1..256 hosts, the other operations one";
	else if (l->inflight >= DNS_LEASES_INFLIGHT_MAX)
		why = "busy: too many lease requests in flight";
	lease_req_job_t *job = why ? NULL : xcalloc(1, sizeof(*job));
	for (pb_size_t i = 0; job && i < req.host_count && !why; i++)
		why = lease_host(&req.host[i], req.op, &job->e[i], &job->weight, &job->ttl_s);
	if (why) {
		free(job);
		metrics_inc(l->requests[0]);
		return refuse(c, &req, why);
	}
	metrics_inc(l->requests[req.op]);
	job->base.work = lease_work;
	job->base.done = lease_done;
	job->l = l;
	job->conn = tcp_conn_ref(c);
	job->owner = owner;
	char ip[16];
	msg_ip_to_str(caller, ip);
	snprintf(job->actor, sizeof(job->actor), "agent %s", ip);
	job->seq = req.seq;
	job->op = req.op;
	job->n = req.host_count;
	l->inflight++;
	pg_worker_submit(l->db, &job->base);
	return 0;
}
