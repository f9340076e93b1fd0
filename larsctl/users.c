// SPDX-License-Identifier: MIT
// larsctl admin-user add/del/list: who may log in to the web console, in
// the users file (common/util/userfile.c) lars-admin reads. No database.
#include "larsctl.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "lars_config.h"
#include "userfile.h"

static const char usage_admin_user[] =
	"Usage: larsctl admin-user add NAME [--role read|write] [--users-file FILE] [--group GROUP]\n"
	"                              [--force]\n"
	"       larsctl admin-user del NAME [--users-file FILE]\n"
	"       larsctl admin-user list [--users-file FILE]\n"
	"Manages who may log in to the web console (lars-admin): one NAME:HASH\n"
	"line per user (crypt(3), the system's preferred method; NAME:HASH:read for\n"
	"a read user). add asks for the password twice on the terminal, or reads\n"
	"one line from standard input when it is not a terminal; it replaces the\n"
	"password of an existing user, keeping its role unless --role is given.\n"
	"--role read: the user sees everything and changes nothing (403 on every\n"
	"write); write (the default, and every user from before roles) may change.\n"
	"list prints NAME ROLE per user.\n"
	"A password has at least 12 characters (bytes); --force takes a shorter one.\n"
	"The file is replaced atomically and keeps its owner, group and mode. A new\n"
	"file gets mode 0640 and group GROUP (default: the directory's group when\n"
	"the directory is not world-writable, else root), and add says so.\n"
	"FILE defaults to $LARS_ADMIN_USERS, else " LARS_ADMIN_USERS_DEFAULT ".\n"
	"NAME: 1..64 of A-Z a-z 0-9 . _ -\n";


/* One line of a password: from the terminal without echo, else from stdin. */
static char *read_password(const char *prompt)
{
	FILE *tty = isatty(STDIN_FILENO) ? fopen("/dev/tty", "r+e") : NULL;
	FILE *in = tty ? tty : stdin;
	struct termios old, quiet;
	bool echo_off = false;
	if (tty) {
		fputs(prompt, tty);
		fflush(tty);
		if (tcgetattr(fileno(tty), &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
		}
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, in);
	if (echo_off) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
		fputc('\n', tty);
	}
	if (tty)
		fclose(tty);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void free_password(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

/* A group name or number; 0, or -1 when there is no such group. */
static int parse_group(const char *s, gid_t *gidp)
{
	const struct group *g = getgrnam(s);
	if (g) {
		*gidp = g->gr_gid;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v >= (gid_t)-1 || s[0] == '-')
		return -1;
	*gidp = (gid_t)v;
	return 0;
}

/* A user's or group's name, else its number. */
static const char *id_str(const char *name, unsigned id, char *buf, size_t cap)
{
	if (name)
		snprintf(buf, cap, "%s", name);
	else
		snprintf(buf, cap, "%u", id);
	return buf;
}

static const char *user_str(uid_t uid, char *buf, size_t cap)
{
	const struct passwd *p = getpwuid(uid);
	return id_str(p ? p->pw_name : NULL, (unsigned)uid, buf, cap);
}

static const char *group_str(gid_t gid, char *buf, size_t cap)
{
	const struct group *g = getgrgid(gid);
	return id_str(g ? g->gr_name : NULL, (unsigned)gid, buf, cap);
}

int cmd_admin_user(const args_t *a)
{
	if (a->help) {
		fputs(usage_admin_user, stdout);
		return EXIT_OK;
	}
	const char *path = a->users_file ? a->users_file : getenv("LARS_ADMIN_USERS");
	if (!path || !*path)
		path = LARS_ADMIN_USERS_DEFAULT;
	const char *sub = a->argc > 1 ? a->argv[1] : "";
	bool add = strcmp(sub, "add") == 0, del = strcmp(sub, "del") == 0;
	bool list = strcmp(sub, "list") == 0;
	if (!add && !del && !list)
		return larsctl_usage_error("admin-user", "admin-user needs add, del or list");
	if (a->argc != (list ? 2 : 3))
		return larsctl_usage_error("admin-user", list ? "admin-user list takes no NAME"
						      : "admin-user %s needs NAME", sub);
	const char *name = list ? NULL : a->argv[2];
	if (name && !userfile_valid_name(name))
		return larsctl_usage_error("admin-user", "NAME must be 1..64 of A-Z a-z 0-9 . _ -");
	if ((a->group || a->force || a->role) && !add)
		return larsctl_usage_error("admin-user", "%s is for admin-user add",
				   a->group ? "--group" : a->force ? "--force" : "--role");
	userfile_role_t role = USERFILE_ROLE_WRITE, role_now = USERFILE_ROLE_WRITE;
	if (a->role && userfile_parse_role(a->role, &role))
		return larsctl_usage_error("admin-user", "--role is read or write, not '%s'", a->role);
	gid_t new_gid = USERFILE_GID_DEFAULT;
	if (a->group && parse_group(a->group, &new_gid))
		return larsctl_usage_error("admin-user", "no group '%s'", a->group);

	userfile_t uf = { 0 };
	const char *why = "";
	int r = userfile_load(path, false, &uf, &why);
	if (r == -ENOENT && add) {
		r = 0; /* the first user creates the file */
	} else if (r) {
		fprintf(stderr, "larsctl: cannot read %s: %s\n", path,
			r == -EINVAL ? why : strerror(-r));
		return EXIT_DB;
	}
	if (list) {
		for (size_t i = 0; i < uf.n; i++)
			printf("%s %s\n", uf.users[i].name, userfile_role_name(uf.users[i].role));
		userfile_free(&uf);
		return EXIT_OK;
	}
	if (del && !userfile_del(&uf, name)) {
		fprintf(stderr, "larsctl: no user '%s' in %s; nothing changed\n", name, path);
		userfile_free(&uf);
		return EXIT_OK;
	}
	if (add) {
		char *pw = read_password("Password: ");
		char *again = pw && isatty(STDIN_FILENO) ? read_password("Again: ") : NULL;
		const char *bad = !pw ? "no password given"
				: !*pw ? "the password is empty"
				: strlen(pw) > USERFILE_PASS_MAX ? "the password is over 256 bytes"
				: strlen(pw) < USERFILE_PASS_MIN && !a->force
				? "the password is shorter than 12 characters (the minimum length; "
				  "--force takes it)"
				: again && strcmp(pw, again) != 0 ? "the passwords differ" : NULL;
		char *hash = bad ? NULL : userfile_hash(pw);
		free_password(pw);
		free_password(again);
		if (bad) {
			userfile_free(&uf);
			return larsctl_usage_error("admin-user", "%s; nothing changed", bad);
		}
		if (!hash) {
			fprintf(stderr, "larsctl: cannot hash the password: %s\n", strerror(errno));
			userfile_free(&uf);
			return EXIT_DB;
		}
		bool existed = userfile_entry(&uf, name) != NULL;
		userfile_set(&uf, name, hash);
		free(hash);
		/* A new user is a write user unless --role says; an existing one
		 * keeps its role unless --role says. */
		if (a->role || !existed)
			userfile_set_role(&uf, name, role);
		role_now = userfile_entry(&uf, name)->role;
	}
	userfile_attrs_t at;
	r = userfile_save(path, &uf, new_gid, &at);
	userfile_free(&uf);
	if (r) {
		fprintf(stderr, "larsctl: cannot write %s: %s; nothing changed\n", path,
			strerror(-r));
		return EXIT_DB;
	}
	if (at.created) {
		char owner[64], group[64];
		printf("created %s (owner %s, group %s, mode %04o)\n", path,
		       user_str(at.uid, owner, sizeof(owner)),
		       group_str(at.gid, group, sizeof(group)), (unsigned)at.mode);
	} else if (a->group && at.gid != new_gid) {
		char group[64];
		fprintf(stderr, "larsctl: %s exists: kept its group %s (--group is for a new "
			"file; chgrp it yourself)\n", path, group_str(at.gid, group, sizeof(group)));
	}
	if (add)
		printf("saved user '%s' (role %s) in %s\n", name, userfile_role_name(role_now), path);
	else
		printf("removed user '%s' in %s\n", name, path);
	return EXIT_OK;
}
