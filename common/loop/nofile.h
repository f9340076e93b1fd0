// SPDX-License-Identifier: MIT
// How far to raise the open-file limit (RLIMIT_NOFILE) for a connection
// limit: the decision, without the system calls (service_need_fds() makes them).
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * Descriptors a daemon holds besides its connections: stdio and the log,
 * the listeners, the loop's epoll, eventfd and signal pipe, the database
 * workers' connections ([*] db_threads, at most 64) and up to 64 /metrics
 * scrapes.
 */
#define NOFILE_MARGIN 192u

/** struct nofile_plan - what nofile_plan() decided. */
typedef struct nofile_plan {
	uint64_t need;  /* descriptors wanted: connections + NOFILE_MARGIN */
	uint64_t soft;  /* the soft limit to set (the current one if !raise) */
	bool raise;     /* setrlimit() with @soft */
	bool too_low;   /* the hard limit is below @need: warn */
} nofile_plan_t;

/**
 * nofile_plan() - the soft limit for @n_conns connections, given the current
 * @soft and @hard limits (RLIM_INFINITY is UINT64_MAX). Never lowers it.
 */
nofile_plan_t nofile_plan(uint64_t soft, uint64_t hard, unsigned n_conns);
