/* SPDX-License-Identifier: MIT */
/* Module and command descriptions: list, edit in place, set new ones. */
'use strict';

(function descriptions() {
	const tbody = document.querySelector('#descriptions tbody');
	const form = document.getElementById('desc-form');
	const result = document.getElementById('desc-result');

	/* cmdid null: the module's own row. */
	function row(modid, cmdid, description) {
		const isMod = cmdid === null;
		const text = el('span', {}, description || '');
		const cell = el('td', { class: 'desc' }, text);
		const edit = el('button', { type: 'button', class: 'desc-edit write-only' }, 'Edit');
		const tr = el('tr', { class: isMod ? 'mod-row' : null, 'data-modid': modid, 'data-cmdid': isMod ? '' : cmdid },
			el('td', { class: 'num' }, String(modid)),
			el('td', { class: 'num' }, isMod ? el('span', { class: 'muted' }, 'module')
				: el('a', { href: routeHref(modid, cmdid) }, String(cmdid))),
			cell, el('td', {}, edit));

		edit.addEventListener('click', () => {
			const input = el('input', { class: 'desc-input', value: text.textContent, size: 40,
				'aria-label': `description of ${modid}${isMod ? '' : '/' + cmdid}` });
			const save = el('button', { type: 'button', class: 'desc-save' }, 'Save');
			const cancel = el('button', { type: 'button', class: 'desc-cancel' }, 'Cancel');
			const err = el('span', { class: 'error', role: 'alert' });
			const done = () => { cell.replaceChildren(text); edit.hidden = false; };
			async function submit() {
				save.disabled = true;
				err.textContent = '';
				const res = await postJSON('api/describe', { modid, cmdid, description: input.value });
				save.disabled = false;
				if (!isOk(res)) { err.textContent = errorText(res, true); return; }
				text.textContent = input.value;
				done();
			}
			save.addEventListener('click', submit);
			cancel.addEventListener('click', done);
			input.addEventListener('keydown', (ev) => {
				if (ev.key === 'Enter') submit();
				else if (ev.key === 'Escape') done();
			});
			edit.hidden = true;
			cell.replaceChildren(input, ' ', save, ' ', cancel, ' ', err);
			input.focus();
		});
		return tr;
	}

	async function load() {
		const res = await fetchJSON('api/descriptions');
		if (!isOk(res)) return res;
		const byMod = new Map();
		const entry = (m) => {
			if (!byMod.has(m)) byMod.set(m, { mod: null, cmds: [] });
			return byMod.get(m);
		};
		for (const m of res.body.mods || []) entry(m.modid).mod = m;
		for (const c of res.body.cmds || []) entry(c.modid).cmds.push(c);
		const rows = [];
		for (const modid of [...byMod.keys()].sort((a, b) => a - b)) {
			const { mod, cmds } = byMod.get(modid);
			rows.push(row(modid, null, mod ? mod.description : ''));
			cmds.sort((a, b) => a.cmdid - b.cmdid).forEach((c) => rows.push(row(modid, c.cmdid, c.description)));
		}
		if (rows.length) tbody.replaceChildren(...rows);
		else emptyRow(tbody, 4, 'no modules yet');
		return res;
	}

	const refresh = poll(load, 0);
	jsonForm(form, result, 'api/describe', () => {
		const cmdid = form.elements.cmdid.value.trim();
		return {
			modid: intOrRaw(form.elements.modid.value),
			cmdid: cmdid === '' ? null : intOrRaw(cmdid),
			description: form.elements.description.value,
		};
	}, () => refresh());
})();
