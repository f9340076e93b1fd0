/* SPDX-License-Identifier: MIT */
/* Overview: a page of routes with their health counts (the server pages,
 * sorts and searches; unhealthy routes first by default), the host finder
 * for an address search, and the add-host form. The page's state is in its
 * URL (q, unhealthy, sort, order, offset, size), so a view can be shared. */
'use strict';

(function overview() {
	const tbody = document.querySelector('#routes tbody');
	const search = document.getElementById('routes-search');
	const summary = document.getElementById('routes-summary');
	const prev = document.getElementById('routes-prev');
	const next = document.getElementById('routes-next');
	const pageText = document.getElementById('routes-page');
	const finder = document.getElementById('host-finder');
	const form = document.getElementById('add-form');
	const result = document.getElementById('add-result');
	const SORTS = ['health', 'route', 'hosts', 'failing', 'overloaded', 'changed', 'description'];
	/* The server's direction when none is asked for. */
	const DESC_FIRST = { health: true, route: false, hosts: true, failing: true, overloaded: true, changed: true, description: false };
	const IP_RE = /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/;

	const params = new URLSearchParams(location.search);
	const state = {
		q: params.get('q') || '',
		unhealthy: params.get('unhealthy') === '1',
		sort: SORTS.includes(params.get('sort')) ? params.get('sort') : 'health',
		order: params.get('order') === 'asc' || params.get('order') === 'desc' ? params.get('order') : '',
		offset: Math.max(0, queryInt('offset') || 0),
		size: [25, 100, 500].includes(queryInt('size')) ? queryInt('size') : 100,
	};
	search.elements.q.value = state.q;
	search.elements.unhealthy.checked = state.unhealthy;
	search.elements.size.value = String(state.size);

	function desc() { return state.order ? state.order === 'desc' : DESC_FIRST[state.sort]; }

	function countTd(n, kind) {
		const td = el('td', { class: 'num' });
		td.append(n > 0 ? badge(String(n), kind) : String(n ?? 0));
		return td;
	}

	function row(r) {
		const href = routeHref(r.modid, r.cmdid);
		const st = r.failing > 0 ? 'failing' : r.overloaded > 0 ? 'overloaded' : null;
		return el('tr', { class: st },
			el('td', { class: 'num' }, el('a', { href }, String(r.modid))),
			el('td', { class: 'num' }, el('a', { href }, String(r.cmdid))),
			el('td', {}, r.mod_description || ''),
			el('td', {}, el('a', { href }, r.description || 'route ' + r.modid + '/' + r.cmdid)),
			numTd(r.hosts),
			countTd(r.overloaded, 'overloaded'),
			countTd(r.failing, 'failing'),
			el('td', { class: 'num' + (r.reporting < r.hosts ? ' short' : ''),
				title: (r.reporting ?? 0) + ' of ' + (r.hosts ?? 0) + ' hosts reporting' }, String(r.reporting ?? 0)),
			numTd(r.version),
			el('td', {}, timeEl(r.changed_at, 'never')));
	}

	/* Sortable headers: a button in each, aria-sort on the sorted one. */
	function renderHeaders() {
		for (const th of document.querySelectorAll('#routes th[data-sort]')) {
			const key = th.dataset.sort;
			const on = state.sort === key || (key === 'failing' && state.sort === 'health');
			if (!th.querySelector('button')) {
				const label = th.textContent;
				th.replaceChildren(el('button', { type: 'button', class: 'sort',
					onclick: () => {
						if (state.sort === key) state.order = desc() ? 'asc' : 'desc';
						else { state.sort = key; state.order = ''; }
						state.offset = 0;
						refresh();
					} }, label, el('span', { class: 'arrow', 'aria-hidden': 'true' })));
			}
			th.setAttribute('aria-sort', on ? (desc() ? 'descending' : 'ascending') : 'none');
			th.querySelector('.arrow').textContent = on ? (desc() ? ' ▼' : ' ▲') : '';
		}
	}

	function stateText(s) {
		if (!s) return badge('no report', 'none');
		if (s.failing) return badge('failing', 'failing');
		if (s.overload) return badge('overloaded', 'overloaded');
		return badge('ok', 'ok');
	}

	/* An address search: every route that holds it, with its state in each. */
	async function loadFinder() {
		if (!IP_RE.test(state.q)) { finder.hidden = true; return null; }
		const res = await fetchJSON('api/host?ip=' + encodeURIComponent(state.q));
		if (!isOk(res)) { finder.hidden = true; return res.status === 400 ? null : res; }
		const hosts = Array.isArray(res.body.hosts) ? res.body.hosts : [];
		const routes = new Set(hosts.map((h) => h.modid + '/' + h.cmdid));
		document.getElementById('host-finder-title').textContent =
			state.q + ': ' + hosts.length + (hosts.length === 1 ? ' host' : ' hosts') + ' in ' +
			routes.size + (routes.size === 1 ? ' route' : ' routes');
		const body = document.querySelector('#host-routes tbody');
		if (!hosts.length) emptyRow(body, 9, 'no route holds this address');
		else body.replaceChildren(...hosts.map((h) => el('tr', { class: h.status && h.status.failing ? 'failing' : h.status && h.status.overload ? 'overloaded' : null },
			el('td', { class: 'num' }, el('a', { href: routeHref(h.modid, h.cmdid) }, String(h.modid))),
			el('td', { class: 'num' }, el('a', { href: routeHref(h.modid, h.cmdid) }, String(h.cmdid))),
			el('td', { class: 'mono' }, hostStr(h.ip, h.port), h.drain ? ' ' : null, h.drain ? badge('drained', 'none') : null),
			el('td', {}, stateText(h.status)),
			numTd(h.status ? h.status.succ : null), numTd(h.status ? h.status.err : null),
			numTd(h.status ? h.status.err_pct.toFixed(1) : null), numTd(h.status ? h.status.callers : null),
			el('td', {}, h.status ? fmtAge(h.status.age_s) : 'no report'))));
		finder.hidden = false;
		return null;
	}

	function syncUrl() {
		const q = new URLSearchParams();
		if (state.q) q.set('q', state.q);
		if (state.unhealthy) q.set('unhealthy', '1');
		if (state.sort !== 'health') q.set('sort', state.sort);
		if (state.order) q.set('order', state.order);
		if (state.offset) q.set('offset', String(state.offset));
		if (state.size !== 100) q.set('size', String(state.size));
		history.replaceState(null, '', q.toString() ? '?' + q : location.pathname);
	}

	async function load() {
		syncUrl();
		renderHeaders();
		const q = new URLSearchParams({ limit: String(state.size), offset: String(state.offset),
			sort: state.sort, order: desc() ? 'desc' : 'asc' });
		if (state.q) q.set('q', state.q);
		if (state.unhealthy) q.set('unhealthy', '1');
		const res = await fetchJSON('api/overview?' + q);
		if (!isOk(res)) {
			if (res.status !== 400) return res;
			clearErrors(search, null);
			showFormError(search, document.getElementById('routes-result'), res, false);
			emptyRow(tbody, 10, 'fix the search');
			return null;
		}
		clearErrors(search, document.getElementById('routes-result'));
		const b = res.body;
		document.getElementById('global-version').textContent = String(b.version ?? '?');
		document.getElementById('global-changed').replaceChildren(timeEl(b.changed_at, 'never'));
		const routes = Array.isArray(b.routes) ? b.routes : [];
		if (!routes.length)
			emptyRow(tbody, 10, state.offset ? 'no more routes' : state.q || state.unhealthy ? 'no route matches' : 'no routes yet: add a host above');
		else
			tbody.replaceChildren(...routes.map(row));
		const first = routes.length ? state.offset + 1 : 0, last = state.offset + routes.length;
		const of = typeof b.total === 'number' ? ' of ' + b.total.toLocaleString('en') : '';
		pageText.textContent = routes.length ? `routes ${first.toLocaleString('en')}–${last.toLocaleString('en')}${of}` : '';
		summary.textContent = (b.unhealthy ? b.unhealthy.toLocaleString('en') + (b.unhealthy === 1 ? ' route has' : ' routes have') + ' failing or overloaded hosts' : 'no route has failing or overloaded hosts') +
			(state.q || state.unhealthy ? ' (of those matching)' : '') + '.';
		prev.disabled = state.offset === 0;
		next.disabled = !b.more;
		const fres = await loadFinder();
		return fres || res;
	}

	const refresh = poll(load, 10000);
	search.addEventListener('submit', (ev) => {
		ev.preventDefault();
		state.q = search.elements.q.value.trim();
		state.unhealthy = search.elements.unhealthy.checked;
		state.size = Number(search.elements.size.value) || 100;
		state.offset = 0;
		refresh();
	});
	search.elements.unhealthy.addEventListener('change', () => search.requestSubmit());
	search.elements.size.addEventListener('change', () => search.requestSubmit());
	prev.addEventListener('click', () => { state.offset = Math.max(0, state.offset - state.size); refresh(); });
	next.addEventListener('click', () => { state.offset += state.size; refresh(); });
	jsonForm(form, result, 'api/routes/add', () => ({
		modid: intOrRaw(form.elements.modid.value),
		cmdid: intOrRaw(form.elements.cmdid.value),
		ip: form.elements.ip.value.trim(),
		port: intOrRaw(form.elements.port.value),
	}), () => {
		form.elements.ip.value = '';
		form.elements.port.value = '';
		refresh();
	});
})();
