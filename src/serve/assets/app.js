'use strict';
// The page of `conductor serve`. Plain DOM, hash routes, one EventSource per
// live view. Everything shown comes from /api/v1 (docs/api.md), and every
// text from the server goes in through textContent, never as HTML.

/* ---------- DOM helpers ---------- */

// h('a', {class, href, text, onclick, 'data-x': v}, ...children): null and
// false props or children are skipped; strings become text nodes (escaped).
function h(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}
const svg = (tag, attrs) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const $ = (sel, root = document) => root.querySelector(sel);
const enc = encodeURIComponent;

// Re-rendering replaces elements; a keyboard user's focus must survive it.
function keepFocus(root, fn) {
  const a = document.activeElement;
  let sel = null;
  if (a && a !== document.body && root.contains(a)) {
    for (const attr of ['id', 'data-instance', 'data-apply-id', 'data-iteration']) {
      if (a.hasAttribute(attr)) { sel = `${a.tagName}[${attr}="${CSS.escape(a.getAttribute(attr))}"]`; break; }
    }
  }
  fn();
  const again = sel && root.querySelector(sel);
  if (again) again.focus({ preventScroll: true });
}

/* ---------- formatting ---------- */

const pad2 = n => String(n).padStart(2, '0');

// `45s`, `1m 05s`, `2h 03m`, `1d 04h`: precise where it matters, short where not.
function fmtDur(ms) {
  if (ms == null || !Number.isFinite(ms)) return '–';
  ms = Math.max(0, ms);
  if (ms < 1000) return ms === 0 ? '0s' : `${(ms / 1000).toFixed(1)}s`;
  let s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  let m = Math.floor(s / 60); s %= 60;
  if (m < 60) return `${m}m ${pad2(s)}s`;
  const hr = Math.floor(m / 60); m %= 60;
  return hr < 24 ? `${hr}h ${pad2(m)}m` : `${Math.floor(hr / 24)}d ${pad2(hr % 24)}h`;
}

// `$0.42`; a running instance's cost is still growing, so `$0.42+`.
function fmtCost(usd, growing) {
  if (usd == null) return growing ? '$0.00+' : '–';
  const s = usd > 0 && usd < 0.01 ? '<$0.01' : `$${usd.toFixed(2)}`;
  return growing ? s + '+' : s;
}

function fmtNum(n) {
  if (n == null) return '–';
  if (n < 1000) return String(n);
  return n < 1e6 ? `${(n / 1e3).toFixed(1)}k` : `${(n / 1e6).toFixed(1)}M`;
}

const fmtTokens = (inp, out) => (inp == null && out == null ? '' : `${fmtNum((inp || 0) + (out || 0))} tokens`);

// Today's times as `14:03:12`, older ones with their date; the full RFC 3339
// time is always in the title.
function timeEl(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return h('span', { class: 'muted' }, iso || '–');
  const time = d.toLocaleTimeString([], { hour12: false });
  const sameDay = d.toDateString() === new Date().toDateString();
  const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  return h('time', { datetime: iso, title: iso }, sameDay ? time : `${date} ${time}`);
}

// `done 3/10 · running 1 · failed 1`, as the console's header says it: a
// count of nothing is left out.
function countsText(c = {}) {
  const parts = [`done ${c.done || 0}/${c.total || 0}`];
  for (const k of ['running', 'queued', 'waiting', 'pending', 'failed', 'skipped', 'stale']) {
    if (c[k]) parts.push(`${k} ${c[k]}`);
  }
  return parts.join(' · ');
}

function costText(x) {
  const spent = fmtCost(x.cost_usd || 0);
  return x.budget_usd != null ? `${spent} of ${fmtCost(x.budget_usd)}` : spent;
}

// A duration that keeps counting while its subject runs: the 1 s ticker
// below updates every [data-tick] element, so nothing looks frozen, and
// nothing else on the page does per-second work.
function ticking(ms, live, pre = '', post = '') {
  const e = h('span', {}, pre + fmtDur(ms) + post);
  if (live && ms != null) Object.assign(e.dataset, { tick: ms, at: performance.now(), pre, post });
  return e;
}
setInterval(() => {
  const now = performance.now();
  for (const e of document.querySelectorAll('[data-tick]')) {
    const d = e.dataset;
    e.textContent = d.pre + fmtDur(+d.tick + now - +d.at) + d.post;
  }
}, 1000);

/* ---------- states: colour AND symbol AND text ---------- */

const ICONS = {
  done: '✓', completed: '✓', failed: '✗', running: '●', queued: '…', waiting: '○',
  skipped: '–', stale: '?', pending: '◌', interrupted: '■', stopped: '■', exited: '↻',
};
const stateClass = s => 's-' + String(s || 'unknown').toLowerCase().replace(/[^a-z]/g, '');
function badge(state, extra = '') {
  return h('span', { class: `badge ${stateClass(state)} ${extra}` },
    h('span', { class: 'icon', 'aria-hidden': 'true' }, ICONS[state] || '·'), ` ${state || 'unknown'}`);
}

// Each attention kind: its symbol, and how its age reads (`idle 14s`).
const KINDS = {
  failed: ['✗', 'failed ', ' ago'],
  looping: ['↻', 'looping for ', ''],
  silent: ['‖', 'idle ', ''],
  slow: ['≫', 'running ', ''],
  question: ['?', 'asked ', ' ago'],
};

/* ---------- API ---------- */

async function request(method, path, body) {
  const opt = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET') {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body === undefined ? {} : body);
  }
  const res = await fetch(path, opt);
  const text = await res.text();
  if (!res.ok) {
    let err = null;
    try { err = JSON.parse(text).error; } catch { /* not our error shape */ }
    throw Object.assign(new Error(err?.message || text.trim() || `${method} ${path}: ${res.status} ${res.statusText}`),
      { status: res.status, code: err?.code || `HTTP ${res.status}` });
  }
  return text;
}
const api = async (method, path, body) => {
  const text = await request(method, path, body);
  return text ? JSON.parse(text) : null;
};
const apiText = path => request('GET', path);

const applyPath = (p, a) => `/api/v1/projects/${enc(p)}/applies/${enc(a)}`;
const runPath = (p, t, r, file) => `/api/v1/projects/${enc(p)}/tasks/${enc(t)}/runs/${enc(r)}/${file}`;
const applyHref = (p, a) => `#/apply/${enc(p)}/${enc(a)}`;
const instHref = (p, a, k) => `${applyHref(p, a)}/instance/${enc(k)}`;
const busHref = (p, t) => `#/bus/${enc(p)}` + (t ? `/${enc(t)}` : '');

/* ---------- banners ---------- */

function showError(err) {
  const box = $('#error');
  $('#error-text').textContent = err instanceof Error ? err.message : String(err);
  box.dataset.code = err?.code || '';
  box.hidden = false;
  if (!err?.status) console.error(err); // a bug of the page, not a refusal
}
function clearError() { $('#error').hidden = true; $('#error-text').textContent = ''; }
function notice(text) { Object.assign($('#notice'), { textContent: text, hidden: !text }); }

/* ---------- scopes and live streams ---------- */

// A scope owns what a view opened (streams, sub-scopes). Leaving the route
// closes it, and `alive` lets late fetches see they are no longer wanted.
class Scope {
  constructor(parent) { this.alive = true; this.items = []; if (parent) parent.add(this); }
  add(item) { this.items.push(item); return item; }
  close() { this.alive = false; for (const i of this.items.splice(0)) i.close(); }
}

const conns = new Set();
function showConn() {
  const states = [...conns].map(c => c.state);
  const s = ['offline', 'reconnecting', 'connecting', 'live'].find(x => states.includes(x)) || '';
  const el = $('#conn');
  el.dataset.state = s;
  el.hidden = !s;
  $('#conn-text').textContent = s;
}

// An EventSource that reports its state to the indicator; the browser
// reconnects by itself with Last-Event-ID. When the server refuses the stream
// outright (404, 401) the browser gives up without telling why, so `probe`,
// the same thing as plain JSON, is fetched to show the server's message.
function stream(scope, url, handlers, probe) {
  const es = new EventSource(url);
  const conn = { state: 'connecting', close() { es.close(); conns.delete(conn); showConn(); } };
  conns.add(conn);
  es.onopen = () => { conn.state = 'live'; showConn(); };
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      conn.state = 'offline';
      if (probe && scope.alive) {
        request('GET', probe).then(() => showError(new Error(`live updates from ${url} stopped; reload to retry`)), showError);
      }
    } else conn.state = 'reconnecting';
    showConn();
  };
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, ev => {
      if (!scope.alive) return;
      try { fn(ev.data ? JSON.parse(ev.data) : null); } catch (e) { showError(e); }
    });
  }
  return scope.add(conn);
}

// SSE can deliver many events in a burst; render only the latest, at most
// every `ms` (the first at once), and never spend more than a fifth of the
// time rendering: a huge DAG slows its own refresh instead of the page.
function coalesce(fn, ms) {
  let latest, timer = null, last = 0, gap = 0;
  return value => {
    latest = value;
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const t = performance.now();
      fn(latest);
      last = performance.now();
      gap = Math.max(ms, 5 * (last - t));
    }, Math.max(0, gap - (performance.now() - last)));
  };
}

/* ---------- router ---------- */

let server = { read_only: true };
let routeScope = null;

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  let parts;
  try { parts = raw ? raw.split('/').map(decodeURIComponent) : []; } catch { parts = ['?']; }
  const [head, p, a, sub, key] = parts;
  if (!head) return { view: 'overview' };
  if (head === 'apply' && p && a && !sub) return { view: 'apply', p, a };
  if (head === 'apply' && p && a && sub === 'instance' && key) return { view: 'instance', p, a, key };
  if (head === 'bus' && p) return { view: 'bus', p, t: a || '' };
  if (head === 'start') return { view: 'start' };
  return { view: 'missing' };
}

function route() {
  if (routeScope) routeScope.close();
  routeScope = new Scope();
  clearError();
  notice('');
  const r = parseRoute();
  const main = $('#main');
  main.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) {
    a.toggleAttribute('aria-current', a.dataset.view === r.view);
  }
  const views = { overview: viewOverview, apply: viewApply, instance: viewInstance, bus: viewBus, start: viewStart };
  if (views[r.view]) views[r.view](routeScope, main, r);
  else main.append(h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

function crumbs(...items) {
  const nav = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' });
  items.forEach((it, i) => {
    if (i) nav.append(h('span', { class: 'sep', 'aria-hidden': 'true' }, '›'));
    nav.append(Array.isArray(it) ? h('a', { href: it[1] }, it[0]) : h('span', { 'aria-current': 'page' }, it));
  });
  return nav;
}

/* ---------- overview ---------- */

function viewOverview(scope, main) {
  document.title = 'conductor · overview';
  const root = h('div', { id: 'overview' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Overview'), root);
  const render = coalesce(ov => keepFocus(root, () => renderOverview(root, ov)), 200);
  stream(scope, '/api/v1/overview/stream', { overview: render }, '/api/v1/overview');
}

function renderOverview(root, ov) {
  const projects = ov?.projects || [];
  if (!projects.length) {
    root.replaceChildren(h('p', { class: 'empty' }, `No project under ${server.root || 'the run root'} yet. `,
      'An apply appears here as soon as it records its start.'));
    return;
  }
  root.replaceChildren(...projects.map(pr => {
    const applies = pr.applies || [], tasks = pr.tasks || [];
    const running = applies.filter(x => x.running).length;
    return h('section', { class: 'project', 'data-project': pr.project },
      h('header', { class: 'project-head' },
        h('h2', {}, pr.project),
        running ? badge('running', 'small') : null,
        h('a', { href: busHref(pr.project), class: 'pill' }, 'bus')),
      applies.length ? h('div', { class: 'apply-list' }, applies.map(applyRow))
        : h('p', { class: 'muted' }, 'No conductor apply.'),
      tasks.length ? goTasks(pr.project, tasks) : null);
  }));
}

function applyRow(x) {
  const tokens = fmtTokens(x.input_tokens, x.output_tokens);
  return h('a', {
    class: `apply-row ${stateClass(x.state)}`, href: applyHref(x.project, x.apply_id),
    'data-apply-id': x.apply_id, 'data-state': x.state,
  },
  badge(x.state),
  h('span', { class: 'wf' }, h('strong', {}, x.workflow || '(workflow)'), ' ', h('span', { class: 'muted mono' }, x.apply_id)),
  h('span', { class: 'when' }, timeEl(x.started)),
  h('span', { class: 'counts' }, countsText(x.counts)),
  h('span', { class: 'num', title: 'duration' }, ticking(x.duration_ms, x.running)),
  h('span', { class: 'num', title: 'cost' }, costText(x)),
  h('span', { class: 'num muted', title: `in ${x.input_tokens ?? 0} · out ${x.output_tokens ?? 0}` }, tokens || ''));
}

// Task folders of the Go system: their shape is theirs, so show what they
// name and link to their bus, which is the same format as ours.
function goTasks(p, tasks) {
  return h('details', { class: 'go-tasks' },
    h('summary', {}, `${tasks.length} task folder${tasks.length === 1 ? '' : 's'} not written by conductor`),
    h('ul', {}, tasks.map(t => {
      const id = typeof t === 'string' ? t : t.task_id || t.id || t.name || '';
      const status = typeof t === 'object' && (t.status || t.state);
      return h('li', { 'data-task-id': id }, h('a', { href: busHref(p, id), class: 'mono' }, id),
        status ? [' ', badge(status, 'small')] : null);
    })));
}

/* ---------- one apply: header, attention, DAG ---------- */

function viewApply(scope, main, { p, a }) {
  document.title = `conductor · ${a}`;
  const head = h('div', { id: 'apply-head' }, h('p', { class: 'muted' }, 'Loading…'));
  const attention = h('ul', { id: 'attention', class: 'attention', 'aria-label': 'Needs attention' });
  const dag = h('div', { id: 'dag', class: 'dag', tabindex: '-1' });
  const find = h('input', {
    type: 'search', id: 'dag-find', placeholder: 'find instance', 'aria-label': 'Find an instance by key',
    oninput: () => markFound(dag, find.value),
    onkeydown: ev => { if (ev.key === 'Enter') { ev.preventDefault(); jumpToFound(dag); } },
  });
  main.append(crumbs(['Overview', '#/'], p, a), head,
    h('h2', { class: 'visually-hidden' }, 'Needs attention'), attention,
    h('div', { class: 'dag-bar' }, h('h2', {}, 'Instances'), h('span', { id: 'legend', class: 'legend' }), find,
      h('p', { id: 'dag-note', class: 'muted small', hidden: true })),
    dag);
  const render = coalesce(d => {
    document.title = `conductor · ${d.workflow} · ${d.state}`;
    keepFocus(head, () => renderApplyHead(head, d, p, a));
    renderAttention(attention, d, p, a);
    keepFocus(dag, () => renderDag(dag, d, p, a));
    lightEdges(dag, $('.node:hover', dag) || document.activeElement);
    markFound(dag, find.value);
  }, 250);
  for (const ev of ['pointerover', 'focusin']) dag.addEventListener(ev, e => lightEdges(dag, e.target));
  // Boxes scrolled into view are drawn then (a big graph draws those in view).
  const fill = () => layouts.get(dag)?.fill?.();
  dag.addEventListener('scroll', fill, { passive: true });
  addEventListener('scroll', fill, { passive: true });
  addEventListener('resize', fill, { passive: true });
  scope.add({ close() { removeEventListener('scroll', fill); removeEventListener('resize', fill); } });
  stream(scope, applyPath(p, a) + '/stream', { apply: render }, applyPath(p, a));
}

function renderApplyHead(head, d, p, a) {
  const actions = h('div', { class: 'actions' }, h('a', { href: busHref(p), class: 'pill' }, 'project bus'));
  if (d.running && !server.read_only) {
    actions.append(h('button', {
      id: 'stop-apply', class: 'danger', type: 'button',
      onclick: ev => act(ev.currentTarget, `${applyPath(p, a)}/stop`, 'Stopping the apply…',
        `Stop the apply ${d.workflow} (${a})? Its agents are stopped, as on Ctrl-C.`),
    }, '■ Stop apply'));
  }
  const spent = h('span', { class: 'cost' }, costText(d));
  if (d.budget_usd) {
    spent.append(' ', h('meter', { min: 0, max: d.budget_usd, value: Math.min(d.cost_usd || 0, d.budget_usd),
      high: d.budget_usd * 0.8, optimum: 0, 'aria-label': 'budget spent' }));
  }
  head.replaceChildren(
    h('div', { class: 'title-row' }, h('h1', {}, d.workflow || a), badge(d.state)),
    h('p', { class: 'muted small' }, h('span', { class: 'mono' }, a), d.file ? [' · ', h('span', { class: 'mono' }, d.file)] : null,
      ' · started ', timeEl(d.started), d.ended ? [' · ended ', timeEl(d.ended)] : null,
      !d.running && d.state === 'running' ? ' · its conductor is gone' : null),
    h('p', { class: 'stats' },
      h('span', { id: 'counts' }, countsText(d.counts)),
      h('span', { class: 'elapsed', title: 'elapsed' }, ticking(d.duration_ms, d.running)),
      spent,
      h('span', { class: 'muted' }, fmtTokens(d.input_tokens, d.output_tokens) || '')),
    actions);
}

function renderAttention(list, d, p, a) {
  const items = d.attention || [];
  list.replaceChildren(...items.map(x => {
    const [icon, pre, post] = KINDS[x.kind] || ['!', `${x.kind} `, ''];
    return h('li', {}, h('a', {
      class: `attention-item k-${stateClass(x.kind).slice(2)}`, href: instHref(p, a, x.instance),
      'data-instance': x.instance, 'data-kind': x.kind, title: x.detail || '',
    },
    // Spaces between the parts, so that the link reads as words aloud.
    h('span', { class: 'kind' }, h('span', { 'aria-hidden': 'true' }, icon), ` ${x.kind}`), ' ',
    h('span', { class: 'key mono' }, x.instance), ' ',
    h('span', { class: 'age' }, ticking(x.age_ms, true, pre, post)), ' ',
    x.detail ? h('span', { class: 'detail' }, x.detail) : null));
  }));
  if (!items.length) list.append(h('li', { class: 'calm' }, '✓ nothing needs attention'));
}

// Geometry of the DAG, in CSS pixels.
const NODE_W = 230, NODE_H = 50, GAP_X = 56, GAP_Y = 10, PAD = 12;
// Past this many links, drawing them all is noise and work: only the links of
// the instance under the pointer or focus are drawn.
const EDGE_CAP = 15000;
// Past this many instances the graph draws only the boxes near the view.
const WINDOW_MIN = 1500;

// A need names an instance key; one naming a run-time fan-out (`x[*]`) or a
// node stands for all the instances of that node.
function resolveNeeds(needs, index, byNode) {
  const out = new Set();
  for (const n of needs || []) {
    if (index.has(n)) out.add(index.get(n));
    else for (const i of byNode.get(n.replace(/\[.*$/, '')) || []) out.add(i);
  }
  return [...out];
}

// Column = longest path from a root (Kahn's order, O(nodes + links)); rows
// in a column follow the mean row of what they need, so links mostly run
// straight and the picture does not reshuffle as states change.
function layoutDag(insts) {
  const n = insts.length, index = new Map(), byNode = new Map();
  insts.forEach((x, i) => {
    index.set(x.instance, i);
    if (!byNode.has(x.node)) byNode.set(x.node, []);
    byNode.get(x.node).push(i);
  });
  const preds = insts.map((x, i) => resolveNeeds(x.needs, index, byNode).filter(j => j !== i));
  const succs = Array.from({ length: n }, () => []);
  const indeg = new Array(n).fill(0);
  preds.forEach((ps, i) => ps.forEach(j => { succs[j].push(i); indeg[i]++; }));
  const col = new Array(n).fill(0), order = [];
  indeg.forEach((d, i) => { if (!d) order.push(i); });
  for (let q = 0; q < order.length; q++) {
    for (const s of succs[order[q]]) {
      col[s] = Math.max(col[s], col[order[q]] + 1);
      if (--indeg[s] === 0) order.push(s);
    }
  }
  // A cycle should not exist; if one does, its instances still show.
  if (order.length < n) indeg.forEach((d, i) => { if (d > 0) order.push(i); });
  const cols = [];
  for (const i of order) (cols[col[i]] ||= []).push(i);
  const row = new Array(n).fill(0);
  for (const c of cols) {
    if (!c) continue;
    const key = i => (preds[i].length ? preds[i].reduce((s, j) => s + row[j], 0) / preds[i].length : i);
    c.map(i => [key(i), i]).sort((x, y) => x[0] - y[0] || x[1] - y[1]).forEach(([, i], r) => { row[i] = r; });
  }
  const x = i => PAD + col[i] * (NODE_W + GAP_X), y = i => PAD + row[i] * (NODE_H + GAP_Y);
  const height = Math.max(...cols.map(c => (c ? c.length : 0)), 1);
  return { preds, succs, x, y, index, width: PAD * 2 + cols.length * (NODE_W + GAP_X) - GAP_X, height: PAD * 2 + height * (NODE_H + GAP_Y) - GAP_Y };
}

function edgePath(L, from, to) {
  const x1 = L.x(from) + NODE_W, y1 = L.y(from) + NODE_H / 2, x2 = L.x(to), y2 = L.y(to) + NODE_H / 2;
  const mx = (x1 + x2) / 2;
  return `M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}`;
}

function renderDag(dag, d, p, a) {
  const insts = d.instances || [];
  const keepX = dag.scrollLeft, keepY = dag.scrollTop;
  const L = layoutDag(insts);
  const canvas = h('div', { class: 'dag-canvas' });
  canvas.style.width = `${Math.max(L.width, 0)}px`;
  canvas.style.height = `${L.height}px`;
  const lines = svg('svg', { class: 'edges', width: L.width, height: L.height, 'aria-hidden': 'true' });
  const all = [];
  let total = 0;
  L.preds.forEach(ps => { total += ps.length; });
  if (total <= EDGE_CAP) L.preds.forEach((ps, i) => ps.forEach(j => all.push(edgePath(L, j, i))));
  const hi = svg('path', { class: 'hi', d: '' });
  lines.append(svg('path', { class: 'base', d: all.join('') }), hi);
  canvas.append(lines);
  // A big graph draws the boxes in view (and a margin) and the rest as
  // they scroll into view: 10,000 boxes at once take the page seconds.
  const made = new Set();
  L.keys = insts.map(x => x.instance);
  L.make = test => {
    const frag = document.createDocumentFragment();
    insts.forEach((x, i) => { if (!made.has(i) && test(i)) { made.add(i); frag.append(dagNode(x, i, L, p, a)); } });
    canvas.append(frag);
  };
  L.fill = () => {
    if (insts.length <= WINDOW_MIN) { L.make(() => true); return; }
    const r = canvas.getBoundingClientRect(), m = 600;
    const x0 = -r.left - m, x1 = -r.left + innerWidth + m, y0 = -r.top - m, y1 = -r.top + innerHeight + m;
    L.make(i => L.x(i) + NODE_W >= x0 && L.x(i) <= x1 && L.y(i) + NODE_H >= y0 && L.y(i) <= y1);
  };
  dag.replaceChildren(insts.length ? canvas : h('p', { class: 'empty' }, 'No instance recorded yet.'));
  Object.assign($('#dag-note'), { hidden: total <= EDGE_CAP,
    textContent: `${total} links: only those of the instance under the pointer or focus are drawn.` });
  dag.scrollLeft = keepX;
  dag.scrollTop = keepY;
  layouts.set(dag, L);
  L.fill();
  renderLegend(d.counts);
}

// The links of the instance in hand (pointer or focus), drawn over the rest.
const layouts = new WeakMap();
function lightEdges(dag, target) {
  const L = layouts.get(dag), hi = $('.edges .hi', dag);
  if (!L || !hi) return;
  const n = target?.closest?.('.node');
  const i = n && dag.contains(n) ? L.index.get(n.dataset.instance) : undefined;
  hi.setAttribute('d', i === undefined ? ''
    : L.preds[i].map(j => edgePath(L, j, i)).concat(L.succs[i].map(s => edgePath(L, i, s))).join(''));
}

function dagNode(x, i, L, p, a) {
  const running = x.state === 'running';
  let text = x.state;
  if (x.iterations) text += ` · it ${x.iterations}`;
  if (x.cost_usd != null || running) text += ` · ${fmtCost(x.cost_usd, running)}`;
  if (x.waiting_for?.length) text += ` · needs ${x.waiting_for.length}`;
  const tip = [x.instance, x.state, x.stop_reason, x.why && `why: ${x.why}`, x.activity,
    x.waiting_for?.length && `waiting for ${x.waiting_for.join(', ')}`].filter(Boolean).join('\n');
  const node = h('a', { class: `node ${stateClass(x.state)}`, href: instHref(p, a, x.instance),
    'data-instance': x.instance, 'data-state': x.state, title: tip },
  h('span', { class: 'key' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, ICONS[x.state] || '·'), ' ', x.instance), ' ',
  h('span', { class: 'sub' }, text, running && x.running_ms != null ? [' · ', ticking(x.running_ms, true)] : null));
  node.style.left = `${L.x(i)}px`;
  node.style.top = `${L.y(i)}px`;
  return node;
}

function renderLegend(c = {}) {
  const leg = $('#legend');
  if (!leg) return;
  leg.replaceChildren(...['done', 'running', 'queued', 'waiting', 'failed', 'skipped', 'stale']
    .filter(s => c[s]).map(s => h('span', {}, badge(s, 'small'), ` ${c[s]}`)));
}

// Find: mark the matching boxes; Enter jumps to the first.
function markFound(dag, text) {
  const q = text.trim().toLowerCase();
  // Matches not drawn yet (far from the view) are drawn to be found.
  const L = layouts.get(dag);
  if (q && L?.make) L.make(i => (L.keys[i] || '').toLowerCase().includes(q));
  dag.classList.toggle('finding', !!q);
  for (const n of dag.querySelectorAll('.node')) {
    n.classList.toggle('found', !!q && n.dataset.instance.toLowerCase().includes(q));
  }
}
function jumpToFound(dag) {
  const n = dag.querySelector('.node.found');
  if (n) { n.scrollIntoView({ block: 'center', inline: 'center' }); n.focus({ preventScroll: true }); }
}

// A POST that starts an action: the server answers 202 when it is under way.
async function act(button, path, doing, question) {
  if (question && !confirm(question)) return;
  button.disabled = true;
  try { await api('POST', path, {}); notice(doing); } catch (e) { showError(e); } finally { button.disabled = false; }
}

/* ---------- one instance: row, iterations, tabs ---------- */

const TABS = [['transcript', 'Transcript'], ['prompt', 'Prompt'], ['output', 'Answer'],
  ['stderr', 'Stderr'], ['stdout', 'Raw'], ['messages', 'Messages']];

function viewInstance(scope, main, { p, a, key }) {
  document.title = `conductor · ${key}`;
  const st = { p, a, key, inst: null, iters: [], apply: null, run: null, tab: 'transcript', shown: null };
  st.row = h('div', { id: 'instance-row' }, h('p', { class: 'muted' }, 'Loading…'));
  st.actions = h('div', { class: 'actions' });
  st.table = h('table', { id: 'iterations' });
  st.panel = h('div', { id: 'tab-panel', role: 'tabpanel' });
  st.tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Run files' }, TABS.map(([id, label]) =>
    h('button', { type: 'button', role: 'tab', 'data-tab': id, id: `tab-${id}`, onclick: () => selectTab(scope, st, id) }, label)));
  main.append(crumbs(['Overview', '#/'], p, [a, applyHref(p, a)], key),
    h('div', { class: 'title-row' }, h('h1', { class: 'mono' }, key), h('span', { id: 'instance-state' })),
    st.row, st.actions,
    h('h2', {}, 'Iterations'), h('div', { class: 'scroll-x' }, st.table),
    st.tabs, st.panel);
  st.tabScope = new Scope(scope);
  const path = `${applyPath(p, a)}/instances/${enc(key)}`;
  // The iterations change only with the apply, so each apply event fetches
  // them again; one fetch at a time, and one more if events came meanwhile.
  let busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const r = await api('GET', path);
      if (!scope.alive) return;
      st.inst = r.instance;
      st.merge = r.merge || null;
      st.iters = (r.iterations || []).slice().sort((x, y) => x.iteration - y.iteration);
      renderInstance(scope, st);
    } catch (e) { if (scope.alive) showError(e); } finally {
      busy = false;
      if (again && scope.alive) { again = false; refresh(); }
    }
  };
  refresh();
  stream(scope, applyPath(p, a) + '/stream', { apply: d => { st.apply = d; renderActions(st); refresh(); } }, applyPath(p, a));
}

// The run the tabs show: the one picked in the table, else the latest.
const shownRun = st => st.iters.find(i => i.run_id === st.run) || st.iters[st.iters.length - 1] || null;

function renderInstance(scope, st) {
  const x = st.inst;
  $('#instance-state').replaceChildren(badge(x.state));
  keepFocus(st.row, () => renderRow(st));
  renderActions(st);
  keepFocus(st.table, () => renderIterations(scope, st));
  // Only a new run (or, for Messages, a task) changes what the tab shows; a
  // streamed file follows its run to the end by itself.
  if (tabSubject(st) !== st.shown) selectTab(scope, st, st.tab);
}

const tabSubject = st => (st.tab === 'messages' ? `task:${st.inst?.task_id || ''}` : `run:${shownRun(st)?.run_id || ''}`);

function renderRow(st) {
  const { p, a, inst: x } = st;
  const running = x.state === 'running';
  const links = keys => keys.map((k, i) => [i ? ', ' : '', h('a', { href: instHref(p, a, k), class: 'mono' }, k)]);
  const rows = [
    ['State', badge(x.state)],
    ['Node', x.node],
    ['Iterations', String(x.iterations ?? 0)],
    ['Stop reason', x.result_stop_reason ? `${x.result_stop_reason} (up to date)` : x.stop_reason],
    ['Why', x.why ? h('span', { class: 'why' }, x.why) : null],
    ['Cost', x.cost_usd != null || running ? fmtCost(x.cost_usd, running) : null],
    ['Tokens', x.input_tokens != null ? `in ${fmtNum(x.input_tokens)} · out ${fmtNum(x.output_tokens)}` : null],
    ['Running for', running && x.running_ms != null ? ticking(x.running_ms, true) : null],
    ['Silent', running && x.silent_ms != null ? ticking(x.silent_ms, true, 'idle ') : null],
    ['Activity', x.activity ? h('span', { class: 'mono' }, x.activity) : null],
    ['Job', x.job ? h('span', { class: 'mono' }, x.worker ? `${x.job} on ${x.worker}` : x.job) : null],
    ['Branch', x.branch ? [h('span', { class: 'mono' }, x.branch), x.changed ? ` (${x.changed})` : ''] : null],
    ['Merged', st.merge ? h('pre', { class: 'merge-report' }, st.merge) : null],
    ['Needs', x.needs?.length ? links(x.needs) : null],
    ['Waiting for', x.waiting_for?.length ? links(x.waiting_for) : null],
    ['Task', x.task_id ? h('a', { href: busHref(p, x.task_id), class: 'mono' }, x.task_id) : null],
  ];
  // Long texts get a line of their own; short facts share lines.
  const wide = ['Why', 'Activity', 'Branch', 'Merged', 'Needs', 'Waiting for'];
  st.row.replaceChildren(h('dl', { class: 'facts' }, rows.filter(([, v]) => v != null && v !== '')
    .map(([k, v]) => h('div', { class: wide.includes(k) ? 'wide' : null }, h('dt', {}, k), h('dd', {}, v)))));
}

function renderActions(st) {
  const { p, a, key, inst: x } = st;
  const base = `${applyPath(p, a)}/instances/${enc(key)}`;
  keepFocus(st.actions, () => {
    st.actions.replaceChildren(h('a', { href: applyHref(p, a), class: 'pill' }, '← the apply'));
    if (!x || server.read_only) return;
    if (x.state === 'running') {
      st.actions.append(h('button', { id: 'stop-instance', type: 'button', class: 'danger',
        onclick: ev => act(ev.currentTarget, `${base}/stop`, 'Stopping this instance’s loop…') }, '■ Stop instance'));
    } else if (st.apply && !st.apply.running) {
      st.actions.append(h('button', { id: 'rerun', type: 'button',
        onclick: ev => act(ev.currentTarget, `${base}/rerun`, 'Re-run started: the apply will show it.') }, '↻ Re-run'));
    }
  });
}

function renderIterations(scope, st) {
  const shown = shownRun(st);
  const head = h('thead', {}, h('tr', {}, ['#', 'status', 'agent', 'start', 'duration', 'exit',
    'stop reason / why', 'tokens in / out', 'cost'].map(t => h('th', { scope: 'col' }, t))));
  const body = h('tbody', {}, st.iters.map(it => {
    const live = it.status === 'running';
    const ms = it.duration_ms ?? (live && it.start ? Date.now() - Date.parse(it.start) : null);
    return h('tr', { 'data-iteration': it.iteration, class: it === shown ? 'shown' : null, 'aria-current': it === shown ? 'true' : null },
      h('td', {}, h('button', { type: 'button', class: 'link', 'data-iteration': it.iteration,
        title: 'show this run in the tabs below', onclick: () => { st.run = it.run_id; renderInstance(scope, st); } }, `#${it.iteration}`)),
      // A run that exited did not necessarily finish its node: the stop
      // reason column says whether it did.
      h('td', {}, badge(it.status === 'completed' ? (it.stop_reason ? 'done' : 'exited') : it.status)),
      h('td', {}, it.agent || ''),
      h('td', {}, timeEl(it.start)),
      h('td', { class: 'num' }, ticking(ms, live)),
      h('td', { class: 'num' }, it.exit_code ?? ''),
      h('td', { class: 'why' }, it.stop_reason || it.why || ''),
      h('td', { class: 'num' }, `${fmtNum(it.input_tokens)} / ${fmtNum(it.output_tokens)}`),
      h('td', { class: 'num' }, fmtCost(it.cost_usd, live)));
  }));
  st.table.replaceChildren(head, body);
  if (!st.iters.length) st.table.append(h('caption', {}, 'No iteration yet.'));
}

function selectTab(scope, st, tab) {
  st.tab = tab;
  for (const b of st.tabs.children) b.setAttribute('aria-selected', b.dataset.tab === tab);
  st.panel.setAttribute('aria-labelledby', `tab-${tab}`);
  st.tabScope.close();
  st.tabScope = new Scope(scope);
  const run = shownRun(st);
  st.shown = tabSubject(st);
  const task = st.inst?.task_id;
  if (!task) {
    st.panel.replaceChildren(h('p', { class: 'empty' }, st.inst ? 'This instance has not run yet.' : 'Loading…'));
  } else if (tab === 'messages') {
    st.panel.replaceChildren();
    mountBus(st.tabScope, st.panel, st.p, task);
  } else if (!run) {
    st.panel.replaceChildren(h('p', { class: 'empty' }, 'No run yet.'));
  } else {
    showText(st.tabScope, st.panel, runPath(st.p, task, run.run_id, tab), tab, run);
  }
}

// A run file. The transcript, and any file of a running run, is streamed and
// grows as the agent works; a finished run's other files are read once.
function showText(scope, panel, url, file, run) {
  const pre = h('pre', { class: 'text', id: file === 'transcript' ? 'transcript' : null, 'data-file': file, tabindex: '0' });
  const status = h('p', { class: 'muted small text-status' }, `run ${run.run_id} · `);
  const state = h('span', {}, 'loading…');
  status.append(state);
  panel.replaceChildren(status, pre);
  const append = text => {
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    pre.append(text);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  };
  if (file === 'transcript' || run.status === 'running') {
    state.textContent = 'live';
    const conn = stream(scope, `${url}/stream`, {
      chunk: d => append(d?.text ?? ''),
      end: () => { conn.close(); state.textContent = 'the run has ended'; if (!pre.textContent) pre.textContent = '(empty)'; },
    }, url);
    return;
  }
  apiText(url).then(t => {
    if (!scope.alive) return;
    pre.textContent = t || '(empty)';
    state.textContent = `${fmtNum(t.length)} characters`;
  }, e => {
    if (!scope.alive) return;
    state.textContent = 'not available';
    pre.textContent = e.message;
    showError(e);
  });
}

/* ---------- the bus ---------- */

function viewBus(scope, main, { p, t }) {
  document.title = `conductor · bus · ${t || p}`;
  main.append(crumbs(['Overview', '#/'], t ? [p, busHref(p)] : p, t || 'bus'),
    h('h1', {}, t ? 'Task bus' : 'Project bus', ' ', h('span', { class: 'muted mono small' }, t || p)));
  mountBus(scope, main, p, t);
}

const POST_TYPES = ['USER', 'ANSWER', 'PROGRESS', 'FACT', 'DECISION', 'QUESTION'];
const parentId = x => (typeof x === 'string' ? x : x?.msg_id || x?.id || '');

// The bus of a project (task '') or of one task: filters, the list (oldest
// first, like a conversation) and the compose form.
function mountBus(scope, root, p, task) {
  const st = { msgs: [], ids: new Set(), answered: new Set(), types: new Set() };
  const typeSel = h('select', { 'aria-label': 'Filter by type', name: 'filter-type' }, h('option', { value: '' }, 'all types'));
  const text = h('input', { type: 'search', name: 'filter-text', placeholder: 'filter text', 'aria-label': 'Filter by text' });
  const count = h('span', { class: 'muted small', 'aria-live': 'polite' });
  const list = h('ol', { id: 'bus', class: 'bus', role: 'log', 'aria-label': 'Messages', tabindex: '0' });
  const earlier = h('button', { type: 'button', class: 'link', onclick: () => loadEarlier() }, 'load earlier messages');
  const q = task ? `?task_id=${enc(task)}` : '';
  const base = `/api/v1/projects/${enc(p)}/messages`;
  const compose = server.read_only ? null : composeForm(p, task);
  root.append(h('div', { class: 'filters' }, typeSel, text, count, earlier), list, compose);

  const shows = m => (!typeSel.value || m.type === typeSel.value)
    && (!st.q || `${m.type}\n${m.task_id}\n${m.msg_id}\n${m.body}`.toLowerCase().includes(st.q));
  const rerender = () => {
    st.q = text.value.trim().toLowerCase();
    const shown = st.msgs.filter(shows);
    list.replaceChildren(...shown.map(m => messageEl(m, st, p, task, compose)));
    count.textContent = shown.length === st.msgs.length ? `${st.msgs.length} messages` : `showing ${shown.length} of ${st.msgs.length}`;
    list.scrollTop = list.scrollHeight;
  };
  const remember = m => {
    if (st.ids.has(m.msg_id)) return false;
    st.ids.add(m.msg_id);
    for (const x of m.parents || []) st.answered.add(parentId(x));
    if (!st.types.has(m.type)) {
      st.types.add(m.type);
      typeSel.append(h('option', { value: m.type }, m.type));
    }
    return true;
  };
  typeSel.addEventListener('change', rerender);
  text.addEventListener('input', rerender);
  // One new message: appended in place, keeping the reader's scroll unless
  // they were at the end; a reply marks its question answered.
  const add = m => {
    if (!remember(m)) return;
    st.msgs.push(m);
    for (const x of m.parents || []) $(`.message[data-msg-id="${CSS.escape(parentId(x))}"]`, list)?.classList.add('answered');
    if (shows(m)) {
      const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
      list.append(messageEl(m, st, p, task, compose));
      if (atEnd) list.scrollTop = list.scrollHeight;
    }
    count.textContent = `${st.msgs.length} messages`;
  };
  // The stream starts with the last 50; older ones come from the plain list.
  async function loadEarlier() {
    earlier.disabled = true;
    try {
      const r = await api('GET', `${base}?${task ? `task_id=${enc(task)}&` : ''}limit=1000`);
      if (!scope.alive) return;
      const older = (r.messages || []).filter(remember);
      st.msgs = older.concat(st.msgs);
      rerender();
      earlier.hidden = true;
    } catch (e) { showError(e); earlier.disabled = false; }
  }
  stream(scope, `${base}/stream${q}`, { message: add }, `${base}${q}${q ? '&' : '?'}limit=1`);
  count.textContent = 'loading…';
}

function messageEl(m, st, p, task, compose) {
  const li = h('li', { class: `message t-${String(m.type).toLowerCase().replace(/[^a-z_]/g, '')}`, 'data-msg-id': m.msg_id, 'data-type': m.type },
    h('div', { class: 'msg-meta' }, timeEl(m.ts), ' ', h('span', { class: 'type' }, m.type),
      !task && m.task_id ? [' ', h('a', { href: busHref(p, m.task_id), class: 'mono small' }, m.task_id)] : null,
      (m.parents || []).map(x => [' ', h('span', { class: 'muted small', title: parentId(x) }, '↪ reply')]),
      m.type === 'QUESTION' ? h('span', { class: 'answered-mark small' }, ' ✓ answered') : null),
    h('div', { class: 'msg-body' }, m.body || ''));
  if (st.answered.has(m.msg_id)) li.classList.add('answered');
  if (m.type === 'QUESTION' && compose) {
    li.append(h('button', { type: 'button', class: 'reply', onclick: () => compose.replyTo(m.msg_id) }, 'Reply'));
  }
  return li;
}

function composeForm(p, task) {
  const type = h('select', { name: 'type', 'aria-label': 'Message type' }, POST_TYPES.map(t => h('option', { value: t }, t)));
  const body = h('textarea', { name: 'body', rows: '3', required: true, placeholder: 'Write to the bus… (Ctrl+Enter sends)', 'aria-label': 'Message body' });
  const parent = h('input', { type: 'hidden', name: 'parent', value: '' });
  const replying = h('p', { class: 'replying small', hidden: true });
  const send = h('button', { type: 'submit' }, 'Post');
  const form = h('form', { id: 'compose', class: 'compose', 'aria-label': `Post to the ${task ? 'task' : 'project'} bus` },
    replying, h('div', { class: 'compose-row' }, type, body, send), parent);
  const setParent = id => {
    parent.value = id || '';
    replying.hidden = !id;
    replying.replaceChildren(...(id ? ['replying to ', h('code', {}, id), ' ',
      h('button', { type: 'button', class: 'link', onclick: () => setParent('') }, 'cancel')] : []));
  };
  form.replyTo = id => { setParent(id); type.value = 'ANSWER'; body.focus(); };
  body.addEventListener('keydown', ev => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) form.requestSubmit(); });
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const msg = { type: type.value, body: body.value };
    if (task) msg.task_id = task;
    if (parent.value) msg.parent = parent.value;
    send.disabled = true;
    try {
      await api('POST', `/api/v1/projects/${enc(p)}/messages`, msg);
      body.value = '';
      setParent('');
    } catch (e) { showError(e); } finally { send.disabled = false; }
  });
  return form;
}

/* ---------- start a workflow ---------- */

async function viewStart(scope, main) {
  document.title = 'conductor · start';
  main.append(crumbs(['Overview', '#/'], 'Start'), h('h1', {}, 'Start a workflow'));
  if (server.read_only || !server.workflows_dir) {
    main.append(h('p', { class: 'empty' }, server.read_only ? 'This server is read-only.'
      : 'No workflow folder: start the server with --workflows DIR.'));
    return;
  }
  let list;
  try { list = (await api('GET', '/api/v1/workflows')).workflows || []; } catch (e) { showError(e); return; }
  if (!scope.alive) return;
  if (!list.length) { main.append(h('p', { class: 'empty' }, `No workflow file under ${server.workflows_dir}.`)); return; }
  const file = h('select', { name: 'file', id: 'start-file' }, list.map(w =>
    h('option', { value: w.file }, w.name ? `${w.name} — ${w.file}` : w.file)));
  const fields = h('div', { class: 'params' });
  const submit = h('button', { type: 'submit' }, '▶ Start');
  const started = h('div', { id: 'started', role: 'status' });
  const form = h('form', { id: 'start-form', class: 'start-form' },
    h('label', { for: 'start-file' }, 'Workflow file'), file, fields, submit);
  main.append(form, started);
  const chosen = () => list.find(w => w.file === file.value);
  const show = () => {
    const w = chosen();
    submit.disabled = !!w.error;
    fields.replaceChildren(...(w.error ? [h('p', { class: 'wf-error', role: 'note' }, h('strong', {}, 'This workflow does not load: '), w.error)]
      : [w.project ? h('p', { class: 'muted small' }, `project ${w.project}`) : null,
        ...(w.params || []).map(paramField)].filter(Boolean)));
    if (!w.error && !(w.params || []).length) fields.append(h('p', { class: 'muted' }, 'No params.'));
  };
  file.addEventListener('change', show);
  show();
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const w = chosen();
    let params;
    try { params = collectParams(form, w.params || []); } catch (e) { showError(e); return; }
    submit.disabled = true;
    try {
      const r = await api('POST', '/api/v1/workflows/start', { file: w.file, params });
      clearError();
      started.replaceChildren(h('p', {}, `✓ Started ${w.name || w.file}: conductor apply runs as pid `,
        h('strong', { class: 'pid' }, String(r?.pid)), '. Its apply shows on the overview once it records its start. '),
      h('p', {}, h('a', { href: '#/' }, '← Back to the overview')));
      started.scrollIntoView({ block: 'nearest' });
    } catch (e) { showError(e); } finally { submit.disabled = false; }
  });
}

// `list` is the format's; the others are there in case the API grows them.
const isJsonType = t => /^(list|array|object|map|table|json)/i.test(t || '');

function paramField(pm) {
  const id = `param-${pm.name}`;
  const t = String(pm.type || 'string').toLowerCase();
  const attrs = { id, name: id, required: pm.required && t !== 'bool', 'aria-describedby': pm.description ? `${id}-d` : null };
  let input;
  if (t === 'bool' || t === 'boolean') input = h('input', { ...attrs, type: 'checkbox', checked: pm.default === true });
  else if (t === 'int' || t === 'integer' || t === 'float' || t === 'number') {
    input = h('input', { ...attrs, type: 'number', step: t.startsWith('int') ? '1' : 'any', value: pm.default ?? null });
  } else if (isJsonType(t)) {
    input = h('textarea', { ...attrs, rows: '3', class: 'mono', placeholder: 'JSON' });
    input.value = pm.default !== undefined && pm.default !== null ? JSON.stringify(pm.default) : '';
  } else input = h('input', { ...attrs, type: 'text', value: pm.default ?? null });
  return h('div', { class: `param ${t === 'bool' ? 'check' : ''}` },
    h('label', { for: id }, h('span', { class: 'mono' }, pm.name), ' ', h('span', { class: 'ptype' }, t),
      pm.required ? h('span', { class: 'req' }, ' required') : null),
    input,
    pm.description ? h('p', { id: `${id}-d`, class: 'muted small' }, pm.description) : null);
}

// Only what differs from a default is sent: a default stays the file's own
// (a `path` default is relative to the file, a --set path to the cwd).
function collectParams(form, params) {
  const out = {};
  for (const pm of params) {
    const el = form.elements[`param-${pm.name}`];
    if (!el) continue;
    const t = String(pm.type || '').toLowerCase();
    let v;
    if (el.type === 'checkbox') v = el.checked;
    else if (el.value === '') continue;
    else if (el.type === 'number') v = Number(el.value);
    else if (el.tagName === 'TEXTAREA' && isJsonType(t)) {
      try { v = JSON.parse(el.value); } catch (e) { el.focus(); throw new Error(`${pm.name}: not valid JSON (${e.message})`); }
    } else v = el.value;
    if (pm.default !== undefined && JSON.stringify(v) === JSON.stringify(pm.default)) continue;
    out[pm.name] = v;
  }
  return out;
}

/* ---------- boot ---------- */

async function boot() {
  $('#error-close').addEventListener('click', clearError);
  server = await api('GET', '/api/v1/server').catch(e => { showError(e); return server; });
  $('#version').textContent = server.version ? `v${server.version}` : '';
  $('#nav-start').hidden = !!server.read_only || !server.workflows_dir;
  document.body.classList.toggle('read-only', !!server.read_only);
  if (server.read_only) $('#version').textContent += ' · read-only';
  window.addEventListener('hashchange', route);
  route();
}

boot();
