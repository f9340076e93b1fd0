// SPDX-License-Identifier: MIT
// The console's users file: names, hashes, roles, load/save round trip,
// the world-readable refusal, bad lines, and password checks.
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <grp.h>

#include "userfile.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/lars-test-userfile.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_names(void **state)
{
	assert_true(userfile_valid_name("alice"));
	assert_true(userfile_valid_name("ops.team-1_x"));
	assert_false(userfile_valid_name(""));
	assert_false(userfile_valid_name("a:b"));
	assert_false(userfile_valid_name("a b"));
	assert_false(userfile_valid_name("é"));
	char long_name[USERFILE_NAME_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_false(userfile_valid_name(long_name));
	long_name[USERFILE_NAME_MAX] = '\0';
	assert_true(userfile_valid_name(long_name));
}

static void test_hash_verify(void **state)
{
	char *h = userfile_hash("s3cret:with colon");
	assert_non_null(h);
	assert_null(strchr(h, ':')); /* safe as the second field of a line */
	assert_true(userfile_verify(h, "s3cret:with colon"));
	assert_false(userfile_verify(h, "s3cret:with colo"));
	assert_false(userfile_verify(h, ""));
	char *h2 = userfile_hash("s3cret:with colon");
	assert_string_not_equal(h, h2); /* a new salt each time */
	assert_false(userfile_verify("*", "x"));
	assert_false(userfile_verify("garbage", "x"));
	free(h);
	free(h2);
}

static void test_round_trip(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/users", dir);
	userfile_t uf = { 0 };
	userfile_set(&uf, "alice", "$y$hashA");
	userfile_set(&uf, "bob", "$y$hashB");
	userfile_set(&uf, "alice", "$y$hashA2"); /* replaces */
	assert_int_equal(uf.n, 2);
	userfile_attrs_t a;
	assert_int_equal(userfile_save(path, &uf, USERFILE_GID_DEFAULT, &a), 0);
	userfile_free(&uf);

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640); /* new: 0640, not world-readable */
	assert_true(a.created);
	assert_int_equal(a.mode, 0640);
	const char *why = NULL;
	assert_int_equal(userfile_load(path, true, &uf, &why), 0);
	assert_int_equal(uf.n, 2);
	assert_string_equal(userfile_find(&uf, "alice"), "$y$hashA2");
	assert_string_equal(userfile_find(&uf, "bob"), "$y$hashB");
	assert_null(userfile_find(&uf, "carol"));
	assert_true(userfile_del(&uf, "alice"));
	assert_false(userfile_del(&uf, "alice"));
	assert_null(userfile_find(&uf, "alice"));
	assert_int_equal(uf.n, 1);
	userfile_free(&uf);
}

/* Roles: none is write (every file from before roles), "read" survives a
 * save and a password change; a bad role is a bad line. */
static void test_roles(void **state)
{
	char path[128];
	const char *why = NULL;
	snprintf(path, sizeof(path), "%s/roles", dir);
	write_file(path, "old:$y$h1\nviewer:$y$h2:read\nwriter:$y$h3:write\n", 0600);
	userfile_t uf = { 0 };
	assert_int_equal(userfile_load(path, true, &uf, &why), 0);
	assert_int_equal(userfile_entry(&uf, "old")->role, USERFILE_ROLE_WRITE);
	assert_int_equal(userfile_entry(&uf, "viewer")->role, USERFILE_ROLE_READ);
	assert_string_equal(userfile_find(&uf, "viewer"), "$y$h2");
	assert_int_equal(userfile_entry(&uf, "writer")->role, USERFILE_ROLE_WRITE);
	assert_null(userfile_entry(&uf, "nobody"));
	userfile_set(&uf, "viewer", "$y$new"); /* a new password keeps the role */
	assert_int_equal(userfile_entry(&uf, "viewer")->role, USERFILE_ROLE_READ);
	assert_true(userfile_set_role(&uf, "old", USERFILE_ROLE_READ));
	assert_false(userfile_set_role(&uf, "nobody", USERFILE_ROLE_READ));
	assert_int_equal(userfile_save(path, &uf, USERFILE_GID_DEFAULT, NULL), 0);
	userfile_free(&uf);
	assert_int_equal(userfile_load(path, true, &uf, &why), 0);
	assert_int_equal(userfile_entry(&uf, "old")->role, USERFILE_ROLE_READ);
	assert_int_equal(userfile_entry(&uf, "viewer")->role, USERFILE_ROLE_READ);
	assert_string_equal(userfile_find(&uf, "viewer"), "$y$new");
	assert_int_equal(userfile_entry(&uf, "writer")->role, USERFILE_ROLE_WRITE);
	userfile_free(&uf);
	/* A write user's line stays NAME:HASH, as older consoles read it. */
	FILE *f = fopen(path, "r");
	char text[512] = "";
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_non_null(strstr(text, "\nwriter:$y$h3\n"));
	assert_non_null(strstr(text, "\nviewer:$y$new:read\n"));
	userfile_role_t role;
	assert_int_equal(userfile_parse_role("read", &role), 0);
	assert_int_equal(role, USERFILE_ROLE_READ);
	assert_int_equal(userfile_parse_role("admin", &role), -EINVAL);
	assert_string_equal(userfile_role_name(USERFILE_ROLE_READ), "read");
	assert_string_equal(userfile_role_name(USERFILE_ROLE_WRITE), "write");
}

static gid_t daemon_gid(void)
{
	const struct group *g = getgrnam("daemon");
	return g ? g->gr_gid : 1;
}

static void save_one(const char *path, gid_t new_gid, userfile_attrs_t *a)
{
	userfile_t uf = { 0 };
	userfile_set(&uf, "alice", "$y$hashA");
	assert_int_equal(userfile_save(path, &uf, new_gid, a), 0);
	userfile_free(&uf);
}

static void assert_attrs(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
	assert_int_equal(st.st_mode & 07777, mode);
}

static void test_save_keeps_owner_group_mode(void **state)
{
	/* What the operations guide says to do (chown root:lars, chmod 0640)
	 * must survive the next add or del. */
	if (geteuid() != 0)
		skip(); /* chown to another owner needs root */
	char path[128];
	snprintf(path, sizeof(path), "%s/users", dir);
	gid_t g = daemon_gid();
	userfile_attrs_t a;
	save_one(path, USERFILE_GID_DEFAULT, &a);
	assert_true(a.created);
	assert_attrs(path, 0, getegid(), 0640); /* the directory's group: root's */
	assert_int_equal(chown(path, 0, g), 0);
	assert_int_equal(chmod(path, 0640), 0);
	save_one(path, USERFILE_GID_DEFAULT, &a);
	assert_false(a.created);
	assert_attrs(path, 0, g, 0640);
	/* Any owner and mode are kept, even a stricter one. */
	assert_int_equal(chown(path, 1, g), 0);
	assert_int_equal(chmod(path, 0600), 0);
	save_one(path, 0, &a); /* a group for a new file changes nothing here */
	assert_false(a.created);
	assert_attrs(path, 1, g, 0600);
	assert_int_equal(a.gid, g);
	unlink(path);

	/* New file: the group asked for. */
	save_one(path, g, &a);
	assert_true(a.created);
	assert_attrs(path, 0, g, 0640);
	unlink(path);
	/* New file in a directory of group daemon, not world-writable: its group. */
	assert_int_equal(chown(dir, 0, g), 0);
	save_one(path, USERFILE_GID_DEFAULT, &a);
	assert_attrs(path, 0, g, 0640);
	assert_int_equal(a.gid, g);
	unlink(path);
	/* ... world-writable (anyone could have made it): root's group. */
	assert_int_equal(chmod(dir, 01777), 0);
	save_one(path, USERFILE_GID_DEFAULT, &a);
	assert_attrs(path, 0, 0, 0640);
	/* No temporary file left behind. */
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s')\" = users", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_refusals(void **state)
{
	char path[128];
	const char *why = NULL;
	userfile_t uf = { 0 };
	snprintf(path, sizeof(path), "%s/open", dir);
	write_file(path, "alice:$y$x\n", 0644);
	assert_int_equal(userfile_load(path, true, &uf, &why), -EPERM);
	assert_non_null(strstr(why, "world-readable"));
	/* larsctl may read it to fix it. */
	assert_int_equal(userfile_load(path, false, &uf, &why), 0);
	userfile_free(&uf);

	snprintf(path, sizeof(path), "%s/bad", dir);
	const char *bad[] = { "alice\n", "alice:\n", ":hash\n", "bad name:hash\n",
			      "# ok\n\nalice:h\nbob\n", "alice:h:admin\n", "alice:h:\n",
			      "alice:h:read:x\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i], 0600);
		why = NULL;
		assert_int_equal(userfile_load(path, true, &uf, &why), -EINVAL);
		assert_non_null(why);
		assert_int_equal(uf.n, 0);
	}
	snprintf(path, sizeof(path), "%s/comments", dir);
	write_file(path, "# users\n\nalice:h1\r\n", 0640);
	assert_int_equal(userfile_load(path, true, &uf, &why), 0);
	assert_string_equal(userfile_find(&uf, "alice"), "h1");
	userfile_free(&uf);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(userfile_load(path, true, &uf, &why), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_hash_verify),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_keeps_owner_group_mode, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
