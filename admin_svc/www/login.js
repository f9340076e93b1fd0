/* SPDX-License-Identifier: MIT */
/* The login form: POST /api/login, which sets the session cookie; then the
 * page asked for (this form is what any page shows without a login; at
 * login.html itself, the overview). Plain script, no other file needed. */
'use strict';

(function login() {
	const form = document.getElementById('login-form');
	const result = document.getElementById('login-result');
	const button = document.getElementById('login-submit');
	form.elements.user.focus();

	function say(text) {
		result.textContent = text;
		result.className = 'result error';
	}

	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		const user = form.elements.user.value.trim(), password = form.elements.password.value;
		if (!user || !password) {
			say('give a user name and a password');
			return;
		}
		button.disabled = true;
		let resp = null, body = null;
		try {
			resp = await fetch('api/login', {
				method: 'POST', credentials: 'same-origin', cache: 'no-store',
				headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
				body: JSON.stringify({ user, password }),
			});
			body = await resp.json().catch(() => null);
		} catch (e) {
			resp = null;
		}
		button.disabled = false;
		form.elements.password.value = '';
		if (resp && resp.ok) {
			const here = location.pathname;
			location.replace(here.endsWith('/login.html') ? 'index.html' : location.href);
			return;
		}
		if (!resp) say('server unreachable');
		else if (resp.status === 429) say((body && body.error) || 'too many failed logins; wait and try again');
		else if (resp.status === 401) say('wrong user name or password');
		else say((body && body.error) || 'HTTP ' + resp.status);
		form.elements.password.focus();
	});
})();
