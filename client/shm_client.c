// SPDX-License-Identifier: MIT
// The client's shared-memory fast path (shm_client.h).
//
// DESIGN: the file is looked at again at most once a second (stat: a new
// agent renames a new file over it, so a changed inode means remap; fstat:
// a mapping that shrank is dropped before it can fault). Every call reads
// the route's slot under its seqlock (common/wire/shm_snap.c) and picks
// with the per-route state kept here (common/wire/shm_pick.c). The agent's
// heartbeat says whether it lives: within STALE_MS the verdicts are its;
// after, for up to max_stale, every non-drained host counts as available
// (fail-open) and results are dropped (nobody would take them); batches go
// out again once the heartbeat is fresh.
#include "shm_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "lars_client.h"
#include "msg.h"
#include "shm_pick.h"
#include "shm_snap.h"

#define RECHECK_MS 1000  /* the file looked at again */
#define STALE_MS 3000    /* a heartbeat older than this: the agent is gone */
#define BATCH_AGE_MS 5   /* a batch older than this goes out */
#define BATCH_CALLS 256  /* or with this many calls in it */
#define BATCH_ERRORS 8   /* or this many failures: verdicts need them soon */
#define PICK_CACHE 256   /* routes with a pick state (direct-mapped) */

struct lars_shm {
	char path[512];
	int fd;
	const uint8_t *base;
	size_t size;
	dev_t dev;
	ino_t ino;
	shm_view_t view;
	int64_t next_check_ms;
	int64_t max_stale_ms;
	uint32_t seed;     /* where this client's round robins start */
	shm_route_t r;
	shm_host_t *hosts; /* SHM_HOSTS_MAX */
	shm_pick_t picks[PICK_CACHE];
	lars_ReportBatchRequest batch;
	uint32_t batch_calls, batch_errors;
	uint32_t batch_hint; /* the entry the last result went to */
	int64_t batch_first_ms;
	uint8_t frame[FRAME_HDR_LEN + lars_ReportBatchRequest_size];
};

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

lars_shm_t *lshm_new(const char *path, int max_stale_s)
{
	lars_shm_t *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->hosts = calloc(SHM_HOSTS_MAX, sizeof(*s->hosts));
	if (!s->hosts) {
		free(s);
		return NULL;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->fd = -1;
	s->max_stale_ms = (int64_t)max_stale_s * 1000;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->seed = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)s;
	s->batch = (lars_ReportBatchRequest)lars_ReportBatchRequest_init_zero;
	return s;
}

static void unmap(lars_shm_t *s)
{
	if (s->base)
		munmap((void *)s->base, s->size);
	if (s->fd >= 0)
		close(s->fd);
	s->base = NULL;
	s->fd = -1;
	s->size = 0;
}

void lshm_free(lars_shm_t *s, int fd)
{
	if (!s)
		return;
	if (fd >= 0)
		lshm_flush(s, fd);
	unmap(s);
	for (size_t i = 0; i < PICK_CACHE; i++)
		shm_pick_free(&s->picks[i]);
	free(s->hosts);
	free(s);
}

/* Map the file at the path if it is a snapshot we can read; keep the old
 * mapping otherwise (fail-open on what we had). */
static void try_map(lars_shm_t *s, const struct stat *st)
{
	int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat fst;
	if (fd < 0)
		return;
	if (fstat(fd, &fst) || !S_ISREG(fst.st_mode) || fst.st_size < (off_t)sizeof(shm_header_t) ||
	    (uint64_t)fst.st_size > (uint64_t)1 << 32) {
		close(fd);
		return;
	}
	void *base = mmap(NULL, (size_t)fst.st_size, PROT_READ, MAP_SHARED, fd, 0);
	shm_view_t v;
	if (base == MAP_FAILED || shm_view_open(&v, base, (size_t)fst.st_size)) {
		if (base != MAP_FAILED)
			munmap(base, (size_t)fst.st_size);
		close(fd);
		return;
	}
	unmap(s);
	s->fd = fd;
	s->base = base;
	s->size = (size_t)fst.st_size;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->view = v;
	for (size_t i = 0; i < PICK_CACHE; i++)
		s->picks[i].gen = 0; /* a new file: every slot's gen starts again */
}

/* A usable mapping, looked at again once a second. */
static bool mapped(lars_shm_t *s)
{
	int64_t now = clock_ms(CLOCK_MONOTONIC_COARSE);
	if (now < s->next_check_ms)
		return s->base != NULL;
	s->next_check_ms = now + RECHECK_MS;
	struct stat st, fst;
	if (s->base && (fstat(s->fd, &fst) || (size_t)fst.st_size < s->size))
		unmap(s); /* shrunk under us: reading it could fault */
	if (stat(s->path, &st) == 0 && (!s->base || st.st_ino != s->ino || st.st_dev != s->dev))
		try_map(s, &st);
	return s->base != NULL;
}

/* 0: the agent lives; 1: gone, within max_stale (fail-open); 2: gone for longer. */
static int agent_gone(const lars_shm_t *s, int64_t wall)
{
	int64_t age = wall - shm_view_heartbeat(&s->view);
	if (age <= STALE_MS)
		return 0;
	return age <= STALE_MS + s->max_stale_ms ? 1 : 2;
}

static int read_route(lars_shm_t *s, int32_t modid, int32_t cmdid, int64_t wall, int *gonep)
{
	if (!mapped(s))
		return LSHM_NOT_SERVED;
	*gonep = agent_gone(s, wall);
	if (*gonep == 2)
		return LSHM_NOT_SERVED;
	if (shm_read_route(&s->view, modid, cmdid, &s->r, s->hosts))
		return LSHM_NOT_SERVED; /* not there (the UDP request pulls it), or unreadable */
	return 0;
}

int lshm_get_host(lars_shm_t *s, int32_t modid, int32_t cmdid, int32_t *ipp, int32_t *portp)
{
	int64_t wall = clock_ms(CLOCK_REALTIME_COARSE);
	int gone;
	if (read_route(s, modid, cmdid, wall, &gone))
		return LSHM_NOT_SERVED;
	uint64_t k = (uint64_t)(uint32_t)modid * 0x9e3779b97f4a7c15ull ^ (uint32_t)cmdid;
	shm_pick_t *p = &s->picks[(k >> 32) % PICK_CACHE];
	if (p->modid != modid || p->cmdid != cmdid || !p->gen)
		shm_pick_reset(p, modid, cmdid, s->seed ^ (uint32_t)k);
	size_t i;
	int rc = shm_pick_host(p, &s->r, s->hosts, s->view.probe_num, gone == 1, wall, &i);
	if (rc == SHM_PICK_NOEXIST)
		return LSHM_NOT_SERVED;
	if (rc == SHM_PICK_OVERLOAD)
		return LARS_OVERLOAD;
	*ipp = s->hosts[i].ip;
	*portp = s->hosts[i].port;
	return LARS_SUCC;
}

int lshm_get_route(lars_shm_t *s, int32_t modid, int32_t cmdid, struct lars_host *hosts,
		   unsigned *flags, size_t cap, size_t *np, size_t *totalp)
{
	int gone;
	if (read_route(s, modid, cmdid, clock_ms(CLOCK_REALTIME_COARSE), &gone))
		return LSHM_NOT_SERVED;
	size_t n = s->r.n_hosts < cap ? s->r.n_hosts : cap;
	for (size_t i = 0; i < n; i++) {
		hosts[i].ip = (uint32_t)s->hosts[i].ip;
		msg_ip_to_str(s->hosts[i].ip, hosts[i].ip_str);
		hosts[i].port = s->hosts[i].port;
		if (flags)
			flags[i] = s->hosts[i].drain ? LARS_HOST_DRAINED : 0;
	}
	*np = s->r.n_hosts;
	*totalp = s->r.n_hosts;
	return LARS_SUCC;
}

void lshm_tick(lars_shm_t *s, int fd)
{
	if (s->batch.entry_count &&
	    clock_ms(CLOCK_MONOTONIC_COARSE) - s->batch_first_ms >= BATCH_AGE_MS)
		lshm_flush(s, fd);
}

void lshm_flush(lars_shm_t *s, int fd)
{
	if (!s || s->batch.entry_count == 0)
		return;
	size_t len;
	if (msg_frame_encode(LARS_ID_REPORT_BATCH_REQ, lars_ReportBatchRequest_fields, &s->batch,
			     s->frame, sizeof(s->frame), &len) == 0)
		(void)send(fd, s->frame, len, MSG_DONTWAIT); /* as lars_report: lost if the agent is */
	s->batch.entry_count = 0;
	s->batch_calls = s->batch_errors = 0;
}

/* The batch entry of the host (a new one if there is room; NULL: full). */
static lars_ReportBatchEntry *entry_for(lars_shm_t *s, int32_t modid, int32_t cmdid, int32_t ip,
					int32_t port)
{
	lars_ReportBatchRequest *b = &s->batch;
	for (pb_size_t k = 0; k < b->entry_count; k++) {
		pb_size_t i = (pb_size_t)((s->batch_hint + k) % b->entry_count);
		lars_ReportBatchEntry *e = &b->entry[i];
		if (e->modid == modid && e->cmdid == cmdid && e->ip == ip && e->port == port) {
			s->batch_hint = i;
			return e;
		}
	}
	if (b->entry_count == LARS_REPORT_BATCH_MAX)
		return NULL;
	lars_ReportBatchEntry *e = &b->entry[b->entry_count];
	*e = (lars_ReportBatchEntry){ .modid = modid, .cmdid = cmdid, .ip = ip, .port = port };
	s->batch_hint = b->entry_count++;
	return e;
}

int lshm_report(lars_shm_t *s, int fd, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		bool ok, uint32_t latency_us)
{
	if (!mapped(s))
		return LSHM_NOT_SERVED;
	int gone = agent_gone(s, clock_ms(CLOCK_REALTIME_COARSE));
	if (gone == 1)
		return 0; /* failing open: nobody to tell; batching resumes when it is back */
	if (gone)
		return LSHM_NOT_SERVED;
	int64_t now = clock_ms(CLOCK_MONOTONIC_COARSE);
	if (s->batch.entry_count == 0)
		s->batch_first_ms = now;
	lars_ReportBatchEntry *e = entry_for(s, modid, cmdid, ip, port);
	if (!e) {
		lshm_flush(s, fd);
		s->batch_first_ms = now;
		e = entry_for(s, modid, cmdid, ip, port);
	}
	e->succ += ok;
	e->err += !ok;
	if (latency_us) {
		e->lat_count++;
		e->lat_sum_us += latency_us;
		e->lat_buckets_count = MSG_LAT_BUCKETS;
		e->lat_buckets[msg_lat_bucket(latency_us)]++;
	}
	s->batch_errors += !ok;
	if (++s->batch_calls >= BATCH_CALLS || s->batch_errors >= BATCH_ERRORS ||
	    now - s->batch_first_ms >= BATCH_AGE_MS)
		lshm_flush(s, fd);
	return 0;
}
