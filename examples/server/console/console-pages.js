'use strict';
/* The console's other pages (funnel, owners, products, RFM, segments, identity), the
 * route table and the start. */

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

/** Where the tail starts: the last commit's sequence, so that only batches committed
 * after the page loaded show. */
async function tailStart() {
  const head = await api('GET', '/changes/head');
  return { after: head.sequence };
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
  // EventSource sends no headers: the stream takes the token as a parameter.
  const source = new EventSource(`/changes/stream${qs({ after: start.after, access_token: bearer() })}`);
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

// ---------------------------------------------------------------- start

takeToken();
window.addEventListener('hashchange', () => {
  takeToken();
  route();
});
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
