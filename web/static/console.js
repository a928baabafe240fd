// The dispatch console: live queue, map, incident detail with assign / reassign / cancel,
// face-match reviews, camera alerts and units, all from GET /api/v1/live.

import {
  $, h, api, signIn, signOut, connectLive, toast, startClock, fmtTime, fmtWhen, fmtDuration, ageOf,
  fmtDistance, fmtEta, words, KIND_LABEL, haversine, beep, unlockSound, soundReady,
} from './common.js';
import { createMap, arrowSvg, UNIT_COLOURS, prioColour, cameraIcon, esc } from './map.js';
import { setupWarnings } from './warnings.js';

const L = window.L;
const ENDED = new Set(['closed', 'cancelled']);
const PROGRESS_ORDER = ['accepted', 'en_route', 'on_scene', 'cleared'];
const STATUS_TEXT = {
  available: 'available', offered: 'offer pending', on_incident: 'on incident', busy: 'busy',
  off_duty: 'off duty', offline: 'offline', no_fix: 'no recent fix', unavailable: 'not offerable',
};
const CANCEL_REASONS = ['False alarm', 'Test or drill', 'Duplicate', 'Resolved by phone'];
const FIX_MAX_AGE_S = 120;

const st = {
  user: null,
  incidents: new Map(),   // open incidents by id
  ended: new Map(),       // final snapshots, for the detail panel
  units: new Map(),       // live units by id
  callsigns: new Map(),
  reviews: new Map(),
  alerts: new Map(),      // camera -> its latest alert (open, or back to ok while watched)
  freshAlerts: null,      // the open alerts arriving before `ready`
  selected: null,
  selectAfterConfirm: null,
  seen: new Set(),        // incident ids ever shown (sound only for new ones)
  connectedOnce: false,
};

let map = null;
let mapLayers = null;
const incMarkers = new Map();
const unitMarkers = new Map();
let linksLayer = null;
let actionsBox = null; // kept across re-renders of the selected incident

// ---------- start ----------

$('#signin-out').addEventListener('click', (e) => { e.preventDefault(); signOut(); });
$('#signout').addEventListener('click', signOut);

const { user, gesture } = await signIn({
  roles: ['dispatcher', 'supervisor'],
  refusal: (u) => `Signed in as ${u.username} (${u.role}): not allowed here. ` +
    'The console is for dispatchers and supervisors.' +
    (u.role === 'oversight' ? ' Oversight uses /oversight/.' : u.role === 'officer' ? ' Officers use the tablet app (/tablet/).' : ''),
});
st.user = user;
$('#who').textContent = `${user.username} · ${user.role}`;
startClock($('#clock'));
setupSound(gesture);

const created = await createMap($('#map'), {
  onError: (e) => toast(`Map data unavailable: ${e.message}`, 'warn'),
});
map = created.map;
mapLayers = created.layers;
for (const u of created.info?.units || []) st.callsigns.set(u.unit_id, u.callsign);
linksLayer = L.layerGroup().addTo(map);
const labels = () => map.getContainer().classList.toggle('labels-off', map.getZoom() < 16);
map.on('zoomend', labels);
labels();

// A new area warning starts at the selected incident, else the middle of the map.
setupWarnings(map, () => {
  const s = st.selected && st.incidents.get(st.selected);
  if (s) return { lat: s.location.lat, lon: s.location.lon };
  const c = map.getCenter();
  return { lat: c.lat, lon: c.lng };
});

connectLive({ onMessage, onState });
setInterval(tick, 1000);
window.kuzet = { ready: true, state: st };

// ---------- live feed ----------

function onState(s) {
  const el = $('#conn');
  el.textContent = s === 'live' ? 'live' : s === 'signed_out' ? 'signed out' : s;
  el.className = `conn ${s === 'live' ? 'ok' : 'bad'}`;
  if (s === 'signed_out') location.reload();
}

function onMessage(type, data) {
  switch (type) {
    case 'hello': return onHello();
    case 'ready': return onReady();
    case 'units': return onUnits(data);
    case 'incident': return upsertIncident(data, false);
    case 'incident_closed': return endIncident(data);
    case 'escalation': return onEscalation(data);
    case 'review': return onReview(data);
    case 'integrity': return onIntegrity(data);
    default: return undefined;
  }
}

// After a (re)connect the server sends the state as it stands, then `ready`: whatever it did
// not send again is gone.
function onHello() {
  st.staleIncidents = new Set(st.incidents.keys());
  st.staleReviews = new Set(st.reviews.keys());
  st.freshAlerts = new Map();
  st.connectedOnce = true;
}

function onReady() {
  for (const id of st.staleIncidents || []) {
    const s = st.incidents.get(id);
    if (s) endIncident({ ...s, state: 'closed' }, true);
  }
  for (const id of st.staleReviews || []) removeReview(id);
  st.staleIncidents = st.staleReviews = null;
  if (st.freshAlerts) {
    st.alerts = st.freshAlerts;
    st.freshAlerts = null;
    renderAlerts();
  }
}

function onUnits(list) {
  for (const u of list) {
    st.units.set(u.unit_id, u);
    if (u.callsign) st.callsigns.set(u.unit_id, u.callsign);
  }
  renderUnits();
  for (const u of list) drawUnit(u);
  refreshActions();
  drawLinks();
  renderSummary();
}

function upsertIncident(s, fromEscalation) {
  if (ENDED.has(s.state)) return endIncident(s);
  const id = s.incident_id;
  st.staleIncidents?.delete(id);
  const isNew = !st.seen.has(id);
  st.seen.add(id);
  st.incidents.set(id, s);
  st.ended.delete(id);
  if (isNew && s.priority === 1 && !fromEscalation) {
    // Alarm for new priority-1 incidents, not for old ones re-sent on a reconnect.
    const recent = Date.now() - new Date(s.opened_at).getTime() < 60000;
    if (recent) alarmSound();
  }
  renderQueue();
  drawIncident(s);
  const banner = $('#banner');
  if (!banner.hidden && banner.dataset.incidentId === id && s.state !== 'uncovered') banner.hidden = true;
  if (st.selectAfterConfirm === id) {
    st.selectAfterConfirm = null;
    select(id, true);
  }
  if (st.selected === id) renderDetail();
  renderUnits();
  drawLinks();
  renderSummary();
  return undefined;
}

function endIncident(s, silent) {
  const id = s.incident_id;
  st.incidents.delete(id);
  st.ended.set(id, s);
  if (st.ended.size > 50) st.ended.delete(st.ended.keys().next().value);
  const m = incMarkers.get(id);
  if (m) { m.remove(); incMarkers.delete(id); }
  renderQueue();
  if (st.selected === id) renderDetail();
  renderUnits();
  drawLinks();
  renderSummary();
  if ($('#banner').dataset.incidentId === id) $('#banner').hidden = true;
  if (!silent && s.state === 'cancelled') toast(`Incident cancelled: ${title(s)}`);
}

function onEscalation(e) {
  const s = e.incident;
  if (s) upsertIncident(s, true);
  const text = `Escalated: ${s ? title(s) : e.incident_id} — ${words(e.reason)}. Assign a unit.`;
  const b = $('#banner');
  b.dataset.incidentId = e.incident_id;
  b.textContent = text;
  b.hidden = false;
  b.onclick = () => { b.hidden = true; select(e.incident_id, true); };
  clearTimeout(b.timer);
  b.timer = setTimeout(() => { b.hidden = true; }, 60000);
  beep([[520, 250], [520, 250], [390, 400]], 0.3);
}

// ---------- queue ----------

function sortedIncidents() {
  return [...st.incidents.values()].sort((a, b) =>
    (a.state === 'uncovered' ? 0 : 1) - (b.state === 'uncovered' ? 0 : 1) ||
    a.priority - b.priority ||
    new Date(a.opened_at) - new Date(b.opened_at));
}

function title(s) {
  if (s.kind === 'wanted_person') return `${KIND_LABEL[s.kind]}: ${s.wanted?.name || 'unknown'}`;
  return `${KIND_LABEL[s.kind] || words(s.kind)}${s.site ? ` at ${s.site.name}` : ''}`;
}

function placeLine(s) {
  if (s.site) return `${s.site.name}${s.site.room ? ` · room ${s.site.room}` : ''}`;
  if (s.kind === 'wanted_person') {
    const last = s.sightings?.[s.sightings.length - 1];
    return last ? `seen by ${last.camera} at ${fmtTime(last.at)}` : `${s.location.lat.toFixed(5)}, ${s.location.lon.toFixed(5)}`;
  }
  return `${s.location.lat.toFixed(5)}, ${s.location.lon.toFixed(5)}`;
}

function subKind(s) {
  if (s.kind === 'wanted_person') return s.wanted ? `danger ${s.wanted.danger}` : '';
  const kinds = [...new Set((s.raised_by || []).filter((r) => !r.withdrawn).map((r) => r.kind))];
  return kinds.join(', ');
}

function renderQueue() {
  const q = $('#queue');
  const list = sortedIncidents();
  $('#queue-count').textContent = list.length;
  const unc = list.filter((s) => s.state === 'uncovered').length;
  $('#queue-note').textContent = unc ? `${unc} uncovered` : '';
  if (!list.length) {
    q.replaceChildren(h('div.empty', null, 'No open incidents.'));
    return;
  }
  // Rows are kept and filled in place, so a click is never lost to a re-render.
  const old = new Map([...q.querySelectorAll('.incident')].map((el) => [el.dataset.incidentId, el]));
  const rows = list.map((s) => fillQueueRow(old.get(s.incident_id) || queueRow(s.incident_id), s));
  reorder(q, rows);
}

/** Makes `box`'s children exactly `els`, in order, moving only what must move. */
function reorder(box, els) {
  if (els.length === box.children.length && els.every((el, i) => box.children[i] === el)) return;
  const top = box.scrollTop;
  box.replaceChildren(...els);
  box.scrollTop = top;
}

function queueRow(id) {
  return h('div.incident', {
    role: 'listitem', tabindex: 0, dataset: { incidentId: id },
    onclick: () => select(id, true),
    onkeydown: (e) => { if (e.key === 'Enter') select(id, true); },
  },
  h('div.r1', null, h('span.prio'), h('span.kind'), h('span.sub'), h('span.age')),
  h('div.r2'),
  h('div.r3', null, h('span.chip'), h('span.units')));
}

function fillQueueRow(row, s) {
  const assigned = (s.units || []).filter((a) => a.progress !== 'cleared');
  const unitsText = assigned.length
    ? assigned.map((a) => `${callsign(a.unit)} ${words(a.progress)}`).join(', ')
    : s.offers?.length ? `offered to ${s.offers.map((o) => callsign(o.unit)).join(', ')}` : 'no unit';
  Object.assign(row.dataset, { state: s.state, priority: String(s.priority), kind: s.kind });
  row.classList.toggle('selected', st.selected === s.incident_id);
  const set = (sel, text, cls) => {
    const el = row.querySelector(sel);
    if (el.textContent !== text) el.textContent = text;
    if (cls !== undefined && el.className !== cls) el.className = cls;
  };
  set('.prio', `P${s.priority}`, `prio p${s.priority}`);
  set('.kind', KIND_LABEL[s.kind] || words(s.kind));
  set('.sub', subKind(s));
  const age = row.querySelector('.age');
  age.dataset.since = s.opened_at;
  age.textContent = ageOf(s.opened_at);
  set('.r2', s.kind === 'wanted_person' && s.wanted ? `${s.wanted.name} · ${placeLine(s)}` : placeLine(s));
  set('.chip', words(s.state), `chip st-${s.state}`);
  set('.units', unitsText);
  return row;
}

function select(id, pan) {
  st.selected = id;
  actionsBox = null;
  for (const row of document.querySelectorAll('#queue .incident')) {
    row.classList.toggle('selected', row.dataset.incidentId === id);
  }
  for (const [iid, m] of incMarkers) m.getElement()?.querySelector('.mk-inc')?.classList.toggle('selected', iid === id);
  renderDetail();
  drawLinks();
  const s = st.incidents.get(id) || st.ended.get(id);
  if (pan && s && map) map.setView([s.location.lat, s.location.lon], Math.max(map.getZoom(), 15), { animate: true });
}

// ---------- detail ----------

function renderDetail() {
  const d = $('#detail');
  const id = st.selected;
  const s = id && (st.incidents.get(id) || st.ended.get(id));
  const close = $('#detail-close-wrap');
  close.replaceChildren();
  if (!s) {
    document.body.classList.remove('has-detail');
    d.removeAttribute('data-incident-id');
    d.removeAttribute('data-state');
    d.replaceChildren(h('div.empty', null, 'Select an incident in the queue or on the map.'));
    return;
  }
  document.body.classList.add('has-detail');
  close.append(h('button.btn.small.ghost', { type: 'button', onclick: () => select(null) }, 'Close'));
  d.dataset.incidentId = s.incident_id;
  d.dataset.state = s.state;
  const ended = ENDED.has(s.state);
  const top = d.scrollTop;
  const parts = [
    h('div.head', null,
      h('span.prio', { class: `p${s.priority}` }, `P${s.priority}`),
      h('span.title', null, KIND_LABEL[s.kind] || words(s.kind)),
      h('span.chip', { class: `st-${s.state}` }, words(s.state)),
      ended ? null : h('span.age', { dataset: { since: s.opened_at }, title: 'age' }, ageOf(s.opened_at))),
  ];
  if (ended) parts.push(h('div.ended', null, `This incident has ended (${words(s.state)}).`));
  parts.push(section('Where', locationKv(s)));
  if (s.wanted) parts.push(section('Wanted person', wantedBlock(s)));
  if (s.raised_by?.length) parts.push(section(`Alarms (${s.raised_by_total ?? s.raised_by.length})`, raisersList(s)));
  parts.push(section('Units', unitsBlock(s)));
  if (!ended) {
    if (!actionsBox || actionsBox.dataset.incidentId !== s.incident_id) actionsBox = buildActions(s);
    parts.push(section('Actions', actionsBox));
  }
  if (s.sightings?.length) parts.push(section(`Sightings (${s.sightings_total ?? s.sightings.length})`, sightingsList(s)));
  parts.push(section('Timeline', timelineTable(s)));
  d.replaceChildren(...parts);
  d.scrollTop = top;
  refreshActions();
}

function section(name, ...content) {
  return h('section', null, h('h3', null, name), ...content);
}

function locationKv(s) {
  const rows = [];
  if (s.site) {
    rows.push(['Site', s.site.name], ['Room', s.site.room || '–']);
  }
  rows.push(['Position', `${s.location.lat.toFixed(5)}, ${s.location.lon.toFixed(5)}`]);
  rows.push(['Opened', `${fmtTime(s.opened_at)}`]);
  if (s.escalated) rows.push(['Escalated', words(s.escalated)]);
  rows.push(['Incident', h('span.mono.faint', { title: s.incident_id }, s.incident_id.slice(0, 8))]);
  return h('dl.kv', null, rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function wantedBlock(s) {
  const w = s.wanted;
  return h('div.wanted', null,
    faceImg(`/api/v1/watchlist/${encodeURIComponent(w.person_id)}/face.jpg`, 'watchlist-face', `enrolment photo of ${w.name}`),
    h('div', null,
      h('div', { style: 'font-weight:700' }, w.name),
      h('div', null, h('span.chip', { class: `dg-${w.danger}` }, `danger ${w.danger}`)),
      h('div.muted', null, w.legal_basis),
      h('div.faint.mono', null, w.person_id)));
}

function raisersList(s) {
  return h('ul.list', null, s.raised_by.map((r) => h('li', null,
    h('span.grow', null, `${r.button}${r.room ? ` · room ${r.room}` : ''}`),
    h('span.muted', null, words(r.kind)),
    r.withdrawn ? h('span.chip.st-cancelled', null, 'withdrawn') : null)));
}

function unitsBlock(s) {
  const items = [];
  for (const a of s.units || []) {
    items.push(h('li', null,
      h('span.grow', null, callsign(a.unit)),
      h('span.chip', { class: `st-${a.progress}` }, words(a.progress)),
      h('span.num', null, `${fmtDistance(a.distance_m)} · ${fmtEta(a.eta_s)}`)));
  }
  for (const o of s.offers || []) {
    items.push(h('li', null,
      h('span.grow', null, callsign(o.unit)),
      h('span.chip.us-offered', null, 'offered'),
      h('span.num', null, `${fmtDistance(o.distance_m)} · ${fmtEta(o.eta_s)}`)));
  }
  if (!items.length) return h('div.muted', null, 'No unit has accepted and no offer is waiting.');
  return h('ul.list', null, items);
}

function sightingsList(s) {
  const rows = [...s.sightings].reverse().slice(0, 20).map((g) => h('li', null,
    g.evidence
      ? h('a', { href: `/api/v1/sightings/${g.sighting_id}/frame.jpg`, target: '_blank', rel: 'noopener', title: 'camera frame' },
        faceImg(`/api/v1/sightings/${g.sighting_id}/face.jpg`, '', 'face'))
      : h('span.faint', { style: 'width:28px;font-size:10px' }, 'no pic'),
    h('span.grow', null, g.camera),
    h('span.num', null, `${(g.score ?? 0).toFixed(2)} · ${fmtTime(g.at)}`)));
  return h('ul.list.sightings', null, rows);
}

// Timeline events a dispatcher should not miss, with what they mean.
const FLAGGED = new Map([
  ['alarm_flood', 'A button is sending alarms faster than its rate limit (faulty or tampered with?). '
    + 'Every one is acknowledged and joins this incident; the count is in the detail.'],
]);

function timelineTable(s) {
  const rows = [...(s.timeline || [])].reverse().map((t) => h('tr', FLAGGED.has(t.event) ? { class: 'flag' } : null,
    h('td.t', { title: t.at }, fmtTime(t.at)),
    h('td.ev', { title: FLAGGED.get(t.event) }, words(t.event)),
    h('td.u', null, t.unit ? callsign(t.unit) : t.button || ''),
    h('td', null, t.detail || '')));
  // A long timeline is published as its first entry and the latest ones (docs/mqtt.md).
  if (s.timeline_omitted) {
    rows.splice(rows.length - 1, 0, h('tr', null, h('td.muted', { colspan: 4 },
      `${s.timeline_omitted} earlier entries not shown · `,
      h('a', { href: `/api/v1/incidents/${s.incident_id}/timeline`, target: '_blank', rel: 'noopener' }, 'full timeline'))));
  }
  return h('table.timeline', null, h('tbody', null, rows));
}

// The actions box survives re-renders so that a selection or a typed reason is not lost.
function buildActions(s) {
  const id = s.incident_id;
  const err = h('div.error', { role: 'alert' });
  const unitSel = h('select', { name: 'unit', 'aria-label': 'unit to assign' });
  const replaceSel = h('select', { name: 'replace', 'aria-label': 'unit to replace' });
  const assignBtn = h('button.btn.primary', { type: 'button', dataset: { action: 'assign' } }, 'Assign');
  const reassignBtn = h('button.btn', { type: 'button', dataset: { action: 'reassign' } }, 'Reassign');
  const reason = h('input', { type: 'text', name: 'reason', placeholder: 'Reason (required)', maxlength: 500 });
  const confirmCancel = h('button.btn.danger', { type: 'button', dataset: { action: 'confirm-cancel' } }, 'Cancel incident');
  const cancelBox = h('div.cancel-box', { hidden: true },
    h('div', null, 'Why is this incident cancelled?'),
    h('div.reasons', null, CANCEL_REASONS.map((r) => h('button.btn.small', { type: 'button', onclick: () => { reason.value = r; reason.focus(); } }, r))),
    reason,
    h('div.line', null, confirmCancel,
      h('button.btn.ghost', { type: 'button', onclick: () => { cancelBox.hidden = true; } }, 'Keep it')));
  const cancelBtn = h('button.btn.danger', { type: 'button', dataset: { action: 'cancel' } }, 'Cancel…');
  const box = h('div.actions-box', { dataset: { incidentId: id } },
    h('div.line', null, h('span.lbl', null, 'Unit'), unitSel, assignBtn),
    h('div.line.replace-line', null, h('span.lbl', null, 'Replace'), replaceSel, reassignBtn),
    h('div.line', null, cancelBtn),
    cancelBox,
    err);
  const run = async (btn, path, body, done) => {
    err.textContent = '';
    btn.disabled = true;
    try {
      const snap = await api(`/incidents/${id}/${path}`, { method: 'POST', body });
      if (snap && snap.incident_id) upsertIncident(snap, true);
      done?.(snap);
    } catch (e) {
      err.textContent = e.status === 409 ? `Not possible: ${e.message}`
        : e.status === 404 ? 'This incident is no longer open.' : e.message;
    } finally {
      btn.disabled = false;
      refreshActions();
    }
  };
  assignBtn.addEventListener('click', () => {
    if (!unitSel.value) { err.textContent = 'Choose a unit first.'; return; }
    run(assignBtn, 'assign', { unit_id: unitSel.value },
      () => toast(`Offer sent to ${callsign(unitSel.value)}; it must still accept on the tablet.`));
  });
  reassignBtn.addEventListener('click', () => {
    if (!unitSel.value || !replaceSel.value) { err.textContent = 'Choose the new unit and the unit it replaces.'; return; }
    run(reassignBtn, 'assign', { unit_id: unitSel.value, replace: replaceSel.value },
      () => toast(`${callsign(replaceSel.value)} stood down; offer sent to ${callsign(unitSel.value)}.`));
  });
  cancelBtn.addEventListener('click', () => { cancelBox.hidden = !cancelBox.hidden; if (!cancelBox.hidden) reason.focus(); });
  confirmCancel.addEventListener('click', () => {
    const r = reason.value.trim();
    if (!r) { err.textContent = 'A reason is required to cancel.'; reason.focus(); return; }
    run(confirmCancel, 'cancel', { reason: r }, () => { cancelBox.hidden = true; });
  });
  return box;
}

/** Refreshes the options of the actions box in place, keeping what was chosen. */
function refreshActions() {
  if (!actionsBox) return;
  const s = st.incidents.get(actionsBox.dataset.incidentId);
  if (!s) return;
  const unitSel = actionsBox.querySelector('select[name=unit]');
  const replaceSel = actionsBox.querySelector('select[name=replace]');
  const taken = new Set([...(s.units || []).map((a) => a.unit), ...(s.offers || []).map((o) => o.unit)]);
  const candidates = [...st.units.values()]
    .filter((u) => u.available && !taken.has(u.unit_id) && Number.isFinite(u.lat) && Number.isFinite(u.lon))
    .map((u) => ({ u, d: haversine(u.lat, u.lon, s.location.lat, s.location.lon) }))
    .sort((a, b) => a.d - b.d);
  fillSelect(unitSel, candidates.map(({ u, d }) => [u.unit_id, `${u.callsign || u.unit_id} — ${fmtDistance(d)}`]),
    'no available unit');
  const active = (s.units || []).filter((a) => a.progress !== 'cleared');
  fillSelect(replaceSel, active.map((a) => [a.unit, `${callsign(a.unit)} (${words(a.progress)})`]), 'no unit assigned');
  actionsBox.querySelector('.replace-line').hidden = !active.length;
  actionsBox.querySelector('[data-action=assign]').disabled = !candidates.length;
  actionsBox.querySelector('[data-action=reassign]').disabled = !candidates.length || !active.length;
}

function fillSelect(sel, options, emptyText) {
  const keep = sel.value;
  const want = options.length ? options : [['', emptyText]];
  const same = sel.options.length === want.length &&
    want.every(([v, t], i) => sel.options[i].value === v && sel.options[i].text === t);
  if (same) return;
  sel.replaceChildren(...want.map(([v, t]) => h('option', { value: v }, t)));
  if (options.some(([v]) => v === keep)) sel.value = keep;
}

function faceImg(src, cls, alt) {
  const img = h('img', { src, alt, class: cls, loading: 'lazy', decoding: 'async' });
  img.addEventListener('error', () => {
    const ph = h('div.noimg', { class: cls, title: alt }, 'no picture');
    img.replaceWith(ph);
  }, { once: true });
  return img;
}

// ---------- reviews ----------

function onReview(r) {
  st.staleReviews?.delete(r.review_id);
  if (r.state !== 'pending') { removeReview(r.review_id); return; }
  const isNew = !st.reviews.has(r.review_id);
  st.reviews.set(r.review_id, r);
  renderReviews();
  if (isNew && st.connectedOnce) beep([[740, 160], [740, 160]], 0.2, 'review');
}

function removeReview(id) {
  if (!st.reviews.delete(id)) return;
  renderReviews();
}

function renderReviews() {
  const box = $('#reviews');
  const list = [...st.reviews.values()].sort((a, b) => new Date(a.opened_at) - new Date(b.opened_at));
  $('#reviews-count').textContent = list.length;
  if (!list.length) { box.replaceChildren(h('div.empty', null, 'No matches waiting.')); return; }
  // Cards are updated in place: a new sighting must not swap a button under the pointer.
  const old = new Map([...box.querySelectorAll('.review')].map((el) => [el.dataset.reviewId, el]));
  const cards = list.map((r) => {
    const el = old.get(r.review_id) || reviewCard(r);
    fillReview(el, r);
    return el;
  });
  if (cards.some((c, i) => box.children[i] !== c) || box.children.length !== cards.length) box.replaceChildren(...cards);
}

function reviewCard(r) {
  const confirmBtn = h('button.btn.good', { type: 'button', dataset: { action: 'confirm' } }, 'Confirm match');
  const rejectBtn = h('button.btn', { type: 'button', dataset: { action: 'reject' } }, 'Reject');
  const card = h('div.review', { dataset: { reviewId: r.review_id, personId: r.person.person_id } },
    h('div.row', null,
      h('div.faces', null,
        h('figure.cam', null, h('figcaption', null, 'camera')),
        h('figure', null, faceImg(`/api/v1/watchlist/${encodeURIComponent(r.person.person_id)}/face.jpg`, 'watchlist-face', `enrolment photo of ${r.person.name}`),
          h('figcaption', null, 'watchlist'))),
      h('div.info')),
    h('div.actions', null, confirmBtn, rejectBtn));
  const decide = async (what) => {
    const name = st.reviews.get(r.review_id)?.person.name || r.person.name;
    confirmBtn.disabled = rejectBtn.disabled = true;
    try {
      const res = await api(`/reviews/${r.review_id}/${what}`, { method: 'POST', body: {} });
      removeReview(r.review_id);
      if (what === 'confirm' && res?.incident_id) {
        if (st.incidents.has(res.incident_id)) select(res.incident_id, true);
        else st.selectAfterConfirm = res.incident_id;
        toast(`Match confirmed: ${name}. Incident opened.`);
      } else if (what === 'reject') {
        toast(`Match rejected: ${name}.`);
      }
    } catch (e) {
      if (e.status === 404) { removeReview(r.review_id); toast('That review was already decided.', 'warn'); return; }
      toast(`Could not ${what}: ${e.message}`, 'bad');
      confirmBtn.disabled = rejectBtn.disabled = false;
    }
  };
  confirmBtn.addEventListener('click', () => decide('confirm'));
  rejectBtn.addEventListener('click', () => decide('reject'));
  return card;
}

// The best-scoring sighting with pictures beside the enrolment photo, and the facts.
function fillReview(card, r) {
  const best = r.sightings.reduce((a, b) => (b.score > (a?.score ?? -1) ? b : a), null);
  const pic = [...r.sightings].filter((g) => g.evidence).sort((a, b) => b.score - a.score)[0];
  const last = r.sightings[r.sightings.length - 1];
  const n = r.sightings_total ?? r.sightings.length;
  const fig = card.querySelector('figure.cam');
  const picId = pic?.sighting_id || '';
  if (fig.dataset.sightingId !== picId || !fig.firstElementChild || fig.firstElementChild.tagName === 'FIGCAPTION') {
    fig.dataset.sightingId = picId;
    const face = pic
      ? h('a', { href: `/api/v1/sightings/${pic.sighting_id}/frame.jpg`, target: '_blank', rel: 'noopener', title: 'open the camera frame' },
        faceImg(`/api/v1/sightings/${pic.sighting_id}/face.jpg`, 'sighting-face', `face seen by ${pic.camera}`))
      : h('div.noimg.sighting-face', null, 'no picture');
    if (fig.firstElementChild.tagName === 'FIGCAPTION') fig.prepend(face);
    else fig.firstElementChild.replaceWith(face);
  }
  card.querySelector('.info').replaceChildren(
    h('div.name', null, r.person.name),
    h('div', null, h('span.chip', { class: `dg-${r.person.danger}` }, `danger ${r.person.danger}`)),
    h('div', null, `score ${best ? best.score.toFixed(2) : '–'} · ${best?.camera || ''}`),
    h('div.muted', null, `${fmtTime(last?.at || r.opened_at)} · ${n} sighting${n === 1 ? '' : 's'}`),
    h('div.basis', null, r.person.legal_basis));
}

// ---------- camera alerts ----------

// One row per camera: its open alert, or that it came back while this page watched.
function onIntegrity(a) {
  if (st.freshAlerts) {
    st.freshAlerts.set(a.camera, a);
    return;
  }
  st.alerts.set(a.camera, a);
  renderAlerts();
  if (a.state !== 'ok') toast(`Camera ${a.camera}: ${a.state}${a.detail ? ` (${a.detail})` : ''}`, 'warn');
}

function renderAlerts() {
  const list = [...st.alerts.values()].sort((x, y) => new Date(y.at) - new Date(x.at));
  $('#alerts').replaceChildren(...(list.length ? list.map((a) => h('div.alert',
    { class: a.state === 'ok' ? 'closed' : null, dataset: { camera: a.camera, state: a.state } },
    h('span.cam', null, a.camera, a.site ? h('span.faint', null, ` · ${a.site}`) : null),
    h('span.when', { title: a.at }, fmtWhen(a.at)),
    h('span.what', null, h('span.chip', { class: `ig-${a.state}` }, a.state), a.detail ? ` ${a.detail}` : '')))
    : [h('div.empty', null, 'No open camera alerts.')]));
  $('#alerts-count').textContent = list.filter((a) => a.state !== 'ok').length;
  for (const [id, cm] of mapLayers?.cameraMarkers || []) {
    const a = st.alerts.get(id);
    cm.marker.setIcon(cameraIcon(cm.camera, !!a && a.state !== 'ok'));
  }
}

// ---------- units ----------

function callsign(id) {
  return st.callsigns.get(id) || id;
}

function offeredUnits() {
  const m = new Map();
  for (const s of st.incidents.values()) for (const o of s.offers || []) m.set(o.unit, s.incident_id);
  return m;
}

function fixAge(u) {
  return u.at ? (Date.now() - new Date(u.at).getTime()) / 1000 : Infinity;
}

function unitStatus(u, offered) {
  if (u.incident_id) return 'on_incident';
  if (u.online === false) return 'offline';
  if (offered.has(u.unit_id)) return 'offered';
  if (u.status === 'off_duty') return 'off_duty';
  if (u.status === 'busy') return 'busy';
  if (u.available) return 'available';
  if (fixAge(u) > FIX_MAX_AGE_S) return 'no_fix';
  return 'unavailable';
}

function unitProgress(u) {
  const s = u.incident_id && st.incidents.get(u.incident_id);
  const a = s?.units?.find((x) => x.unit === u.unit_id);
  return { s, progress: a?.progress };
}

function renderUnits() {
  const box = $('#units');
  const offered = offeredUnits();
  const list = [...st.units.values()].sort((a, b) => callsign(a.unit_id).localeCompare(callsign(b.unit_id), 'en', { numeric: true }));
  $('#units-count').textContent = list.length;
  if (!list.length) { box.replaceChildren(h('div.empty', null, 'No units reported yet.')); return; }
  const counts = {};
  const old = new Map([...box.querySelectorAll('.unit')].map((el) => [el.dataset.unitId, el]));
  const rows = list.map((u) => {
    const status = unitStatus(u, offered);
    counts[status] = (counts[status] || 0) + 1;
    let stateText = STATUS_TEXT[status];
    if (status === 'on_incident') {
      const { s, progress } = unitProgress(u);
      stateText = `${progress ? words(progress) : 'on incident'}${s ? ` · P${s.priority} ${s.site?.name || s.wanted?.name || ''}` : ''}`;
    }
    const row = old.get(u.unit_id) || unitRow(u.unit_id);
    row.dataset.status = status;
    if (u.incident_id) row.dataset.incidentId = u.incident_id;
    else delete row.dataset.incidentId;
    row.title = `${u.unit_id}: ${stateText}`;
    const cs = row.querySelector('.cs');
    if (cs.textContent !== (u.callsign || u.unit_id)) cs.textContent = u.callsign || u.unit_id;
    const state = row.querySelector('.state');
    if (state.textContent !== stateText) state.textContent = stateText;
    state.className = `state us-${status}`;
    const fix = row.querySelector('.fix');
    fix.dataset.fixAt = u.at || '';
    fix.textContent = u.at ? fmtDuration(fixAge(u)) : 'no fix';
    return row;
  });
  reorder(box, rows);
  $('#units-note').textContent = `${counts.available || 0} available · ${counts.on_incident || 0} on incident`;
}

function unitRow(id) {
  return h('div.unit', {
    dataset: { unitId: id },
    onclick: () => {
      const u = st.units.get(id);
      if (!u) return;
      if (u.incident_id && st.incidents.has(u.incident_id)) select(u.incident_id, false);
      if (map && Number.isFinite(u.lat)) map.setView([u.lat, u.lon], Math.max(map.getZoom(), 15));
    },
  }, h('span.dot'), h('span.cs'), h('span.state'), h('span.fix'));
}

function renderSummary() {
  const open = st.incidents.size;
  const unc = [...st.incidents.values()].filter((s) => s.state === 'uncovered').length;
  const avail = [...st.units.values()].filter((u) => u.available).length;
  $('#summary').textContent = `${open} open${unc ? ` · ${unc} uncovered` : ''} · ${avail}/${st.units.size} units available`;
}

// ---------- map drawing ----------

function drawUnit(u) {
  if (!map) return;
  let m = unitMarkers.get(u.unit_id);
  if (!Number.isFinite(u.lat) || !Number.isFinite(u.lon)) {
    if (m) { m.remove(); unitMarkers.delete(u.unit_id); }
    return;
  }
  const status = unitStatus(u, offeredUnits());
  const key = `${status}|${Math.round(u.heading_deg ?? -1)}|${u.callsign}`;
  const icon = () => L.divIcon({
    className: 'mk',
    html: `<div class="mk-unit"><div class="arrow">${arrowSvg(UNIT_COLOURS[status] || '#6e7681', u.heading_deg)}</div>` +
      `<span class="label">${esc(u.callsign || u.unit_id)}</span></div>`,
    iconSize: [22, 22], iconAnchor: [11, 11],
  });
  if (!m) {
    m = L.marker([u.lat, u.lon], { icon: icon(), zIndexOffset: 200, keyboard: false });
    m.key = key;
    m.bindTooltip('', { direction: 'top', offset: [0, -10] });
    m.addTo(map);
    unitMarkers.set(u.unit_id, m);
  } else {
    m.setLatLng([u.lat, u.lon]);
    if (m.key !== key) { m.setIcon(icon()); m.key = key; }
  }
  m.setTooltipContent(`${esc(u.callsign || u.unit_id)} · ${esc(STATUS_TEXT[status])}`);
}

function incidentIcon(s) {
  const classes = ['mk-inc', s.state === 'uncovered' ? 'uncovered' : '', st.selected === s.incident_id ? 'selected' : ''].join(' ');
  return L.divIcon({
    className: 'mk',
    html: `<div class="${classes}"><div class="pin" style="background:${prioColour(s.priority)};color:${prioColour(s.priority)}">` +
      `<span style="color:#0f1419">${s.kind === 'wanted_person' ? 'W' : ''}${s.priority}</span></div>` +
      `<span class="age" data-since="${esc(s.opened_at)}">${ageOf(s.opened_at)}</span></div>`,
    iconSize: [0, 0],
  });
}

function drawIncident(s) {
  if (!map) return;
  let m = incMarkers.get(s.incident_id);
  const key = `${s.state}|${s.priority}|${st.selected === s.incident_id}`;
  if (!m) {
    m = L.marker([s.location.lat, s.location.lon], { icon: incidentIcon(s), zIndexOffset: 1000 });
    m.on('click', () => select(s.incident_id, false));
    m.bindTooltip('', { direction: 'top', offset: [0, -16] });
    m.addTo(map);
    incMarkers.set(s.incident_id, m);
  } else {
    m.setLatLng([s.location.lat, s.location.lon]);
    if (m.key !== key) m.setIcon(incidentIcon(s));
  }
  m.key = key;
  m.setTooltipContent(`${esc(title(s))} · ${esc(words(s.state))}`);
}

// Dashed lines from the selected incident's units (and offered units) to it; for a face
// incident, the person's trail of sightings.
function drawLinks() {
  if (!linksLayer) return;
  linksLayer.clearLayers();
  for (const [id, m] of incMarkers) {
    const s = st.incidents.get(id);
    if (s) {
      const key = `${s.state}|${s.priority}|${st.selected === id}`;
      if (m.key !== key) { m.setIcon(incidentIcon(s)); m.key = key; }
    }
  }
  const s = st.selected && st.incidents.get(st.selected);
  if (!s) return;
  const to = [s.location.lat, s.location.lon];
  const link = (unitId, colour) => {
    const u = st.units.get(unitId);
    if (!u || !Number.isFinite(u.lat)) return;
    L.polyline([[u.lat, u.lon], to], { color: colour, weight: 2, dashArray: '6 6', interactive: false }).addTo(linksLayer);
  };
  for (const a of s.units || []) if (a.progress !== 'cleared') link(a.unit, '#58a6ff');
  for (const o of s.offers || []) link(o.unit, '#39c5cf');
  if (s.sightings?.length > 1) {
    L.polyline(s.sightings.map((g) => [g.location.lat, g.location.lon]), { color: '#bc8cff', weight: 2, interactive: false }).addTo(linksLayer);
  }
}

// ---------- ticking, sound ----------

function tick() {
  for (const el of document.querySelectorAll('[data-since]')) el.textContent = ageOf(el.dataset.since);
  for (const el of document.querySelectorAll('#units .fix[data-fix-at]')) {
    if (el.dataset.fixAt) el.textContent = fmtDuration((Date.now() - new Date(el.dataset.fixAt).getTime()) / 1000);
  }
}

function alarmSound() {
  beep([[988, 160], [740, 160], [988, 160], [740, 160]], 0.3, 'priority1');
}

function setupSound(gesture) {
  const btn = $('#sound');
  const update = () => { btn.hidden = soundReady(); };
  if (gesture) unlockSound().then(update);
  else update();
  btn.addEventListener('click', () => unlockSound().then((ok) => { update(); if (ok) beep([[660, 120]], 0.15); }));
  // Any click on the page may unlock sound as well.
  document.addEventListener('pointerdown', () => { if (!soundReady()) unlockSound().then(update); }, { capture: true });
}
