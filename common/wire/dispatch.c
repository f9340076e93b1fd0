// SPDX-License-Identifier: MIT
// Message dispatch by msgid.
#include "dispatch.h"

#include <errno.h>
#include <string.h>

void dispatch_init(dispatch_t *d)
{
	memset(d, 0, sizeof(*d));
}

int dispatch_on(dispatch_t *d, int32_t msgid, dispatch_fn fn, void *user)
{
	if (msgid < 0 || msgid > FRAME_MAX_ID || !fn)
		return -EINVAL;
	d->slot[msgid].fn = fn;
	d->slot[msgid].user = user;
	frame_idset_add(&d->ids, msgid);
	return 0;
}

int dispatch_run(const dispatch_t *d, peer_t *peer, int32_t msgid,
		 const uint8_t *body, size_t len)
{
	if (msgid < 0 || msgid > FRAME_MAX_ID || !d->slot[msgid].fn)
		return -ENOENT;
	return d->slot[msgid].fn(peer, d->slot[msgid].user, msgid, body, len);
}
