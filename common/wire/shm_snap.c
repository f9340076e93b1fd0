// SPDX-License-Identifier: MIT
// The shared-memory route table (shm_snap.h).
//
// DESIGN: one writer (the agent's loop thread), any number of readers in
// other processes. A key's slot is found by hashing (modid, cmdid) and
// probing linearly; a slot keeps its key while the route lives and becomes
// DELETED (not EMPTY) when it goes, so the chains past it stay intact; a new
// key reuses the first DELETED slot of its chain. Each slot is a seqlock:
// the writer makes seq odd, writes, makes it even again; a reader copies the
// slot between two reads of seq and keeps the copy only if both are the
// same even value.
#include "shm_snap.h"

#include <errno.h>
#include <string.h>

static size_t slot_size(uint32_t max_hosts)
{
	size_t s = sizeof(shm_route_t) + (size_t)max_hosts * sizeof(shm_host_t);
	return (s + 63) & ~(size_t)63; /* a cache line apart */
}

static size_t header_room(void)
{
	return (sizeof(shm_header_t) + 63) & ~(size_t)63;
}

size_t shm_file_size(uint32_t n_slots, uint32_t max_hosts)
{
	return header_room() + (size_t)n_slots * slot_size(max_hosts);
}

static uint32_t hash_key(int32_t modid, int32_t cmdid, uint32_t n)
{
	uint64_t k = (uint64_t)(uint32_t)modid << 32 | (uint32_t)cmdid;
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return (uint32_t)(k % n);
}

void shm_format(void *base, size_t size, uint32_t n_slots, uint32_t max_hosts, int32_t pid,
		uint32_t probe_num)
{
	/* @base is zero already (a fresh file): only the slots used get pages. */
	shm_header_t *h = base;
	h->magic = SHM_MAGIC;
	h->layout = SHM_LAYOUT;
	h->header_size = (uint32_t)sizeof(*h);
	h->file_size = size;
	h->n_slots = n_slots;
	h->max_hosts = max_hosts;
	h->slot_size = (uint32_t)slot_size(max_hosts);
	h->slots_off = (uint32_t)header_room();
	h->pid = pid;
	h->probe_num = probe_num;
}

static shm_route_t *slot_at(void *base, uint32_t i)
{
	shm_header_t *h = base;
	return (shm_route_t *)((uint8_t *)base + h->slots_off + (size_t)i * h->slot_size);
}

/* The key's slot, or where it would go (NULL: the table is full). */
static shm_route_t *writer_slot(void *base, int32_t modid, int32_t cmdid, bool *foundp)
{
	shm_header_t *h = base;
	shm_route_t *free_slot = NULL;
	*foundp = false;
	uint32_t i = hash_key(modid, cmdid, h->n_slots);
	for (uint32_t k = 0; k < h->n_slots; k++, i = (i + 1) % h->n_slots) {
		shm_route_t *s = slot_at(base, i);
		if (s->state == SHM_SLOT_ROUTE && s->modid == modid && s->cmdid == cmdid) {
			*foundp = true;
			return s;
		}
		if (s->state == SHM_SLOT_DELETED && !free_slot)
			free_slot = s;
		if (s->state == SHM_SLOT_EMPTY)
			return free_slot ? free_slot : s;
	}
	return free_slot;
}

static void write_begin(shm_route_t *s)
{
	uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
	atomic_store_explicit(&s->seq, q | 1u, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void write_end(shm_route_t *s)
{
	uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
	atomic_store_explicit(&s->seq, q + 1, memory_order_release);
}

void shm_unpublish(void *base, int32_t modid, int32_t cmdid)
{
	bool found;
	shm_route_t *s = writer_slot(base, modid, cmdid, &found);
	if (!found)
		return;
	write_begin(s);
	s->state = SHM_SLOT_DELETED;
	s->n_hosts = 0;
	s->gen++;
	write_end(s);
}

int shm_publish(void *base, const shm_route_t *r, const shm_host_t *hosts, size_t n)
{
	shm_header_t *h = base;
	if (n > h->max_hosts) {
		shm_unpublish(base, r->modid, r->cmdid);
		return -E2BIG;
	}
	bool found;
	shm_route_t *s = writer_slot(base, r->modid, r->cmdid, &found);
	if (!s)
		return -ENOSPC;
	write_begin(s);
	s->state = SHM_SLOT_ROUTE;
	s->modid = r->modid;
	s->cmdid = r->cmdid;
	s->version = r->version;
	s->gen++;
	s->n_hosts = (uint32_t)n;
	s->flags = r->flags;
	s->slow_start_s = r->slow_start_s;
	memcpy(s + 1, hosts, n * sizeof(*hosts));
	write_end(s);
	return 0;
}

void shm_set_heartbeat(void *base, int64_t unix_ms)
{
	atomic_store_explicit(&((shm_header_t *)base)->heartbeat_ms, unix_ms, memory_order_relaxed);
}

void shm_set_probe_num(void *base, uint32_t probe_num)
{
	((shm_header_t *)base)->probe_num = probe_num;
}

/* ---- reader ---- */

int shm_view_open(shm_view_t *v, const void *base, size_t size)
{
	memset(v, 0, sizeof(*v));
	if (!base || size < sizeof(shm_header_t))
		return -EINVAL;
	shm_header_t h;
	memcpy(&h, base, sizeof(h)); /* once: later changes to it are not believed */
	if (h.magic != SHM_MAGIC || h.layout != SHM_LAYOUT || h.header_size != sizeof(h) ||
	    h.n_slots == 0 || h.n_slots > SHM_SLOTS_MAX || h.max_hosts > SHM_HOSTS_MAX ||
	    h.slot_size < sizeof(shm_route_t) + (size_t)h.max_hosts * sizeof(shm_host_t) ||
	    h.slot_size % 8 || h.slots_off < sizeof(h) || h.slots_off % 8 ||
	    (uint64_t)h.slots_off + (uint64_t)h.n_slots * h.slot_size > size)
		return -EINVAL;
	*v = (shm_view_t){ .base = base, .size = size, .n_slots = h.n_slots,
			   .max_hosts = h.max_hosts, .slot_size = h.slot_size,
			   .slots_off = h.slots_off, .probe_num = h.probe_num, .pid = h.pid };
	return 0;
}

int64_t shm_view_heartbeat(const shm_view_t *v)
{
	const shm_header_t *h = (const shm_header_t *)v->base;
	return atomic_load_explicit(&h->heartbeat_ms, memory_order_relaxed);
}

static const shm_route_t *view_slot(const shm_view_t *v, uint32_t i)
{
	return (const shm_route_t *)(v->base + v->slots_off + (size_t)i * v->slot_size);
}

/* One consistent read of slot @s: its fixed part, and its hosts if @hosts
 * and the key matches. 0, -EAGAIN (torn), -EINVAL (count out of range). */
static int read_slot(const shm_view_t *v, const shm_route_t *s, int32_t modid, int32_t cmdid,
		     shm_route_t *r, shm_host_t *hosts)
{
	uint32_t s1 = atomic_load_explicit(&((shm_route_t *)s)->seq, memory_order_acquire);
	if (s1 & 1u)
		return -EAGAIN;
	memcpy((uint8_t *)r + sizeof(r->seq), (const uint8_t *)s + sizeof(s->seq),
	       sizeof(*r) - sizeof(r->seq));
	bool match = r->state == SHM_SLOT_ROUTE && r->modid == modid && r->cmdid == cmdid;
	uint32_t n = r->n_hosts;
	if (match && n <= v->max_hosts && hosts)
		memcpy(hosts, s + 1, (size_t)n * sizeof(*hosts));
	atomic_thread_fence(memory_order_acquire);
	uint32_t s2 = atomic_load_explicit(&((shm_route_t *)s)->seq, memory_order_relaxed);
	if (s1 != s2)
		return -EAGAIN;
	if (match && n > v->max_hosts)
		return -EINVAL; /* consistent, and wrong: not a file to believe */
	return 0;
}

int shm_read_route(const shm_view_t *v, int32_t modid, int32_t cmdid, shm_route_t *r,
		   shm_host_t *hosts)
{
	uint32_t i = hash_key(modid, cmdid, v->n_slots);
	int tries = 0;
	for (uint32_t k = 0; k < v->n_slots; k++, i = (i + 1) % v->n_slots) {
		const shm_route_t *s = view_slot(v, i);
		int rc;
		while ((rc = read_slot(v, s, modid, cmdid, r, hosts)) == -EAGAIN)
			if (++tries >= SHM_READ_TRIES)
				return -EAGAIN;
		if (rc)
			return rc;
		if (r->state == SHM_SLOT_EMPTY)
			return -ENOENT;
		if (r->state == SHM_SLOT_ROUTE && r->modid == modid && r->cmdid == cmdid)
			return 0;
		if (r->state != SHM_SLOT_DELETED && r->state != SHM_SLOT_ROUTE)
			return -EINVAL;
	}
	return -ENOENT;
}
