// SPDX-License-Identifier: MIT
// The INI loader with a key of every type, on whatever the input holds.
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "net.h"

static int parse_eps(const char *value, void *dst, const char **whyp)
{
	net_endpoint_t eps[NET_MAX_ENDPOINTS];
	if (net_endpoints_parse(value, eps, NET_MAX_ENDPOINTS) < 0) {
		*whyp = "bad endpoints";
		return -1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	if (fd < 0) {
		log_set_level((enum log_level)0); /* quiet: errors are expected */
		fd = memfd_create("fuzz-config", 0);
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int i = 0;
	double d = 0;
	bool b = false;
	char s[32] = "";
	int eps = 0;
	config_key_t keys[] = {
		CONFIG_KEY_INT("a", "int", &i, -5, 70000),
		CONFIG_KEY_DOUBLE("a", "double", &d, 0, 1),
		CONFIG_KEY_BOOL("b", "bool", &b),
		CONFIG_KEY_STR("b", "str", s),
		CONFIG_KEY_FN("c", "servers", &eps, parse_eps),
	};
	config_load(path, keys, sizeof(keys) / sizeof(keys[0]));
	if (s[sizeof(s) - 1] != '\0')
		__builtin_trap();
	return 0;
}
