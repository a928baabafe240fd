// The officer tablet: signs in as the officer, takes the unit's broker credentials from
// GET /api/v1/tablet and speaks the MQTT device contract (docs/mqtt.md) over WebSockets:
// offers with an alarm, accept / decline, progress, status and GPS positions.

import {
  $, h, api, signIn, signOut, toast, fmtDistance, fmtEta, fmtTime, words, KIND_LABEL,
  decodePolyline, haversine, beep, unlockSound, soundReady,
} from './common.js';
import { createMap, arrowSvg, prioColour } from './map.js';

const L = window.L;
const STEPS = ['en_route', 'on_scene', 'cleared'];
const POSITION_MIN_MS = 2500;   // at most one fix per 2.5 s
const POSITION_RESEND_MS = 10000; // standing still: repeat the last fix this often
const FIX_MAX_AGE_MS = 60000;   // older fixes are not sent
const JOB_KEY = 'kuzet.tablet.job';

let unit = null;       // {unit_id, callsign, mqtt}
let client = null;
let status = 'available';
let offer = null;      // the offer on screen
let job = null;        // {offer, progress, snapshot, unconfirmed}
let fix = null;        // latest geolocation fix
let lastSent = 0;
let alarmTimer = null;
let countdownTimer = null;
let map = null;
let selfMarker = null;
// While an offer or a job is on screen, the map keeps the call and the unit in view, through
// every change of layout, position or target, until the officer moves the map (Centre resumes).
let follow = false;
const overlay = { route: null, target: null, line: null };

const topic = (rest) => `kuzet/v1/units/${unit.unit_id}/${rest}`;
const now = () => new Date().toISOString();

// ---------- start ----------

$('#signin-out').addEventListener('click', (e) => { e.preventDefault(); signOut(); });
$('#signout').addEventListener('click', async () => {
  if (client?.connected) client.publish(topic('online'), 'false', { qos: 1, retain: true });
  signOut();
});

const { gesture } = await signIn({
  roles: ['officer'],
  refusal: (u) => `Signed in as ${u.username} (${u.role}): not allowed here. ` +
    'The tablet app is for patrol officers signed in as their unit.' +
    (u.role === 'dispatcher' || u.role === 'supervisor' ? ' Dispatchers use /console/.' : ''),
});
setupSound(gesture);

try {
  unit = await api('/tablet');
} catch (e) {
  fatal(`This tablet cannot get its unit's connection: ${e.message}`);
  throw e;
}
$('#callsign').textContent = unit.callsign || unit.unit_id;
$('#unit-id').textContent = unit.callsign && unit.callsign !== unit.unit_id ? unit.unit_id : '';
document.title = `kuzet · ${unit.callsign || unit.unit_id}`;

setupStatus();
setupOfferButtons();
setupJobButtons();
startGps();
connect();
createMap($('#tablet-map'), {
  cameras: false,
  // A fit asked for during a zoom animation is dropped by Leaflet: no animations here, so
  // every fit lands.
  animate: false,
  onError: (e) => log(`Map data unavailable: ${e.message}`),
  onResize: () => { if (follow) fitOverlay(); },
})
  .then((m) => { map = m.map; addCentreControl(); watchOfficer(); drawSelf(); drawOverlay(follow); })
  .catch((e) => log(`Map failed: ${e.message}`));
restoreJob();
window.kuzet = { ready: true, get offer() { return offer; }, get job() { return job; } };

// ---------- MQTT ----------

function connect() {
  const m = unit.mqtt;
  if (!window.mqtt?.connect) { fatal('The MQTT library did not load.'); return; }
  // kuzet hands out the unit's broker password only when its registry holds one; otherwise
  // the tablet was provisioned with it, once, and keeps it on the device.
  const key = `kuzet.device-password.${unit.unit_id}`;
  let password = m.password ?? localStorage.getItem(key);
  if (password == null) {
    password = window.prompt(`Broker password of unit ${unit.unit_id} (from provisioning)`) || '';
    if (password) localStorage.setItem(key, password);
  }
  setConn('connecting', 'bad');
  // A page served over HTTPS may not open ws:// (mixed content); kuzet's broker then names its
  // TLS WebSocket port, which speaks wss://.
  const url = location.protocol === 'https:' ? m.url.replace(/^ws:/, 'wss:') : m.url;
  client = window.mqtt.connect(url, {
    clientId: m.client_id || unit.unit_id,
    username: m.username,
    password,
    clean: false,
    keepalive: 15,
    protocolVersion: 4,
    reconnectPeriod: 3000,
    connectTimeout: 10000,
    resubscribe: true,
    // The CSP allows no blob: workers, which mqtt.js's default timers would use.
    timerVariant: 'native',
    will: { topic: topic('online'), payload: 'false', qos: 1, retain: true },
  });
  client.on('connect', () => {
    setConn('connected', 'ok');
    const subs = [topic('offers'), topic('incidents/+'), `kuzet/v1/rejects/${unit.unit_id}`];
    // Brokers resend the retained snapshot on a new SUBSCRIBE (the embedded one not
    // when the persistent session already holds it: then the next change tells).
    if (job) subs.push(`kuzet/v1/incidents/${job.offer.incident_id}`);
    // Subscribed first, then online: kuzet answers presence with what this unit holds (a
    // pending offer again, its incident's snapshot), which must find the subscriptions.
    client.subscribe(subs, { qos: 1 }, () => {
      client.publish(topic('online'), 'true', { qos: 1, retain: true });
      publish('status', { at: now(), status });
      sendFix(true);
    });
  });
  client.on('reconnect', () => setConn('reconnecting', 'bad'));
  client.on('offline', () => setConn('offline', 'bad'));
  client.on('close', () => { if (!client.reconnecting) setConn('disconnected', 'bad'); });
  client.on('error', (e) => {
    log(`Broker: ${e.message}`);
    const refused = /auth|Not authorized/i.test(e.message);
    // A kept password the broker refuses is asked for again on the next load.
    if (refused && m.password == null) localStorage.removeItem(key);
    setConn(refused ? 'not authorised' : 'error', 'bad');
  });
  client.on('message', onMessage);
}

function setConn(text, cls) {
  const el = $('#conn');
  el.textContent = text;
  el.className = `conn ${cls}`;
}

function publish(rest, body) {
  if (!client?.connected) return false;
  client.publish(topic(rest), JSON.stringify(body), { qos: 1 });
  return true;
}

function onMessage(t, payload) {
  const text = payload.toString();
  let msg = null;
  if (text) {
    try { msg = JSON.parse(text); } catch { log(`Unreadable message on ${t}`); return; }
  }
  try {
    if (t === topic('offers')) onOffer(msg);
    else if (t.startsWith(topic('incidents/'))) onUnitUpdate(msg);
    else if (t.startsWith('kuzet/v1/rejects/')) onReject(msg);
    else if (t.startsWith('kuzet/v1/incidents/')) onSnapshot(t.slice('kuzet/v1/incidents/'.length), msg);
  } catch (e) {
    console.error('message', t, e);
  }
}

// ---------- offers ----------

function onOffer(o) {
  if (!o?.offer_id) return;
  if (new Date(o.expires_at).getTime() < Date.now() - 1000) {
    log(`An offer arrived after it expired (${fmtTime(o.expires_at)}).`);
    return;
  }
  if (job && job.offer.incident_id === o.incident_id) return; // already on it
  offer = o;
  hideNotice();
  renderOffer();
  startAlarm();
  follow = true;
  drawOverlay(true);
}

function renderOffer() {
  const card = $('#offer');
  if (!offer) {
    card.hidden = true;
    card.removeAttribute('data-offer-id');
    card.removeAttribute('data-incident-id');
    stopAlarm();
    showIdle();
    return;
  }
  const o = offer;
  card.dataset.offerId = o.offer_id;
  card.dataset.incidentId = o.incident_id;
  setPrio($('#offer-prio'), o.priority);
  $('#offer-kind').textContent = `New call · ${KIND_LABEL[o.kind] || words(o.kind)}`;
  $('#offer-summary').textContent = o.summary || '';
  $('#offer-facts').replaceChildren(facts(o));
  wantedBox($('#offer-wanted'), o.wanted);
  $('#offer-answer').hidden = false;
  $('#offer-reasons').hidden = true;
  $('#idle').hidden = true;
  card.hidden = false;
  clearInterval(countdownTimer);
  const tick = () => {
    const left = Math.ceil((new Date(o.expires_at).getTime() - Date.now()) / 1000);
    const el = $('#offer-countdown');
    el.textContent = left > 0 ? `${left}s` : 'expired';
    el.classList.toggle('low', left <= 5);
    if (left <= 0) {
      clearInterval(countdownTimer);
      stopAlarm();
      // kuzet revokes it; drop it anyway if nothing comes.
      setTimeout(() => { if (offer === o) { offer = null; renderOffer(); drawOverlay(); notice('The offer expired.'); } }, 3000);
    }
  };
  tick();
  countdownTimer = setInterval(tick, 250);
}

function facts(o, extra = []) {
  const rows = [...extra];
  if (o.site) {
    rows.push(['Site', o.site.name]);
    rows.push(['Room', o.site.room || '–']);
  }
  rows.push(['Distance', fmtDistance(o.distance_m)]);
  rows.push(['ETA', fmtEta(o.eta_s)]);
  if (fix) rows.push(['Straight line', fmtDistance(haversine(fix.lat, fix.lon, o.location.lat, o.location.lon))]);
  return h('dl.facts', null, rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function wantedBox(box, w) {
  if (!w) { box.hidden = true; box.replaceChildren(); return; }
  const img = h('img.wanted-face', { src: `/api/v1/watchlist/${encodeURIComponent(w.person_id)}/face.jpg`, alt: `photo of ${w.name}` });
  img.addEventListener('error', () => img.replaceWith(h('div.noimg.wanted-face', null, 'no picture')), { once: true });
  box.replaceChildren(img, h('div', null,
    h('div.name', null, w.name),
    h('div', null, h('span.chip', { class: `dg-${w.danger}` }, `danger ${w.danger}`)),
    h('div.basis', null, w.legal_basis)));
  box.hidden = false;
}

function setupOfferButtons() {
  $('#offer [data-action=accept]').addEventListener('click', () => {
    if (!offer) return;
    const o = offer;
    if (!publish('reply', { offer_id: o.offer_id, decision: 'accept' })) { toast('Not connected: the answer was not sent.', 'bad'); return; }
    offer = null;
    clearInterval(countdownTimer);
    stopAlarm();
    $('#offer').hidden = true;
    $('#offer').removeAttribute('data-offer-id');
    startJob({ offer: o, progress: 'accepted', snapshot: null, unconfirmed: false });
  });
  $('#offer [data-action=decline]').addEventListener('click', () => {
    stopAlarm();
    $('#offer-answer').hidden = true;
    $('#offer-reasons').hidden = false;
  });
  $('#reasons-back').addEventListener('click', () => {
    $('#offer-answer').hidden = false;
    $('#offer-reasons').hidden = true;
  });
  for (const b of document.querySelectorAll('#offer-reasons [data-reason]')) {
    b.addEventListener('click', () => {
      if (!offer) return;
      if (!publish('reply', { offer_id: offer.offer_id, decision: 'decline', reason: b.dataset.reason })) {
        toast('Not connected: the answer was not sent.', 'bad');
        return;
      }
      offer = null;
      renderOffer();
      drawOverlay();
      notice('Declined. The call goes to the next unit.');
    });
  }
}

// ---------- job ----------

function startJob(j) {
  job = j;
  saveJob();
  if (client?.connected) client.subscribe(`kuzet/v1/incidents/${j.offer.incident_id}`, { qos: 1 });
  hideNotice();
  renderJob();
  follow = true;
  drawOverlay(true);
}

function renderJob() {
  renderStatus();
  const card = $('#job');
  if (!job) {
    card.hidden = true;
    card.removeAttribute('data-incident-id');
    card.removeAttribute('data-progress');
    showIdle();
    return;
  }
  const o = job.offer;
  const s = job.snapshot;
  card.dataset.incidentId = o.incident_id;
  card.dataset.progress = job.progress;
  setPrio($('#job-prio'), o.priority);
  $('#job-kind').textContent = KIND_LABEL[o.kind] || words(o.kind);
  const chip = $('#job-progress');
  chip.textContent = words(job.progress);
  chip.className = `chip st-${job.progress}`;
  $('#job-summary').textContent = o.summary || '';
  const seen = s?.sightings?.[s.sightings.length - 1];
  const extra = seen ? [['Last seen', `camera ${seen.camera} at ${fmtTime(seen.at)}`]] : [];
  $('#job-facts').replaceChildren(facts({ ...o, location: s?.location || o.location }, extra));
  wantedBox($('#job-wanted'), o.wanted || s?.wanted);
  const next = STEPS[STEPS.indexOf(job.progress) + 1] ?? null;
  for (const step of STEPS) {
    const b = card.querySelector(`[data-action=${step}]`);
    const done = STEPS.indexOf(step) <= STEPS.indexOf(job.progress);
    b.disabled = step !== next;
    b.classList.toggle('done', done);
  }
  $('#idle').hidden = true;
  card.hidden = false;
}

function setupJobButtons() {
  for (const step of STEPS) {
    $(`#job [data-action=${step}]`).addEventListener('click', () => {
      if (!job) return;
      if (!publish('progress', { incident_id: job.offer.incident_id, state: step, at: now() })) {
        toast('Not connected: progress was not sent.', 'bad');
        return;
      }
      job.progress = step;
      saveJob();
      if (step === 'cleared') endJob('Cleared. You are available for new calls.', false);
      else renderJob();
    });
  }
}

function endJob(message, bad) {
  if (job) client?.unsubscribe(`kuzet/v1/incidents/${job.offer.incident_id}`);
  job = null;
  saveJob();
  renderJob();
  drawOverlay();
  if (message) notice(message, bad);
}

function onUnitUpdate(u) {
  if (!u?.event) return;
  if (u.event === 'offer_revoked') {
    if (offer && offer.offer_id === u.offer_id) {
      offer = null;
      renderOffer();
      drawOverlay();
      notice(`Offer withdrawn (${words(u.reason)}).`);
    } else if (job && job.offer.offer_id === u.offer_id) {
      endJob(`Your answer came too late: the offer was withdrawn (${words(u.reason)}).`, true);
    }
    return;
  }
  if (!job || job.offer.incident_id !== u.incident_id) return;
  if (u.event === 'cancelled') {
    endJob('Incident cancelled. Stand down.', true);
    alertOnce();
  } else if (u.event === 'closed') {
    endJob('Incident closed: every unit has cleared.', false);
  } else if (u.event === 'target_moved') {
    job.snapshot = { ...(job.snapshot || {}), location: u.location };
    job.offer = { ...job.offer, location: u.location };
    saveJob();
    renderJob();
    drawOverlay(true);
    notice(`Target moved: seen by camera ${u.camera} at ${fmtTime(u.at)}.`);
    alertOnce();
  }
}

// The incident's retained snapshot: wanted person, location, and whether we are on it.
function onSnapshot(incidentId, s) {
  if (!job || job.offer.incident_id !== incidentId) return;
  if (!s) return; // ended: the unit topic says how
  const mine = (s.units || []).find((a) => a.unit === unit.unit_id);
  job.snapshot = s;
  if (mine) {
    job.unconfirmed = false;
    job.refused = false;
    const order = ['accepted', ...STEPS];
    if (order.indexOf(mine.progress) > order.indexOf(job.progress)) job.progress = mine.progress;
    if (mine.progress === 'cleared') { endJob('Cleared.', false); return; }
  } else if (job.unconfirmed || job.refused) {
    endJob('That call is no longer yours.', true);
    return;
  }
  saveJob();
  renderJob();
  drawOverlay();
}

function onReject(r) {
  if (!r) return;
  log(`kuzet refused ${r.topic?.split('/').pop()}: ${r.error}`);
  if (!job || r.code !== 'refused') return;
  // Only a refusal naming this job counts: an older message delivered again is refused too.
  if (r.topic === topic('reply') && r.offer_id === job.offer.offer_id) job.refused = true;
  // Progress refused for a call restored after a reload: it is no longer ours.
  if (r.topic === topic('progress') && r.incident_id === job.offer.incident_id && job.unconfirmed) {
    endJob('That call is no longer open.', true);
  }
}

function saveJob() {
  try {
    if (job) localStorage.setItem(JOB_KEY, JSON.stringify({ unit: unit.unit_id, offer: job.offer, progress: job.progress }));
    else localStorage.removeItem(JOB_KEY);
  } catch { /* storage off */ }
}

// After a reload: the job comes back until the incident's snapshot says otherwise.
function restoreJob() {
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(JOB_KEY) || 'null'); } catch { saved = null; }
  if (!saved || saved.unit !== unit.unit_id) return;
  startJob({ offer: saved.offer, progress: saved.progress, snapshot: null, unconfirmed: true });
  setTimeout(() => { if (job?.unconfirmed) notice('Call restored after a restart of this tablet; kuzet has not confirmed it yet.'); }, 8000);
}

// ---------- status ----------

function setupStatus() {
  for (const b of document.querySelectorAll('#status button')) {
    b.addEventListener('click', () => {
      status = b.dataset.status;
      renderStatus();
      if (!publish('status', { at: now(), status })) toast('Not connected: the status will be sent on reconnect.', 'warn');
      showIdle();
    });
  }
  renderStatus();
}

// The header shows the unit's real state: on a job it is on that call, whatever the officer
// last chose; the chosen status (sent to kuzet as is) shows again once the job ends.
function renderStatus() {
  const duty = $('#duty');
  const group = $('#status');
  if (job) {
    duty.textContent = `On call · ${words(job.progress)}`;
    duty.dataset.status = 'on_incident';
  } else {
    duty.textContent = '';
    delete duty.dataset.status;
  }
  duty.hidden = !job;
  group.hidden = !!job;
  for (const b of group.querySelectorAll('button')) b.setAttribute('aria-pressed', String(!job && b.dataset.status === status));
}

// ---------- GPS ----------

function startGps() {
  const el = $('#gps');
  if (!('geolocation' in navigator)) { el.textContent = 'no GPS'; el.className = 'conn bad'; return; }
  const ok = (p) => {
    fix = {
      lat: p.coords.latitude, lon: p.coords.longitude, at: new Date(p.timestamp || Date.now()).toISOString(),
      accuracy_m: p.coords.accuracy, speed_mps: p.coords.speed, heading_deg: p.coords.heading, t: Date.now(),
    };
    el.textContent = `GPS ±${Math.round(fix.accuracy_m || 0)} m`;
    el.className = 'conn ok';
    drawSelf();
    sendFix(false);
  };
  const fail = (e) => {
    el.textContent = e.code === 1 ? 'no GPS (denied)' : 'no GPS';
    el.className = 'conn bad';
  };
  const opts = { enableHighAccuracy: true, maximumAge: 2000, timeout: 20000 };
  navigator.geolocation.watchPosition(ok, fail, opts);
  // Standing still, watchPosition may stay silent: ask now and then, and repeat the fix.
  setInterval(() => {
    if (!fix || Date.now() - fix.t > POSITION_RESEND_MS) navigator.geolocation.getCurrentPosition(ok, fail, opts);
    if (Date.now() - lastSent >= POSITION_RESEND_MS) sendFix(true);
  }, 2500);
}

function sendFix(force) {
  if (!fix || !client?.connected) return;
  const t = Date.now();
  if (t - fix.t > FIX_MAX_AGE_MS) return;
  if (!force && t - lastSent < POSITION_MIN_MS) return;
  const body = { at: fix.at, lat: fix.lat, lon: fix.lon };
  if (Number.isFinite(fix.speed_mps) && fix.speed_mps >= 0 && fix.speed_mps <= 150) body.speed_mps = fix.speed_mps;
  if (Number.isFinite(fix.heading_deg) && fix.heading_deg >= 0 && fix.heading_deg <= 360) body.heading_deg = fix.heading_deg;
  if (Number.isFinite(fix.accuracy_m) && fix.accuracy_m >= 0 && fix.accuracy_m <= 100000) body.accuracy_m = fix.accuracy_m;
  if (publish('position', body)) lastSent = t;
}

// ---------- map ----------

function drawSelf() {
  if (!map || !fix) return;
  const icon = L.divIcon({ className: 'mk mk-self', html: arrowSvg('#58a6ff', fix.heading_deg), iconSize: [28, 28], iconAnchor: [14, 14] });
  if (!selfMarker) {
    selfMarker = L.marker([fix.lat, fix.lon], { icon, zIndexOffset: 900, keyboard: false }).addTo(map);
    if (!offer && !job) map.setView([fix.lat, fix.lon], Math.max(map.getZoom(), 15));
  } else {
    selfMarker.setLatLng([fix.lat, fix.lon]);
    selfMarker.setIcon(icon);
  }
  if (follow && (offer || job)) fitOverlay();
}

// The target and the route of the offer or job on screen; `fit` zooms to them.
function drawOverlay(fit) {
  if (!map) return;
  for (const k of Object.keys(overlay)) { overlay[k]?.remove(); overlay[k] = null; }
  const o = offer || job?.offer;
  if (!o) { follow = false; return; }
  const loc = job?.snapshot?.location || o.location;
  const colour = prioColour(o.priority);
  overlay.target = L.marker([loc.lat, loc.lon], {
    icon: L.divIcon({
      className: 'mk',
      html: `<div class="mk-inc"><div class="pin" style="background:${colour};color:${colour};width:34px;height:34px;font-size:15px">` +
        `<span style="color:#0f1419">${o.priority}</span></div></div>`,
      iconSize: [0, 0],
    }),
    zIndexOffset: 1000,
  }).addTo(map);
  const moved = job?.snapshot?.location && (job.snapshot.location.lat !== o.location.lat || job.snapshot.location.lon !== o.location.lon);
  let pts = [];
  if (o.route_polyline && !moved) {
    try { pts = decodePolyline(o.route_polyline); } catch { pts = []; }
  }
  if (pts.length > 1) {
    overlay.route = L.polyline(pts, { color: '#58a6ff', weight: 6, opacity: 0.85 }).addTo(map);
  } else if (fix) {
    overlay.line = L.polyline([[fix.lat, fix.lon], [loc.lat, loc.lon]], { color: '#58a6ff', weight: 3, dashArray: '8 8' }).addTo(map);
  }
  if (fit || follow) fitOverlay();
}

function fitOverlay() {
  if (!map) return;
  const pts = [];
  if (overlay.target) pts.push(overlay.target.getLatLng());
  if (overlay.route) pts.push(...overlay.route.getLatLngs());
  if (fix) pts.push(L.latLng(fix.lat, fix.lon));
  if (pts.length > 1) map.fitBounds(L.latLngBounds(pts), { padding: [40, 40], maxZoom: 17, animate: false });
  else if (pts.length) map.setView(pts[0], 16, { animate: false });
  $('#tablet-map').dataset.follow = String(follow);
}

// The officer panning or zooming takes the map over until Centre is pressed.
function watchOfficer() {
  const el = map.getContainer();
  const release = (e) => {
    if (e.target.closest?.('.centre')) return;
    follow = false;
    el.dataset.follow = 'false';
  };
  for (const ev of ['pointerdown', 'wheel', 'keydown']) el.addEventListener(ev, release, { passive: true });
}

function addCentreControl() {
  const Centre = L.Control.extend({
    onAdd() {
      const div = L.DomUtil.create('div', 'leaflet-bar leaflet-control centre');
      const a = L.DomUtil.create('a', '', div);
      a.href = '#';
      a.textContent = 'Centre';
      a.title = 'Show me and the call';
      L.DomEvent.on(a, 'click', (e) => {
        L.DomEvent.preventDefault(e);
        if (offer || job) { follow = true; fitOverlay(); } else if (fix) map.setView([fix.lat, fix.lon], 16);
      });
      return div;
    },
  });
  new Centre({ position: 'topright' }).addTo(map);
}

// ---------- sound, notices ----------

function startAlarm() {
  stopAlarm();
  const ring = () => {
    beep([[1046, 220], [784, 220], [1046, 220], [784, 220]], 0.45, 'offer');
    if (navigator.vibrate) navigator.vibrate([300, 150, 300]);
  };
  ring();
  alarmTimer = setInterval(ring, 2000);
}

function stopAlarm() {
  clearInterval(alarmTimer);
  alarmTimer = null;
}

function alertOnce() {
  beep([[660, 250], [440, 350]], 0.4);
}

function setupSound(gesture) {
  const bar = $('#sound');
  const update = () => { bar.hidden = soundReady(); };
  if (gesture) unlockSound().then(update);
  else update();
  bar.addEventListener('click', () => unlockSound().then((ok) => { update(); if (ok) beep([[660, 120]], 0.2); }));
  document.addEventListener('pointerdown', () => { if (!soundReady()) unlockSound().then(update); }, { capture: true });
}

function setPrio(el, p) {
  el.textContent = `P${p}`;
  el.className = `prio p${p}`;
}

function showIdle() {
  const idle = $('#idle');
  idle.hidden = !!(offer || job);
  $('#idle-note').textContent = status === 'available'
    ? 'Offers appear here with an alarm.'
    : `Status ${words(status)}: no offers until you are available.`;
}

function notice(text, bad) {
  const n = $('#notice');
  n.textContent = text;
  n.className = `notice-card${bad ? ' bad' : ''}`;
  n.hidden = false;
  clearTimeout(n.timer);
  n.timer = setTimeout(() => { n.hidden = true; }, 20000);
}

function hideNotice() {
  $('#notice').hidden = true;
}

function log(text) {
  $('#log').textContent = `${fmtTime(now())} ${text}`;
}

function fatal(text) {
  notice(text, true);
  setConn('not connected', 'bad');
}
