// SPDX-License-Identifier: MIT
// A group of libuv handles closed together.
//
// Closing hands each handle's data pointer to the group: after uv_close()
// libuv runs no callback of the handle but its close callback, so the
// owner's data is not needed any more, and the close callback finds the
// group from the handle alone.
#include "handles.h"

#include <assert.h>
#include <stdlib.h>

#include "log.h"

void handles_init(handles_t *g)
{
	*g = (handles_t){ 0 };
}

/**
 * handles_add() - register @handle with @g.
 * @g: the group, not closing.
 * @handle: a uv handle (any type) that was initialised successfully and
 *          lives in the same owner as @g.
 *
 * From here the group closes @handle; its owner must not uv_close() it.
 */
void handles_add(handles_t *g, void *handle)
{
	uv_handle_t *h = handle;
	if (g->n >= HANDLES_MAX || g->closing) {
		log_error("handles: cannot add a %s handle (%u in the group%s)",
			  uv_handle_type_name(h->type), g->n, g->closing ? ", closing" : "");
		abort(); /* a bug: raise HANDLES_MAX or add before closing */
	}
	g->h[g->n++] = h;
	g->n_open++;
}

static void handles_on_closed(uv_handle_t *h)
{
	handles_t *g = h->data;
	assert(g->n_open > 0);
	if (--g->n_open == 0 && g->done)
		g->done(g);
}

/**
 * handles_close() - close every handle registered with @g.
 * @g: the group; a second call does nothing.
 * @done: called once, from the last handle's close callback, or at once if
 *        the group is empty. It may free the owner of @g. NULL: nobody waits.
 *
 * Each handle's data pointer is overwritten (it points at @g afterwards).
 */
void handles_close(handles_t *g, handles_done_cb done)
{
	if (g->closing)
		return;
	g->closing = true;
	g->done = done;
	if (g->n_open == 0) {
		if (done)
			done(g);
		return;
	}
	for (unsigned i = 0; i < g->n; i++) {
		g->h[i]->data = g;
		uv_close(g->h[i], handles_on_closed);
	}
}

bool handles_closing(const handles_t *g)
{
	return g->closing;
}
