// SPDX-License-Identifier: MIT
// larsctl -o json|tsv: tables as JSON arrays of objects or as TSV (output.h).
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int larsctl_output(const args_t *a, const char *cmd, bool tsv_ok, out_fmt_t *fmtp)
{
	*fmtp = OUT_TEXT;
	if (!a->output || strcmp(a->output, "text") == 0)
		return 0;
	if (strcmp(a->output, "json") == 0) {
		*fmtp = OUT_JSON;
		return 0;
	}
	if (tsv_ok && strcmp(a->output, "tsv") == 0) {
		*fmtp = OUT_TSV;
		return 0;
	}
	return larsctl_usage_error(cmd, "-o takes text, json%s, not '%s'", tsv_ok ? " or tsv" : "",
				   a->output);
}

void out_begin(out_t *o, out_fmt_t fmt, const out_col_t *cols, int ncols)
{
	*o = (out_t){ .fmt = fmt, .cols = cols, .ncols = ncols };
	if (fmt == OUT_JSON) {
		fputc('[', stdout);
		return;
	}
	for (int i = 0; i < ncols; i++)
		printf("%s%s", i ? "\t" : "", cols[i].name);
	fputc('\n', stdout);
}

static bool truthy(const char *s)
{
	return strcmp(s, "t") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 ||
	       strcmp(s, "1") == 0;
}

/* A TSV field: tab, newline, carriage return and backslash escaped as
 * PostgreSQL's COPY text format does, so every row stays one line. */
static void tsv_field(const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\t': fputs("\\t", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		default: fputc(*s, stdout);
		}
	}
}

void out_row(out_t *o, const char *const *vals)
{
	if (o->fmt == OUT_TSV) {
		for (int i = 0; i < o->ncols; i++) {
			if (i)
				fputc('\t', stdout);
			if (vals[i] && o->cols[i].kind == 'b')
				fputs(truthy(vals[i]) ? "true" : "false", stdout);
			else if (vals[i])
				tsv_field(vals[i]);
		}
		fputc('\n', stdout);
		o->rows++;
		return;
	}
	jbuf_t b = { 0 };
	jbuf_printf(&b, "%s{", o->rows ? "," : "");
	for (int i = 0; i < o->ncols; i++) {
		jbuf_printf(&b, "%s", i ? "," : "");
		jbuf_str(&b, o->cols[i].name);
		jbuf_printf(&b, ":");
		const char *v = vals[i];
		if (!v)
			jbuf_printf(&b, "null");
		else if (o->cols[i].kind == 'b')
			jbuf_printf(&b, "%s", truthy(v) ? "true" : "false");
		else if (o->cols[i].kind == 'n' && *v)
			jbuf_printf(&b, "%s", v);
		else if (o->cols[i].kind == 'n')
			jbuf_printf(&b, "null");
		else
			jbuf_str(&b, v);
	}
	jbuf_printf(&b, "}");
	char *text = jbuf_take(&b, NULL);
	if (text)
		fputs(text, stdout);
	else
		fputs("{}", stdout); /* out of memory: still a valid document */
	free(text);
	o->rows++;
}

void out_row_pg(out_t *o, const PGresult *res, int row)
{
	const char *vals[32];
	int n = o->ncols < 32 ? o->ncols : 32;
	for (int i = 0; i < n; i++)
		vals[i] = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
	out_row(o, vals);
}

void out_end(out_t *o)
{
	if (o->fmt == OUT_JSON)
		fputs(o->nested ? "]" : "]\n", stdout);
}

void out_pgresult(out_fmt_t fmt, const out_col_t *cols, int ncols, const PGresult *res)
{
	out_t o;
	out_begin(&o, fmt, cols, ncols);
	for (int i = 0; i < PQntuples(res); i++)
		out_row_pg(&o, res, i);
	out_end(&o);
}
