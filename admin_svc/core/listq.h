// SPDX-License-Identifier: MIT
// The console's list queries: what an operator typed in the search box and
// picked as sort order and page, checked and classified (pure; the SQL that
// carries them out is common/db/status.c's).
//
// A search is read as the most specific thing it can be: "5/1" a route,
// "5/" a module, "17" a modid or a cmdid, "10.0.0.7" a host address,
// "10.0.0.0/24" or "10.0." the hosts in a network, anything else text
// matched case-insensitively inside descriptions (or, in the change log,
// the actor and the detail).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest search accepted (bytes). */
#define LISTQ_TEXT_MAX 200
/* Room for a LIKE pattern of the longest text: each byte escaped, two '%'. */
#define LISTQ_LIKE_MAX (2 * LISTQ_TEXT_MAX + 3)
/* Room for "255.255.255.255/32". */
#define LISTQ_NET_MAX 20

typedef enum listq_kind {
	LISTQ_NONE,  /* no search */
	LISTQ_ROUTE, /* "M/C": that route; "M/": the routes of module M (cmdid -1) */
	LISTQ_ID,    /* "N": modid N or cmdid N */
	LISTQ_NET,   /* an address or network: routes with a host in it */
	LISTQ_TEXT,  /* text inside a description */
} listq_kind_t;

typedef struct listq_search {
	listq_kind_t kind;
	int32_t modid;            /* LISTQ_ROUTE */
	int32_t cmdid;            /* LISTQ_ROUTE, -1 for the whole module */
	int64_t id;               /* LISTQ_ID */
	char net[LISTQ_NET_MAX];  /* LISTQ_NET: "a.b.c.d/n", host bits cleared */
	bool host;                /* LISTQ_NET: one address (/32) */
	char like[LISTQ_LIKE_MAX]; /* LISTQ_TEXT: an ILIKE pattern ('\' escapes) */
} listq_search_t;

/** listq_parse_search() - classify @q (NULL or blank: LISTQ_NONE); -EINVAL + @whyp. */
int listq_parse_search(const char *q, listq_search_t *out, const char **whyp);

/**
 * listq_parse_name() - @s (NULL or "": @def) as the index of one of the
 * @n @names; -EINVAL if it is none of them.
 */
int listq_parse_name(const char *s, const char *const *names, size_t n, int def, int *outp);

/** listq_parse_order() - "asc" (false), "desc" (true), NULL or "": @def_desc. */
int listq_parse_order(const char *s, bool def_desc, bool *descp);

/**
 * listq_split() - a page over two lists in a row, the first of @n_first
 * entries (the unhealthy routes) and the second of unknown length: how
 * many of the first list the page takes from where (@first_from,
 * @first_n), and from where and how many of the second (@second_from,
 * @second_n; one more than the page is asked of it, to know if there is more).
 */
void listq_split(uint64_t offset, uint64_t limit, uint64_t n_first, uint64_t *first_from,
		 uint64_t *first_n, uint64_t *second_from, uint64_t *second_n);
