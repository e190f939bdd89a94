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

/**
 * Calls the API; resolves to the parsed JSON (null for an empty body), rejects with an
 * ApiError carrying the server's `{"error": {"code", "message", …}}`.
 */
async function api(method, path, body) {
  const init = { method, headers: { accept: 'application/json' } };
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
  return `<div class="error" role="alert"><strong>${esc(code)}${esc(status)}</strong> ${esc(err.message)}</div>`;
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

const ROUTES = {
  query: renderQuery,
  records: renderRecords,
  record: renderRecord,
  funnel: renderFunnel,
  owners: renderOwners,
  products: renderProducts,
  rfm: renderRfm,
  segments: renderSegments,
  identity: renderIdentity,
};

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

// ---------------------------------------------------------------- query page

/** The query page's last kind and text, kept across pages (segments use it). */
const queryState = { kind: 'contact', text: '' };

async function renderQuery(ctx, _parts, params) {
  if (kindInfo(params.get('kind') || '')) queryState.kind = kindInfo(params.get('kind')).kind;
  if (params.has('query')) queryState.text = params.get('query');
  const options = KINDS.map((k) => `<option value="${k.kind}"${k.kind === queryState.kind ? ' selected' : ''}>${esc(k.label)}</option>`).join('');
  view().innerHTML = `
    <section class="card">
      <h2>Query</h2>
      <div class="query-bar">
        <select id="query-kind" aria-label="Record kind">${options}</select>
        <input id="query-input" type="text" spellcheck="false" autocomplete="off"
          placeholder='tag:vip AND region = "shanghai" AND lifetime_value > 1000' value="${esc(queryState.text)}">
      </div>
      <p class="count-line"><span id="query-count" class="big-number"></span> <span class="muted">matching records</span>
        · <a id="open-table" href="#">open as table</a> · <a href="#/segments">save as segment</a></p>
      <div id="query-error" class="query-error" hidden></div>
      <p class="muted small">Syntax: <code>field:value</code>, <code>= != &lt; &lt;= &gt; &gt;=</code>,
        <code>in (a, b)</code>, <code>between a and b</code>, <code>within 90d</code>, <code>exists</code>,
        <code>AND OR NOT</code>, parentheses, <code>segment:name</code>, <code>*</code> for everything.</p>
    </section>
    <div id="group-charts" class="charts"></div>`;
  const input = document.getElementById('query-input');
  const select = document.getElementById('query-kind');
  const count = document.getElementById('query-count');
  let seq = 0;
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  const run = async (first) => {
    const mine = ++seq;
    const kind = select.value;
    const text = input.value;
    const query = text.trim() ? text : '*';
    queryState.kind = kind;
    queryState.text = text;
    document.getElementById('open-table').href = recordsHash(kind, { query: text.trim() || null });
    history.replaceState(null, '', queryHash(kind, text || null));
    count.dataset.pending = '1';
    try {
      const data = await listRecords(kind, { query, limit: 0 });
      if (mine !== seq || !ctx.alive()) return; // a newer request is under way
      count.textContent = String(data.count);
      showQueryError(null, query);
      delete count.dataset.pending;
      await loadGroupCharts(kind, query, () => mine === seq && ctx.alive());
    } catch (err) {
      if (mine !== seq || !ctx.alive()) return;
      count.textContent = '';
      showQueryError(err, query);
      delete count.dataset.pending;
      document.getElementById('group-charts').innerHTML = '';
    }
    if (first) ctx.done('query');
  };
  input.addEventListener('input', () => {
    // The text changed: a request under way is stale now, and the debounce wait
    // counts as in flight.
    seq += 1;
    count.dataset.pending = '1';
    clearTimeout(timer);
    timer = setTimeout(() => run(false), 150);
  });
  select.addEventListener('change', () => { clearTimeout(timer); run(false); });
  await run(true);
}

/**
 * Shows a query error in #query-error: for `invalid_query`, the message and the query
 * with a caret under the offset (a byte offset, turned into a character column).
 */
function showQueryError(err, query) {
  const box = document.getElementById('query-error');
  if (!box) return;
  if (!err) {
    box.hidden = true;
    box.innerHTML = '';
    delete box.dataset.offset;
    return;
  }
  box.hidden = false;
  const offset = err.detail && typeof err.detail.offset === 'number' ? err.detail.offset : null;
  if (err.code === 'invalid_query' && offset !== null) {
    box.dataset.offset = String(offset);
    const bytes = new TextEncoder().encode(query);
    const column = new TextDecoder().decode(bytes.slice(0, Math.min(offset, bytes.length))).length;
    box.innerHTML = `<div class="error-message"><strong>${esc(err.code)}</strong> ${esc(err.message)}</div>`
      + `<pre class="caret">${esc(query)}\n${' '.repeat(column)}^</pre>`;
  } else {
    delete box.dataset.offset;
    box.innerHTML = errorHtml(err);
  }
}

/** All group-by charts of a query at once, so that old charts stay until new ones come. */
async function loadGroupCharts(kind, query, stillCurrent) {
  const spec = GROUPS[kind];
  const box = document.getElementById('group-charts');
  if (!spec || !box) return;
  const charts = await Promise.all(spec.fields.map(async (field) => {
    try {
      const data = await groupBy(kind, query, field, spec.sum);
      return barChartHtml(`by ${field}`, field, data.groups || [], { kind, query, sum: spec.sum });
    } catch (err) {
      return `<section class="card chart" data-field="${esc(field)}"><h3>by ${esc(field)}</h3>${errorHtml(err)}</section>`;
    }
  }));
  if (!stillCurrent()) return;
  box.innerHTML = charts.join('');
  applyBars(box);
}

// ---------------------------------------------------------------- records page

function cellHtml(kind, col, record) {
  const v = record[col.key];
  if (col.key === 'id') return recordLink(kind, v, String(v));
  if (v === null || v === undefined || v === '') return DASH;
  switch (col.type) {
    case 'ref': return recordLink(col.ref, v, `#${v}`);
    case 'money': return esc(fmtMoney(v));
    case 'time': return esc(fmtTime(v));
    case 'int': return esc(fmtInt(v));
    case 'list': return tagsHtml(v);
    case 'subject': return subjectLink(v);
    default: return esc(typeof v === 'object' ? JSON.stringify(v) : v);
  }
}

const isNumCol = (col) => col.type === 'money' || col.type === 'int' || col.key === 'id';

function recordRowsHtml(kind, columns, items) {
  return items.map((r) => `<tr data-id="${esc(r.id)}" class="link-row">${columns
    .map((c) => `<td${isNumCol(c) ? ' class="num"' : ''}>${cellHtml(kind, c, r)}</td>`).join('')}</tr>`).join('');
}

/** A small table of records (related records), less the column they were picked by. */
function miniTableHtml(kind, items, without) {
  const columns = COLUMNS[kind].filter((c) => c.key !== without).slice(0, 6);
  const head = columns.map((c) => `<th>${esc(c.label || c.key)}</th>`).join('');
  return `<table class="grid compact"><thead><tr>${head}</tr></thead><tbody>${recordRowsHtml(kind, columns, items)}</tbody></table>`;
}

async function renderRecords(ctx, parts, params) {
  const info = kindInfo(parts[0] || 'contact');
  if (!info) {
    view().innerHTML = `<section class="card"><h2>Records</h2><p>Unknown kind <code>${esc(parts[0])}</code>.</p></section>`;
    ctx.done('records');
    return;
  }
  const kind = info.kind;
  const query = params.get('query') || '';
  const sort = params.get('sort') || '';
  const descending = params.get('descending') === '1' || params.get('descending') === 'true';
  const columns = COLUMNS[kind];
  const tabs = KINDS.map((k) => `<a href="${recordsHash(k.kind)}" class="tab${k.kind === kind ? ' active' : ''}">${esc(k.label)}</a>`).join('');
  const heads = columns.map((c) => {
    const label = esc(c.label || c.key);
    if (!c.sort) return `<th>${label}</th>`;
    const active = (sort || 'id') === c.sort;
    const arrow = active ? (descending ? ' ▼' : ' ▲') : '';
    return `<th data-field="${esc(c.sort)}" class="sortable${active ? ' sorted' : ''}${isNumCol(c) ? ' num' : ''}" title="Sort by ${esc(c.sort)}">${label}${arrow}</th>`;
  }).join('');
  view().innerHTML = `
    <nav class="tabs">${tabs}</nav>
    <section class="card">
      <form class="toolbar" id="records-form">
        <input id="records-query" type="text" spellcheck="false" placeholder="query, e.g. tag:vip" value="${esc(query)}">
        <button type="submit">Apply</button>
        <a href="${esc(queryHash(kind, query || null))}">charts</a>
      </form>
      <div id="records-error"></div>
      <p class="count-line"><span id="records-total" class="big-number"></span> <span class="muted">${esc(info.label.toLowerCase())}</span>
        <span id="records-page" class="muted"></span></p>
      <div class="scroll"><table id="records-table" class="grid"><thead><tr>${heads}</tr></thead><tbody></tbody></table></div>
      <div class="pager"><button id="prev-page" type="button">← Previous</button><button id="next-page" type="button">Next →</button></div>
    </section>`;

  document.getElementById('records-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const target = recordsHash(kind, { query: document.getElementById('records-query').value.trim() || null, sort, descending });
    if (location.hash === target) route(); else location.hash = target; // the same hash fires no hashchange
  });
  document.querySelectorAll('#records-table th[data-field]').forEach((th) => th.addEventListener('click', () => {
    const field = th.dataset.field;
    const same = (sort || 'id') === field;
    location.hash = recordsHash(kind, { query: query || null, sort: field, descending: same ? !descending : false });
  }));
  document.querySelector('#records-table tbody').addEventListener('click', (e) => {
    const row = e.target.closest('tr[data-id]');
    if (row && !e.target.closest('a')) location.hash = recordHash(kind, row.dataset.id);
  });

  // Paging: `before` holds the cursors of the pages before this one.
  const before = [];
  let cursor = null;
  let next = null;
  const prevButton = document.getElementById('prev-page');
  const nextButton = document.getElementById('next-page');
  const load = async (at) => {
    ctx.busy();
    prevButton.disabled = true;
    nextButton.disabled = true;
    try {
      const data = await listRecords(kind, {
        query: query || '*', sort: sort || null, descending: String(descending), limit: 50, cursor: at,
      });
      if (!ctx.alive()) return;
      cursor = at;
      next = data.next_cursor;
      document.getElementById('records-error').innerHTML = '';
      document.getElementById('records-total').textContent = String(data.count);
      document.getElementById('records-page').textContent = `· page ${before.length + 1}`;
      document.querySelector('#records-table tbody').innerHTML = recordRowsHtml(kind, columns, data.items || []);
    } catch (err) {
      if (!ctx.alive()) return;
      document.getElementById('records-error').innerHTML = errorHtml(err);
    }
    prevButton.disabled = before.length === 0;
    nextButton.disabled = !next;
    ctx.done('records');
  };
  nextButton.addEventListener('click', () => {
    if (!next) return;
    before.push(cursor);
    load(next);
  });
  prevButton.addEventListener('click', () => {
    if (before.length) load(before.pop());
  });
  await load(null);
}

// ---------------------------------------------------------------- record page

function valueHtml(key, v) {
  if (v === null || v === undefined || v === '') return DASH;
  if (REF_KEYS[key] && (typeof v === 'number' || Array.isArray(v))) {
    const ids = Array.isArray(v) ? v : [v];
    return ids.map((id) => recordLink(REF_KEYS[key], id, `#${id}`)).join(', ') || DASH;
  }
  if (key === 'subject' || key === 'related') return subjectLink(v);
  if (key === 'line_items') return lineItemsHtml(v);
  if (MONEY_KEYS.has(key)) return esc(fmtMoney(v));
  if (TIME_KEY.test(key)) return esc(fmtTime(v));
  if (Array.isArray(v)) return tagsHtml(v.map(String));
  if (typeof v === 'object') return fieldsHtml(v);
  return esc(v);
}

/** A definition list of an object's fields, less `skip`. */
function fieldsHtml(obj, skip = []) {
  const keys = Object.keys(obj).filter((k) => !skip.includes(k));
  if (!keys.length) return DASH;
  return `<dl class="fields">${keys.map((k) => `<dt>${esc(k)}</dt><dd>${valueHtml(k, obj[k])}</dd>`).join('')}</dl>`;
}

/** Custom fields are shown as they come (their names say nothing about links). */
function customHtml(custom) {
  const keys = Object.keys(custom || {});
  if (!keys.length) return '<p class="muted">No custom fields.</p>';
  return `<dl class="fields">${keys.map((k) => {
    const v = custom[k];
    return `<dt>${esc(k)}</dt><dd>${Array.isArray(v) ? tagsHtml(v) : esc(typeof v === 'object' ? JSON.stringify(v) : v)}</dd>`;
  }).join('')}</dl>`;
}

function lineItemsHtml(lines) {
  if (!lines.length) return DASH;
  return tableHtml(null, [
    { label: 'product', cell: (l) => recordLink('product', l.product, `#${l.product}`) },
    { label: 'quantity', num: true, cell: (l) => esc(fmtInt(l.quantity)) },
    { label: 'unit price', num: true, cell: (l) => esc(fmtMoney(l.unit_price)) },
  ], lines);
}

function recordTitle(kind, r) {
  return r.name || r.title || r.sku || `${kind} #${r.id}`;
}

async function renderRecord(ctx, parts) {
  const info = kindInfo(parts[0] || '');
  const id = parts[1];
  if (!info || !/^\d+$/.test(id || '')) {
    view().innerHTML = '<section class="card"><h2>Not found</h2><p>No such record.</p></section>';
    ctx.done('record');
    return;
  }
  const kind = info.kind;
  let record;
  try {
    record = await api('GET', `/${info.path}/${id}`);
  } catch (err) {
    if (!ctx.alive()) return;
    view().innerHTML = err.status === 404
      ? `<section class="card"><h2>Not found</h2><p>${esc(kind)} #${esc(id)} not found.</p>${errorHtml(err)}</section>`
      : errorHtml(err);
    ctx.done('record');
    return;
  }
  if (!ctx.alive()) return;
  const staged = kind === 'contact' || kind === 'deal';
  const deleted = record.deleted_at ? ` <span class="badge danger">deleted ${esc(fmtTime(record.deleted_at))}</span>` : '';
  view().innerHTML = `
    <p class="breadcrumb"><a href="${recordsHash(kind)}">${esc(info.label)}</a> / #${esc(id)}</p>
    <h2>${esc(recordTitle(kind, record))}${record.stage ? ` <span class="badge">${esc(record.stage)}</span>` : ''}${deleted}</h2>
    <div class="columns">
      <div class="column">
        <section class="card"><h3>Fields</h3><div id="record-fields">${fieldsHtml(record, ['tags', 'custom'])}
          <h4>custom</h4>${customHtml(record.custom)}</div></section>
        <section class="card"><h3>Tags</h3><div id="record-tags">${'tags' in record ? tagsHtml(record.tags) : '<span class="muted">This kind has no tags.</span>'}</div></section>
        ${kind === 'contact' ? '<section class="card"><h3>Consent</h3><div id="record-consent"></div></section>' : ''}
      </div>
      <div class="column">
        ${staged ? '<section class="card"><h3>Stage history</h3><div id="history-box"></div></section>' : ''}
        <section class="card"><h3>Related</h3><div id="record-related"></div></section>
        <section class="card"><h3>Changes</h3><div id="changes-box"></div></section>
      </div>
    </div>`;
  const loads = [loadRelated(kind, id), loadChanges(info, id)];
  if (staged) loads.push(loadHistory(info, id));
  if (kind === 'contact') loads.push(loadConsent(id));
  await Promise.all(loads);
  ctx.done('record');
}

function loadHistory(info, id) {
  const box = document.getElementById('history-box');
  return loadInto(box, () => api('GET', `/${info.path}/${id}/history`), (data) => {
    const entries = (data.history || []).map((h) => `
      <li class="history-entry" data-to="${esc(h.to)}">
        <div class="move"><span class="stage">${esc(h.from ?? '(start)')}</span> → <span class="stage to">${esc(h.to)}</span>
          ${h.kind && h.kind !== 'move' ? `<span class="badge">${esc(h.kind)}</span>` : ''}</div>
        <div class="muted small">${esc(fmtTime(h.at))}${h.actor ? ` · ${esc(h.actor)}` : ''}</div>
        ${h.reason ? `<div class="reason">${esc(h.reason)}</div>` : ''}
      </li>`).join('');
    return `<ol id="record-history" class="timeline">${entries}</ol>${entries ? '' : '<p class="muted">No stage changes.</p>'}`;
  }).then((data) => {
    if (!data) box.insertAdjacentHTML('beforeend', '<ol id="record-history" class="timeline"></ol>');
  });
}

async function loadRelated(kind, id) {
  const box = document.getElementById('record-related');
  const related = RELATED[kind] || [];
  if (!related.length) {
    box.innerHTML = '<p class="muted">No related queries for this kind; the fields link to what it refers to.</p>';
    return;
  }
  box.innerHTML = related.map(([other, field]) => `<div class="related-block" data-kind="${other}" data-field="${field}"></div>`).join('');
  await Promise.all(related.map(([other, field]) => {
    const query = `${field} = ${id}`;
    const block = box.querySelector(`.related-block[data-kind="${other}"]`);
    return loadInto(block, () => listRecords(other, { query, limit: 10 }), (data) => `
      <h4>${esc(kindInfo(other).label)} <span class="muted">(${esc(fmtInt(data.count))})</span>
        ${data.count ? `<a class="small" href="${esc(recordsHash(other, { query }))}">open all</a>` : ''}</h4>
      ${data.count ? miniTableHtml(other, data.items || [], field) : '<p class="muted small">None.</p>'}`);
  }));
}

/** A change event in one line: what changed. */
function eventSummary(e) {
  switch (e.type) {
    case 'inserted': return 'created';
    case 'deleted': return 'deleted';
    case 'restored': return 'restored';
    case 'purged': return 'purged';
    case 'updated': return `changed ${(e.fields || []).join(', ') || 'nothing visible'}`;
    case 'tag_added': return `+ tag ${e.tag}`;
    case 'tag_removed': return `− tag ${e.tag}`;
    case 'stage_changed': {
      const s = e.stage || {};
      return `stage ${s.from ?? '(start)'} → ${s.to}${s.reason ? ` (${s.reason})` : ''}`;
    }
    case 'merged': return `merged with ${e.kind || 'contact'} #${e.other} (merge #${e.merge})`;
    case 'unmerged': return `unmerged from ${e.kind || 'contact'} #${e.other} (merge #${e.merge})`;
    case 'consent_recorded': return `consent ${e.channel}: ${e.status}`;
    case 'entered': case 'left': return `${e.type} ${e.segment}`;
    default: return e.segment ? `${e.type} ${e.segment}` : e.type;
  }
}

function causeText(cause) {
  if (!cause || cause.type === 'write') return '';
  if (cause.type === 'effect') return `effect of ${cause.kind} #${cause.id}`;
  if (cause.type === 'assignment') return `assignment rule ${cause.rule}`;
  if (cause.type === 'merge') return `merge #${cause.merge}`;
  return cause.type;
}

function loadChanges(info, id) {
  const box = document.getElementById('changes-box');
  return loadInto(box, () => api('GET', `/${info.path}/${id}/changes${qs({ limit: 50 })}`), (data) => {
    const items = (data.events || []).map((e) => {
      const cause = causeText(e.cause);
      return `<li class="change-event" data-type="${esc(e.type)}" data-sequence="${esc(e.sequence)}">
        <span class="badge">${esc(e.type)}</span> <span class="summary">${esc(eventSummary(e))}</span>
        <div class="muted small">${esc(fmtTime(e.time))} · seq ${esc(e.sequence)}${e.actor ? ` · ${esc(e.actor)}` : ''}${cause ? ` · ${esc(cause)}` : ''}</div>
      </li>`;
    }).join('');
    return `<ol id="record-changes" class="events">${items}</ol>`
      + (items ? '' : '<p class="muted">No events in the kept change log.</p>')
      + `<p class="muted small">Newest first, scanned from sequence ${esc(data.scanned_from)}.</p>`;
  }).then((data) => {
    if (!data) box.insertAdjacentHTML('beforeend', '<ol id="record-changes" class="events"></ol>');
  });
}

function loadConsent(id) {
  const box = document.getElementById('record-consent');
  return loadInto(box, () => api('GET', `/contacts/${id}/consent`), (data) => {
    const state = Object.entries(data.state || {}).map(([channel, status]) => (
      `<div class="consent-channel" data-channel="${esc(channel)}"><span>${esc(channel)}</span>`
      + `<span class="badge status-${esc(status)}">${esc(status)}</span></div>`)).join('');
    const history = (data.history || []).slice().reverse();
    return `<div class="consent-state">${state || DASH}</div><h4>Ledger</h4>` + tableHtml('consent-history', [
      { label: 'at', cell: (h) => esc(fmtTime(h.at)) },
      { label: 'channel', cell: (h) => esc(h.channel) },
      { label: 'status', cell: (h) => `<span class="badge status-${esc(h.status)}">${esc(h.status)}</span>` },
      { label: 'basis', cell: (h) => esc(h.basis ?? '—') },
      { label: 'source', cell: (h) => esc(h.source ?? '—') },
      { label: 'note', cell: (h) => esc(h.note ?? '—') },
      { label: 'actor', cell: (h) => esc(h.actor ?? '—') },
    ], history, 'No consent recorded.');
  });
}

// ---------------------------------------------------------------- funnel

/** The funnel as centred horizontal bars, widths proportional to deals entered. */
function funnelSvg(stages) {
  const labelW = 150;
  const barW = 440;
  const infoW = 210;
  const rowH = 40;
  const barH = 28;
  const width = labelW + barW + infoW;
  const height = Math.max(rowH, stages.length * rowH) + 8;
  const max = Math.max(1, ...stages.map((s) => s.entered || 0));
  const rows = stages.map((s, i) => {
    const y = 4 + i * rowH;
    const w = s.entered ? Math.max(2, (s.entered / max) * barW) : 0;
    const x = labelW + (barW - w) / 2;
    const conv = percentOf(s, 'conversion_percent', 'conversion_rate');
    const mid = y + barH / 2 + 5;
    return `<text class="funnel-label" x="${labelW - 12}" y="${mid}" text-anchor="end">${esc(s.stage)}</text>`
      + `<rect class="funnel-bar" data-stage="${esc(s.stage)}" data-entered="${esc(s.entered)}" x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barH}" rx="4">`
      + `<title>${esc(s.stage)}: ${esc(fmtInt(s.entered))} entered</title></rect>`
      + `<text class="funnel-info" x="${labelW + barW + 12}" y="${mid}">${esc(fmtInt(s.entered))} entered`
      + `${conv === null ? '' : ` · ${esc(fmtPercent(conv))} →`}</text>`;
  }).join('');
  return `<svg id="funnel-chart" class="funnel" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="Deal funnel">${rows}</svg>`;
}

function funnelHtml(data) {
  const stages = data.stages || [];
  const win = percentOf(data, 'win_percent', 'win_rate');
  const summary = statsHtml([
    ['deals', fmtInt(data.deals)], ['won', fmtInt(data.won)], ['lost', fmtInt(data.lost)],
    ['win rate', fmtPercent(win)],
    ['median cycle', fmtDays(daysOf(data, 'median_cycle_days', 'median_cycle_time'))],
    ['mean cycle', fmtDays(daysOf(data, 'mean_cycle_days', 'mean_cycle_time'))],
  ]);
  const table = tableHtml('funnel-table', [
    { label: 'stage', cell: (s) => esc(s.stage) },
    { label: 'entered', num: true, cell: (s) => esc(fmtInt(s.entered)) },
    { label: 'converted', num: true, cell: (s) => esc(fmtInt(s.converted)) },
    { label: 'conversion', num: true, cell: (s) => esc(fmtPercent(percentOf(s, 'conversion_percent', 'conversion_rate'))) },
    { label: 'median days in stage', num: true, cell: (s) => esc(fmtDays(daysOf(s, 'median_days_in_stage', 'median_time_in_stage'))) },
    { label: 'mean days in stage', num: true, cell: (s) => esc(fmtDays(daysOf(s, 'mean_days_in_stage', 'mean_time_in_stage'))) },
  ], stages, 'The pipeline has no stages.');
  return `${summary}<section class="card">${funnelSvg(stages)}</section><section class="card">${table}</section>`
    + `<p class="muted small">Pipeline ${esc(data.pipeline)}, ${esc(fmtTime(data.from))} to ${esc(fmtTime(data.to))}${data.segment ? `, deals matching ${esc(data.segment)}` : ''}.</p>`;
}

function renderFunnel(ctx) {
  return analyticsPage(ctx, {
    page: 'funnel', title: 'Deal funnel', path: '/analytics/funnel', render: funnelHtml,
    extra: '<label>Deals <input id="funnel-segment" type="text" placeholder="optional deal query, e.g. owner = 3"></label>',
    body: () => {
      const segment = document.getElementById('funnel-segment').value.trim();
      return segment ? { pipeline: 'default', segment } : { pipeline: 'default' };
    },
  });
}

// ---------------------------------------------------------------- owners and products

function ownersHtml(data) {
  return tableHtml('owners-table', [
    { label: 'owner', cell: (o) => recordLink('owner', o.owner, o.name || `#${o.owner}`) },
    { label: 'won amount', num: true, cell: (o) => esc(fmtMoney(o.won_amount)) },
    { label: 'won', num: true, cell: (o) => esc(fmtInt(o.won_count)) },
    { label: 'closed', num: true, cell: (o) => esc(fmtInt(o.closed_count)) },
    { label: 'win rate', num: true, cell: (o) => esc(fmtPercent(percentOf(o, 'conversion_percent', 'conversion_rate'))) },
    { label: 'weighted pipeline', num: true, cell: (o) => esc(fmtMoney(o.weighted_pipeline)) },
    { label: 'activities', num: true, cell: (o) => esc(fmtInt(o.activity_count)) },
    { label: 'median cycle', num: true, cell: (o) => esc(fmtDays(daysOf(o, 'median_cycle_days', 'median_cycle_time'))) },
  ], data.owners || [], 'No owners.');
}

function renderOwners(ctx) {
  const sorts = OWNER_SORTS.map((o) => `<option value="${o}">${esc(o.replace(/_/g, ' '))}</option>`).join('');
  return analyticsPage(ctx, {
    page: 'owners', title: 'Owner ranking', path: '/analytics/owners', render: ownersHtml,
    extra: `<label>Sort <select id="owners-sort">${sorts}</select></label>`,
    body: () => ({ sort: document.getElementById('owners-sort').value }),
  });
}

function productsHtml(data) {
  const products = data.products || [];
  const categories = data.categories || [];
  const maxRevenue = Math.max(1e-9, ...categories.map((c) => parseFloat(c.revenue) || 0));
  const bars = categories.slice(0, 12).map((c) => `<tr><th scope="row" class="bar-label">${esc(c.category ?? '(none)')}</th>`
    + `<td class="bar-cell"><div class="bar" data-bar="${(((parseFloat(c.revenue) || 0) / maxRevenue) * 100).toFixed(1)}"></div></td>`
    + `<td class="num">${esc(fmtMoney(c.revenue))}</td></tr>`).join('');
  const shown = products.slice(0, 200);
  return `<div class="columns"><section class="card column"><h3>Revenue by category</h3>`
    + (bars ? `<table class="bars"><tbody>${bars}</tbody></table>` : '<p class="muted">No sales.</p>')
    + tableHtml('categories-table', [
      { label: 'category', cell: (c) => esc(c.category ?? '(none)') },
      { label: 'revenue', num: true, cell: (c) => esc(fmtMoney(c.revenue)) },
      { label: 'units', num: true, cell: (c) => esc(fmtInt(c.units)) },
      { label: 'orders', num: true, cell: (c) => esc(fmtInt(c.orders)) },
    ], categories, 'No categories.')
    + `</section><section class="card column"><h3>Products</h3>`
    + (products.length > shown.length ? `<p class="muted small">Top ${shown.length} of ${fmtInt(products.length)}.</p>` : '')
    + tableHtml('products-table', [
      { label: 'product', cell: (p) => recordLink('product', p.product, `#${p.product}`) },
      { label: 'sku', cell: (p) => esc(p.sku ?? '—') },
      { label: 'category', cell: (p) => esc(p.category ?? '—') },
      { label: 'revenue', num: true, cell: (p) => esc(fmtMoney(p.revenue)) },
      { label: 'units', num: true, cell: (p) => esc(fmtInt(p.units)) },
      { label: 'orders', num: true, cell: (p) => esc(fmtInt(p.orders)) },
    ], shown, 'No products sold in this window.') + '</section></div>';
}

function renderProducts(ctx) {
  return analyticsPage(ctx, {
    page: 'products', title: 'Product sales', path: '/analytics/products', render: productsHtml,
  });
}

// ---------------------------------------------------------------- RFM

function rfmSummaryHtml(s) {
  const share = percentOf(s, 'top20_revenue_percent', 'top20_revenue_share');
  return statsHtml([
    ['refreshed', fmtTime(s.refreshed_at)], ['customers', fmtInt(s.customers)],
    ['top20 tier', fmtInt(s.top20)], ['top20 revenue share', fmtPercent(share)],
  ]);
}

async function renderRfm(ctx) {
  view().innerHTML = `<section class="card"><h2>RFM tiers</h2>
    <p class="muted small">Scores, tiers and bands describe the database as of the last refresh.</p>
    <div id="rfm-summary"></div><button id="rfm-refresh" type="button">Refresh RFM now</button></section>
    <div id="rfm-charts" class="charts"></div>`;
  const summary = document.getElementById('rfm-summary');
  const button = document.getElementById('rfm-refresh');
  const showCharts = async () => {
    const box = document.getElementById('rfm-charts');
    const charts = await Promise.all(['tier', 'band'].map(async (field) => {
      try {
        const data = await groupBy('contact', '*', field, 'lifetime_value');
        const groups = (data.groups || []).slice();
        if (field === 'band') groups.sort((a, b) => Number(a.value) - Number(b.value));
        return barChartHtml(`contacts by ${field}`, field, groups, { kind: 'contact', query: '*', sum: 'lifetime_value' });
      } catch (err) {
        return `<section class="card chart"><h3>contacts by ${esc(field)}</h3>${errorHtml(err)}</section>`;
      }
    }));
    if (!ctx.alive()) return;
    box.innerHTML = charts.join('');
    applyBars(box);
  };
  button.addEventListener('click', async () => {
    button.disabled = true;
    ctx.busy();
    await loadInto(summary, () => api('POST', '/analytics/rfm/refresh', {}), rfmSummaryHtml);
    await showCharts();
    button.disabled = false;
    ctx.done('rfm');
  });
  const state = await loadInto(summary, () => api('GET', '/analytics/rfm'), rfmSummaryHtml);
  if (!state) {
    summary.insertAdjacentHTML('beforeend', '<p>RFM scores have not been computed yet (or could not be read). Compute them with the button below.</p>');
  } else {
    await showCharts();
  }
  ctx.done('rfm');
}

// ---------------------------------------------------------------- segments

function segmentRowsHtml(segments, counts) {
  return tableHtml('segments-table', [
    { label: 'name', cell: (s) => `<a href="${esc(queryHash(s.kind, `segment:${s.name}`))}">${esc(s.name)}</a>` },
    { label: 'kind', cell: (s) => esc(s.kind) },
    { label: 'type', cell: (s) => esc(s.type) },
    { label: 'query', cell: (s) => (counts[s.name] && counts[s.name].query ? `<code>${esc(counts[s.name].query)}</code>` : DASH) },
    { label: 'count', num: true, cell: (s) => (counts[s.name] && 'count' in counts[s.name] ? esc(fmtInt(counts[s.name].count)) : DASH) },
    { label: 'watched', cell: (s) => (s.watched ? '<span class="badge ok">watched</span>' : '<span class="muted">no</span>') },
    { label: 'members', num: true, cell: (s) => (s.watched ? esc(fmtInt(s.members)) : DASH) },
    { label: '', cell: (s) => `<button type="button" data-action="${s.watched ? 'unwatch' : 'watch'}" data-name="${esc(s.name)}">${s.watched ? 'Unwatch' : 'Watch'}</button>` },
  ], segments, 'No saved segments yet.');
}

async function loadSegments() {
  const box = document.getElementById('segments-box');
  await loadInto(box, async () => {
    const list = (await api('GET', '/segments')).segments || [];
    // Each segment's count (and query) comes from its own read; a failure shows as a dash.
    const details = await Promise.all(list.map((s) => api('GET', `/segments/${encodeURIComponent(s.name)}`).catch(() => null)));
    const counts = {};
    list.forEach((s, i) => { if (details[i]) counts[s.name] = details[i]; });
    return { list, counts };
  }, ({ list, counts }) => segmentRowsHtml(list, counts));
  if (!document.getElementById('segments-table')) box.insertAdjacentHTML('beforeend', '<table id="segments-table" class="grid"></table>');
}

function saveFormHtml() {
  const options = KINDS.map((k) => `<option value="${k.kind}"${k.kind === queryState.kind ? ' selected' : ''}>${esc(k.kind)}</option>`).join('');
  return `<form id="segment-form" class="toolbar wrap">
    <label>Name <input id="segment-name" type="text" required pattern="[a-z0-9_]{1,64}" placeholder="vip_shanghai"></label>
    <label>Kind <select id="segment-kind">${options}</select></label>
    <label class="grow">Query <input id="segment-query" type="text" spellcheck="false" value="${esc(queryState.text.trim() || '*')}"></label>
    <button type="submit">Save segment</button></form><div id="segment-message"></div>`;
}

async function renderSegments(ctx) {
  view().innerHTML = `<div class="columns">
    <div class="column wide">
      <section class="card"><h2>Saved segments</h2><div id="segments-box"></div></section>
      <section class="card"><h3>Save a query as a segment</h3>${saveFormHtml()}</section>
    </div>
    <div class="column">
      <section class="card"><h3>Live tail <span id="tail-status" class="muted small">starting…</span></h3>
        <p class="muted small">Records entering and leaving watched segments, newest on top.</p>
        <ol id="segment-tail" class="events"></ol></section>
    </div></div>`;

  document.getElementById('segment-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = document.getElementById('segment-name').value.trim();
    const body = { kind: document.getElementById('segment-kind').value, query: document.getElementById('segment-query').value.trim() || '*' };
    const message = document.getElementById('segment-message');
    try {
      const saved = await api('PUT', `/segments/${encodeURIComponent(name)}`, body);
      message.innerHTML = `<p class="ok-text">Saved ${esc(saved.name)}: ${esc(fmtInt(saved.count))} ${esc(saved.kind)} records.</p>`;
      await loadSegments();
    } catch (err) {
      message.innerHTML = errorHtml(err);
    }
  });
  document.getElementById('segments-box').addEventListener('click', async (e) => {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    button.disabled = true;
    const path = `/segments/${encodeURIComponent(button.dataset.name)}/watch`;
    try {
      await api(button.dataset.action === 'watch' ? 'PUT' : 'DELETE', path);
      await loadSegments();
    } catch (err) {
      document.getElementById('segment-message').innerHTML = errorHtml(err);
      button.disabled = false;
    }
  });

  await Promise.all([loadSegments(), startTail(ctx)]);
  ctx.done('segments');
}

/** Where the tail starts: the last commit's sequence (from `/stats`), so that only
 * batches committed after the page loaded show. */
async function tailStart() {
  const stats = await api('GET', '/stats');
  return { after: stats.sequence };
}

function tailEntryHtml(batch, e) {
  const sign = e.type === 'entered' ? '+' : '−';
  const ids = e.ids || [];
  const shown = ids.slice(0, 20).map((id) => recordLink(e.kind, id, String(id))).join(', ');
  const more = ids.length > 20 ? ` … and ${fmtInt(ids.length - 20)} more` : '';
  return `<li class="tail-event ${e.type === 'entered' ? 'entered' : 'left'}" data-segment="${esc(e.segment)}" data-sequence="${esc(batch.sequence)}">`
    + `<strong>${sign}${esc(fmtInt(ids.length))}</strong> ${e.type === 'entered' ? 'entered' : 'left'} `
    + `<a href="${esc(queryHash(e.kind, `segment:${e.segment}`))}">${esc(e.segment)}</a>: ${shown}${esc(more)}`
    + `<div class="muted small">${esc(fmtTime(batch.time))} · seq ${esc(batch.sequence)}${batch.actor ? ` · ${esc(batch.actor)}` : ''}</div></li>`;
}

/** Opens the change stream; resolves once it is open (or failed, or after 3 s). */
async function startTail(ctx) {
  const status = document.getElementById('tail-status');
  let start;
  try {
    start = await tailStart();
  } catch (err) {
    status.innerHTML = errorHtml(err);
    return;
  }
  if (!ctx.alive()) return;
  const list = document.getElementById('segment-tail');
  list.dataset.after = String(start.after);
  const source = new EventSource(`/changes/stream${qs({ after: start.after })}`);
  ctx.onLeave(() => source.close());
  source.onmessage = (message) => {
    let batch;
    try {
      batch = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    const entries = (batch.events || []).filter((e) => e.type === 'entered' || e.type === 'left');
    entries.forEach((e) => list.insertAdjacentHTML('afterbegin', tailEntryHtml(batch, e)));
    while (list.children.length > TAIL_KEEP) list.lastElementChild.remove();
  };
  // Server-sent `event: error` carries the API error; a bare error is a dropped
  // connection, which EventSource retries by itself (resuming with Last-Event-ID).
  source.addEventListener('error', (e) => {
    if (e.data) {
      try {
        const body = JSON.parse(e.data).error || {};
        status.innerHTML = errorHtml(new ApiError(0, body.code || 'stream_error', body.message || e.data, body));
      } catch (_) {
        status.textContent = 'stream error';
      }
      source.close();
    } else {
      status.textContent = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting…';
    }
  });
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000);
    source.addEventListener('open', () => {
      status.textContent = 'live';
      clearTimeout(timer);
      resolve();
    });
    source.addEventListener('error', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// ---------------------------------------------------------------- identity

function candidatesHtml(data) {
  const kind = data.kind || 'contact';
  return `<p class="muted small">${esc(fmtInt(data.total))} candidates among ${esc(fmtInt(data.records))} ${esc(kind)}s`
    + ` (${esc(fmtInt(data.compared))} pairs compared${data.oversized_blocks ? `, ${esc(fmtInt(data.oversized_blocks))} oversized blocks skipped` : ''}).</p>`
    + tableHtml('candidates-table', [
      { label: 'score', num: true, cell: (c) => esc(c.score) },
      { label: 'a', cell: (c) => recordLink(kind, c.a, `#${c.a}`) },
      { label: 'b', cell: (c) => recordLink(kind, c.b, `#${c.b}`) },
      { label: 'name similarity', num: true, cell: (c) => esc(typeof c.name_similarity === 'number' ? c.name_similarity.toFixed(2) : '—') },
      { label: 'reasons', cell: (c) => tagsHtml(c.reasons) },
      { label: 'automatic', cell: (c) => (c.automatic ? '<span class="badge ok">yes</span>' : '<span class="muted">no</span>') },
    ], data.candidates || [], 'No duplicate candidates.');
}

function mergesHtml(data) {
  const merges = (data.merges || []).slice().sort((a, b) => b.merge - a.merge);
  const shown = merges.slice(0, 100);
  return (merges.length > shown.length ? `<p class="muted small">Latest ${shown.length} of ${fmtInt(merges.length)}.</p>` : '')
    + tableHtml('merges-table', [
      { label: 'merge', num: true, cell: (m) => esc(m.merge) },
      { label: 'survivor', cell: (m) => recordLink('contact', m.survivor, `#${m.survivor}`) },
      { label: 'merged', cell: (m) => recordLink('contact', m.other, `#${m.other}`) },
      { label: 'at', cell: (m) => esc(fmtTime(m.at)) },
      { label: 'actor', cell: (m) => esc(m.actor ?? '—') },
      { label: 'fields taken', cell: (m) => tagsHtml(m.fields_taken) },
      { label: 'stage', cell: (m) => (m.stage ? esc(`${m.stage.from} → ${m.stage.to}`) : DASH) },
      { label: 'moved', num: true, cell: (m) => esc(fmtInt((m.moved || []).length)) },
      { label: 'state', cell: (m) => (m.undone ? `<span class="badge">unmerged ${esc(fmtTime(m.undone.at))}</span>`
        : m.erased ? '<span class="badge danger">erased</span>' : '<span class="badge ok">merged</span>') },
    ], shown, 'No merges yet.');
}

async function renderIdentity(ctx) {
  view().innerHTML = `<section class="card"><h2>Duplicate candidates</h2>
      <form class="toolbar" id="duplicates-form"><label>Kind <select id="duplicates-kind">
        <option value="contact">contacts</option><option value="account">accounts</option></select></label>
        <label>Min score <input id="duplicates-min" type="number" min="0" max="100" placeholder="default"></label>
        <button type="submit">Find</button></form>
      <div id="duplicates-box"></div></section>
    <section class="card"><h2>Merges</h2><div id="merges-box"></div></section>`;
  const loadCandidates = () => {
    const params = { kind: document.getElementById('duplicates-kind').value, limit: 100,
      min_score: document.getElementById('duplicates-min').value };
    return loadInto(document.getElementById('duplicates-box'), () => api('GET', `/duplicates${qs(params)}`), candidatesHtml);
  };
  document.getElementById('duplicates-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    ctx.busy();
    await loadCandidates();
    ctx.done('identity');
  });
  await Promise.all([
    loadCandidates(),
    loadInto(document.getElementById('merges-box'), () => api('GET', '/merges'), mergesHtml),
  ]);
  ctx.done('identity');
}

// ---------------------------------------------------------------- start

window.addEventListener('hashchange', route);
window.addEventListener('unhandledrejection', (e) => {
  // Last resort: every renderer catches its own errors, but none may go unseen.
  e.preventDefault();
  view().insertAdjacentHTML('afterbegin', errorHtml(e.reason instanceof Error ? e.reason : new Error(String(e.reason))));
});
if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', route);
} else {
  route();
}
