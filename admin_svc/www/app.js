/* SPDX-License-Identifier: MIT */
/* Lars console: helpers shared by every page. Plain script (no modules, no
 * build step); the page scripts load after it (both deferred) and use these
 * globals. Data only ever reaches the DOM as text (textContent, attributes). */
'use strict';

const RETRY_MS = 5000;

/* One API request; always resolves to {status, body}: status 0 when the
 * server could not be reached, body null when the answer was empty. */
async function request(url, opts) {
	let resp;
	try {
		resp = await fetch(url, Object.assign({ credentials: 'same-origin' }, opts));
	} catch (e) {
		return { status: 0, body: { error: 'server unreachable' } };
	}
	let body = null;
	const text = await resp.text().catch(() => '');
	if (text) {
		try { body = JSON.parse(text); } catch (e) { body = { error: text.slice(0, 200) }; }
	}
	return { status: resp.status, body };
}

function fetchJSON(url) {
	return request(url, { method: 'GET', cache: 'no-store', headers: { Accept: 'application/json' } });
}

function postJSON(url, body) {
	return request(url, {
		method: 'POST',
		headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
		body: JSON.stringify(body),
	});
}

function isOk(res) { return res.status >= 200 && res.status < 300 && res.body !== null; }

/* What to tell the operator about a failed request; write: nothing retries. */
function errorText(res, write) {
	const why = res.body && typeof res.body.error === 'string' ? res.body.error : '';
	switch (res.status) {
	case 0: return 'server unreachable' + (write ? ', nothing was sent' : ', retrying');
	case 401: return 'not logged in or the session ended: reload the page to log in';
	case 403: return 'forbidden' + (why ? ': ' + why : '');
	case 503: return write ? 'database unavailable, nothing was changed' : 'database unavailable, retrying';
	default: return why || 'HTTP ' + res.status;
	}
}

/* ---- DOM building ---- */

/* el('a', {href, class, text...}, children...): attributes via setAttribute,
 * 'class' as className, on* as listeners; children are nodes or text. */
function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false) continue;
		if (k === 'class') e.className = v;
		else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
		else e.setAttribute(k, v === true ? '' : String(v));
	}
	for (const c of children.flat()) {
		if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
	}
	return e;
}

function badge(text, kind) { return el('span', { class: 'badge ' + kind }, text); }

function numTd(v) { return el('td', { class: 'num' }, v === null || v === undefined ? '–' : String(v)); }

function emptyRow(tbody, cols, text) {
	tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: cols }, text)));
}

function hostStr(ip, port) { return String(ip).replace(/\/32$/, '') + ':' + port; }

function routeHref(modid, cmdid) {
	return 'route.html?modid=' + encodeURIComponent(modid) + '&cmdid=' + encodeURIComponent(cmdid);
}

/* A non-negative integer query argument of this page, or null. */
function queryInt(name) {
	const v = new URLSearchParams(location.search).get(name);
	return v !== null && /^\d{1,9}$/.test(v) ? Number(v) : null;
}

/* An input's value as a JSON number when it is an integer, else the raw
 * (trimmed) string so that the server's validation message comes back. */
function intOrRaw(s) {
	const t = String(s).trim();
	return /^-?\d{1,15}$/.test(t) ? Number(t) : t;
}

/* ---- time ---- */

function parseTime(iso) {
	if (!iso) return null;
	const d = new Date(iso);
	return isNaN(d.getTime()) ? null : d;
}

function fmtAbs(iso) {
	const d = parseTime(iso);
	return d ? d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '';
}

function fmtAge(s) {
	if (s === null || s === undefined || !isFinite(s)) return '';
	s = Math.max(0, Math.round(s));
	if (s < 120) return s + ' s ago';
	if (s < 7200) return Math.round(s / 60) + ' min ago';
	if (s < 172800) return Math.round(s / 3600) + ' h ago';
	return Math.round(s / 86400) + ' d ago';
}

/* Relative time as text, the absolute time in the title. */
function timeEl(iso, never) {
	const d = parseTime(iso);
	if (!d) return el('span', { class: 'muted' }, never || 'never');
	return el('time', { datetime: iso, title: fmtAbs(iso) }, fmtAge((Date.now() - d.getTime()) / 1000));
}

/* ---- page state: banner, polling ---- */

function showBanner(res) {
	const b = document.getElementById('banner');
	if (!b) return;
	b.textContent = errorText(res, false);
	b.classList.toggle('warn', res.status === 503 || res.status === 0);
	b.hidden = false;
}

function hideBanner() {
	const b = document.getElementById('banner');
	if (b) b.hidden = true;
}

/* Runs fn now and then every everyMs (0: only retries); fn resolves to the
 * failed {status, body} to report, or to anything else when all went well
 * (or the page handled the failure itself). 503 and unreachable retry after
 * RETRY_MS; 401 stops until the page is reloaded. Returns "refresh now". */
function poll(fn, everyMs) {
	let timer = null, busy = false, again = false;
	async function run() {
		if (busy) { again = true; return; }
		clearTimeout(timer);
		busy = true;
		let res = null;
		try {
			res = await fn();
		} catch (e) {
			console.error(e);
			res = { status: -1, body: { error: 'page error: ' + e.message } };
		}
		busy = false;
		const failed = res && typeof res.status === 'number' && !isOk(res);
		if (failed) showBanner(res); else hideBanner();
		if (again) { again = false; run(); return; }
		if (failed && res.status === 401) {
			/* The session ended: the page itself now answers with the login form. */
			if (document.body.dataset.via === 'session') location.reload();
			return;
		}
		const wait = failed && (res.status === 503 || res.status === 0) ? RETRY_MS : everyMs;
		if (wait) timer = setTimeout(run, wait);
	}
	run();
	return run;
}

/* ---- forms ---- */

function showResult(result, text, ok) {
	result.textContent = text;
	result.className = 'result ' + (ok ? 'ok' : 'error');
}

function clearErrors(form, result) {
	form.querySelectorAll('.field-error').forEach((e) => e.remove());
	form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
	if (result) { result.textContent = ''; result.className = 'result'; }
}

/* A failed answer: next to the input named by its "field" when the form has
 * one, else in the result line. */
function showFormError(form, result, res, write) {
	const text = errorText(res, write);
	const field = res.status === 400 && res.body && typeof res.body.field === 'string' ? res.body.field : '';
	const input = field ? form.elements.namedItem(field) : null;
	if (input instanceof HTMLElement) {
		input.setAttribute('aria-invalid', 'true');
		input.after(el('span', { class: 'field-error', 'data-field': field, role: 'alert' }, text));
		input.focus();
	} else {
		showResult(result, text, false);
	}
}

function writeMessage(body) {
	let text = body.message || body.result || 'done';
	if (body.version !== undefined && body.version !== null && !String(text).includes(String(body.version)))
		text += ' (route version ' + body.version + ')';
	return text;
}

/* Submit handler posting makeBody() as JSON to url; onOk(body) on success. */
function jsonForm(form, result, url, makeBody, onOk) {
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		clearErrors(form, result);
		const button = form.querySelector('button[type=submit]');
		if (button) button.disabled = true;
		const res = await postJSON(url, makeBody());
		if (button) button.disabled = false;
		if (isOk(res)) {
			showResult(result, writeMessage(res.body), true);
			if (onOk) onOk(res.body);
		} else {
			showFormError(form, result, res, true);
		}
	});
}

/* ---- navigation, and who is signed in ---- */

/* The signed-in user on every page, and the role on <body data-role>: the
 * write controls (class write-only) are shown only to a write user. */
async function renderUser(host) {
	const res = await fetchJSON('api/whoami');
	if (!isOk(res)) return;
	const who = res.body;
	document.body.dataset.role = who.role === 'read' ? 'read' : 'write';
	document.body.dataset.via = who.via || 'none';
	if (!who.user) return;
	const box = el('span', { class: 'who', id: 'who' },
		el('span', { class: 'who-name', title: who.via === 'session' && who.expires_at ? 'session until ' + fmtAbs(who.expires_at) + ' if unused' : 'HTTP Basic' },
			who.user), ' ', badge(who.role, who.role === 'read' ? 'none' : 'ok'));
	if (who.via === 'session') {
		box.append(' ', el('button', { type: 'button', id: 'logout', class: 'logout', onclick: async () => {
			await postJSON('api/logout', {});
			location.href = 'login.html';
		} }, 'Log out'));
	}
	host.append(box);
}



(function renderNav() {
	const host = document.getElementById('nav');
	if (!host) return;
	const current = document.body.dataset.nav;
	const nav = el('nav', { 'aria-label': 'main' });
	for (const [href, label, key] of [['index.html', 'Overview', 'overview'],
		['changes.html', 'Change log', 'changes'], ['agents.html', 'Agents', 'agents'],
		['descriptions.html', 'Descriptions', 'descriptions']]) {
		nav.append(el('a', { href, class: key === current ? 'active' : null,
			'aria-current': key === current ? 'page' : null }, label));
	}
	host.replaceChildren(el('a', { href: 'index.html', class: 'brand' }, 'Lars console'), nav);
	renderUser(host);
})();
