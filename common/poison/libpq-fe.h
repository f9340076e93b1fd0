// SPDX-License-Identifier: MIT
// On a domain core's include path only (common/meson.build core_poison_inc):
// cores take the clock and the data as arguments and are tested without a
// loop or a database, so they never include libpq-fe.h.
#error "a domain core must not include <libpq-fe.h>: keep it in the loop or database layer"
