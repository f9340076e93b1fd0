// SPDX-License-Identifier: MIT
// The console's list queries: search, sort order and page, checked (see listq.h).
#include "listq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal number of at most @max_digits digits, nothing else; -1 if not. */
static int64_t digits(const char *s, size_t len, size_t max_digits)
{
	if (len == 0 || len > max_digits)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * An IPv4 address, a network "a.b.c.d/n", or a prefix of whole octets
 * ending in a dot ("10.0."): the network as text with its host bits cleared.
 * False if @s is none of those.
 */
static bool parse_net(const char *s, listq_search_t *out)
{
	uint32_t addr = 0;
	int octets = 0, bits = -1;
	const char *p = s;
	bool trailing_dot = false;
	while (*p && *p != '/') {
		const char *start = p;
		while (*p >= '0' && *p <= '9')
			p++;
		int64_t v = digits(start, (size_t)(p - start), 3);
		if (v < 0 || v > 255 || octets == 4)
			return false;
		addr = addr << 8 | (uint32_t)v;
		octets++;
		if (*p == '.') {
			p++;
			trailing_dot = !*p || *p == '/';
		} else if (*p && *p != '/') {
			return false;
		}
	}
	if (*p == '/') {
		if (octets != 4 || trailing_dot)
			return false;
		int64_t v = digits(p + 1, strlen(p + 1), 2);
		if (v < 0 || v > 32)
			return false;
		bits = (int)v;
	} else if (octets == 4 && !trailing_dot) {
		bits = 32;
	} else if (trailing_dot && octets >= 1 && octets <= 3) {
		bits = 8 * octets;
		addr <<= 8 * (4 - octets);
	} else {
		return false;
	}
	uint32_t mask = bits ? ~(uint32_t)0 << (32 - bits) : 0;
	addr &= mask;
	snprintf(out->net, sizeof(out->net), "%u.%u.%u.%u/%d", addr >> 24, addr >> 16 & 255,
		 addr >> 8 & 255, addr & 255, bits);
	out->host = bits == 32;
	out->kind = LISTQ_NET;
	return true;
}

/**
 * listq_parse_search() - what a search box's text asks for.
 * @q: the text (NULL: none); leading and trailing blanks do not count
 * @out: gets the search (kind LISTQ_NONE for no text)
 * @whyp: gets the reason on failure
 *
 * Return: 0, or -EINVAL for text longer than LISTQ_TEXT_MAX, a control
 * character, or an id above 2147483647 in "M/C".
 */
int listq_parse_search(const char *q, listq_search_t *out, const char **whyp)
{
	memset(out, 0, sizeof(*out));
	out->kind = LISTQ_NONE;
	out->cmdid = -1;
	if (!q)
		return 0;
	while (*q == ' ' || *q == '\t')
		q++;
	size_t len = strlen(q);
	while (len && (q[len - 1] == ' ' || q[len - 1] == '\t'))
		len--;
	if (len == 0)
		return 0;
	if (len > LISTQ_TEXT_MAX) {
		*whyp = "the search is too long (at most 200 characters)";
		return -EINVAL;
	}
	char s[LISTQ_TEXT_MAX + 1];
	memcpy(s, q, len);
	s[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			*whyp = "the search holds a control character";
			return -EINVAL;
		}
	}
	/* "M/C" or "M/": a route or a module. */
	const char *slash = strchr(s, '/');
	if (slash && !strchr(s, '.')) {
		int64_t m = digits(s, (size_t)(slash - s), 10);
		size_t clen = strlen(slash + 1);
		int64_t c = clen ? digits(slash + 1, clen, 10) : -1;
		if (m >= 0 && (c >= 0 || clen == 0)) {
			if (m > INT32_MAX || c > INT32_MAX) {
				*whyp = "a modid or cmdid is at most 2147483647";
				return -EINVAL;
			}
			out->kind = LISTQ_ROUTE;
			out->modid = (int32_t)m;
			out->cmdid = (int32_t)c;
			return 0;
		}
	}
	int64_t id = digits(s, len, 18);
	if (id >= 0) {
		/* Larger than any id: it can match nothing, but it is no error. */
		out->kind = LISTQ_ID;
		out->id = id;
		return 0;
	}
	if (parse_net(s, out))
		return 0;
	out->kind = LISTQ_TEXT;
	char *w = out->like;
	*w++ = '%';
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
			*w++ = '\\';
		*w++ = s[i];
	}
	*w++ = '%';
	*w = '\0';
	return 0;
}

/**
 * listq_parse_name() - one of a list of names.
 * @s: the text (NULL or "": @def)
 * @names: the names accepted
 * @n: their number
 * @def: the index for no text
 * @outp: gets the index
 *
 * Return: 0, or -EINVAL (@outp untouched).
 */
int listq_parse_name(const char *s, const char *const *names, size_t n, int def, int *outp)
{
	if (!s || !*s) {
		*outp = def;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s, names[i]) == 0) {
			*outp = (int)i;
			return 0;
		}
	}
	return -EINVAL;
}

/**
 * listq_parse_order() - a sort direction.
 * @s: "asc" or "desc" (NULL or "": @def_desc)
 * @def_desc: the direction for no text
 * @descp: gets true for descending
 *
 * Return: 0, or -EINVAL.
 */
int listq_parse_order(const char *s, bool def_desc, bool *descp)
{
	if (!s || !*s)
		*descp = def_desc;
	else if (strcmp(s, "asc") == 0)
		*descp = false;
	else if (strcmp(s, "desc") == 0)
		*descp = true;
	else
		return -EINVAL;
	return 0;
}

/**
 * listq_split() - where a page of two concatenated lists comes from.
 * @offset: the page's first entry, counted over both lists
 * @limit: its length
 * @n_first: the length of the first list
 * @first_from: gets the first list's entry the page starts with
 * @first_n: gets how many of the first list it takes (0: none)
 * @second_from: gets the second list's entry to start with
 * @second_n: gets how many of the second list to ask for: the rest of the
 *	page and one more (whether there is a next page); 0 when the first
 *	list fills the page and has an entry after it
 */
void listq_split(uint64_t offset, uint64_t limit, uint64_t n_first, uint64_t *first_from,
		 uint64_t *first_n, uint64_t *second_from, uint64_t *second_n)
{
	*first_from = offset < n_first ? offset : n_first;
	uint64_t left = n_first - *first_from;
	*first_n = left < limit ? left : limit;
	*second_from = offset > n_first ? offset - n_first : 0;
	if (left > limit)
		*second_n = 0; /* the first list alone says there is more */
	else
		*second_n = limit - *first_n + 1;
}
