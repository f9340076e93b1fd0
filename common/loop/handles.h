// SPDX-License-Identifier: MIT
// A group of libuv handles embedded in one owner, closed together: one
// callback once the last close callback has run, so the owner knows when it
// may free itself without counting its handles by hand.
#pragma once

#include <stdbool.h>

#include <uv.h>

#define HANDLES_MAX 8

typedef struct handles handles_t;

/** handles_done_cb - every handle of @g is closed; the owner may go (container_of). */
typedef void (*handles_done_cb)(handles_t *g);

/**
 * struct handles - embed in the owner. Private: use the functions.
 * A handle in a group is closed through the group only.
 */
struct handles {
	uv_handle_t *h[HANDLES_MAX];
	unsigned n;      /* registered */
	unsigned n_open; /* registered and not yet through its close callback */
	bool closing;
	handles_done_cb done;
};

/** handles_init() - an empty group. */
void handles_init(handles_t *g);
/** handles_add() - put @handle (initialised, not closing) into @g. */
void handles_add(handles_t *g, void *handle);
/** handles_close() - close every handle of @g; @done (may be NULL) once all are. */
void handles_close(handles_t *g, handles_done_cb done);
/** handles_closing() - whether handles_close() was called on @g. */
bool handles_closing(const handles_t *g);
