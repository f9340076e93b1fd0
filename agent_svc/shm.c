// SPDX-License-Identifier: MIT
// lars-agent's shared-memory snapshot (shm.h).
//
// DESIGN: the core keeps the keys whose route changed (acore_next_changed());
// a check handle, run once per loop turn after the sockets were served,
// republishes each of them from its balancer, so a change is in the file in
// the same loop turn that applied it. The file is created anew at start
// (written, then renamed over the old one): a client still mapping the old
// file keeps a consistent, if stale, copy and reopens the new one when it
// sees the heartbeat stop or the file change.
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "shm_snap.h"
#include "xalloc.h"

#define HEARTBEAT_MS 1000

struct agent_shm {
	uv_loop_t *loop;
	acore_t *core;
	void *base;
	size_t size;
	uint32_t max_hosts;
	shm_host_t *hosts; /* max_hosts, the slot being built */
	uv_check_t check;
	uv_timer_t heartbeat;
	char path[4096];
	int open_handles;
	bool closing;
	bool full_told;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The directory may be written by us (or root) only: clients trust its file. */
static int dir_ok(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	const char *dir = dirname(buf);
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno != ENOENT || mkdir(dir, 0755) != 0 || stat(dir, &st) != 0) {
			log_warn("agent: shm: directory %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	if (!S_ISDIR(st.st_mode) || (st.st_mode & 022) ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		log_warn("agent: shm: %s is not a directory only this user may write "
			 "(mode %04o, owner %u): no shared memory", dir, (unsigned)(st.st_mode & 07777),
			 (unsigned)st.st_uid);
		return -1;
	}
	return 0;
}

/* The route of (@modid, @cmdid) as the core holds it now, into the file. */
static void publish(agent_shm_t *s, int32_t modid, int32_t cmdid)
{
	const lb_t *lb = acore_peek_route(s->core, modid, cmdid);
	if (!lb || lb_n_hosts(lb) == 0) {
		shm_unpublish(s->base, modid, cmdid);
		return;
	}
	size_t n = 0;
	lb_iter_t it;
	lb_iter_init(&it, lb);
	for (const lb_host_t *h; (h = lb_iter_next(&it)) && n < s->max_hosts; n++)
		s->hosts[n] = (shm_host_t){ .ip = h->ip, .port = h->port, .weight = h->weight,
					    .state = h->overload ? SHM_HOST_OVERLOADED : SHM_HOST_IDLE,
					    .drain = h->drain, .joined_at = h->joined_at };
	shm_route_t r = { .modid = modid, .cmdid = cmdid, .version = lb->version,
			  .flags = (lb->in_panic ? SHM_ROUTE_PANIC : 0) |
				   (lb->weighted ? SHM_ROUTE_WEIGHTED : 0),
			  .slow_start_s = lb->slow_start_s };
	int rc = shm_publish(s->base, &r, s->hosts, lb_n_hosts(lb));
	if (rc == -ENOSPC && !s->full_told) {
		log_warn("agent: shm: no free slot for route %d/%d: raise [agent] shm_max_routes "
			 "(its clients ask over UDP)", modid, cmdid);
		s->full_told = true;
	}
}

void ashm_flush(agent_shm_t *s)
{
	int32_t modid, cmdid;
	while (s && acore_next_changed(s->core, &modid, &cmdid))
		publish(s, modid, cmdid);
}

static void on_check(uv_check_t *h)
{
	ashm_flush(h->data);
}

static void on_heartbeat(uv_timer_t *t)
{
	agent_shm_t *s = t->data;
	shm_set_heartbeat(s->base, wall_ms());
}

void ashm_set_probe_num(agent_shm_t *s, uint32_t probe_num)
{
	if (s)
		shm_set_probe_num(s->base, probe_num);
}

/* A new file of the size, formatted, renamed over @path. Returns its mapping. */
static void *create_file(const char *path, size_t size, const agent_shm_cfg_t *cfg)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.new.%d", path, (int)getpid());
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		log_warn("agent: shm: cannot create %s: %s", tmp, strerror(errno));
		return NULL;
	}
	void *base = MAP_FAILED;
	if (fchmod(fd, 0644) == 0 && ftruncate(fd, (off_t)size) == 0)
		base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int err = errno;
	close(fd);
	if (base == MAP_FAILED) {
		log_warn("agent: shm: %s of %zu bytes: %s", tmp, size, strerror(err));
		unlink(tmp);
		return NULL;
	}
	shm_format(base, size, cfg->max_routes, cfg->max_hosts, (int32_t)getpid(), cfg->probe_num);
	shm_set_heartbeat(base, wall_ms());
	if (rename(tmp, path) != 0) {
		log_warn("agent: shm: rename %s to %s: %s", tmp, path, strerror(errno));
		munmap(base, size);
		unlink(tmp);
		return NULL;
	}
	return base;
}

agent_shm_t *ashm_open(uv_loop_t *loop, const agent_shm_cfg_t *cfg, acore_t *core)
{
	if (dir_ok(cfg->path))
		return NULL;
	size_t size = shm_file_size(cfg->max_routes, cfg->max_hosts);
	void *base = create_file(cfg->path, size, cfg);
	if (!base)
		return NULL;
	agent_shm_t *s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->core = core;
	s->base = base;
	s->size = size;
	s->max_hosts = cfg->max_hosts;
	snprintf(s->path, sizeof(s->path), "%s", cfg->path);
	s->hosts = xcalloc(cfg->max_hosts ? cfg->max_hosts : 1, sizeof(*s->hosts));
	(void)uv_check_init(loop, &s->check); /* cannot fail on a live loop */
	(void)uv_timer_init(loop, &s->heartbeat);
	s->check.data = s->heartbeat.data = s;
	s->open_handles = 2;
	(void)uv_check_start(&s->check, on_check);
	(void)uv_timer_start(&s->heartbeat, on_heartbeat, HEARTBEAT_MS, HEARTBEAT_MS);
	/* What the core holds already (a reload or a late start). */
	const route_table_t *t = acore_routes(core);
	size_t iter = 0;
	for (u64map_slot_t *sl; (sl = u64map_next(&t->map, &iter));) {
		const lb_t *lb = &((rt_entry_t *)sl->value)->lb;
		publish(s, lb->modid, lb->cmdid);
	}
	log_info("agent: routes in shared memory at %s (%zu KiB: %u routes of up to %u hosts)",
		 cfg->path, size / 1024, cfg->max_routes, cfg->max_hosts);
	return s;
}

static void on_closed(uv_handle_t *h)
{
	agent_shm_t *s = h->data;
	if (--s->open_handles > 0)
		return;
	munmap(s->base, s->size);
	free(s->hosts);
	free(s);
}

void ashm_close(agent_shm_t *s)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	/* A clean stop takes the file away (clients mapping it keep their copy
	 * and fail open); after a crash it stays for clients starting meanwhile. */
	if (unlink(s->path) != 0)
		log_warn("agent: shm: unlink %s: %s", s->path, strerror(errno));
	uv_close((uv_handle_t *)&s->check, on_closed);
	uv_close((uv_handle_t *)&s->heartbeat, on_closed);
}
