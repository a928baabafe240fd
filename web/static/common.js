// Shared helpers for the console, the oversight view and the tablet: the API, signing in,
// the live WebSocket, formatting, sound and small geometry.

export const API = '/api/v1';

/** An API error with its HTTP status and the server's `error` text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** JSON request to the API (same origin: the session cookie goes along). */
export async function api(path, { method = 'GET', body } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, 'kuzet cannot be reached');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const msg = (data && data.error) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

// ---------- DOM ----------

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Creates an element: h('div.a.b', {attrs}, children...). Strings become text nodes. */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className += (el.className ? ' ' : '') + v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function toast(message, kind = '', ms = 6000) {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = h('div.toast', { class: kind }, message);
  box.prepend(t);
  while (box.children.length > 4) box.lastChild.remove();
  setTimeout(() => t.remove(), ms);
}

// ---------- signing in ----------

/**
 * Resolves with the signed-in user whose role is in `roles`. Shows `form#signin` (inside
 * `#signin-wrap`) while nobody is signed in. A user with another role gets `refusal(user)`
 * as the form's error and stays on the form (the session is kept: it may be a tablet's).
 */
export function signIn({ roles, refusal }) {
  const wrap = $('#signin-wrap');
  const form = $('#signin');
  const err = $('#signin .error');
  const submit = $('button[type=submit]', form);
  return new Promise((resolve) => {
    const accept = (user, fromForm) => {
      if (!roles.includes(user.role)) {
        err.textContent = refusal(user);
        wrap.hidden = false;
        form.dataset.refused = user.role;
        return;
      }
      delete form.dataset.refused;
      wrap.hidden = true;
      resolve({ user, gesture: fromForm });
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      submit.disabled = true;
      const fd = new FormData(form);
      try {
        const res = await api('/session', {
          method: 'POST',
          body: { username: String(fd.get('username') || '').trim(), password: String(fd.get('password') || '') },
        });
        form.reset();
        accept(res.user, true);
      } catch (e) {
        err.textContent = e.status === 401 ? 'Wrong user name or password.'
          : e.status === 429 ? 'Too many failed sign-ins. Try again in a few minutes.'
          : e.status === 503 ? 'kuzet is busy signing people in. Try again in a moment.'
          : e.message;
      } finally {
        submit.disabled = false;
      }
    });
    api('/session').then((res) => accept(res.user, false)).catch((e) => {
      if (e.status !== 401) err.textContent = e.message;
      wrap.hidden = false;
      $('input[name=username]', form).focus();
    });
  });
}

export async function signOut() {
  try { await api('/session', { method: 'DELETE' }); } catch { /* signed out anyway */ }
  location.reload();
}

// ---------- live feed ----------

/**
 * The live WebSocket with reconnects (1 s doubling to 15 s, with jitter). `onMessage(type,
 * data)` gets every frame; `onState('live'|'connecting'|'reconnecting'|'signed_out')`.
 * After every (re)connect the server sends `hello` and the state as it stands.
 */
export function connectLive({ onMessage, onState }) {
  let delay = 1000;
  let ws = null;
  let stopped = false;
  const open = () => {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${API}/live`;
    ws = new WebSocket(url);
    let opened = false;
    ws.addEventListener('open', () => {
      opened = true;
      delay = 1000;
      onState('live');
    });
    ws.addEventListener('message', (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === 'lagged') {
        ws.close();
        return;
      }
      if (msg.type === 'signed_out') {
        // The session ended (signed out elsewhere, disabled, expired): no reconnecting.
        stopped = true;
        onState('signed_out');
        return;
      }
      try { onMessage(msg.type, msg.data); } catch (e) { console.error('live message', msg.type, e); }
    });
    ws.addEventListener('close', async () => {
      if (stopped) return;
      onState('reconnecting');
      if (!opened) {
        // The upgrade failed: signed out, or kuzet is down.
        try { await api('/session'); } catch (e) {
          if (e.status === 401) { onState('signed_out'); return; }
        }
      }
      const wait = delay * (0.75 + Math.random() * 0.5);
      delay = Math.min(delay * 2, 15000);
      setTimeout(open, wait);
    });
  };
  onState('connecting');
  open();
  return { close() { stopped = true; if (ws) ws.close(); } };
}

// ---------- formatting ----------

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString('en-GB', { hour12: false });
}

/** The time of day, with the date in front when it is not today. */
export function fmtWhen(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  return d.toDateString() === new Date().toDateString() ? fmtTime(iso) : fmtDateTime(iso);
}

export function fmtDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Seconds as m:ss, or h:mm:ss past an hour. */
export function fmtDuration(s) {
  s = Math.max(0, Math.floor(s));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

export function ageOf(iso) {
  return fmtDuration((Date.now() - new Date(iso).getTime()) / 1000);
}

export function fmtDistance(m) {
  if (m === undefined || m === null || !Number.isFinite(m)) return '–';
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(m < 10000 ? 1 : 0)} km`;
}

export function fmtEta(s) {
  if (s === undefined || s === null || !Number.isFinite(s)) return '–';
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

export const words = (snake) => String(snake || '').replace(/_/g, ' ');

export const KIND_LABEL = { school_alarm: 'School alarm', wanted_person: 'Wanted person' };

// ---------- geometry ----------

/** Straight-line distance in metres. */
export function haversine(lat1, lon1, lat2, lon2) {
  const R = 6371008.8;
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Decodes an encoded polyline (precision 5) into [[lat, lon], ...]. */
export function decodePolyline(str, precision = 5) {
  const out = [];
  const factor = 10 ** precision;
  let i = 0, lat = 0, lon = 0;
  const next = () => {
    let result = 0, shift = 0, b;
    do {
      if (i >= str.length) throw new Error('truncated polyline');
      b = str.charCodeAt(i++) - 63;
      result |= (b & 0x1f) << shift;
      shift += 5;
    } while (b >= 0x20);
    return result & 1 ? ~(result >> 1) : result >> 1;
  };
  while (i < str.length) {
    lat += next();
    lon += next();
    out.push([lat / factor, lon / factor]);
  }
  return out;
}

// ---------- sound ----------

let audio = null;

/** The AudioContext, created on first use; browsers start it only after a user gesture. */
export function audioContext() {
  if (!audio) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    audio = new Ctx();
  }
  return audio;
}

export function soundReady() {
  const ctx = audioContext();
  return !!ctx && ctx.state === 'running';
}

export async function unlockSound() {
  const ctx = audioContext();
  if (ctx && ctx.state !== 'running') {
    try { await ctx.resume(); } catch { /* needs a gesture */ }
  }
  return soundReady();
}

/**
 * Plays tones: [[freqHz, ms], ...] one after the other. `name` is added to the page's
 * `data-sounds` (on <html>), so that what was sounded can be checked.
 */
export function beep(tones = [[880, 180], [660, 180]], volume = 0.25, name = 'beep') {
  const ctx = audioContext();
  if (!ctx || ctx.state !== 'running') return false;
  const d = document.documentElement.dataset;
  d.sounds = d.sounds ? `${d.sounds} ${name}` : name;
  let t = ctx.currentTime + 0.01;
  for (const [freq, ms] of tones) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'square';
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(volume, t + 0.01);
    gain.gain.setValueAtTime(volume, t + ms / 1000 - 0.02);
    gain.gain.linearRampToValueAtTime(0, t + ms / 1000);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t);
    osc.stop(t + ms / 1000 + 0.01);
    t += ms / 1000 + 0.04;
  }
  return true;
}

/** A clock in `el`, updated every second. */
export function startClock(el) {
  const tick = () => { el.textContent = new Date().toLocaleTimeString('en-GB', { hour12: false }); };
  tick();
  setInterval(tick, 1000);
}
