// Qianbao's operators' console. A client of the public /v1 API: every screen is calls an
// operator could make with `qianbao ops` or curl. Written without a framework or a build
// step so that the console builds with cargo alone.
//
// Safety rules this file keeps (a test in the console crate checks the first):
// - Data from the API reaches the page only as text (`textContent`, attribute values set
//   one by one), never parsed as HTML: nothing an order or a reason holds can run as script.
// - The API key is sent once, to sign in; the session then lives in an HttpOnly cookie the
//   script cannot read. The CSRF token the server gives back goes with every call.
'use strict';

const CSRF_STORE = 'qianbao.console.csrf';
const POLL_MS = 5000;

const state = {
  session: null,
  csrf: sessionStorage.getItem(CSRF_STORE),
  timer: null,
  lastOverview: null,
};

// ---- DOM helpers -----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === 'class') {
      node.className = value;
    } else if (value === true) {
      node.setAttribute(name, '');
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function main() {
  return document.getElementById('main');
}

function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined && node !== false));
}

function toast(message, bad) {
  const box = document.getElementById('toast');
  box.textContent = message;
  box.className = bad ? 'toast bad' : 'toast';
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

function badge(text, tone) {
  return el('span', { class: 'badge ' + (tone || '') }, text);
}

function age(ms) {
  if (ms === null || ms === undefined) return '';
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 120) return seconds + ' s';
  if (seconds < 7200) return Math.round(seconds / 60) + ' min';
  if (seconds < 172800) return Math.round(seconds / 3600) + ' h';
  return Math.round(seconds / 86400) + ' d';
}

function when(ms) {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + 'Z' : '';
}

// A table from column definitions: [header, row => cell, optional class].
function table(columns, rows, options) {
  const opts = options || {};
  if (!rows.length) return el('div', { class: 'empty card', 'data-empty': opts.name || '' }, opts.empty || 'Nothing here.');
  return el('table', { 'data-table': opts.name || null },
    el('thead', {}, el('tr', {}, columns.map(([title, , cls]) => el('th', { class: cls }, title)))),
    el('tbody', {}, rows.map((row) => el('tr', { 'data-id': opts.id ? opts.id(row) : null },
      columns.map(([, cell, cls]) => el('td', { class: cls }, cell(row)))))));
}

// A form whose fields are [name, label, input attributes]; `submit` gets the values.
function form(name, fields, buttonText, submit, buttonClass) {
  const inputs = {};
  const node = el('form', { class: 'inline', 'data-form': name },
    fields.map(([field, label, attrs]) => {
      let input;
      if (attrs && attrs.options) {
        input = el('select', { name: field, id: name + '-' + field },
          attrs.options.map((option) => el('option', { value: option }, option)));
      } else {
        input = el('input', Object.assign({ name: field, id: name + '-' + field }, attrs || {}));
      }
      inputs[field] = input;
      return el('label', { for: name + '-' + field }, label, input);
    }),
    el('button', { type: 'submit', class: buttonClass || null }, buttonText));
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = {};
    for (const [field, input] of Object.entries(inputs)) values[field] = input.value.trim();
    const button = node.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await submit(values, inputs);
    } catch (error) {
      toast(error.message, true);
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

// ---- the API ---------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(code ? code + ': ' + message : message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.csrf) headers['Qianbao-Csrf'] = state.csrf;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  // Every write carries its own idempotency key: a retried click does nothing twice.
  if (method === 'POST' && path.startsWith('/v1/')) headers['Idempotency-Key'] = crypto.randomUUID();
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    if (response.status === 401 && path !== '/console/session') signedOut();
    throw new ApiFailure(response.status, error.code, error.message || response.statusText);
  }
  return data;
}

function can(scope) {
  const scopes = (state.session && state.session.scopes) || [];
  return scopes.includes('admin') || scopes.includes(scope);
}

// ---- signing in ------------------------------------------------------------------------

function signedOut() {
  state.session = null;
  state.csrf = null;
  sessionStorage.removeItem(CSRF_STORE);
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  document.getElementById('sign-out').hidden = true;
  stopPolling();
  renderSignIn();
}

function signedIn(session) {
  state.session = session;
  state.csrf = session.csrf;
  sessionStorage.setItem(CSRF_STORE, session.csrf);
  document.getElementById('nav').hidden = false;
  const who = document.getElementById('who');
  const role = session.scopes.includes('admin') ? 'admin'
    : session.scopes.includes('ops:approve') ? 'approver'
      : session.scopes.includes('ops:write') ? 'operator' : 'viewer';
  who.textContent = session.key_id + ' · ' + role;
  who.title = session.scopes.join(' ');
  who.hidden = false;
  document.getElementById('sign-out').hidden = false;
}

function renderSignIn(message) {
  const error = el('div', { class: 'error', id: 'signin-error' }, message || '');
  const signIn = form('signin', [['key', 'Operator key', { type: 'password', autocomplete: 'off', required: true, placeholder: 'qb_live_…' }]],
    'Sign in', async (values, inputs) => {
      try {
        const session = await api('POST', '/console/session', { key: values.key });
        inputs.key.value = '';
        signedIn(session);
        route();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
  show(el('div', { class: 'signin card' },
    el('h1', {}, 'Sign in'),
    el('p', {}, 'With a platform operator\'s API key (a viewer, operator, approver or admin key). ' +
      'The key is sent once; the session lasts a shift.'),
    window.isSecureContext ? null : el('p', { class: 'error' }, 'This page is not served over HTTPS: the session cookie will be refused. Serve the console behind TLS.'),
    signIn, error));
  const input = document.getElementById('signin-key');
  if (input) input.focus();
}

// ---- pages -----------------------------------------------------------------------------

const pages = {
  health: renderHealth,
  stuck: renderStuck,
  approvals: renderApprovals,
  switches: renderSwitches,
  books: renderBooks,
  breaks: renderBreaks,
  audit: renderAudit,
};

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

async function route() {
  if (!state.session) return renderSignIn();
  document.getElementById('toast').hidden = true;
  stopPolling();
  const name = (location.hash.replace(/^#\//, '') || 'health').split('?')[0];
  const page = pages[name] || renderHealth;
  for (const link of document.querySelectorAll('nav a')) {
    link.classList.toggle('active', link.dataset.page === name);
  }
  try {
    await page();
  } catch (error) {
    show(el('h1', {}, 'Could not load'), el('p', { class: 'error' }, error.message));
  }
}

// Health: RED per route, channels and breakers, the inquiry backlog, switches in force and
// plans running. Counts are cumulative per node; rates come from two readings.
async function renderHealth() {
  const draw = async () => {
    const [overview, switches] = await Promise.all([
      api('GET', '/v1/ops/overview'),
      api('GET', '/v1/ops/switches'),
    ]);
    const previous = state.lastOverview;
    state.lastOverview = overview;
    const elapsed = previous && previous.node === overview.node ? (overview.at_ms - previous.at_ms) / 1000 : 0;
    const before = new Map(((previous && previous.routes) || []).map((r) => [r.route, r.requests]));
    const inForce = switches.data.filter((s) => s.in_force);
    const plans = [...new Set(inForce.map((s) => s.plan).filter(Boolean))];
    const backlog = overview.inquiries || { open: 0, escalated: 0, undelivered: 0 };
    const openBreakers = overview.channels.filter((c) => c.breaker !== 'closed').length;
    const errors5xx = overview.routes.reduce((sum, r) => sum + r.server_errors, 0);
    show(
      el('h1', {}, 'Health ', el('small', { class: 'muted' }, 'node ' + overview.node + ' · ' + when(overview.at_ms))),
      el('div', { class: 'tiles' },
        tile(backlog.escalated, 'escalated inquiries', backlog.escalated ? 'bad' : 'ok', 'escalated'),
        tile(backlog.open, 'open inquiries', null, 'open-inquiries'),
        tile(openBreakers, 'breakers not closed', openBreakers ? 'bad' : 'ok', 'breakers'),
        tile(inForce.length, 'switches in force', inForce.length ? 'warn' : 'ok', 'switches'),
        tile(plans.length ? plans.join(', ') : 'none', 'plans running', plans.length ? 'warn' : 'ok', 'plans'),
        tile(errors5xx, '5xx since start', errors5xx ? 'bad' : 'ok', 'errors')),
      el('h2', {}, 'Channels'),
      table([
        ['Channel', (c) => c.channel],
        ['Breaker', (c) => badge(c.breaker, c.breaker === 'closed' ? 'ok' : 'bad')],
        ['Routing', (c) => [c.disabled ? badge('disabled', 'bad') : null, c.pinned ? badge('pinned', 'warn') : null,
          c.weight_permille !== 1000 ? badge('weight ' + c.weight_permille + '‰', 'warn') : null,
          !c.disabled && !c.pinned && c.weight_permille === 1000 ? 'normal' : null]],
        ['Calls (window)', (c) => c.window_calls, 'num'],
        ['Errors', (c) => c.window_errors, 'num'],
        ['Success', (c) => c.window_calls ? (100 * (c.window_calls - c.window_errors) / c.window_calls).toFixed(1) + ' %' : '–', 'num'],
        ['Mean latency', (c) => c.window_mean_latency_ms === null ? '–' : c.window_mean_latency_ms + ' ms', 'num'],
        ['Fee', (c) => (c.fee_bps / 100).toFixed(2) + ' %', 'num'],
        ['Breaker opens at', (c) => (c.breaker_error_permille_open / 10).toFixed(1) + ' % errors', 'num'],
        ['Rate limit', (c) => c.rate_per_sec === null ? 'none' : c.rate_per_sec + '/s', 'num'],
      ], overview.channels, { name: 'channels', id: (c) => c.channel, empty: 'No channels on this node.' }),
      el('h2', {}, 'Requests by route (RED)'),
      table([
        ['Route', (r) => el('code', {}, r.route)],
        ['Requests', (r) => r.requests, 'num'],
        ['Rate', (r) => elapsed > 0 ? ((r.requests - (before.get(r.route) || 0)) / elapsed).toFixed(1) + '/s' : '…', 'num'],
        ['4xx', (r) => r.client_errors, 'num'],
        ['5xx', (r) => r.server_errors ? badge(String(r.server_errors), 'bad') : '0', 'num'],
        ['p99 ≤', (r) => r.p99_us_at_most === null ? '–' : formatMicros(r.p99_us_at_most), 'num'],
      ], overview.routes.filter((r) => !r.route.startsWith('GET /console')), { name: 'routes', id: (r) => r.route }));
  };
  await draw();
  state.timer = setInterval(() => draw().catch((error) => toast(error.message, true)), POLL_MS);
}

function tile(value, label, tone, name) {
  return el('div', { class: 'tile', 'data-tile': name },
    el('div', { class: 'n' }, tone ? badge(String(value), tone) : String(value)),
    el('div', { class: 'l' }, label));
}

function formatMicros(us) {
  if (us < 1000) return us + ' µs';
  if (us < 1000000) return (us / 1000).toFixed(us < 10000 ? 1 : 0) + ' ms';
  return (us / 1000000).toFixed(1) + ' s';
}

// Stuck orders: escalated inquiries (with their actions), overdue orders, exceptions.
async function renderStuck() {
  const [escalated, overdue, exceptions] = await Promise.all([
    api('GET', '/v1/ops/inquiries/escalated?limit=500'),
    api('GET', '/v1/ops/orders/overdue?limit=500'),
    api('GET', '/v1/ops/orders/exceptions?limit=500'),
  ]);
  const filter = el('input', { id: 'stuck-filter', type: 'search', placeholder: 'Filter by order, channel, kind, status…' });
  const panel = el('div', { id: 'outcome-panel' });
  const sections = el('div', {});
  const drawSections = () => {
    const needle = filter.value.trim().toLowerCase();
    const keep = (row) => !needle || JSON.stringify(row).toLowerCase().includes(needle);
    sections.replaceChildren(
      el('h2', {}, 'Escalated inquiries (the bank never said what happened)'),
      table([
        ['Order', (t) => el('code', {}, t.owner)],
        ['Channel', (t) => t.channel],
        ['Operation', (t) => t.operation],
        ['Request', (t) => el('code', {}, t.request_id)],
        ['Attempts', (t) => t.attempts, 'num'],
        ['Age', (t) => age(t.created_at_ms), 'num'],
        ['Next asked', (t) => when(t.next_at_ms)],
        ['', (t) => [
          can('ops:write') ? el('button', { type: 'button', 'data-action': 'ask', on: { click: () => askNow(t) } }, 'Ask now') : null,
          can('ops:write') ? el('button', { type: 'button', 'data-action': 'outcome', on: { click: () => outcomeForm(panel, t) } }, 'Set outcome…') : null,
        ]],
      ], escalated.data.filter(keep), { name: 'escalated', id: (t) => t.owner, empty: 'No escalated inquiry.' }),
      el('h2', {}, 'Overdue orders (unfinished past their deadline)'),
      orderTable(overdue.data.filter(keep), 'overdue'),
      el('h2', {}, 'Exceptions (suspended top-ups, disputed payouts and refunds)'),
      el('p', { class: 'muted' }, 'A suspended top-up goes back to its card (a second person approves). A disputed payout or refund is settled with its reconciliation break (Breaks): written off as a loss, or recovered.'),
      orderTable(exceptions.data.filter(keep), 'exceptions', (o) => [
        o.return_order ? [badge('return ' + o.return_status, 'warn'), ' ', el('code', {}, o.return_order)] : null,
        o.kind === 'topup' && o.status === 'suspended' && !o.return_order && can('ops:write')
          ? el('button', { type: 'button', 'data-action': 'return', on: { click: () => returnForm(panel, o) } }, 'Return to card…')
          : null,
      ]));
  };
  filter.addEventListener('input', drawSections);
  drawSections();
  show(el('h1', {}, 'Stuck orders'), el('div', { class: 'card' }, filter), panel, sections);
}

function orderTable(rows, name, actions) {
  const columns = [
    ['Order', (o) => el('code', {}, o.id)],
    ['Tenant', (o) => o.tenant],
    ['Kind', (o) => o.kind],
    ['Status', (o) => badge(o.status, 'warn')],
    ['Age', (o) => age(o.created_at_ms), 'num'],
    ['Last moved', (o) => age(o.updated_at_ms) + ' ago', 'num'],
    ['Deadline', (o) => when(o.deadline_ms)],
  ];
  if (actions) columns.push(['', actions]);
  return table(columns, rows, { name, id: (o) => o.id });
}

// A suspended top-up back to the card it came from: proposed here, carried out after a
// second person approves, as a card refund from suspense through the top-up's channel.
function returnForm(panel, order) {
  panel.replaceChildren(el('div', { class: 'card panel' },
    el('h2', {}, 'Return ', el('code', {}, order.id), ' to its card'),
    el('p', { class: 'muted' }, 'The wallet refused this top-up; its money waits in suspense. Approved, it goes back through the channel it came by.'),
    form('return', [
      ['evidence', 'Why the wallet cannot take it', { required: true, size: 40 }],
      ['reason', 'Reason', { required: true, size: 30 }],
      ['ticket', 'Ticket', {}],
    ], 'Propose', async (values) => {
      const action = await api('POST', '/v1/ops/orders/' + encodeURIComponent(order.id) + '/return',
        { evidence: values.evidence, reason: values.reason, ticket: values.ticket || null });
      toast('Action ' + action.id + ' is ' + action.state + '.');
      panel.replaceChildren(el('div', { class: 'card', 'data-proposed': action.id },
        'Proposed: action ', el('code', {}, action.id), ' — ', badge(action.state, action.state === 'applied' ? 'ok' : 'warn')));
    })));
}

async function askNow(task) {
  try {
    await api('POST', '/v1/ops/inquiries/' + encodeURIComponent(task.channel) + '/' + encodeURIComponent(task.request_id) + '/ask', {});
    toast('Asked ' + task.channel + ' about ' + task.request_id + ' now.');
    await renderStuck();
  } catch (error) {
    toast(error.message, true);
  }
}

// The outcome of an inquiry the bank never answered, from the bank's evidence: proposed by
// this operator, carried out after a second person approves (above the threshold).
function outcomeForm(panel, task) {
  panel.replaceChildren(el('div', { class: 'card panel' },
    el('h2', {}, 'Set the outcome of ', el('code', {}, task.request_id), ' (order ', el('code', {}, task.owner), ')'),
    el('p', { class: 'muted' }, 'Say what the bank did, from its own record. The order then completes through its own states, as if the bank had called back; above the approval threshold a second person must approve.'),
    form('outcome', [
      ['outcome', 'The bank', { options: ['succeeded', 'failed'] }],
      ['channel_ref', 'Bank reference (if it succeeded)', {}],
      ['fee', 'Bank fee, minor units', { inputmode: 'numeric' }],
      ['evidence', 'Evidence', { required: true, size: 40 }],
      ['reason', 'Reason', { required: true, size: 30 }],
      ['ticket', 'Ticket', {}],
    ], 'Propose', async (values) => {
      const result = values.outcome === 'succeeded'
        ? { outcome: 'succeeded', channel_ref: values.channel_ref, fee: values.fee || null }
        : { outcome: 'failed' };
      const action = await api('POST', '/v1/ops/inquiries/' + encodeURIComponent(task.channel) + '/' + encodeURIComponent(task.request_id) + '/outcome',
        { result, evidence: values.evidence, reason: values.reason, ticket: values.ticket || null });
      toast('Action ' + action.id + ' is ' + action.state + '.');
      panel.replaceChildren(el('div', { class: 'card', 'data-proposed': action.id },
        'Proposed: action ', el('code', {}, action.id), ' — ', badge(action.state, action.state === 'applied' ? 'ok' : 'warn')));
    })));
}

// Approvals: actions that wait for a checker (maker–checker).
async function renderApprovals() {
  const which = (location.hash.split('?state=')[1] || 'pending_approval');
  const actions = await api('GET', '/v1/ops/actions?limit=200' + (which === 'all' ? '' : '&state=' + encodeURIComponent(which)));
  const picker = el('select', { id: 'approvals-state', on: { change: (e) => { location.hash = '#/approvals?state=' + e.target.value; } } },
    ['pending_approval', 'applied', 'rejected', 'failed', 'all'].map((s) => el('option', { value: s, selected: s === which }, s)));
  const decide = async (action, verdict) => {
    const reason = document.getElementById('reason-' + action.id).value.trim();
    if (!reason) return toast('Give a reason.', true);
    try {
      const done = await api('POST', '/v1/ops/actions/' + encodeURIComponent(action.id) + '/' + verdict, { reason });
      toast('Action ' + done.id + ' is ' + done.state + '.');
      await renderApprovals();
    } catch (error) {
      toast(error.message, true);
    }
  };
  show(el('h1', {}, 'Approvals'),
    el('div', { class: 'card' }, el('label', { for: 'approvals-state' }, 'Show', picker)),
    table([
      ['Action', (a) => el('code', {}, a.id)],
      ['What', (a) => a.kind === 'return_suspended'
        ? ['return to card: ', el('code', {}, a.order), ' via ', a.channel]
        : [a.kind, ': ', el('code', {}, a.request_id), ' on ', a.channel, ' → ', badge(a.outcome, a.outcome === 'succeeded' ? 'ok' : 'bad')]],
      ['Order', (a) => el('code', {}, a.order)],
      ['Amount', (a) => a.amount + ' ' + a.asset, 'num'],
      ['Evidence', (a) => a.evidence],
      ['Maker', (a) => [a.maker, el('div', { class: 'muted' }, a.reason + (a.ticket ? ' · ' + a.ticket : ''))]],
      ['State', (a) => [badge(a.state, a.state === 'applied' ? 'ok' : a.state === 'pending_approval' ? 'warn' : 'bad'),
        a.failure_code ? el('div', { class: 'muted' }, a.failure_code) : null,
        a.checker ? el('div', { class: 'muted' }, 'by ' + a.checker) : null]],
      ['Age', (a) => age(a.created_at_ms), 'num'],
      ['', (a) => a.state === 'pending_approval' && can('ops:approve') ? [
        el('input', { id: 'reason-' + a.id, placeholder: 'reason', size: 14 }),
        el('button', { type: 'button', 'data-action': 'approve', on: { click: () => decide(a, 'approve') } }, 'Approve'),
        el('button', { type: 'button', class: 'quiet', 'data-action': 'reject', on: { click: () => decide(a, 'reject') } }, 'Reject'),
      ] : null],
    ], actions.data, { name: 'actions', id: (a) => a.id, empty: 'No action in this state.' }));
}

// Switches and plans: what is in force, set one, roll one back, run or roll back a plan.
const SWITCH_KINDS = {
  kill_all: [], kill_product: ['product'], kill_merchant: ['tenant', 'merchant'],
  history_reads_off: [], bulk_off: [], settlement_paused: [], webhooks_delayed: [],
  payouts_frozen: ['channel'], channel_disabled: ['channel'], channel_pinned: ['channel'],
  channel_weight: ['channel'], channel_fee: ['channel'], channel_breaker_errors: ['channel'], channel_rate_limit: ['channel'],
  order_held: ['order'],
};
const PRODUCTS = ['topup', 'withdrawal', 'payment', 'refund', 'payout_batch', 'settlement', 'wallet_transfer', 'points_grant', 'transfer'];

function targetLabel(target) {
  return Object.entries(target).filter(([k]) => k !== 'switch').map(([k, v]) => k + '=' + v).join(' ');
}

async function renderSwitches() {
  const [switches, plans] = await Promise.all([api('GET', '/v1/ops/switches'), api('GET', '/v1/ops/plans')]);
  const writer = can('ops:write');
  const rollBack = async (s) => {
    const reason = document.getElementById('rollback-reason-' + s.key).value.trim();
    if (!reason) return toast('Give a reason.', true);
    try {
      // The version on screen: if someone changed the switch since, the server refuses
      // (409 switch_contended) rather than roll back a change this operator has not seen.
      await api('POST', '/v1/ops/switches/rollback', { target: s.target, reason, expected_version: s.version });
      toast(s.key + ' rolled back.');
      await renderSwitches();
    } catch (error) { toast(error.message, true); }
  };
  const setForm = form('switch', [
    ['switch', 'Switch', { options: Object.keys(SWITCH_KINDS) }],
    ['product', 'Product', { options: [''].concat(PRODUCTS) }],
    ['tenant', 'Tenant', { size: 10 }],
    ['merchant', 'Merchant', { size: 10 }],
    ['channel', 'Channel', { size: 10 }],
    ['order', 'Order', { size: 14 }],
    ['on', 'Set', { options: ['on', 'off'] }],
    ['value', 'Value (weight ‰, fee per 10,000, errors ‰)', { inputmode: 'numeric', size: 6 }],
    ['expires_min', 'Expires in (min)', { inputmode: 'numeric', size: 6 }],
    ['reason', 'Reason', { required: true, size: 24 }],
    ['ticket', 'Ticket', { size: 10 }],
  ], 'Apply', async (values) => {
    const target = { switch: values.switch };
    for (const field of SWITCH_KINDS[values.switch]) target[field] = values[field];
    const body = { target, on: values.on === 'on', reason: values.reason, ticket: values.ticket || null };
    if (values.value) body.value = Number(values.value);
    if (values.expires_min) body.expires_in_ms = Number(values.expires_min) * 60000;
    const set = (await api('POST', '/v1/ops/switches', body)).data[0];
    toast(set.key + ' is ' + (set.on ? 'on' : 'off') + ' (version ' + set.version + ').');
    await renderSwitches();
  }, 'danger');
  show(el('h1', {}, 'Switches & plans'),
    el('h2', {}, 'Switches'),
    table([
      ['Switch', (s) => el('code', {}, s.key)],
      ['State', (s) => s.in_force ? badge('in force', 'bad') : badge(s.on ? 'on (expired)' : 'off', 'ok')],
      ['Value', (s) => s.value === null ? '' : s.value, 'num'],
      ['Expires', (s) => when(s.expires_at_ms)],
      ['Version', (s) => s.version, 'num'],
      ['Set by', (s) => [s.set_by, el('div', { class: 'muted' }, s.reason + (s.ticket ? ' · ' + s.ticket : '') + (s.plan ? ' · plan ' + s.plan : ''))]],
      ['When', (s) => age(s.set_at_ms) + ' ago', 'num'],
      ['', (s) => writer ? [
        el('input', { id: 'rollback-reason-' + s.key, placeholder: 'reason', size: 12 }),
        el('button', { type: 'button', class: 'quiet', 'data-action': 'rollback', on: { click: () => rollBack(s) } }, 'Roll back'),
      ] : null],
    ], switches.data, { name: 'switches', id: (s) => s.key, empty: 'No switch was ever set: everything runs normally.' }),
    writer ? el('div', { class: 'card' }, el('h2', {}, 'Set a switch'), setForm) : null,
    el('h2', {}, 'Contingency plans (预案)'),
    table([
      ['Plan', (p) => el('strong', {}, p.name)],
      ['When', (p) => [p.description, el('div', { class: 'muted' }, 'alert: ' + p.alert)]],
      ['Switches', (p) => p.switches.map((s) => el('div', {}, el('code', {}, typeof s === 'string' ? s : s.switch + (targetLabel(s) ? ' ' + targetLabel(s) : ''))))],
      ['', (p) => writer ? planButtons(p) : null],
    ], plans.data, { name: 'plans', id: (p) => p.name }));
}

function planButtons(plan) {
  const channel = plan.per_channel ? el('input', { id: 'plan-channel-' + plan.name, placeholder: 'channel', size: 8 }) : null;
  const reason = el('input', { id: 'plan-reason-' + plan.name, placeholder: 'reason', size: 14 });
  const act = async (verb) => {
    if (!reason.value.trim()) return toast('Give a reason.', true);
    const body = { reason: reason.value.trim() };
    if (channel) body.channel = channel.value.trim();
    try {
      await api('POST', '/v1/ops/plans/' + encodeURIComponent(plan.name) + '/' + verb, body);
      toast('Plan ' + plan.name + (verb === 'run' ? ' is running.' : ' rolled back.'));
      await renderSwitches();
    } catch (error) { toast(error.message, true); }
  };
  return [channel, reason,
    el('button', { type: 'button', class: 'danger', 'data-action': 'run', on: { click: () => act('run') } }, 'Run'),
    el('button', { type: 'button', class: 'quiet', 'data-action': 'rollback', on: { click: () => act('rollback') } }, 'Roll back')];
}

// Books: the balance sheet per asset, and client money against the reserves per channel.
async function renderBooks() {
  const sheet = await api('GET', '/v1/ops/balance-sheet');
  const sections = sheet.assets.map((asset) => {
    const cover = BigInt(asset.cover_minor);
    return el('div', { class: 'card', 'data-asset': asset.asset },
      el('h2', {}, asset.asset, ' ', asset.balanced ? badge('balanced', 'ok') : badge('NOT BALANCED', 'bad')),
      el('div', { class: 'tiles' },
        tile(asset.client_money_minor, 'client money (owed to others)', null, 'client-money'),
        tile(asset.reserves_minor, 'reserves at channels', null, 'reserves'),
        tile(asset.cover_minor, 'cover: reserves − client money', cover < 0n ? 'bad' : 'ok', 'cover')),
      table([
        ['Code', (l) => l.chart_code, 'num'],
        ['Line', (l) => [l.name || '(ledger only)', l.client_money ? el('span', { class: 'muted' }, ' · client money') : null]],
        ['Class', (l) => l.class || ''],
        ['Accounts', (l) => l.n_accounts, 'num'],
        ['Balance (minor)', (l) => l.balance_minor, 'num'],
        ['Pending Dr / Cr', (l) => l.debits_pending_minor + ' / ' + l.credits_pending_minor, 'num'],
      ], asset.lines, { name: 'lines-' + asset.asset, id: (l) => String(l.chart_code) }),
      el('h2', {}, 'Reserves by channel'),
      table([
        ['Channel', (r) => r.channel],
        ['Clearing balance (minor)', (r) => r.balance_minor, 'num'],
      ], asset.reserves, { name: 'reserves-' + asset.asset, id: (r) => r.channel, empty: 'No channel holds this asset.' }));
  });
  show(el('h1', {}, 'Books'), sections.length ? sections : el('div', { class: 'empty card' }, 'The books are empty.'));
}

// Breaks found by reconciliation, with their resolution and approval.
async function renderBreaks() {
  const which = (location.hash.split('?state=')[1] || 'pending_approval');
  const breaks = await api('GET', '/v1/recon/breaks?limit=200&state=' + encodeURIComponent(which));
  const picker = el('select', { id: 'breaks-state', on: { change: (e) => { location.hash = '#/breaks?state=' + e.target.value; } } },
    ['open', 'assigned', 'pending_approval', 'resolving', 'resolved'].map((s) => el('option', { value: s, selected: s === which }, s)));
  const reasonOf = (item) => document.getElementById('break-reason-' + item.id).value.trim();
  const decide = async (item, verdict) => {
    const body = verdict === 'approve' ? {} : { reason: reasonOf(item) };
    if (verdict === 'reject' && !body.reason) return toast('Give a reason.', true);
    try {
      await api('POST', '/v1/recon/breaks/' + encodeURIComponent(item.id) + '/' + verdict, body);
      toast('Break ' + item.id + ': ' + verdict + 'd.');
      await renderBreaks();
    } catch (error) { toast(error.message, true); }
  };
  const propose = async (item) => {
    const kind = document.getElementById('break-kind-' + item.id).value;
    const reason = reasonOf(item);
    if (!reason) return toast('Give a reason.', true);
    try {
      await api('POST', '/v1/recon/breaks/' + encodeURIComponent(item.id) + '/propose', { resolution: { kind }, reason });
      toast('Proposed ' + kind + ' for ' + item.id + '.');
      await renderBreaks();
    } catch (error) { toast(error.message, true); }
  };
  const writes = (b) => (b.state === 'open' || b.state === 'assigned') && can('recon:write');
  const approves = (b) => b.state === 'pending_approval' && can('recon:approve');
  show(el('h1', {}, 'Reconciliation breaks'),
    el('div', { class: 'card' }, el('label', { for: 'breaks-state' }, 'Show', picker)),
    table([
      ['Break', (b) => el('code', {}, b.id)],
      ['Channel / day', (b) => b.channel + ' · ' + b.business_day],
      ['Class', (b) => b.class],
      ['Severity', (b) => badge(b.severity, b.severity === 'critical' || b.severity === 'high' ? 'bad' : 'warn')],
      ['Ours / theirs', (b) => (b.amount_ours || '–') + ' / ' + (b.amount_theirs || '–') + ' ' + b.currency, 'num'],
      ['Order', (b) => b.order_id ? el('code', {}, b.order_id) : ''],
      ['Proposal', (b) => b.proposal ? [b.proposal.resolution.kind, el('div', { class: 'muted' }, 'by ' + b.proposal.maker + ': ' + b.proposal.reason)] : ''],
      ['Age', (b) => age(b.created_at_ms), 'num'],
      ['', (b) => [
        writes(b) ? el('select', { id: 'break-kind-' + b.id },
          ['adjust', 'credit_customer', 'refund_payer', 'write_off', 'force_match'].map((k) => el('option', { value: k }, k))) : null,
        writes(b) || approves(b) ? el('input', { id: 'break-reason-' + b.id, placeholder: 'reason', size: 12 }) : null,
        writes(b) ? el('button', { type: 'button', 'data-action': 'propose', on: { click: () => propose(b) } }, 'Propose') : null,
        approves(b) ? el('button', { type: 'button', 'data-action': 'approve', on: { click: () => decide(b, 'approve') } }, 'Approve') : null,
        approves(b) ? el('button', { type: 'button', class: 'quiet', 'data-action': 'reject', on: { click: () => decide(b, 'reject') } }, 'Reject') : null,
      ]],
    ], breaks.data, { name: 'breaks', id: (b) => b.id, empty: 'No break in this state.' }));
}

// The audit log, newest first, and its chain's verification.
async function renderAudit() {
  let entries = [];
  let after = 0;
  for (let page = 0; page < 20; page += 1) {
    const list = await api('GET', '/v1/ops/audit?limit=500&after_seq=' + after);
    entries = entries.concat(list.data);
    if (list.next_after_seq === null || list.next_after_seq === undefined) break;
    after = list.next_after_seq;
  }
  const result = el('span', { id: 'audit-verified' });
  const verify = el('button', { type: 'button', id: 'audit-verify', on: { click: async () => {
    try {
      const check = await api('GET', '/v1/ops/audit/verify');
      result.replaceChildren(check.ok
        ? badge('chain verifies: ' + check.entries + ' entries, head ' + check.head_hash.slice(0, 16) + '…', 'ok')
        : badge('BROKEN at ' + check.broken_seq + ': ' + check.detail, 'bad'));
    } catch (error) { toast(error.message, true); }
  } } }, 'Verify the chain');
  show(el('h1', {}, 'Audit log'),
    el('div', { class: 'card' }, verify, ' ', result),
    table([
      ['#', (e) => e.seq, 'num'],
      ['When', (e) => when(e.at_ms)],
      ['Who', (e) => e.actor],
      ['What', (e) => [el('strong', {}, e.action), ' ', el('code', {}, e.subject)]],
      ['Why', (e) => e.reason + (e.ticket ? ' · ' + e.ticket : '')],
      ['Changed (before → after)', (e) => changes(e.before, e.after).map(([path, from, to]) =>
        el('div', {}, el('code', {}, path), ': ', el('code', {}, from), ' → ', el('code', {}, to)))],
    ], entries.reverse().slice(0, 500), { name: 'audit', id: (e) => String(e.seq), empty: 'Nothing audited yet.' }));
}

// What an audit entry changed: every leaf whose value differs, as [path, before, after].
function changes(before, after) {
  const leaves = (value, prefix, into) => {
    if (prefix === '' && (value === null || value === undefined)) return into;
    if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) leaves(inner, prefix ? prefix + '.' + key : key, into);
    } else {
      into.set(prefix || '·', value === undefined ? '' : JSON.stringify(value));
    }
    return into;
  };
  const from = leaves(before, '', new Map());
  const to = leaves(after, '', new Map());
  const paths = [...new Set([...from.keys(), ...to.keys()])];
  return paths.filter((path) => from.get(path) !== to.get(path))
    .map((path) => [path, from.has(path) ? from.get(path) : '–', to.has(path) ? to.get(path) : '–']);
}

// ---- start -----------------------------------------------------------------------------

async function start() {
  document.getElementById('sign-out').addEventListener('click', async () => {
    await api('DELETE', '/console/session').catch(() => null);
    signedOut();
  });
  window.addEventListener('hashchange', route);
  try {
    signedIn(await api('GET', '/console/session'));
    await route();
  } catch (_) {
    signedOut();
  }
}

start();
