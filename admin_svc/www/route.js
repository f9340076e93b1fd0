/* SPDX-License-Identifier: MIT */
/* One route: its hosts with their latest reports, add/remove, weight and
 * drain per host, the route's balancing policy, and charts of the last
 * hour's successes and errors and of its call latency (mean and p99 per
 * minute). Refreshes every 10 s. */
'use strict';

(function route() {
	const modid = queryInt('modid'), cmdid = queryInt('cmdid');
	const tbody = document.querySelector('#hosts tbody');
	const hostsResult = document.getElementById('hosts-result');
	const form = document.getElementById('route-add-form');
	const addResult = document.getElementById('route-add-result');
	const SVGNS = 'http://www.w3.org/2000/svg';
	const COLS = 13; /* of the hosts table */
	const policyForm = document.getElementById('policy-form');
	const policyResult = document.getElementById('policy-result');

	if (modid === null || cmdid === null) {
		showBanner({ status: 400, body: { error: 'this page needs ?modid=M&cmdid=C (non-negative integers)' } });
		emptyRow(tbody, COLS, 'no route selected');
		for (const f of [form, policyForm])
			f.querySelectorAll('input, button').forEach((e) => { e.disabled = true; });
		document.getElementById('history-chart').replaceChildren();
		document.getElementById('latency-chart').replaceChildren();
		document.getElementById('hosts-chart').replaceChildren();
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
			' ', el('a', { href: 'descriptions.html', class: 'small write-only' }, 'edit'));
		document.getElementById('route-meta').replaceChildren(
			'Last changed at route version ', String(r.version ?? '–'), ', ', timeEl(r.changed_at, 'never'),
			' · ', el('a', { href: 'changes.html?modid=' + modid + '&cmdid=' + cmdid }, 'change log'));
	}

	/* Microseconds as milliseconds with about three significant digits,
	 * or null (no latency). */
	function msText(us) {
		if (typeof us !== 'number') return null;
		const ms = us / 1000;
		return ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0);
	}

	function hostRow(h) {
		const key = hostStr(h.ip, h.port);
		const s = h.status;
		const state = el('td', {});
		if (h.drain) state.append(badge('drained', 'none'));
		if (!s) state.append(badge('no report', 'none'));
		else {
			if (s.failing) state.append(badge('failing', 'failing'));
			if (s.overload) state.append(badge('overloaded', 'overloaded'));
			if (!s.failing && !s.overload) state.append(badge('ok', 'ok'));
		}
		const pct = s && typeof s.err_pct === 'number' ? s.err_pct.toFixed(1) : null;
		return el('tr', { 'data-host': key, class: s && s.failing ? 'failing' : s && s.overload ? 'overloaded' : null },
			el('td', { class: 'mono host-cell' }, key, el('span', { class: 'state-mini' }, ' ',
				!s ? badge('no report', 'none') : s.failing ? badge('failing', 'failing')
					: s.overload ? badge('overloaded', 'overloaded') : badge('ok', 'ok'))),
			el('td', {}, timeEl(h.added_at, '–')),
			numTd(s && s.succ), numTd(s && s.err), numTd(pct),
			numTd(s && msText(s.lat_mean_us)), numTd(s && msText(s.lat_p99_us)),
			el('td', {}, s ? (s.overload ? 'yes' : 'no') : '–'),
			numTd(s && s.callers),
			el('td', { title: s ? fmtAbs(s.updated_at) : null, class: s ? 'nowrap' : 'nowrap muted' },
				s ? fmtAge(s.age_s) : 'no report yet'),
			state,
			el('td', { class: 'nowrap' },
				el('span', { class: 'read-only-text' }, String(h.weight ?? 100)),
				el('span', { class: 'write-only' },
					el('input', { class: 'host-weight', 'aria-label': `weight of ${key}`, inputmode: 'numeric',
						size: 4, value: String(h.weight ?? 100), 'data-host': key }),
					' ', el('button', { type: 'button', class: 'set-weight', 'data-host': key }, 'Set'))),
			el('td', { class: 'nowrap' },
				el('span', { class: 'read-only-text' }, h.drain ? 'drained' : ''),
				el('span', { class: 'write-only' },
					el('button', { type: 'button', class: 'drain-host', 'data-host': key, 'data-drain': h.drain ? '0' : '1' },
						h.drain ? 'Undrain' : 'Drain'),
					' ', el('button', { type: 'button', class: 'remove-host', 'data-host': key }, 'Remove'))));
	}

	/* The policy form shows what is stored, unless the operator is editing it. */
	function renderPolicy(p) {
		if (!p) return;
		document.getElementById('policy-now').textContent = 'Panic threshold ' +
			(p.panic_threshold === null ? "the agent's" : p.panic_threshold + ' %') +
			', max ejection ' + p.max_ejection_percent + ' %, slow start ' + p.slow_start_s + ' s.';
		if (policyForm.contains(document.activeElement)) return;
		policyForm.elements.panic_threshold.value = p.panic_threshold === null ? '' : String(p.panic_threshold);
		policyForm.elements.max_ejection_percent.value = String(p.max_ejection_percent);
		policyForm.elements.slow_start_s.value = String(p.slow_start_s);
	}

	function hostOf(key) {
		const at = key.lastIndexOf(':');
		return { ip: key.slice(0, at), port: Number(key.slice(at + 1)) };
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

	/* An axis label: whole above 10, else up to two decimals. */
	function tick(v) {
		return String(v >= 10 ? Math.round(v) : Math.round(v * 100) / 100);
	}

	/* The frame of a per-minute chart of @minutes with the y axis 0..max:
	 * grid, labels, time axis. Returns the svg and its x(i), y(v). */
	function frame(minutes, max, label) {
		const n = minutes.length;
		const W = 760, H = 220, L = 52, R = 12, T = 30, B = 26;
		const x = (i) => L + (n > 1 ? (i * (W - L - R)) / (n - 1) : (W - L - R) / 2);
		const y = (v) => T + (H - T - B) * (1 - v / max);
		const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': label });
		for (const v of [0, max / 2, max]) {
			g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#ddd' }),
				svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#555' },
					tick(v)));
		}
		for (let i = n - 1; i >= 0; i -= 15) {
			g.append(svg('line', { x1: x(i), x2: x(i), y1: H - B, y2: H - B + 4, stroke: '#888' }),
				svg('text', { x: x(i), y: H - 6, 'text-anchor': i === n - 1 ? 'end' : 'middle', 'font-size': 11, fill: '#555' },
					hhmm(minutes[i].minute)));
		}
		g.append(svg('text', { x: L - 6, y: H - 6, 'text-anchor': 'end', 'font-size': 10, fill: '#888' }, 'UTC'),
			svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: '#888' }));
		return { g, x, y, W, H, L, R, T, B };
	}

	/* Colored squares with labels along the top of @f. */
	function legend(f, items) {
		let lx = f.L;
		for (const [color, label] of items) {
			f.g.append(svg('rect', { x: lx, y: 8, width: 12, height: 12, fill: color }),
				svg('text', { x: lx + 16, y: 18, 'font-size': 12, fill: '#222' }, label));
			lx += 18 + label.length * 7;
		}
	}

	/* A transparent column per minute with @text(m) as its tooltip. */
	function hover(f, minutes, text) {
		const n = minutes.length;
		const step = n > 1 ? (f.W - f.L - f.R) / (n - 1) : f.W - f.L - f.R;
		minutes.forEach((m, i) => {
			const hit = svg('rect', { x: f.x(i) - step / 2, y: f.T, width: step, height: f.H - f.T - f.B, fill: 'transparent' });
			hit.append(svg('title', {}, `${hhmm(m.minute)} UTC: ${text(m)}`));
			f.g.append(hit);
		});
	}

	function drawChart(minutes) {
		const box = document.getElementById('history-chart');
		const n = minutes.length;
		if (n === 0) { box.replaceChildren(el('p', { class: 'muted' }, 'no history')); return; }
		let tSucc = 0, tErr = 0, top = 0;
		for (const m of minutes) {
			tSucc += m.succ || 0; tErr += m.err || 0;
			top = Math.max(top, m.succ || 0, m.err || 0);
		}
		const f = frame(minutes, niceMax(Math.max(top, 1)), `successes and errors per minute for route ${name}`);
		for (const [key, color] of [['succ', '#2e7d32'], ['err', '#c62828']]) {
			const pts = minutes.map((m, i) => `${f.x(i).toFixed(1)},${f.y(m[key] || 0).toFixed(1)}`).join(' ');
			f.g.append(svg('polyline', { points: pts, fill: 'none', stroke: color, 'stroke-width': 2,
				'stroke-linejoin': 'round' }));
		}
		legend(f, [['#2e7d32', `successes (${tSucc} in ${n} min)`], ['#c62828', `errors (${tErr})`]]);
		hover(f, minutes, (m) => `${m.succ || 0} succ, ${m.err || 0} err`);
		box.replaceChildren(f.g);
	}

	/* Mean and p99 latency per minute in ms; a minute without latency is a
	 * gap in the lines (a minute alone between gaps is a dot). */
	function drawLatency(minutes) {
		const box = document.getElementById('latency-chart');
		const ms = (us) => (typeof us === 'number' ? us / 1000 : null);
		let top = 0, calls = 0;
		for (const m of minutes) {
			if (!m.lat_count) continue;
			calls += m.lat_count;
			top = Math.max(top, ms(m.lat_mean_us) || 0, ms(m.lat_p99_us) || 0);
		}
		if (calls === 0) {
			box.replaceChildren(el('p', { class: 'muted' }, 'no latency reported in these minutes'));
			return;
		}
		const f = frame(minutes, niceMax(Math.max(top, 0.01)), `mean and p99 call latency in ms per minute for route ${name}`);
		for (const [key, color, cls] of [['lat_mean_us', '#0b5cad', 'lat-mean'], ['lat_p99_us', '#8250df', 'lat-p99']]) {
			let run = [];
			const flush = () => {
				if (run.length === 1) {
					const [cx, cy] = run[0];
					f.g.append(svg('circle', { cx, cy, r: 2.5, fill: color, class: cls }));
				} else if (run.length > 1) {
					f.g.append(svg('polyline', { points: run.map((p) => p.join(',')).join(' '), fill: 'none',
						stroke: color, 'stroke-width': 2, 'stroke-linejoin': 'round', class: cls }));
				}
				run = [];
			};
			minutes.forEach((m, i) => {
				const v = m.lat_count ? ms(m[key]) : null;
				if (v === null) flush();
				else run.push([f.x(i).toFixed(1), f.y(v).toFixed(1)]);
			});
			flush();
		}
		legend(f, [['#0b5cad', `mean ms (${calls} calls in ${minutes.length} min)`], ['#8250df', 'p99 ms']]);
		hover(f, minutes, (m) => (m.lat_count
			? `mean ${msText(m.lat_mean_us)} ms, p99 ${msText(m.lat_p99_us)} ms (${m.lat_count} calls)`
			: 'no latency'));
		box.replaceChildren(f.g);
	}

	/* Errors per minute of each host (the ten with the most errors), on the
	 * minutes of the route's chart: a failing host stands out of the sum. */
	function drawHostChart(minutes, rows) {
		const box = document.getElementById('hosts-chart');
		const PALETTE = ['#c62828', '#0b5cad', '#2e7d32', '#8250df', '#ef6c00', '#00838f', '#ad1457',
			'#5d4037', '#455a64', '#9e9d24'];
		const byHost = new Map();
		for (const r of rows) {
			const key = hostStr(r.ip, r.port);
			if (!byHost.has(key)) byHost.set(key, { err: 0, succ: 0, at: new Map() });
			const h = byHost.get(key);
			h.err += r.err || 0;
			h.succ += r.succ || 0;
			h.at.set(r.minute, r);
		}
		if (!minutes.length || !byHost.size) {
			box.replaceChildren(el('p', { class: 'muted' }, 'no calls reported in these minutes'));
			return;
		}
		const hosts = [...byHost.entries()].sort((a, b) => b[1].err - a[1].err).slice(0, PALETTE.length);
		let top = 0;
		for (const [, h] of hosts) for (const r of h.at.values()) top = Math.max(top, r.err || 0);
		const f = frame(minutes, niceMax(Math.max(top, 1)), `errors per minute per host for route ${name}`);
		hosts.forEach(([key, h], k) => {
			const pts = minutes.map((m, i) => `${f.x(i).toFixed(1)},${f.y((h.at.get(m.minute) || {}).err || 0).toFixed(1)}`);
			f.g.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: PALETTE[k], 'stroke-width': 2,
				'stroke-linejoin': 'round', class: 'host-line', 'data-host': key }));
		});
		legend(f, hosts.map(([key, h], k) => [PALETTE[k], `${key} (${h.err} err)`]));
		hover(f, minutes, (m) => hosts.map(([key, h]) => `${key} ${((h.at.get(m.minute) || {}).err) || 0}`).join(', '));
		box.replaceChildren(f.g);
	}

	async function load() {
		const q = `modid=${modid}&cmdid=${cmdid}`;
		const [r, hist, byHost] = await Promise.all([fetchJSON('api/route?' + q),
			fetchJSON('api/history?' + q + '&minutes=60'), fetchJSON('api/host-history?' + q + '&minutes=60')]);
		if (isOk(r)) {
			renderHead(r.body);
			renderPolicy(r.body.policy);
			const hosts = Array.isArray(r.body.hosts) ? r.body.hosts : [];
			/* Not while a weight is being typed: the refresh would undo it. */
			const typing = document.activeElement && document.activeElement.matches('input.host-weight');
			if (typing) { /* keep the rows */ } else if (hosts.length) tbody.replaceChildren(...hosts.map(hostRow));
			else emptyRow(tbody, COLS, 'no hosts in this route');
		} else if (r.status === 404) {
			/* no such route (yet): still show the chart and the add form */
			emptyRow(tbody, COLS, errorText(r, false));
		}
		if (isOk(hist)) {
			const minutes = Array.isArray(hist.body.minutes) ? hist.body.minutes : [];
			drawChart(minutes);
			drawLatency(minutes);
			if (isOk(byHost)) drawHostChart(minutes, Array.isArray(byHost.body.rows) ? byHost.body.rows : []);
		}
		return !isOk(r) && r.status !== 404 ? r : !isOk(hist) ? hist : null;
	}

	const refresh = poll(load, 10000);

	tbody.addEventListener('click', async (ev) => {
		const button = ev.target.closest('button.remove-host, button.drain-host, button.set-weight');
		if (!button) return;
		const key = button.dataset.host;
		let url, body;
		if (button.classList.contains('remove-host')) {
			if (!confirm(`Remove ${key} from route ${name}?`)) return;
			url = 'api/routes/del';
			body = { modid, cmdid, ...hostOf(key) };
		} else if (button.classList.contains('drain-host')) {
			url = 'api/routes/drain';
			body = { modid, cmdid, ...hostOf(key), drain: button.dataset.drain === '1' };
		} else {
			const input = button.parentElement.querySelector('input.host-weight');
			url = 'api/routes/weight';
			body = { modid, cmdid, ...hostOf(key), weight: intOrRaw(input.value) };
		}
		button.disabled = true;
		const res = await postJSON(url, body);
		button.disabled = false;
		if (isOk(res)) showResult(hostsResult, writeMessage(res.body), true);
		else showResult(hostsResult, errorText(res, true), false);
		refresh();
	});

	/* Empty panic threshold: the agent's default (null); the others are sent as typed. */
	jsonForm(policyForm, policyResult, 'api/routes/policy', () => {
		const v = (n) => policyForm.elements[n].value.trim();
		return {
			modid, cmdid,
			panic_threshold: v('panic_threshold') === '' ? null : intOrRaw(v('panic_threshold')),
			max_ejection_percent: intOrRaw(v('max_ejection_percent')),
			slow_start_s: intOrRaw(v('slow_start_s')),
		};
	}, () => {
		document.activeElement.blur();
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
