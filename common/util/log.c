// SPDX-License-Identifier: MIT
// Levelled logging to stderr, one line per event, journald-aware.
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int log_threshold = LOG_LVL_INFO;
static bool log_journal; /* under systemd: "<N>" prefix, no timestamp */
static const char *log_prog; /* command-line tool: "prog: " prefix */

void log_init(enum log_level level)
{
	log_threshold = level;
	/* systemd sets JOURNAL_STREAM when stderr is connected to journald. */
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_init_cli(const char *prog, enum log_level level)
{
	log_threshold = level;
	log_journal = false;
	log_prog = prog;
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

int log_level_parse(const char *s, enum log_level *levelp)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{ "error", LOG_LVL_ERROR }, { "warn", LOG_LVL_WARN },
		{ "warning", LOG_LVL_WARN }, { "info", LOG_LVL_INFO },
		{ "debug", LOG_LVL_DEBUG },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*levelp = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	static const char *const tags[8] = {
		[LOG_LVL_ERROR] = "E", [LOG_LVL_WARN] = "W",
		[LOG_LVL_INFO] = "I", [LOG_LVL_DEBUG] = "D",
	};
	char line[2048];
	int off;
	va_list ap;

	if (log_prog) {
		off = snprintf(line, sizeof(line), "%s: ", log_prog);
	} else if (log_journal) {
		off = snprintf(line, sizeof(line), "<%d>", (int)level);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		off = snprintf(line, sizeof(line),
			       "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
			       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			       tm.tm_hour, tm.tm_min, tm.tm_sec,
			       ts.tv_nsec / 1000000, tags[level & 7]);
	}
	va_start(ap, fmt);
	int n = vsnprintf(line + off, sizeof(line) - (size_t)off - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)off + (n < 0 ? 0 : (size_t)n);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* One write per line so lines from threads never interleave. */
	fwrite(line, 1, len, stderr);
}

bool log_ratelimit_ok(log_ratelimit_t *rl, unsigned long long now_ms,
		      unsigned long long *suppressedp)
{
	*suppressedp = 0;
	if (now_ms - rl->window_start_ms >= rl->interval_ms) {
		rl->window_start_ms = now_ms;
		rl->n_in_window = 0;
	}
	if (rl->n_in_window < rl->burst) {
		rl->n_in_window++;
		*suppressedp = rl->n_suppressed;
		rl->n_suppressed = 0;
		return true;
	}
	rl->n_suppressed++;
	return false;
}
