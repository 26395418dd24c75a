/**
 * The web UI's entry point: learns how the server authenticates, then routes by the URL's hash
 * (`#/`, `#/r/<name>`, `#/m/<name>@<reference>`, `#/admin`, `#/login`), so the server serves one page
 * and every view has a link of its own.
 */
import { authMode, currentUser, detectAuth, needsSignIn, signOut } from './auth.js';
import { dropPrefetched, prefetch } from './api.js';
import { byId, h, replace } from './dom.js';
import { adminPage } from './pages/admin.js';
import { loginPage } from './pages/login.js';
import { manifestPage } from './pages/manifest.js';
import { repositoriesFirstRequests, repositoriesPage } from './pages/repositories.js';
import { repositoryFirstRequests, repositoryPage } from './pages/repository.js';
import { errorBox } from './pages/common.js';

/** A view: fills `root` (a fresh element); `current()` turns false once the user has moved on. */
type View = (root: HTMLElement, current: () => boolean) => Promise<void>;

let generation = 0;

/** A route's view, and the GETs its first screen makes (sent early when they may be; see api.ts's prefetch). */
interface Route {
  readonly view: View;
  readonly nav: string;
  readonly title: string;
  readonly first?: readonly string[];
}

function viewFor(hash: string): Route {
  const path = decodeURIComponent(hash.replace(/^#/, '').split('?')[0] ?? '');
  const query = new URLSearchParams(hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '');
  if (path.startsWith('/r/')) {
    const name = path.slice(3);
    return { view: (root, current) => repositoryPage(root, name, current), nav: 'repositories', title: name, first: repositoryFirstRequests(name) };
  }
  if (path.startsWith('/m/')) {
    const rest = path.slice(3);
    const at = rest.lastIndexOf('@');
    const name = at < 0 ? rest : rest.slice(0, at);
    const reference = at < 0 ? 'latest' : rest.slice(at + 1);
    return { view: (root, current) => manifestPage(root, name, reference, current), nav: 'repositories', title: `${name}@${reference}` };
  }
  if (path === '/admin') return { view: (root) => adminPage(root), nav: 'admin', title: 'Admin' };
  if (path === '/login') return { view: (root) => loginPage(root, query.get('next') ?? '#/', renderAccount), nav: '', title: 'Sign in' };
  const q = query.get('q') ?? '';
  return { view: (root, current) => repositoriesPage(root, q, current), nav: 'repositories', title: 'Repositories', first: repositoriesFirstRequests(q) };
}

async function route(focus: boolean): Promise<void> {
  const mine = ++generation;
  const main = byId('main');
  let hash = location.hash === '' ? '#/' : location.hash;
  if (needsSignIn() && !hash.startsWith('#/login')) {
    hash = `#/login?next=${encodeURIComponent(hash)}`;
    history.replaceState(null, '', hash); // so that going to `next` after signing in is a change of hash
  }
  const { view, nav, title } = viewFor(hash);
  document.title = `${title} · Berth`;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a[data-nav]')) {
    if (a.dataset['nav'] === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = h('div', { class: 'view', 'aria-busy': 'true' });
  replace(main, root);
  if (focus) main.focus();
  try {
    await view(root, () => mine === generation);
  } catch (err) {
    if (mine === generation) root.append(errorBox(err));
  } finally {
    root.removeAttribute('aria-busy');
  }
}

/** The account corner: who is signed in, and a way in or out. */
function renderAccount(): void {
  const box = byId('account');
  const mode = authMode();
  const user = currentUser();
  if (mode.kind === 'none') {
    replace(box, h('span', { class: 'muted' }, 'No sign-in configured'));
  } else if (mode.kind === 'external') {
    replace(box, h('span', { class: 'muted', title: mode.realm }, 'External token server'));
  } else if (user !== undefined) {
    replace(box, h('span', {}, 'Signed in as ', h('strong', {}, user)), ' ',
      h('button', { type: 'button', class: 'link', onclick: () => { signOut(); renderAccount(); void route(true); } }, 'Sign out'));
  } else {
    replace(box, h('a', { href: `#/login?next=${encodeURIComponent(location.hash || '#/')}` }, 'Sign in'));
  }
}

async function start(): Promise<void> {
  // The first view's requests go out beside the auth check; they are used only if no auth is needed.
  prefetch(viewFor(location.hash === '' ? '#/' : location.hash).first ?? []);
  try {
    await detectAuth();
  } catch (err) {
    replace(byId('main'), errorBox(err));
    return;
  }
  renderAccount();
  window.addEventListener('hashchange', () => {
    renderAccount();
    void route(true);
  });
  await route(false);
  dropPrefetched();
}

void start();
