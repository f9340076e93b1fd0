/* SPDX-License-Identifier: MIT */
/* Change log, newest first (or oldest first, or by route), optionally for
 * one module or route and a search (a route, an address or network, text in
 * the actor or the detail); "Older" pages on with offset (before=<last id
 * shown> when newest first). 'set' rows are a host's weight or
 * drain, 'policy' rows a route's policy (no host); detail says what. */
'use strict';

(function changes() {
	const LIMIT = 100;
	const form = document.getElementById('changes-filter');
	const result = document.getElementById('changes-result');
	const tbody = document.querySelector('#changes tbody');
	const older = document.getElementById('changes-older');
	const end = document.getElementById('changes-end');
	const params = new URLSearchParams(location.search);
	form.elements.modid.value = params.get('modid') || '';
	form.elements.cmdid.value = params.get('cmdid') || '';
	form.elements.q.value = params.get('q') || '';
	if (params.get('sort')) form.elements.sort.value = params.get('sort');
	if (!form.elements.sort.value) form.elements.sort.value = 'time:desc';
	let filter = { modid: '', cmdid: '', q: '', sort: 'time:desc' };
	let lastId = null, shown = 0;

	function row(c) {
		/* A modid's description (cmdid -1) has no route; a description
		 * edit no route version (0). */
		const modOnly = c.cmdid < 0;
		const route = modOnly ? el('span', {}, c.modid + '/*')
			: el('a', { href: routeHref(c.modid, c.cmdid) }, c.modid + '/' + c.cmdid);
		return el('tr', {},
			numTd(c.id), c.version ? numTd(c.version) : el('td', { class: 'num' }, '–'),
			el('td', { class: 'nowrap' }, fmtAbs(c.changed_at) || '–'),
			el('td', {}, route),
			el('td', {}, badge(c.action, c.action === 'add' ? 'add' : c.action === 'del' ? 'del' : 'none')),
			el('td', { class: 'mono' }, c.ip ? hostStr(c.ip, c.port) : '–'),
			el('td', {}, c.detail || ''),
			el('td', {}, c.actor || '–'),
			el('td', {}, c.version ? propagation(c) : '–'));
	}

	/* A bulk change (one route version: an import, a decommission, one
	 * statement of many rows) as one entry: its hosts in a list to open.
	 * Only in time order, where its records are next to each other (one
	 * page's; a version that goes on past the page continues as one more
	 * entry after "Older"). */
	function groupRow(list) {
		const first = list[0], last = list[list.length - 1];
		const routes = [...new Set(list.map((c) => c.modid + '/' + c.cmdid))];
		const count = (xs) => [...xs.reduce((m, x) => m.set(x, (m.get(x) || 0) + 1), new Map())];
		const actions = count(list.map((c) => c.action));
		const actors = [...new Set(list.map((c) => c.actor || '–'))];
		const details = [...new Set(list.map((c) => c.detail).filter((d) => d))];
		const hosts = el('ul', { class: 'group-hosts' }, list.map((c) => el('li', { class: 'mono' },
			c.action + ' ', routes.length > 1 ? c.modid + '/' + c.cmdid + ' ' : '', c.ip ? hostStr(c.ip, c.port) : '–')));
		const withProp = list.find((c) => typeof c.pushed === 'number') || first;
		return el('tr', { class: 'group', 'data-version': first.version },
			el('td', { class: 'num nowrap' }, `${last.id}–${first.id}`.replace(/^(\d+)–\1$/, '$1')),
			numTd(first.version),
			el('td', { class: 'nowrap' }, fmtAbs(first.changed_at) || '–'),
			el('td', {}, routes.length === 1 ? el('a', { href: routeHref(first.modid, first.cmdid) }, routes[0])
				: routes.length + ' routes'),
			el('td', { class: 'nowrap' }, actions.map(([a, n]) => badge(`${a} ×${n}`, a === 'add' ? 'add' : a === 'del' ? 'del' : 'none'))),
			el('td', {}, el('details', {}, el('summary', {}, `${list.length} changes`), hosts)),
			el('td', {}, details.join('; ')),
			el('td', {}, actors.join(', ')),
			el('td', {}, propagation(withProp)));
	}

	/* The rows of a page: runs of one route version (2 or more) as one entry. */
	function rows(list, grouped) {
		if (!grouped) return list.map(row);
		const out = [];
		for (let i = 0; i < list.length;) {
			let j = i + 1;
			while (list[i].version && j < list.length && list[j].version === list[i].version) j++;
			out.push(j - i > 1 ? groupRow(list.slice(i, j)) : row(list[i]));
			i = j;
		}
		return out;
	}

	/* "applied by 998 of 1,000 agents, slowest 12 ms" (lars-dns measured it). */
	function propagation(c) {
		if (typeof c.pushed !== 'number') return '–';
		const parts = [];
		if (c.pushed) parts.push(`applied by ${c.acked.toLocaleString('en')} of ${c.pushed.toLocaleString('en')} agents, slowest ${c.slowest_ms} ms`);
		if (c.no_ack) parts.push(`${c.no_ack.toLocaleString('en')} original (no acknowledgement)`);
		return parts.join('; ') || 'no subscribed agents';
	}

	/* append: the next page after lastId, else from the newest. */
	async function load(append) {
		const q = new URLSearchParams();
		if (filter.modid) q.set('modid', filter.modid);
		if (filter.cmdid) q.set('cmdid', filter.cmdid);
		if (filter.q) q.set('q', filter.q);
		const [sort, order] = filter.sort.split(':');
		q.set('sort', sort);
		q.set('order', order);
		q.set('limit', String(LIMIT));
		if (append && filter.sort === 'time:desc' && lastId !== null) q.set('before', String(lastId));
		else if (append) q.set('offset', String(shown));
		older.disabled = true;
		const res = await fetchJSON('api/changes?' + q);
		older.disabled = false;
		if (!isOk(res)) {
			if (res.status !== 400) return res;
			showFormError(form, result, res, false);
			return null;
		}
		const list = Array.isArray(res.body.changes) ? res.body.changes : [];
		if (!append) { tbody.replaceChildren(); shown = 0; }
		tbody.append(...rows(list, filter.sort.startsWith('time:')));
		shown += list.length;
		if (!tbody.rows.length) emptyRow(tbody, 9, 'no changes');
		if (list.length) lastId = list[list.length - 1].id;
		older.hidden = !res.body.more;
		end.hidden = !older.hidden || !tbody.querySelector('tr:not(.empty)');
		return res;
	}

	function applyFilter() {
		clearErrors(form, result);
		const modid = form.elements.modid.value.trim(), cmdid = form.elements.cmdid.value.trim();
		filter = { modid, cmdid, q: form.elements.q.value.trim(), sort: form.elements.sort.value || 'time:desc' };
		lastId = null;
		const q = new URLSearchParams();
		if (modid) q.set('modid', modid);
		if (cmdid) q.set('cmdid', cmdid);
		if (filter.q) q.set('q', filter.q);
		if (filter.sort !== 'time:desc') q.set('sort', filter.sort);
		history.replaceState(null, '', q.toString() ? '?' + q : location.pathname);
	}

	const refresh = poll(() => { applyFilter(); return load(false); }, 0);
	form.addEventListener('submit', (ev) => { ev.preventDefault(); refresh(); });
	document.getElementById('chg-clear').addEventListener('click', () => {
		form.elements.modid.value = '';
		form.elements.cmdid.value = '';
		form.elements.q.value = '';
		refresh();
	});
	older.addEventListener('click', async () => {
		const res = await load(true);
		if (res && !isOk(res)) showBanner(res); else hideBanner();
	});
})();
