// The oversight view, read-only: custodial cameras' open integrity alerts from the live feed and
// the audit log, paged, with the hash chain's verification. Nothing here changes anything.

import { $, h, api, signIn, signOut, connectLive, startClock, fmtWhen, fmtDateTime } from './common.js';

const PAGE = 100;
const KNOWN_ACTIONS = [
  'audit.read', 'auth.sign_in', 'auth.sign_in_failed', 'auth.sign_in_refused', 'camera.integrity',
  'incident.assign', 'incident.cancel', 'review.confirm', 'review.reject', 'user.add',
  'watchlist.enroll', 'watchlist.list', 'watchlist.negative', 'watchlist.remove',
];

$('#signin-out').addEventListener('click', (e) => { e.preventDefault(); signOut(); });
$('#signout').addEventListener('click', signOut);

const { user } = await signIn({
  roles: ['oversight', 'supervisor'],
  refusal: (u) => `Signed in as ${u.username} (${u.role}): not allowed here. This view is for oversight.`,
});
$('#who').textContent = `${user.username} · ${user.role}`;
startClock($('#clock'));

// ---------- camera alerts ----------

// One row per camera: its open alert, or that it came back while this page watched. After
// each (re)connect the feed sends the open alerts, then `ready`: they replace the page's own.
const alerts = new Map(); // camera -> latest alert
let fresh = null; // the open alerts arriving before `ready`

connectLive({
  onState(s) {
    const el = $('#conn');
    el.textContent = s === 'live' ? 'live' : s === 'signed_out' ? 'signed out' : s;
    el.className = `conn ${s === 'live' ? 'ok' : 'bad'}`;
    if (s === 'signed_out') location.reload();
  },
  onMessage(type, a) {
    if (type === 'hello') {
      fresh = new Map();
    } else if (type === 'ready' && fresh) {
      alerts.clear();
      for (const [camera, alert] of fresh) alerts.set(camera, alert);
      fresh = null;
      renderAlerts();
    } else if (type === 'integrity') {
      if (fresh) {
        fresh.set(a.camera, a);
        return;
      }
      alerts.set(a.camera, a);
      renderAlerts();
    }
  },
});

function renderAlerts() {
  const list = [...alerts.values()].sort((x, y) => new Date(y.at) - new Date(x.at));
  $('#alerts').replaceChildren(...(list.length ? list.map(alertRow) : [h('div.empty', null, 'No open alerts.')]));
  $('#alerts-count').textContent = list.filter((a) => a.state !== 'ok').length;
}

function alertRow(a) {
  return h('div.alert', { class: a.state === 'ok' ? 'closed' : null, dataset: { camera: a.camera, state: a.state } },
    h('span.cam', null, a.camera, a.custodial ? h('span.faint', null, ' · custodial') : null),
    h('span.when', { title: a.at }, fmtWhen(a.at)),
    h('span.what', null, h('span.chip', { class: `ig-${a.state}` }, a.state), a.detail ? ` ${a.detail}` : ''),
    h('span.where', null, `${a.site ? `site ${a.site} · ` : ''}${a.location ? `${a.location.lat.toFixed(5)}, ${a.location.lon.toFixed(5)}` : ''}`));
}

// ---------- audit log ----------

const form = $('#audit-filter');
const pages = []; // the `after` of each page shown before this one
let current = { after: 0, next: null };
let chainRows = 0;
const actions = new Set(KNOWN_ACTIONS);

function fillActions() {
  $('#actions').replaceChildren(...[...actions].sort().map((a) => h('option', { value: a })));
}
fillActions();

async function load(after) {
  const action = String(new FormData(form).get('action') || '').trim();
  const q = new URLSearchParams({ after: String(after), limit: String(PAGE) });
  if (action) q.set('action', action);
  const body = $('#audit tbody');
  try {
    const res = await api(`/audit?${q}`);
    current = { after, next: res.next_after };
    body.replaceChildren(...res.rows.map(auditRow));
    $('#audit-empty').hidden = res.rows.length > 0;
    const first = res.rows[0]?.seq;
    const last = res.rows[res.rows.length - 1]?.seq;
    $('#audit-range').textContent = res.rows.length ? `seq ${first}–${last}` : 'no rows';
    let grew = false;
    for (const r of res.rows) if (!actions.has(r.action)) { actions.add(r.action); grew = true; }
    if (grew) fillActions();
  } catch (e) {
    body.replaceChildren(h('tr', null, h('td', { colspan: 7, class: 'error' }, `Cannot read the audit log: ${e.message}`)));
  }
  $('#audit-prev').disabled = pages.length === 0;
  $('#audit-next').disabled = current.next === null || current.next === undefined || body.children.length < PAGE;
}

function auditRow(r) {
  return h('tr', { dataset: { seq: String(r.seq) } },
    h('td.seq', null, String(r.seq)),
    h('td.at', { title: r.at }, fmtDateTime(r.at)),
    h('td.actor', null, r.actor),
    h('td.action', null, r.action),
    h('td.subject', null, r.subject ?? ''),
    h('td.detail', null, details(r.details)),
    h('td.hash', { title: r.hash }, (r.hash || '').slice(0, 12)));
}

// Details as "key value" pairs, one level deep.
function details(d) {
  if (d === null || d === undefined) return '';
  if (typeof d !== 'object') return String(d);
  const parts = [];
  for (const [k, v] of Object.entries(d)) {
    if (v === null || v === undefined) continue;
    const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    parts.push(h('span', null, h('b', null, k), ` ${text.length > 120 ? `${text.slice(0, 120)}…` : text}`), '  ');
  }
  return h('span', null, ...parts);
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  pages.length = 0;
  const from = parseInt(String(new FormData(form).get('from') || ''), 10);
  load(Number.isFinite(from) && from > 0 ? from - 1 : 0);
});
$('#audit-next').addEventListener('click', () => {
  if (current.next === null || current.next === undefined) return;
  pages.push(current.after);
  load(current.next);
});
$('#audit-latest').addEventListener('click', async () => {
  // Seqs count up from 1: the last page starts about `rows` - PAGE.
  if (!chainRows) await verify();
  pages.length = 0;
  load(Math.max(0, chainRows - PAGE));
});
$('#audit-prev').addEventListener('click', () => {
  if (!pages.length) return;
  load(pages.pop());
});

async function verify() {
  const el = $('#chain');
  el.textContent = 'chain: checking…';
  el.className = 'right';
  try {
    const v = await api('/audit/verify');
    chainRows = v.rows || 0;
    if (v.intact) {
      el.textContent = `chain verified: yes (${v.rows} rows)`;
      el.className = 'right ok';
    } else {
      const b = v.first_break || {};
      el.textContent = `chain verified: NO — first break at seq ${b.seq}: ${b.reason || 'unknown'}`;
      el.className = 'right bad';
    }
  } catch (e) {
    el.textContent = `chain verified: unknown (${e.message})`;
    el.className = 'right bad';
  }
}
$('#verify').addEventListener('click', verify);

// One after the other: reading a page appends to the log (audit.read) while it is verified.
await load(0);
await verify();
window.kuzet = { ready: true };
