'use strict';
/*
 * crmdb console: a small single-page app over the example server's JSON API.
 *
 * Hash routes (#/query, #/records/contact, #/record/contact/12, #/funnel, …) each have
 * one renderer. Renderers only ever ask for pages (limit ≤ 50), counts (limit=0) and
 * server-side group-bys, so the console stays fast with a million contacts.
 *
 * The server's Content-Security-Policy forbids inline styles and scripts: bar widths
 * are set through the CSSOM (`applyBars`), never with a `style` attribute, and every
 * handler is attached from here.
 *
 * Three scripts, loaded in order: this one (kinds, formatting, the API client, shared
 * widgets, routing), `console-records.js` (the query, table and record pages) and
 * `console-pages.js` (analytics, segments, identity; the route table and the start).
 */

// ---------------------------------------------------------------- kinds and fields

/** `kind` is the singular name used in JSON bodies, `path` the plural URL segment. */
const KINDS = [
  { kind: 'contact', path: 'contacts', label: 'Contacts' },
  { kind: 'account', path: 'accounts', label: 'Accounts' },
  { kind: 'deal', path: 'deals', label: 'Deals' },
  { kind: 'activity', path: 'activities', label: 'Activities' },
  { kind: 'order', path: 'orders', label: 'Orders' },
  { kind: 'product', path: 'products', label: 'Products' },
  { kind: 'owner', path: 'owners', label: 'Owners' },
  { kind: 'task', path: 'tasks', label: 'Tasks' },
];

/** A kind by its singular or plural name, or null. */
function kindInfo(name) {
  return KINDS.find((k) => k.kind === name || k.path === name) || null;
}

/**
 * Columns of the records table, one spec per column: `key[:type][>sort]`. `key` is the
 * record JSON's field; `type` is money, time, int, list (tags), subject, or a kind name
 * for an id pointing at that kind; `>` makes the column sortable by the query field
 * after it (or by `key` itself). Names, emails and titles are not indexed, so they are
 * not sortable.
 */
const COLUMNS = {
  contact: cols('id> name email stage> region> owner:owner> lifetime_value:money> tags:list created_at:time>created'),
  account: cols('id> name industry> region> tier> size:int> owner:owner> tags:list'),
  deal: cols('id> name stage> pipeline> owner:owner> contact:contact> account:account> amount:money> close_date:time>'),
  activity: cols('id> kind> direction> subject:subject owner:owner> at:time> outcome'),
  order: cols('id> contact:contact> account:account> status> at:time> total:money> currency'),
  product: cols('id> sku name category> list_price:money>'),
  owner: cols('id> name email team> region> capacity:int>'),
  task: cols('id> title status> assignee:owner> related:subject due:time>'),
};

function cols(spec) {
  const TYPES = new Set(['money', 'time', 'int', 'list', 'subject']);
  return spec.split(' ').map((part) => {
    const [head, sortField] = part.split('>');
    const [key, type] = head.split(':');
    const col = { key, label: key.replace(/_at$/, '').replace(/_/g, ' ') };
    if (type) col.type = TYPES.has(type) ? type : 'ref';
    if (col.type === 'ref') col.ref = type;
    if (part.includes('>')) col.sort = sortField || key;
    return col;
  });
}

/** Group-by charts of the query page: categorical fields, and a numeric field to sum. */
const GROUPS = {
  contact: { fields: ['stage', 'region', 'owner', 'tag'], sum: 'lifetime_value' },
  deal: { fields: ['stage', 'owner', 'tag'], sum: 'amount' },
  account: { fields: ['industry', 'region', 'tier', 'owner', 'tag'] },
  activity: { fields: ['kind', 'direction', 'owner'] },
  order: { fields: ['status'], sum: 'total' },
  product: { fields: ['category'], sum: 'list_price' },
  owner: { fields: ['team', 'region'], sum: 'capacity' },
  task: { fields: ['status', 'assignee'] },
};

/** Related records of the record page: [kind, query field] pairs, `field = ID`. */
const RELATED = {
  contact: [['order', 'contact'], ['activity', 'contact'], ['deal', 'contact'], ['task', 'contact']],
  account: [['contact', 'account'], ['deal', 'account'], ['order', 'account']],
  deal: [['activity', 'deal'], ['task', 'deal']],
  owner: [['contact', 'owner'], ['account', 'owner'], ['deal', 'owner']],
  product: [['order', 'product'], ['deal', 'product']],
};

/** Query fields holding record ids: their literals are bare integers. */
const ID_FIELDS = new Set(['owner', 'account', 'contact', 'deal', 'assignee', 'participant', 'product']);
/** JSON keys of record fields holding ids, and the kind they point at. */
const REF_KEYS = { owner: 'owner', account: 'account', contact: 'contact', deal: 'deal',
  assignee: 'owner', participants: 'contact', product: 'product' };
const MONEY_KEYS = new Set(['lifetime_value', 'amount', 'total', 'list_price', 'total_spent',
  'unit_price', 'won_amount', 'weighted_pipeline', 'revenue']);
const TIME_KEY = /^(at|due|close_date|last_order|last_activity|refreshed_at)$|_at$/;

const OWNER_SORTS = ['won_amount', 'won_count', 'conversion_rate', 'weighted_pipeline',
  'activity_count', 'cycle_time'];
const TAIL_KEEP = 200;

// ---------------------------------------------------------------- formatting

/** Escapes text for HTML content and attribute values. */
function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => (
    { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

const DASH = '<span class="muted">—</span>';

function fmtInt(n) {
  if (n === null || n === undefined || n === '') return '—';
  const x = Number(n);
  return Number.isFinite(x) ? x.toLocaleString('en-US') : String(n);
}

/** Money is an exact decimal string ("1234.50"): separators go in, digits stay exact. */
function fmtMoney(v) {
  if (v === null || v === undefined) return '—';
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(String(v));
  if (!m) return String(v);
  return m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (m[3] || '');
}

/** A group sum: a decimal string for money, else a number. */
function fmtSum(v) {
  return typeof v === 'string' ? fmtMoney(v) : fmtInt(v);
}

/** Times come as "YYYY-MM-DDTHH:MM:SSZ" or (lineages, consent) epoch seconds. */
function fmtTime(v) {
  if (v === null || v === undefined || v === '') return '—';
  const text = typeof v === 'number' ? new Date(v * 1000).toISOString().replace(/\.\d+Z$/, 'Z') : String(v);
  return text.replace('T', ' ').replace(/Z$/, ' UTC');
}

function fmtPercent(p) {
  return p === null || p === undefined ? '—' : `${Number(p).toFixed(1)}%`;
}

function fmtDays(d) {
  return d === null || d === undefined ? '—' : `${Number(d).toFixed(1)} d`;
}

/** A percentage: the server's `*_percent` companion when present, else rate × 100. */
function percentOf(obj, percentKey, rateKey) {
  if (typeof obj[percentKey] === 'number') return obj[percentKey];
  return typeof obj[rateKey] === 'number' ? obj[rateKey] * 100 : null;
}

/** Days: the server's `*_days` companion when present, else seconds / 86400. */
function daysOf(obj, daysKey, secondsKey) {
  if (typeof obj[daysKey] === 'number') return obj[daysKey];
  return typeof obj[secondsKey] === 'number' ? obj[secondsKey] / 86400 : null;
}

/** A query string from an object, skipping null, undefined and empty values. */
function qs(params) {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

const recordHash = (kind, id) => `#/record/${kind}/${id}`;
const queryHash = (kind, query) => `#/query${qs({ kind, query })}`;
function recordsHash(kind, { query, sort, descending } = {}) {
  return `#/records/${kind}${qs({ query, sort, descending: descending ? '1' : null })}`;
}

function recordLink(kind, id, text) {
  return `<a href="${esc(recordHash(kind, id))}">${esc(text ?? `${kind} #${id}`)}</a>`;
}

/** An activity's or task's subject, `{"contact": 3}`. */
function subjectLink(subject) {
  if (!subject || typeof subject !== 'object') return DASH;
  const [kind, id] = Object.entries(subject)[0] || [];
  return kind ? recordLink(kind, id) : DASH;
}

function tagsHtml(tags) {
  return (tags || []).map((t) => `<span class="tag">${esc(t)}</span>`).join(' ') || DASH;
}

/** A query literal for `field = value` (ids bare, everything else a quoted string). */
function literal(field, value) {
  if (ID_FIELDS.has(field) && /^\d+$/.test(value)) return value;
  return `"${String(value).replace(/[\\"]/g, '\\$&')}"`;
}

/** `query AND condition`, parenthesised; `*` or blank is just the condition. */
function refine(query, condition) {
  const q = (query || '').trim();
  return !q || q === '*' ? condition : `(${q}) AND ${condition}`;
}

/** Today, a number of days from today, as YYYY-MM-DD (UTC). */
function isoDate(offsetDays = 0) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

/** Widths of `[data-bar]` elements (percentages), set through the CSSOM (CSP). */
function applyBars(root) {
  root.querySelectorAll('[data-bar]').forEach((bar) => {
    bar.style.width = `${Math.max(0, Math.min(100, Number(bar.dataset.bar)))}%`;
  });
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message, detail = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Where the tab keeps the bearer token of a server run with --tokens. */
const TOKEN_KEY = 'crmdb.token';

/**
 * Takes a token given as `#token=…` in the address: kept for the tab, then taken out
 * of the address (and of the history), which moves on to the query page.
 */
function takeToken() {
  const match = location.hash.match(/^#token=(.*)$/);
  if (!match) return;
  try {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
  } catch (_) {
    /* storage refused: the calls go without a token and say so */
  }
  history.replaceState(null, '', `${location.pathname}${location.search}#/query`);
}

/** The token to send, if the console was given one. */
function bearer() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch (_) {
    return null;
  }
}

/**
 * Calls the API; resolves to the parsed JSON (null for an empty body), rejects with an
 * ApiError carrying the server's `{"error": {"code", "message", …}}`.
 */
async function api(method, path, body) {
  const init = { method, headers: { accept: 'application/json' } };
  const token = bearer();
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  let text;
  try {
    response = await fetch(path, init);
    text = await response.text();
  } catch (err) {
    throw new ApiError(0, 'network_error', `could not reach the server (${err.message})`);
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const e = data && data.error;
    if (e && typeof e === 'object') throw new ApiError(response.status, e.code, e.message, e);
    throw new ApiError(response.status, `http_${response.status}`, text.slice(0, 300) || response.statusText);
  }
  return data;
}

function errorHtml(err) {
  const code = err instanceof ApiError ? err.code : 'client_error';
  const status = err instanceof ApiError && err.status ? ` (${err.status})` : '';
  const hint = code === 'unauthorized' ? ' This server wants a token: open the console as <code>/#token=YOUR_TOKEN</code>.' : '';
  return `<div class="error" role="alert"><strong>${esc(code)}${esc(status)}</strong> ${esc(err.message)}${hint}</div>`;
}

/** Fills `elem` from `load()`: a loading note, then `render(data)` or the error. */
async function loadInto(elem, load, render) {
  elem.innerHTML = '<p class="muted loading">Loading…</p>';
  try {
    const data = await load();
    elem.innerHTML = render(data);
    applyBars(elem);
    return data;
  } catch (err) {
    elem.innerHTML = errorHtml(err);
    return null;
  }
}

/** The first page of `kind` records matching `query` (limit 0 is the count alone). */
function listRecords(kind, params) {
  return api('GET', `/${kindInfo(kind).path}${qs(params)}`);
}

function groupBy(kind, query, field, sum) {
  const body = { kind, query, limit: 0, group_by: field };
  if (sum) body.sum = sum;
  return api('POST', '/segments/query', body);
}

// ---------------------------------------------------------------- shared widgets

/** A card of bars, one per group (top 12), proportional to the count, sum beside. */
function barChartHtml(title, field, groups, { kind, query, sum } = {}) {
  const top = groups.slice(0, 12);
  const max = Math.max(1, ...top.map((g) => g.count));
  const hasSum = top.some((g) => g.sum !== undefined);
  const rows = top.map((g) => {
    const label = kind
      ? `<a href="${esc(queryHash(kind, refine(query, `${field} = ${literal(field, g.value)}`)))}">${esc(g.value)}</a>`
      : esc(g.value);
    return `<tr><th scope="row" class="bar-label">${label}</th>`
      + `<td class="bar-cell"><div class="bar" data-bar="${((g.count / max) * 100).toFixed(1)}"></div></td>`
      + `<td class="num">${esc(fmtInt(g.count))}</td>`
      + (hasSum ? `<td class="num sum">${esc(fmtSum(g.sum))}</td>` : '') + '</tr>';
  });
  const note = groups.length > top.length ? `top ${top.length} of ${fmtInt(groups.length)}` : `${groups.length} groups`;
  const head = `<tr><th>${esc(field)}</th><th></th><th class="num">count</th>${hasSum ? `<th class="num">${esc(sum || 'sum')}</th>` : ''}</tr>`;
  return `<section class="card chart" data-field="${esc(field)}"><h3>${esc(title)}</h3>`
    + `<p class="muted small">${esc(note)}</p>`
    + (rows.length ? `<table class="bars"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`
      : '<p class="muted">No records.</p>') + '</section>';
}

/** A plain table from column specs `{label, cell(row), num}`. */
function tableHtml(id, columns, rows, empty = 'Nothing to show.') {
  if (!rows.length) return `<table${id ? ` id="${id}"` : ''} class="grid"><tbody></tbody></table><p class="muted">${esc(empty)}</p>`;
  const head = columns.map((c) => `<th${c.num ? ' class="num"' : ''}>${esc(c.label)}</th>`).join('');
  const body = rows.map((r) => `<tr>${columns.map((c) => `<td${c.num ? ' class="num"' : ''}>${c.cell(r)}</td>`).join('')}</tr>`).join('');
  return `<table${id ? ` id="${id}"` : ''} class="grid"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** The remembered analytics window, shared by the funnel, owners and products pages. */
const windowState = { from: isoDate(-365), to: isoDate(0) };

function windowFormHtml(prefix, extra = '') {
  return `<form class="toolbar" id="${prefix}-form">`
    + `<label>From <input type="date" id="${prefix}-from" value="${esc(windowState.from)}"></label>`
    + `<label>To <input type="date" id="${prefix}-to" value="${esc(windowState.to)}"></label>`
    + `${extra}<button type="submit">Apply</button></form>`;
}

/**
 * The window `[from, to)` the form shows, as API arguments. The end date is inclusive
 * for people: today means "now", an earlier day means up to the end of that day.
 */
function readWindow(prefix) {
  windowState.from = document.getElementById(`${prefix}-from`).value;
  windowState.to = document.getElementById(`${prefix}-to`).value;
  let to = windowState.to;
  if (to === isoDate(0)) {
    to = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  } else if (/^\d{4}-\d{2}-\d{2}$/.test(to)) {
    to = new Date(Date.parse(`${to}T00:00:00Z`) + 86400000).toISOString().slice(0, 10);
  }
  return { from: windowState.from, to };
}

/**
 * A page of one analytics POST over a time window: the form (window plus `extra`
 * inputs, whose values `body()` adds), reloaded on submit or when a select changes.
 */
async function analyticsPage(ctx, { page, title, path, render, extra = '', body = () => ({}) }) {
  view().innerHTML = `<section class="card"><h2>${esc(title)}</h2>${windowFormHtml(page, extra)}</section>`
    + `<div id="${page}-box"></div>`;
  const load = async () => {
    const request = { ...body(), ...readWindow(page) };
    await loadInto(document.getElementById(`${page}-box`), () => api('POST', path, request), render);
    ctx.done(page);
  };
  const form = document.getElementById(`${page}-form`);
  form.addEventListener('submit', (e) => { e.preventDefault(); ctx.busy(); load(); });
  form.addEventListener('change', (e) => { if (e.target.tagName === 'SELECT') { ctx.busy(); load(); } });
  await load();
}

/** Stat tiles from [label, text] pairs. */
function statsHtml(pairs) {
  return `<div class="stats">${pairs.map(([label, text]) => `<div class="stat"><div class="stat-value">${esc(text)}</div>`
    + `<div class="muted small">${esc(label)}</div></div>`).join('')}</div>`;
}

// ---------------------------------------------------------------- routing

const view = () => document.getElementById('view');
let navToken = 0;
let leaving = [];

/** What a renderer gets: whether it is still current, cleanup hooks, and `done`. */
function makeContext(token) {
  return {
    alive: () => token === navToken,
    onLeave: (fn) => leaving.push(fn),
    /** Marks the page loaded (browser tests wait on these attributes). */
    done(page) {
      if (token !== navToken) return;
      document.body.dataset.page = page;
      document.body.dataset.loaded = '1';
    },
    /** Marks a reload within the page (paging) as under way. */
    busy() {
      if (token === navToken) document.body.dataset.loaded = '0';
    },
  };
}

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const q = hash.indexOf('?');
  const path = q < 0 ? hash : hash.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  const decode = (part) => { try { return decodeURIComponent(part); } catch (_) { return part; } };
  return { parts: path.split('/').filter(Boolean).map(decode), params };
}

function route() {
  leaving.forEach((fn) => { try { fn(); } catch (_) { /* a cleanup must not stop navigation */ } });
  leaving = [];
  const token = ++navToken;
  document.body.dataset.loaded = '0';
  const { parts, params } = parseHash();
  const name = parts[0] || 'query';
  document.querySelectorAll('#nav a').forEach((a) => {
    a.classList.toggle('active', a.dataset.route === name || (name === 'record' && a.dataset.route === 'records'));
  });
  const ctx = makeContext(token);
  const renderer = ROUTES[name];
  view().innerHTML = '';
  if (!renderer) {
    view().innerHTML = `<section class="card"><h2>Not found</h2><p>No page <code>${esc(location.hash)}</code>.</p></section>`;
    ctx.done('not-found');
    return;
  }
  Promise.resolve()
    .then(() => renderer(ctx, parts.slice(1), params))
    .catch((err) => {
      if (!ctx.alive()) return;
      view().insertAdjacentHTML('beforeend', errorHtml(err));
      ctx.done(name);
    });
}
