// SPDX-License-Identifier: MIT
// The agent's registrations (registry.h).
//
// DESIGN: each registration says what it should be at lars-dns now
// (desired(): listed, drained or gone) from three facts: whether the app
// deregistered it (then drained for drain_ms from the drain's answer, then
// removed), its health (an instance with a check is listed only while the
// check passes; a failing one is drained and no longer renewed, so
// lars-dns removes it when the lease runs out), and nothing else: an app
// that stops sending does not end a registration (its check does). Each
// tick compares that with what lars-dns last answered and sends what
// closes the gap, one request per registration in flight; renewals of
// every due registration go out as one batch.
#include "registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "xalloc.h"

#define REG_RESEND_MS 3000     /* a request without an answer is sent again */
#define REG_RETRY_MS 1000      /* after lars-dns said it failed */
#define REG_TOMBSTONE_MS 60000 /* a removed one still answers REMOVED */
/* Register, drain and deregister requests in flight at once (renewals go in
 * batches apart): a burst of registrations waits here rather than filling
 * lars-dns's queue, which answers "busy" beyond its own bound. */
#define REG_SINGLE_INFLIGHT 8
#define REG_NO_DEADLINE UINT64_MAX

struct reg_entry {
	bool used;
	uint32_t gen; /* bumped when the slot is reused: late check results ignored */
	int32_t modid, cmdid, ip;
	int port, weight, ttl_s, check;
	char path[sizeof(((lars_RegisterRequest *)0)->check_path)];
	/* health */
	enum reg_health health;
	int ok_run, fail_run;
	bool check_running;
	uint64_t next_check_ms;
	char why[64]; /* the last failed check's reason */
	/* lars-dns */
	enum reg_dns dns;
	bool inflight;
	uint32_t seq, op;
	size_t batch_idx; /* its host in a renewal batch */
	uint64_t sent_ms, retry_ms, renew_due_ms;
	bool reregister; /* weight or TTL changed: register again */
	/* the app */
	bool deregistered;
	uint64_t drain_until_ms; /* REG_NO_DEADLINE until the drain is answered */
	bool removed;
	uint64_t forget_ms;
};

static const char *const dns_names[] = { "not listed", "listed", "drained", "an operator's host" };

int reg_init(reg_t *r, const reg_cfg_t *cfg, const reg_ops_t *ops)
{
	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	r->ops = *ops;
	r->e = xcalloc((size_t)(cfg->max > 0 ? cfg->max : 1), sizeof(*r->e));
	r->next_seq = 1;
	return 0;
}

void reg_deinit(reg_t *r)
{
	free(r->e);
	r->e = NULL;
}

size_t reg_count(const reg_t *r)
{
	size_t n = 0;
	for (int i = 0; i < r->cfg.max; i++)
		n += r->e[i].used && !r->e[i].removed;
	return n;
}

__attribute__((format(printf, 3, 4)))
static void note(reg_t *r, const reg_entry_t *e, const char *fmt, ...)
{
	if (!r->ops.log)
		return;
	char ip[16], line[256];
	msg_ip_to_str(e->ip, ip);
	int n = snprintf(line, sizeof(line), "registration %d/%d %s:%d: ", e->modid, e->cmdid, ip,
			 e->port);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	r->ops.log(r->ops.user, line);
}

static void set_dns(reg_t *r, reg_entry_t *e, enum reg_dns to)
{
	if (e->dns != to)
		note(r, e, "%s -> %s", dns_names[e->dns], dns_names[to]);
	e->dns = to;
}

static reg_entry_t *find(reg_t *r, int32_t modid, int32_t cmdid, int32_t ip, int port)
{
	for (int i = 0; i < r->cfg.max; i++) {
		reg_entry_t *e = &r->e[i];
		if (e->used && e->modid == modid && e->cmdid == cmdid && e->ip == ip && e->port == port)
			return e;
	}
	return NULL;
}

static reg_entry_t *slot(reg_t *r)
{
	for (int i = 0; i < r->cfg.max; i++)
		if (!r->e[i].used)
			return &r->e[i];
	return NULL;
}

/* Why @q cannot be registered, or NULL. */
static const char *bad_request(const lars_RegisterRequest *q)
{
	if (q->modid < 0 || q->cmdid < 0)
		return "modid and cmdid must be 0 or more";
	if (q->port < 1 || q->port > 65535)
		return "port must be 1..65535";
	if (q->weight > 1000)
		return "weight must be 1..1000 (0: the default 100)";
	if (q->ttl_s > 86400)
		return "ttl must be 1..86400 seconds (0: the agent's [register] ttl_s)";
	if (q->check > LARS_CHECK_HTTP)
		return "unknown health check";
	if (q->check == LARS_CHECK_HTTP && q->check_path[0] != '/')
		return "an HTTP check's path starts with /";
	return NULL;
}

/* What @e should be at lars-dns now. */
static enum reg_dns desired(const reg_entry_t *e, uint64_t now_ms)
{
	if (e->deregistered)
		return now_ms < e->drain_until_ms ? REG_DNS_DRAINED : REG_DNS_NONE;
	if (e->check == LARS_CHECK_NONE || e->health == REG_HEALTHY)
		return REG_DNS_LISTED;
	return e->health == REG_FAILING ? REG_DNS_DRAINED : REG_DNS_NONE;
}

static void answer(const reg_t *r, const reg_entry_t *e, uint64_t now_ms,
		   lars_RegisterResponse *resp)
{
	resp->ip = e->ip;
	resp->ttl_s = (uint32_t)e->ttl_s;
	if (e->removed) {
		resp->state = LARS_REG_REMOVED;
	} else if (e->deregistered) {
		resp->state = LARS_REG_DRAINING;
		uint64_t left = e->drain_until_ms == REG_NO_DEADLINE ? (uint64_t)r->cfg.drain_ms
				: e->drain_until_ms > now_ms ? e->drain_until_ms - now_ms : 0;
		resp->drain_ms = (uint32_t)left;
	} else if (e->dns == REG_DNS_OPERATOR) {
		resp->state = LARS_REG_OPERATOR;
		snprintf(resp->message, sizeof(resp->message),
			 "an operator's host: nothing attached, nothing changed");
	} else if (e->health == REG_FAILING) {
		resp->state = LARS_REG_FAILING;
		snprintf(resp->message, sizeof(resp->message), "health check failing: %s", e->why);
	} else if (e->dns == REG_DNS_LISTED && !e->reregister) {
		resp->state = LARS_REG_REGISTERED;
	} else {
		resp->state = LARS_REG_PENDING;
	}
}

static void refuse(lars_RegisterResponse *resp, const char *why)
{
	resp->state = LARS_REG_REFUSED;
	snprintf(resp->message, sizeof(resp->message), "%s", why);
}

static void deregister(reg_t *r, reg_entry_t *e, uint64_t now_ms)
{
	if (e->deregistered || e->removed)
		return;
	e->deregistered = true;
	r->counts.deregistered++;
	/* Listed: drained first, the wait starts from the drain's answer. A
	 * host already drained (its check failed) or never listed waits no more. */
	e->drain_until_ms = e->dns == REG_DNS_LISTED ? REG_NO_DEADLINE : now_ms;
	note(r, e, "deregistered by the app%s", e->dns == REG_DNS_LISTED ? ": draining" : "");
}

void reg_request(reg_t *r, const lars_RegisterRequest *q, bool dereg, uint64_t now_ms,
		 lars_RegisterResponse *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->seq = q->seq;
	int32_t ip = q->ip ? q->ip : r->cfg.caller;
	const char *why = dereg ? (q->port < 1 || q->port > 65535 ? "port must be 1..65535" : NULL)
				: bad_request(q);
	if (!why && ip == 0)
		why = "no address: give one, or set [agent] caller";
	if (why)
		return refuse(resp, why);
	reg_entry_t *e = find(r, q->modid, q->cmdid, ip, q->port);
	if (dereg) {
		if (!e) {
			resp->state = LARS_REG_UNKNOWN;
			snprintf(resp->message, sizeof(resp->message), "not registered through this agent");
			return;
		}
		deregister(r, e, now_ms);
		return answer(r, e, now_ms, resp);
	}
	int ttl = q->ttl_s ? (int)q->ttl_s : r->cfg.ttl_s;
	int weight = q->weight ? (int)q->weight : 100;
	if (e && e->removed) { /* registered anew after its removal */
		uint32_t gen = e->gen + 1;
		memset(e, 0, sizeof(*e));
		e->gen = gen;
	}
	if (!e || !e->used) {
		e = e ? e : slot(r);
		if (!e)
			return refuse(resp, "too many registrations: [register] max_registrations");
		uint32_t gen = e->gen;
		memset(e, 0, sizeof(*e));
		*e = (reg_entry_t){ .used = true, .gen = gen + 1, .modid = q->modid,
				    .cmdid = q->cmdid, .ip = ip, .port = q->port,
				    .weight = weight, .ttl_s = ttl, .next_check_ms = now_ms };
		r->counts.registered++;
		note(r, e, "registered by the app (lease %d s, %s check)", ttl,
		     q->check == LARS_CHECK_TCP ? "tcp" : q->check == LARS_CHECK_HTTP ? "http" : "no");
	} else if (e->deregistered) {
		e->deregistered = false; /* called off: registering undrains */
		e->reregister = true;
		note(r, e, "deregistration called off: registered again");
	}
	if (e->weight != weight || e->ttl_s != ttl)
		e->reregister = true;
	e->weight = weight;
	e->ttl_s = ttl;
	if (e->check != (int)q->check || strcmp(e->path, q->check_path) != 0) {
		e->check = (int)q->check;
		snprintf(e->path, sizeof(e->path), "%s", q->check_path);
		e->health = REG_UNKNOWN;
		e->ok_run = e->fail_run = 0;
		e->next_check_ms = now_ms;
	}
	answer(r, e, now_ms, resp);
}

void reg_check_done(reg_t *r, uint32_t id, uint32_t gen, bool ok, const char *why,
		    uint64_t now_ms)
{
	if (id >= (uint32_t)r->cfg.max)
		return;
	reg_entry_t *e = &r->e[id];
	if (!e->used || e->gen != gen)
		return;
	e->check_running = false;
	if (ok) {
		e->fail_run = 0;
		e->ok_run++;
		/* The first pass lists a new instance; a failing one needs rise. */
		if (e->health == REG_UNKNOWN ||
		    (e->health == REG_FAILING && e->ok_run >= r->cfg.check_rise)) {
			if (e->health == REG_FAILING)
				note(r, e, "health check passes (%d consecutive): back in", e->ok_run);
			e->health = REG_HEALTHY;
		}
		return;
	}
	r->counts.check_failures++;
	e->ok_run = 0;
	e->fail_run++;
	snprintf(e->why, sizeof(e->why), "%s", why ? why : "failed");
	if (e->health != REG_FAILING && e->fail_run >= r->cfg.check_fall) {
		note(r, e, "health check failing (%d consecutive: %s): draining", e->fail_run, e->why);
		if (e->health == REG_HEALTHY)
			r->counts.drained_by_check++;
		e->health = REG_FAILING;
	}
}

void reg_set_link(reg_t *r, bool up, uint64_t now_ms)
{
	r->link_up = up;
	for (int i = 0; i < r->cfg.max; i++)
		r->e[i].inflight = false; /* lost with the connection */
	(void)now_ms;
}

static uint32_t next_seq(reg_t *r)
{
	uint32_t s = r->next_seq++;
	if (r->next_seq == 0)
		r->next_seq = 1;
	return s;
}

static void lease_host(const reg_entry_t *e, lars_LeaseHost *h)
{
	*h = (lars_LeaseHost){ .modid = e->modid, .cmdid = e->cmdid, .ip = e->ip,
			       .port = e->port, .weight = (uint32_t)e->weight,
			       .ttl_s = (uint32_t)e->ttl_s };
}

/* Send one request for @e alone (unless REG_SINGLE_INFLIGHT are out). */
static void send_one(reg_t *r, reg_entry_t *e, uint32_t op, uint64_t now_ms)
{
	if (r->n_single >= REG_SINGLE_INFLIGHT)
		return; /* a later tick */
	lars_LeaseRequest req = lars_LeaseRequest_init_zero;
	req.seq = next_seq(r);
	req.op = op;
	req.host_count = 1;
	lease_host(e, &req.host[0]);
	if (r->ops.send(r->ops.user, &req) != 0)
		return; /* tried again next tick */
	e->inflight = true;
	e->seq = req.seq;
	e->op = op;
	e->batch_idx = 0;
	e->sent_ms = now_ms;
	r->n_single++;
}

static void flush_renewals(reg_t *r, uint64_t now_ms)
{
	if (r->renew.host_count == 0)
		return;
	bool sent = r->ops.send(r->ops.user, &r->renew) == 0;
	for (int i = 0; i < r->cfg.max; i++) {
		reg_entry_t *e = &r->e[i];
		if (!e->used || !e->inflight || e->seq != r->renew.seq || e->op != LARS_LEASE_RENEW)
			continue;
		e->inflight = sent;
		e->sent_ms = now_ms;
	}
	if (sent)
		r->counts.renewals += r->renew.host_count;
	r->renew.host_count = 0;
}

static void add_renewal(reg_t *r, reg_entry_t *e, uint64_t now_ms)
{
	if (r->renew.host_count == 0) {
		r->renew.seq = next_seq(r);
		r->renew.op = LARS_LEASE_RENEW;
	}
	e->inflight = true; /* reset by flush_renewals() if the send fails */
	e->seq = r->renew.seq;
	e->op = LARS_LEASE_RENEW;
	e->batch_idx = r->renew.host_count;
	lease_host(e, &r->renew.host[r->renew.host_count++]);
	if (r->renew.host_count == LARS_LEASE_BATCH_MAX)
		flush_renewals(r, now_ms);
}

static void set_removed(reg_t *r, reg_entry_t *e, uint64_t now_ms)
{
	e->removed = true;
	e->forget_ms = now_ms + REG_TOMBSTONE_MS;
	note(r, e, "removed");
}

/* Send what brings @e at lars-dns where it should be. */
static void sync_one(reg_t *r, reg_entry_t *e, uint64_t now_ms)
{
	enum reg_dns want = desired(e, now_ms);
	bool renew_due = now_ms >= e->renew_due_ms;
	switch (want) {
	case REG_DNS_LISTED:
		if ((e->dns != REG_DNS_LISTED && e->dns != REG_DNS_OPERATOR) || e->reregister ||
		    (e->dns == REG_DNS_OPERATOR && renew_due))
			send_one(r, e, LARS_LEASE_REGISTER, now_ms); /* the operator's: asked again */
		else if (e->dns == REG_DNS_LISTED && renew_due)
			add_renewal(r, e, now_ms);
		break;
	case REG_DNS_DRAINED:
		if (e->dns == REG_DNS_LISTED)
			send_one(r, e, LARS_LEASE_DRAIN, now_ms);
		else if (e->dns == REG_DNS_DRAINED && e->deregistered && renew_due)
			add_renewal(r, e, now_ms); /* kept through the drain */
		break;
	default: /* gone, or not listed yet */
		if (!e->deregistered)
			break;
		if (e->dns == REG_DNS_LISTED || e->dns == REG_DNS_DRAINED)
			send_one(r, e, LARS_LEASE_DEREGISTER, now_ms);
		else
			set_removed(r, e, now_ms);
		break;
	}
}

static void check_due(reg_t *r, uint32_t id, reg_entry_t *e, uint64_t now_ms)
{
	if (e->check == LARS_CHECK_NONE || e->deregistered || e->check_running ||
	    now_ms < e->next_check_ms || !r->ops.check)
		return;
	e->check_running = true;
	e->next_check_ms = now_ms + (uint64_t)r->cfg.check_interval_ms;
	reg_check_t c = { .id = id, .gen = e->gen, .ip = e->ip, .port = e->port,
			  .kind = e->check, .path = e->path, .timeout_ms = r->cfg.check_timeout_ms };
	r->ops.check(r->ops.user, &c);
}

void reg_tick(reg_t *r, uint64_t now_ms)
{
	r->n_single = 0;
	for (int i = 0; i < r->cfg.max; i++) {
		const reg_entry_t *e = &r->e[i];
		r->n_single += e->used && e->inflight && e->op != LARS_LEASE_RENEW &&
			       now_ms - e->sent_ms < REG_RESEND_MS;
	}
	for (int i = 0; i < r->cfg.max; i++) {
		reg_entry_t *e = &r->e[i];
		if (!e->used)
			continue;
		if (e->removed) {
			if (now_ms >= e->forget_ms)
				e->used = false;
			continue;
		}
		check_due(r, (uint32_t)i, e, now_ms);
		if (e->inflight && now_ms - e->sent_ms >= REG_RESEND_MS)
			e->inflight = false; /* no answer: sent again */
		if (r->link_up && !e->inflight && now_ms >= e->retry_ms)
			sync_one(r, e, now_ms);
	}
	flush_renewals(r, now_ms);
}

/* @e's answer in a response to a request of op @op. */
static void apply_result(reg_t *r, reg_entry_t *e, uint32_t op, uint32_t res, uint64_t now_ms)
{
	e->inflight = false;
	if (res == LARS_LEASE_R_FAILED) {
		e->retry_ms = now_ms + REG_RETRY_MS;
		return;
	}
	uint64_t next_renew = e->sent_ms + (uint64_t)e->ttl_s * 1000 / 3;
	switch (op) {
	case LARS_LEASE_REGISTER:
		e->reregister = false;
		e->renew_due_ms = next_renew;
		set_dns(r, e, res == LARS_LEASE_R_OPERATOR ? REG_DNS_OPERATOR : REG_DNS_LISTED);
		break;
	case LARS_LEASE_RENEW:
		if (res == LARS_LEASE_R_RENEWED)
			e->renew_due_ms = next_renew;
		else /* expired or removed meanwhile: registered again if it should be */
			set_dns(r, e, REG_DNS_NONE);
		break;
	case LARS_LEASE_DRAIN:
		set_dns(r, e, res == LARS_LEASE_R_DRAINED ? REG_DNS_DRAINED : REG_DNS_NONE);
		if (e->deregistered && e->drain_until_ms == REG_NO_DEADLINE)
			e->drain_until_ms = now_ms + (uint64_t)r->cfg.drain_ms;
		break;
	default: /* deregister */
		set_dns(r, e, REG_DNS_NONE);
		if (e->deregistered)
			set_removed(r, e, now_ms);
		break;
	}
}

void reg_lease_answer(reg_t *r, const lars_LeaseResponse *resp, uint64_t now_ms)
{
	for (int i = 0; i < r->cfg.max; i++) {
		reg_entry_t *e = &r->e[i];
		if (!e->used || !e->inflight || e->seq != resp->seq || e->op != resp->op)
			continue;
		uint32_t res = e->batch_idx < resp->result_count ? resp->result[e->batch_idx]
								 : LARS_LEASE_R_FAILED;
		apply_result(r, e, resp->op, res, now_ms);
	}
}
