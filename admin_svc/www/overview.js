/* SPDX-License-Identifier: MIT */
/* Overview: every route with its health counts, and the add-host form. */
'use strict';

(function overview() {
	const tbody = document.querySelector('#routes tbody');
	const filter = document.getElementById('routes-filter');
	const form = document.getElementById('add-form');
	const result = document.getElementById('add-result');
	let routes = null;

	function countTd(n, kind) {
		const td = el('td', { class: 'num' });
		td.append(n > 0 ? badge(String(n), kind) : String(n ?? 0));
		return td;
	}

	function row(r) {
		const href = routeHref(r.modid, r.cmdid);
		const state = r.failing > 0 ? 'failing' : r.overloaded > 0 ? 'overloaded' : null;
		return el('tr', { class: state },
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

	function render() {
		if (!routes) return;
		const q = filter.value.trim().toLowerCase();
		const shown = routes.filter((r) => !q || [r.modid + '/' + r.cmdid, r.modid, r.cmdid,
			r.mod_description, r.description].join(' ').toLowerCase().includes(q));
		if (shown.length === 0)
			emptyRow(tbody, 10, routes.length ? 'no route matches the filter' : 'no routes yet: add a host below');
		else
			tbody.replaceChildren(...shown.map(row));
	}

	async function load() {
		const res = await fetchJSON('api/overview');
		if (!isOk(res)) return res;
		document.getElementById('global-version').textContent = String(res.body.version ?? '?');
		document.getElementById('global-changed').replaceChildren(timeEl(res.body.changed_at, 'never'));
		routes = Array.isArray(res.body.routes) ? res.body.routes : [];
		/* not in the README: the server stops at its limit and says so */
		document.getElementById('routes-note').hidden = !res.body.truncated;
		render();
		return res;
	}

	const refresh = poll(load, 10000);
	filter.addEventListener('input', render);
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
