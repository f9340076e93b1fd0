// SPDX-License-Identifier: MIT
// Levelled logging to stderr, one line per event, journald-aware.
#pragma once

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LVL_ERROR = 3, /* same numbers as syslog, so <N> prefixes are free */
	LOG_LVL_WARN = 4,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/** log_init() - set the threshold; prefixes follow $JOURNAL_STREAM. */
void log_init(enum log_level level);
/** log_init_cli() - for command-line tools: "PROG: message" lines, no time stamps. */
void log_init_cli(const char *prog, enum log_level level);
/** log_set_level() - change the threshold at run time. */
void log_set_level(enum log_level level);
/** log_level_parse() - "error|warn|info|debug" to a level; -EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *levelp);
/** log_enabled() - whether a message at @level would be printed. */
bool log_enabled(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The level test happens before any argument is evaluated or formatted. */
#define LOG_AT(lvl, ...)                                                       \
	do {                                                                   \
		if (log_enabled(lvl))                                          \
			log_write(lvl, __VA_ARGS__);                           \
	} while (0)

#define log_error(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)

/**
 * struct log_ratelimit - lets through @burst events per @interval_ms, then
 * counts what it suppressed so the next allowed line can say so.
 */
typedef struct log_ratelimit {
	unsigned interval_ms;
	unsigned burst;
	unsigned long long window_start_ms;
	unsigned n_in_window;
	unsigned long long n_suppressed;
} log_ratelimit_t;

#define LOG_RATELIMIT_INIT(interval, n) { (interval), (n), 0, 0, 0 }

/** log_ratelimit_ok() - true if this event may be logged; *suppressedp says how many were hidden before it. */
bool log_ratelimit_ok(log_ratelimit_t *rl, unsigned long long now_ms,
		      unsigned long long *suppressedp);
