/* SPDX-License-Identifier: MIT */
/* Agents: every connection lars-dns instances wrote (lars_dns_agent), lagging
 * first, refreshed every 5 s. */
'use strict';

(function agents() {
	const tbody = document.querySelector('#agents tbody');
	const summary = document.getElementById('agents-summary');
	const COLS = 10;

	function row(a) {
		const state = !a.acks ? badge('original', 'none') : a.lagging ? badge('lagging', 'failing') : badge('ok', 'ok');
		return el('tr', { class: a.lagging ? 'failing' : null },
			el('td', {}, state),
			el('td', {}, a.host_name || '–'),
			el('td', { class: 'mono' }, a.caller || '–'),
			el('td', { class: 'mono' }, a.instance),
			el('td', { class: 'mono' }, a.peer),
			el('td', {}, timeEl(a.connected_at, '–')),
			numTd(a.subscriptions),
			numTd(a.acks ? a.acked_version : null),
			numTd(a.acks ? a.lag_ms : null),
			numTd(a.acks ? a.pending : null));
	}

	async function load() {
		const res = await fetchJSON('api/agents');
		if (!isOk(res)) return res;
		const list = Array.isArray(res.body.agents) ? res.body.agents : [];
		if (list.length) tbody.replaceChildren(...list.map(row));
		else emptyRow(tbody, COLS, 'no agents connected (or no lars-dns writes them: [dns] agents_interval_ms)');
		const lag = list.filter((a) => a.lagging).length, orig = list.filter((a) => !a.acks).length;
		summary.textContent = `${list.length} connected, ${lag} lagging, ${orig} original.`;
		return null;
	}

	poll(load, 5000);
})();
