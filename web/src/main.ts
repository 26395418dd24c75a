/**
 * The web UI's entry point: learns how the server authenticates (from the page's boot document, or by
 * asking), takes the first view's data the server sent with the page, then routes by the URL's path
 * (nav.ts: `/ui/`, `/ui/r/<name>`, `/ui/m/<name>@<reference>`, `/ui/admin`, `/ui/login`), so every view
 * has a link of its own that the server understands.
 */
import { authMode, currentUser, detectAuth, needsSignIn, signOut } from './auth.js';
import { dropPrefetched, embed, prefetch } from './api.js';
import { bootDocument, currentRoute, fromHashLink, hrefOf, interceptLinks, onNavigate, replaceRoute } from './nav.js';
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

/** The view of a route (nav.ts). */
function viewFor(route: string): Route {
  const at = route.indexOf('?');
  const path = decodeRoute(at < 0 ? route : route.slice(0, at));
  const query = new URLSearchParams(at < 0 ? '' : route.slice(at + 1));
  if (path.startsWith('r/')) {
    const name = path.slice(2);
    return { view: (root, current) => repositoryPage(root, name, current), nav: 'repositories', title: name, first: repositoryFirstRequests(name) };
  }
  if (path.startsWith('m/')) {
    const rest = path.slice(2);
    const at = rest.lastIndexOf('@');
    const name = at < 0 ? rest : rest.slice(0, at);
    const reference = at < 0 ? 'latest' : rest.slice(at + 1);
    return { view: (root, current) => manifestPage(root, name, reference, current), nav: 'repositories', title: `${name}@${reference}` };
  }
  if (path === 'admin') return { view: (root) => adminPage(root), nav: 'admin', title: 'Admin' };
  if (path === 'login') return { view: (root) => loginPage(root, query.get('next') ?? '', renderAccount), nav: '', title: 'Sign in' };
  const q = query.get('q') ?? '';
  return { view: (root, current) => repositoriesPage(root, q, current), nav: 'repositories', title: 'Repositories', first: repositoriesFirstRequests(q) };
}

/** A route's path decoded (a bad escape stays as it is: the view then finds nothing by that name). */
function decodeRoute(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

async function route(focus: boolean): Promise<void> {
  const mine = ++generation;
  const main = byId('main');
  let at = currentRoute();
  if (needsSignIn() && !at.startsWith('login')) {
    at = `login?next=${encodeURIComponent(at)}`;
    replaceRoute(at);
  }
  const { view, nav, title } = viewFor(at);
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
    replace(box, h('a', { href: hrefOf(`login?next=${encodeURIComponent(currentRoute())}`) }, 'Sign in'));
  }
}

async function start(): Promise<void> {
  fromHashLink();
  for (const a of document.querySelectorAll<HTMLAnchorElement>('a[data-route]')) a.href = hrefOf(a.dataset['route'] ?? '');
  const boot = bootDocument();
  // The first view's data came with the page; without the auth mode in it (an older or a hurried
  // server), the first view's requests go out beside the auth check, used only if no auth is needed.
  if (boot !== undefined) embed(boot.answers);
  if (boot?.auth === undefined) prefetch(viewFor(currentRoute()).first ?? []);
  try {
    await detectAuth(boot?.auth);
  } catch (err) {
    replace(byId('main'), errorBox(err));
    return;
  }
  renderAccount();
  const moved = (): void => {
    renderAccount();
    void route(true);
  };
  onNavigate(moved);
  interceptLinks();
  window.addEventListener('hashchange', () => {
    if (fromHashLink()) moved();
  });
  await route(false);
  dropPrefetched();
}

void start();
