// SPDX-License-Identifier: MIT
// Who may use the console: HTTP Basic or the login form's session cookie,
// against the users file (crypt(3) hashes, checked on libuv's thread pool:
// a good hash is slow on purpose; roles read and write), and the
// same-origin rule for writes.
#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <arpa/inet.h>

#include "log.h"
#include "net.h"
#include "session.h"
#include "throttle.h"
#include "userfile.h"
#include "xalloc.h"

/* A success is remembered this long, so pages (a dozen requests each) cost
 * one crypt(3) per user and minute, not one per request. */
#define AUTH_CACHE_MS (60 * 1000)
/* How often a request looks whether the users file changed (a stat). */
#define AUTH_RECHECK_MS 1000
#define AUTH_CACHE_SLOTS 32
/* "ip" or "v6-prefix/64" */
#define THROTTLE_ADDR_LEN (INET6_ADDRSTRLEN + 4)

typedef struct auth_cached {
	char *user;
	char *pass;
	uint64_t until_ms;
} auth_cached_t;

struct auth {
	uv_loop_t *loop;
	char *path;
	userfile_t users;
	struct timespec mtime; /* of the file as loaded */
	off_t size;
	uint64_t checked_ms; /* loop time of the last look at the file */
	auth_cached_t cache[AUTH_CACHE_SLOTS];
	unsigned next_slot;
	throttle_t *throttle;
	struct auth_work *running; /* checks on the thread pool */
	session_store_t *sessions;
	uint64_t session_idle_ms, session_max_ms;
};

/* Sessions at once: a new one beyond replaces the least recently used. */
#define AUTH_SESSIONS_MAX 1024

/* One request waiting for a password check (several carry the same
 * credentials: a browser loads a page's assets in parallel). */
typedef struct auth_waiter {
	struct auth_waiter *next;
	http_req_t *req;
	auth_done_fn done;
	void *arg;
} auth_waiter_t;

typedef struct auth_work {
	uv_work_t w;
	struct auth_work *next; /* in au->running */
	auth_t *au;
	auth_waiter_t *waiters;
	char peer[NET_ADDR_STRLEN]; /* of the first request, for the log */
	char key[THROTTLE_ADDR_LEN]; /* its address as the throttle knows it */
	char *user, *pass, *hash;
	bool known; /* the user is in the file */
	bool ok;
	bool login; /* the login form's: a success opens a session */
} auth_work_t;

/* A tag of a password hash: a session of an older password is no session. */
static uint64_t hash_tag(const char *hash)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const char *p = hash; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* Who @user is now, by the users file (false: no such user any more). */
static bool who_of(const auth_t *au, const char *user, enum auth_via via, auth_who_t *who)
{
	const userfile_entry_t *e = userfile_entry(&au->users, user);
	if (!e)
		return false;
	memset(who, 0, sizeof(*who));
	snprintf(who->user, sizeof(who->user), "%s", user);
	who->read_only = e->role == USERFILE_ROLE_READ;
	who->via = via;
	return true;
}

static void cache_clear(auth_cached_t *c)
{
	free(c->user);
	if (c->pass) {
		explicit_bzero(c->pass, strlen(c->pass));
		free(c->pass);
	}
	memset(c, 0, sizeof(*c));
}

static int auth_reload(auth_t *au, bool at_start)
{
	struct stat st;
	uint64_t now = uv_now(au->loop);
	if (!at_start && now - au->checked_ms < AUTH_RECHECK_MS)
		return 0;
	au->checked_ms = now;
	if (stat(au->path, &st)) {
		int e = -errno;
		log_error("admin: users file %s: %s", au->path, strerror(errno));
		return e;
	}
	if (!at_start && st.st_mtim.tv_sec == au->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == au->mtime.tv_nsec && st.st_size == au->size)
		return 0;
	userfile_t uf = { 0 };
	const char *why = "";
	int r = userfile_load(au->path, true, &uf, &why);
	if (r) {
		log_error("admin: users file %s: %s%s", au->path,
			  r == -EINVAL || r == -EPERM ? why : strerror(-r),
			  at_start ? "" : " (keeping the users loaded before)");
		return r;
	}
	userfile_free(&au->users);
	au->users = uf;
	au->mtime = st.st_mtim;
	au->size = st.st_size;
	/* A removed user or a changed password is out at once. */
	for (unsigned i = 0; i < AUTH_CACHE_SLOTS; i++)
		cache_clear(&au->cache[i]);
	log_info("admin: %zu console user(s) from %s", uf.n, au->path);
	if (uf.n == 0)
		log_warn("admin: %s has no users: nobody can log in", au->path);
	return 0;
}

int auth_new(uv_loop_t *loop, const char *path, const admin_cfg_t *cfg, auth_t **outp)
{
	auth_t *au = xcalloc(1, sizeof(*au));
	au->loop = loop;
	au->path = xstrdup(path);
	au->throttle = throttle_new(&(throttle_opts_t){ 0 });
	au->session_max_ms = (uint64_t)cfg->session_max_s * 1000;
	au->session_idle_ms = (uint64_t)cfg->session_idle_s * 1000;
	au->sessions = session_store_new(&(session_opts_t){
		.idle_ms = au->session_idle_ms,
		.max_ms = au->session_max_ms,
		.max_sessions = AUTH_SESSIONS_MAX });
	int r = auth_reload(au, true);
	if (r) {
		auth_free(au);
		return r;
	}
	*outp = au;
	return 0;
}

void auth_free(auth_t *au)
{
	if (!au)
		return;
	for (unsigned i = 0; i < AUTH_CACHE_SLOTS; i++)
		cache_clear(&au->cache[i]);
	userfile_free(&au->users);
	throttle_free(au->throttle);
	session_store_free(au->sessions);
	free(au->path);
	free(au);
}

static bool cache_hit(auth_t *au, const char *user, const char *pass)
{
	uint64_t now = uv_now(au->loop);
	for (unsigned i = 0; i < AUTH_CACHE_SLOTS; i++) {
		auth_cached_t *c = &au->cache[i];
		if (c->user && c->until_ms > now && strcmp(c->user, user) == 0 &&
		    strcmp(c->pass, pass) == 0)
			return true;
	}
	return false;
}

static void cache_put(auth_t *au, const char *user, const char *pass)
{
	auth_cached_t *c = &au->cache[au->next_slot++ % AUTH_CACHE_SLOTS];
	cache_clear(c);
	c->user = xstrdup(user);
	c->pass = xstrdup(pass);
	c->until_ms = uv_now(au->loop) + AUTH_CACHE_MS;
}

/* The address a peer ("ip:port", "[v6]:port") is throttled by: the IPv4
 * address, or the IPv6 /64 (one host usually holds a whole /64). */
static void peer_key(const char *peer, char out[THROTTLE_ADDR_LEN])
{
	char ip[INET6_ADDRSTRLEN + 2];
	snprintf(ip, sizeof(ip), "%s", peer[0] == '[' ? peer + 1 : peer);
	char *end = strrchr(ip, peer[0] == '[' ? ']' : ':');
	if (end)
		*end = '\0';
	unsigned char a6[16];
	if (peer[0] == '[' && inet_pton(AF_INET6, ip, a6) == 1) {
		memset(a6 + 8, 0, 8);
		char pfx[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, a6, pfx, sizeof(pfx));
		snprintf(out, THROTTLE_ADDR_LEN, "%s/64", pfx);
		return;
	}
	snprintf(out, THROTTLE_ADDR_LEN, "%s", ip);
}

static void auth_work_free(auth_work_t *w)
{
	free(w->user);
	if (w->pass) {
		explicit_bzero(w->pass, strlen(w->pass));
		free(w->pass);
	}
	free(w->hash);
	for (auth_waiter_t *q = w->waiters, *n; q; q = n) {
		n = q->next;
		free(q);
	}
	free(w);
}

static void auth_on_work(uv_work_t *req)
{
	auth_work_t *w = container_of(req, auth_work_t, w);
	bool match = userfile_verify(w->hash, w->pass);
	w->ok = w->known && match;
}

static void auth_after_work(uv_work_t *req, int status)
{
	auth_work_t *w = container_of(req, auth_work_t, w);
	auth_t *au = w->au;
	for (auth_work_t **pp = &au->running; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	uint64_t wait = throttle_done(au->throttle, w->key, w->known ? w->user : NULL, w->ok,
				      uv_now(au->loop));
	auth_who_t who = { 0 };
	/* The file may have changed while crypt(3) ran: who the user is now. */
	bool ok = w->ok && who_of(au, w->user, w->login ? AUTH_VIA_SESSION : AUTH_VIA_BASIC, &who);
	if (ok && w->login) {
		unsigned char rnd[SESSION_TOKEN_LEN / 2];
		ok = getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd);
		for (size_t i = 0; ok && i < sizeof(rnd); i++)
			snprintf(who.token + 2 * i, 3, "%02x", rnd[i]);
		explicit_bzero(rnd, sizeof(rnd));
		ok = ok && session_create(au->sessions, who.token, w->user, hash_tag(w->hash),
					  uv_now(au->loop)) == 0;
		if (!ok)
			log_error("admin: cannot open a session for '%s': %s", w->user,
				  strerror(errno));
		else
			log_info("admin: '%s' logged in from %s", w->user, w->peer);
		uint64_t ends = au->session_idle_ms < au->session_max_ms ? au->session_idle_ms
									  : au->session_max_ms;
		who.expires_unix_s = (int64_t)time(NULL) + (int64_t)(ends / 1000);
	}
	if (ok && !w->login) {
		cache_put(au, w->user, w->pass);
	} else if (ok) {
		/* A session: no credentials to remember. */
	} else if (w->known) {
		/* Only a name that is a user is logged: a password typed into
		 * the name field must not land in the log. The name is a line
		 * of our users file, so it is printable already. */
		log_warn("admin: login failed for user '%s' from %s (wrong password)", w->user,
			 w->peer);
	} else {
		log_warn("admin: login failed for an unknown user name from %s (not logged)",
			 w->peer);
	}
	if (wait)
		log_warn("admin: %s failed to log in %u times: its next try waits %" PRIu64 " s",
			 w->key, throttle_failures(au->throttle, w->key), (wait + 999) / 1000);
	for (auth_waiter_t *q = w->waiters; q; q = q->next)
		q->done(q->req, ok ? AUTH_OK : AUTH_FAILED, 0, ok ? &who : NULL, q->arg);
	explicit_bzero(&who, sizeof(who));
	auth_work_free(w);
}

static void waiter_add(auth_work_t *w, http_req_t *req, auth_done_fn done, void *arg)
{
	auth_waiter_t *q = xcalloc(1, sizeof(*q));
	q->req = req;
	q->done = done;
	q->arg = arg;
	q->next = w->waiters;
	w->waiters = q;
}

static void pass_free(char *pass)
{
	explicit_bzero(pass, strlen(pass));
	free(pass);
}

/* The value of cookie @name in @req's Cookie header (copied to @out), or false. */
static bool cookie_value(http_req_t *req, const char *name, char *out, size_t cap)
{
	const char *c = http_req_header(req, "Cookie");
	size_t n = strlen(name);
	for (const char *p = c; p && *p;) {
		while (*p == ' ' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			size_t vlen = len - n - 1;
			if (vlen >= cap)
				return false;
			memcpy(out, p + n + 1, vlen);
			out[vlen] = '\0';
			return true;
		}
		p = end;
	}
	return false;
}

/* The session @req's cookie names: AUTH_OK (@who filled), AUTH_SESSION_ENDED
 * (it ran out, was logged out, or its user or password changed), or
 * AUTH_NO_CREDENTIALS (no cookie). */
static auth_result_t session_check(auth_t *au, http_req_t *req, auth_who_t *who)
{
	char token[SESSION_TOKEN_LEN + 2];
	if (!cookie_value(req, AUTH_COOKIE, token, sizeof(token)) || !token[0])
		return AUTH_NO_CREDENTIALS;
	session_info_t info;
	uint64_t now = uv_now(au->loop);
	if (session_use(au->sessions, token, now, &info) != SESSION_OK)
		return AUTH_SESSION_ENDED;
	const char *hash = userfile_find(&au->users, info.user);
	if (!hash || hash_tag(hash) != info.hash_tag || !who_of(au, info.user, AUTH_VIA_SESSION, who)) {
		/* Removed, or a new password: its sessions end. */
		session_end_user(au->sessions, info.user);
		return AUTH_SESSION_ENDED;
	}
	who->expires_unix_s = (int64_t)time(NULL) + (int64_t)((info.expires_ms - now) / 1000);
	return AUTH_OK;
}

/* The password check of Basic credentials or the login form (@login). */
static void check_password(auth_t *au, http_req_t *req, char *user, char *pass, bool login,
			   auth_done_fn done, void *arg)
{
	auth_who_t who;
	if (!login && cache_hit(au, user, pass) && who_of(au, user, AUTH_VIA_BASIC, &who)) {
		free(user);
		pass_free(pass);
		done(req, AUTH_OK, 0, &who, arg);
		return;
	}
	char key[THROTTLE_ADDR_LEN];
	peer_key(http_req_peer(req), key);
	/* The same Basic credentials from the same address are being checked:
	 * wait for that answer (one guess, however many requests carry it; a
	 * login opens a session of its own). */
	for (auth_work_t *w = au->running; w; w = w->next) {
		if (!login && !w->login && strcmp(w->key, key) == 0 && strcmp(w->user, user) == 0 &&
		    strcmp(w->pass, pass) == 0) {
			free(user);
			pass_free(pass);
			waiter_add(w, req, done, arg);
			return;
		}
	}
	const char *hash = userfile_find(&au->users, user);
	uint64_t retry_ms = 0;
	int t = throttle_ask(au->throttle, key, hash ? user : NULL, uv_now(au->loop), &retry_ms);
	if (t != THROTTLE_CHECK) {
		/* Answered without looking at the password. */
		free(user);
		pass_free(pass);
		done(req, AUTH_THROTTLED, (unsigned)((retry_ms + 999) / 1000), NULL, arg);
		return;
	}
	auth_work_t *w = xcalloc(1, sizeof(*w));
	w->au = au;
	w->login = login;
	snprintf(w->peer, sizeof(w->peer), "%s", http_req_peer(req));
	snprintf(w->key, sizeof(w->key), "%s", key);
	w->user = user;
	w->pass = pass;
	/* An unknown user costs the same crypt(3) as a known one: no timing
	 * difference tells which names exist. */
	w->known = hash != NULL;
	w->hash = xstrdup(hash ? hash : au->users.n ? au->users.users[0].hash : "*");
	waiter_add(w, req, done, arg);
	int r = uv_queue_work(au->loop, &w->w, auth_on_work, auth_after_work);
	if (r) {
		log_error("admin: cannot check a password: %s", uv_strerror(r));
		throttle_abort(au->throttle, key, uv_now(au->loop));
		done(req, AUTH_FAILED, 0, NULL, arg);
		auth_work_free(w);
		return;
	}
	w->next = au->running;
	au->running = w;
}

void auth_check(auth_t *au, http_req_t *req, auth_done_fn done, void *arg)
{
	auth_reload(au, false);
	auth_who_t who;
	auth_result_t sr = session_check(au, req, &who);
	if (sr == AUTH_OK) {
		done(req, AUTH_OK, 0, &who, arg);
		return;
	}
	char *user = NULL, *pass = NULL;
	if (!http_req_basic_auth(req, &user, &pass)) {
		bool carried = http_req_header(req, "Authorization") != NULL;
		if (carried)
			log_warn("admin: login failed from %s (not HTTP Basic credentials)",
				 http_req_peer(req));
		done(req, carried ? AUTH_FAILED : sr, 0, NULL, arg);
		return;
	}
	check_password(au, req, user, pass, false, done, arg);
}

void auth_login(auth_t *au, http_req_t *req, const char *user, const char *pass,
		auth_done_fn done, void *arg)
{
	auth_reload(au, false);
	check_password(au, req, xstrdup(user), xstrdup(pass), true, done, arg);
}

bool auth_logout(auth_t *au, http_req_t *req)
{
	char token[SESSION_TOKEN_LEN + 2];
	if (!cookie_value(req, AUTH_COOKIE, token, sizeof(token)))
		return false;
	bool ended = session_end(au->sessions, token);
	explicit_bzero(token, sizeof(token));
	return ended;
}

void auth_cookie(const auth_t *au, http_req_t *req, const char *token, char *out, size_t cap)
{
	const char *proto = http_req_header(req, "X-Forwarded-Proto");
	const char *origin = http_req_header(req, "Origin");
	bool tls = (proto && strcasecmp(proto, "https") == 0) ||
		   (origin && strncasecmp(origin, "https://", 8) == 0);
	snprintf(out, cap, "%s=%s; Path=/; Max-Age=%llu; HttpOnly; SameSite=Strict%s", AUTH_COOKIE,
		 token, token[0] ? (unsigned long long)(au->session_max_ms / 1000) : 0ULL,
		 tls ? "; Secure" : "");
}

/* Does @url ("http://host[:port]/..." or exactly the origin) name @host? */
static bool same_host(const char *url, const char *host, bool origin_only)
{
	const char *rest;
	if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else
		return false;
	size_t n = strlen(host);
	if (strncasecmp(rest, host, n) != 0)
		return false;
	return origin_only ? rest[n] == '\0' : rest[n] == '/' || rest[n] == '\0';
}

bool auth_same_origin(http_req_t *req, const char **whyp)
{
	const char *host = http_req_header(req, "Host");
	const char *site = http_req_header(req, "Sec-Fetch-Site");
	const char *origin = http_req_header(req, "Origin");
	const char *referer = http_req_header(req, "Referer");

	if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0) {
		*whyp = "a write must come from the console's own pages";
		return false;
	}
	if (origin) {
		if (!host || !same_host(origin, host, true)) {
			*whyp = "a write from another origin is refused";
			return false;
		}
	} else if (referer && (!host || !same_host(referer, host, false))) {
		*whyp = "a write from another site is refused";
		return false;
	}
	return true;
}
