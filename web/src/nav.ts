/**
 * Where the page is and how it moves. Each view lives at a path under the UI's base: `/ui/` (the
 * repository list, `?q=` its search), `/ui/r/<name>`, `/ui/m/<name>@<reference>`, `/ui/admin`,
 * `/ui/login?next=<route>`. The server sees which view a URL names and sends the page with that view's
 * first data in it (the boot document, src/http/ui/first-view.ts). Links to a view move by
 * `history.pushState`, without a reload; the hash links of earlier versions (`#/r/<name>`) are taken to
 * the same view's path.
 *
 * A "route" here is a URL relative to the base: `''`, `?q=lib`, `r/library/alpine`, `login?next=admin`.
 */
import type { Boot } from '../../src/http/ui/boot.js';

const boot = readBoot();

function readBoot(): Boot | undefined {
  const text = document.getElementById('berth-boot')?.textContent ?? '';
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as Boot;
  } catch {
    return undefined;
  }
}

/** The boot document the page came with (undefined: none, e.g. a page not served by Berth). */
export function bootDocument(): Boot | undefined {
  return boot;
}

/** The path of the UI's root, ending in `/` (under `http.prefix` when one is set). */
export function uiBase(): string {
  if (boot !== undefined) return boot.base;
  const at = location.pathname.indexOf('/ui/');
  return at < 0 ? '/ui/' : location.pathname.slice(0, at + 4);
}

/** The route of the URL in the address bar. */
export function currentRoute(): string {
  const base = uiBase();
  const path = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : '';
  return `${path}${location.search}`;
}

/** The href of a route. */
export function hrefOf(route: string): string {
  return `${uiBase()}${route}`;
}

let listener: () => void = () => undefined;

/** What runs when the route changes (a link, back/forward, {@link navigate}). */
export function onNavigate(f: () => void): void {
  listener = f;
}

/** Goes to `route` (a new history entry) and shows it. */
export function navigate(route: string): void {
  history.pushState(null, '', hrefOf(route));
  listener();
}

/** Puts `route` in the address bar in place of the current one, without showing anything new (a search as it is typed). */
export function replaceRoute(route: string): void {
  history.replaceState(null, '', hrefOf(route));
}

/** Takes an old hash link (`#/r/<name>`) to its view's path; true when there was one. */
export function fromHashLink(): boolean {
  if (!location.hash.startsWith('#/')) return false;
  replaceRoute(location.hash.slice(2));
  return true;
}

/** Clicks on links to a view of the page (left button, no modifier) move without a reload; back and forward too. */
export function interceptLinks(): void {
  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target instanceof Element ? ev.target.closest('a[href]') : null;
    if (!(a instanceof HTMLAnchorElement) || a.target !== '' || a.hasAttribute('download')) return;
    const url = new URL(a.href);
    if (url.origin !== location.origin || !url.pathname.startsWith(uiBase())) return;
    // An anchor in this page (the skip link, an old hash link): the browser's own way.
    if (url.hash !== '' && url.pathname === location.pathname && url.search === location.search) return;
    ev.preventDefault();
    history.pushState(null, '', `${url.pathname}${url.search}`);
    listener();
  });
  window.addEventListener('popstate', () => listener());
}
