/**
 * A few DOM helpers. Text always goes in as text nodes (never innerHTML), so nothing a registry holds
 * (names, labels, annotations) can become markup.
 */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((ev: Event) => void)>;

/** `h('a', {href: '#/'}, 'Home')`: an element with attributes, `on…` listeners and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, ...children);
  return el;
}

/** Appends children, skipping null, undefined and false. */
export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Empties `el` and fills it with `children`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** The element with `id`. @throws when there is none (the page's fixed skeleton). */
export function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`no #${id} in the page`);
  return el;
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;

/** A short message in the polite live region (read out by screen readers). */
export function announce(message: string): void {
  const status = byId('status');
  status.textContent = message;
  status.classList.add('shown');
  if (toastTimer !== undefined) clearTimeout(toastTimer);
  toastTimer = setTimeout(() => status.classList.remove('shown'), 4000);
}

/** A button that copies `text` to the clipboard and says so; `label` names what is copied. */
export function copyButton(text: string, label: string): HTMLButtonElement {
  return h('button', {
    type: 'button',
    class: 'copy',
    title: `Copy ${label}`,
    'aria-label': `Copy ${label}`,
    onclick: () => {
      copyText(text).then(
        () => announce(`Copied ${label}`),
        () => announce(`Could not copy; select it by hand: ${text}`),
      );
    },
  }, 'Copy');
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard !== undefined && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain HTTP from another host is no secure context: the old way, through a selected text area.
  const area = h('textarea', { 'aria-hidden': 'true', class: 'offscreen' }, text);
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  if (!ok) throw new Error('copy refused');
}

/** A `<table>` with a caption, a header row and body rows. */
export function table(caption: string, headers: readonly string[], rows: readonly HTMLTableRowElement[], cls = ''): HTMLTableElement {
  return h('table', { class: cls },
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...rows));
}

/** A definition list of label → value. */
export function facts(items: readonly (readonly [string, Child])[]): HTMLDListElement {
  const dl = h('dl', { class: 'facts' });
  for (const [k, v] of items) append(dl, h('dt', {}, k), h('dd', {}, v));
  return dl;
}

/** Asks the user; the dialog is the browser's own (keyboard and screen reader friendly). */
export function confirmAction(message: string): boolean {
  return window.confirm(message);
}
