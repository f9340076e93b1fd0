/* SPDX-License-Identifier: MIT */
/* One route: its hosts with their latest reports, add/remove, and a chart of
 * the last hour's successes and errors. Refreshes every 10 s. */
'use strict';

(function route() {
	const modid = queryInt('modid'), cmdid = queryInt('cmdid');
	const tbody = document.querySelector('#hosts tbody');
	const hostsResult = document.getElementById('hosts-result');
	const form = document.getElementById('route-add-form');
	const addResult = document.getElementById('route-add-result');
	const SVGNS = 'http://www.w3.org/2000/svg';

	if (modid === null || cmdid === null) {
		showBanner({ status: 400, body: { error: 'this page needs ?modid=M&cmdid=C (non-negative integers)' } });
		emptyRow(tbody, 10, 'no route selected');
		form.querySelectorAll('input, button').forEach((e) => { e.disabled = true; });
		document.getElementById('history-chart').replaceChildren();
		return;
	}
	const name = modid + '/' + cmdid;
	document.title = 'Route ' + name + ' · Lars console';
	document.getElementById('route-title').textContent = 'Route ' + name;

	function renderHead(r) {
		const desc = document.getElementById('route-desc');
		const parts = [];
		if (r.mod_description) parts.push(el('span', { class: 'mod' }, r.mod_description));
		if (r.description) parts.push(el('span', {}, r.description));
		desc.replaceChildren(...(parts.length ? parts.flatMap((p, i) => (i ? [' › ', p] : [p]))
			: [el('span', { class: 'muted' }, 'no description')]),
			' ', el('a', { href: 'descriptions.html', class: 'small' }, 'edit'));
		document.getElementById('route-meta').replaceChildren(
			'Last changed at route version ', String(r.version ?? '–'), ', ', timeEl(r.changed_at, 'never'),
			' · ', el('a', { href: 'changes.html?modid=' + modid + '&cmdid=' + cmdid }, 'change log'));
	}

	function hostRow(h) {
		const key = hostStr(h.ip, h.port);
		const s = h.status;
		const state = el('td', {});
		if (!s) state.append(badge('no report', 'none'));
		else {
			if (s.failing) state.append(badge('failing', 'failing'));
			if (s.overload) state.append(badge('overloaded', 'overloaded'));
			if (!s.failing && !s.overload) state.append(badge('ok', 'ok'));
		}
		const pct = s && typeof s.err_pct === 'number' ? s.err_pct.toFixed(1) : null;
		return el('tr', { 'data-host': key, class: s && s.failing ? 'failing' : s && s.overload ? 'overloaded' : null },
			el('td', { class: 'mono' }, key),
			el('td', {}, timeEl(h.added_at, '–')),
			numTd(s && s.succ), numTd(s && s.err), numTd(pct),
			el('td', {}, s ? (s.overload ? 'yes' : 'no') : '–'),
			numTd(s && s.callers),
			el('td', { title: s ? fmtAbs(s.updated_at) : null, class: s ? 'nowrap' : 'nowrap muted' },
				s ? fmtAge(s.age_s) : 'no report yet'),
			state,
			el('td', {}, el('button', { type: 'button', class: 'remove-host', 'data-host': key }, 'Remove')));
	}

	function svg(tag, attrs, text) {
		const e = document.createElementNS(SVGNS, tag);
		for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
		if (text !== undefined) e.textContent = text;
		return e;
	}

	function niceMax(v) {
		const p = Math.pow(10, Math.floor(Math.log10(v)));
		return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
	}

	function hhmm(iso) {
		const d = parseTime(iso);
		return d ? d.toISOString().slice(11, 16) : '';
	}

	function drawChart(minutes) {
		const box = document.getElementById('history-chart');
		const n = minutes.length;
		if (n === 0) { box.replaceChildren(el('p', { class: 'muted' }, 'no history')); return; }
		const W = 760, H = 220, L = 52, R = 12, T = 30, B = 26;
		let tSucc = 0, tErr = 0, top = 0;
		for (const m of minutes) {
			tSucc += m.succ || 0; tErr += m.err || 0;
			top = Math.max(top, m.succ || 0, m.err || 0);
		}
		const max = niceMax(Math.max(top, 1));
		const x = (i) => L + (n > 1 ? (i * (W - L - R)) / (n - 1) : (W - L - R) / 2);
		const y = (v) => T + (H - T - B) * (1 - v / max);
		const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img',
			'aria-label': `successes and errors per minute for route ${name}` });
		for (const v of [0, max / 2, max]) {
			g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#ddd' }),
				svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#555' },
					String(Math.round(v * 10) / 10)));
		}
		for (let i = n - 1; i >= 0; i -= 15) {
			g.append(svg('line', { x1: x(i), x2: x(i), y1: H - B, y2: H - B + 4, stroke: '#888' }),
				svg('text', { x: x(i), y: H - 6, 'text-anchor': i === n - 1 ? 'end' : 'middle', 'font-size': 11, fill: '#555' },
					hhmm(minutes[i].minute)));
		}
		g.append(svg('text', { x: L - 6, y: H - 6, 'text-anchor': 'end', 'font-size': 10, fill: '#888' }, 'UTC'),
			svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: '#888' }));
		for (const [key, color] of [['succ', '#2e7d32'], ['err', '#c62828']]) {
			const pts = minutes.map((m, i) => `${x(i).toFixed(1)},${y(m[key] || 0).toFixed(1)}`).join(' ');
			g.append(svg('polyline', { points: pts, fill: 'none', stroke: color, 'stroke-width': 2,
				'stroke-linejoin': 'round' }));
		}
		const legend = [['#2e7d32', `successes (${tSucc} in ${n} min)`], ['#c62828', `errors (${tErr})`]];
		let lx = L;
		for (const [color, label] of legend) {
			g.append(svg('rect', { x: lx, y: 8, width: 12, height: 12, fill: color }),
				svg('text', { x: lx + 16, y: 18, 'font-size': 12, fill: '#222' }, label));
			lx += 18 + label.length * 7;
		}
		const step = n > 1 ? (W - L - R) / (n - 1) : W - L - R;
		minutes.forEach((m, i) => {
			const hit = svg('rect', { x: x(i) - step / 2, y: T, width: step, height: H - T - B, fill: 'transparent' });
			hit.append(svg('title', {}, `${hhmm(m.minute)} UTC: ${m.succ || 0} succ, ${m.err || 0} err`));
			g.append(hit);
		});
		box.replaceChildren(g);
	}

	async function load() {
		const q = `modid=${modid}&cmdid=${cmdid}`;
		const [r, hist] = await Promise.all([fetchJSON('api/route?' + q), fetchJSON('api/history?' + q + '&minutes=60')]);
		if (isOk(r)) {
			renderHead(r.body);
			const hosts = Array.isArray(r.body.hosts) ? r.body.hosts : [];
			if (hosts.length) tbody.replaceChildren(...hosts.map(hostRow));
			else emptyRow(tbody, 10, 'no hosts in this route');
		} else if (r.status === 404) {
			/* no such route (yet): still show the chart and the add form */
			emptyRow(tbody, 10, errorText(r, false));
		}
		if (isOk(hist)) drawChart(Array.isArray(hist.body.minutes) ? hist.body.minutes : []);
		return !isOk(r) && r.status !== 404 ? r : !isOk(hist) ? hist : null;
	}

	const refresh = poll(load, 10000);

	tbody.addEventListener('click', async (ev) => {
		const button = ev.target.closest('button.remove-host');
		if (!button) return;
		const key = button.dataset.host;
		if (!confirm(`Remove ${key} from route ${name}?`)) return;
		const at = key.lastIndexOf(':');
		button.disabled = true;
		const res = await postJSON('api/routes/del',
			{ modid, cmdid, ip: key.slice(0, at), port: Number(key.slice(at + 1)) });
		button.disabled = false;
		if (isOk(res)) showResult(hostsResult, writeMessage(res.body), true);
		else showResult(hostsResult, errorText(res, true), false);
		refresh();
	});

	jsonForm(form, addResult, 'api/routes/add', () => ({
		modid, cmdid,
		ip: form.elements.ip.value.trim(),
		port: intOrRaw(form.elements.port.value),
	}), () => {
		form.elements.ip.value = '';
		form.elements.port.value = '';
		refresh();
	});
})();
