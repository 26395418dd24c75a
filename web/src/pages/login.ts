/** The sign-in form (htpasswd or the built-in issuer). The password goes to the server once and is not kept. */
import { authMode, signIn } from '../auth.js';
import { h } from '../dom.js';
import { hrefOf, navigate } from '../nav.js';
import { errorBox, externalNotice } from './common.js';

/** Renders the form; after signing in, goes to `next` (a route, nav.ts) and calls `onChange`. */
export async function loginPage(root: HTMLElement, next: string, onChange: () => void): Promise<void> {
  const mode = authMode();
  root.append(h('h1', {}, 'Sign in'));
  if (mode.kind === 'none') {
    root.append(h('p', {}, 'This registry has no sign-in: everyone may do everything. ', h('a', { href: hrefOf('') }, 'Go to the repositories.')));
    return;
  }
  if (mode.kind === 'external') {
    root.append(h('p', { class: 'notice', role: 'note' }, externalNotice()));
    return;
  }
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const message = h('div', { class: 'form-message' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'login', 'aria-describedby': 'login-help' },
    h('p', { id: 'login-help', class: 'muted' },
      mode.kind === 'basic' ? 'This registry uses HTTP Basic accounts (htpasswd).' : 'Accounts of the registry’s built-in token issuer.'),
    h('label', { for: 'login-user' }, 'User name'), user,
    h('label', { for: 'login-password' }, 'Password'), password,
    submit, message);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    message.replaceChildren();
    signIn(user.value, password.value).then((ok) => {
      submit.disabled = false;
      if (!ok) {
        message.append(h('p', { class: 'error', role: 'alert' }, 'Wrong user name or password.'));
        password.select();
        return;
      }
      password.value = '';
      onChange();
      navigate(next.startsWith('login') ? '' : next);
    }, (err: unknown) => {
      submit.disabled = false;
      message.append(errorBox(err));
    });
  });
  root.append(form);
  user.focus();
}
