'use strict';
/* The console's record pages: the query page, the record table and a record's page. */

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
