// Shared code for the end-to-end scripts: Debian's Chromium through playwright-core, steps
// with timings, bounded waits with clear messages, screenshots, failure reports.

import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';
import mqtt from 'mqtt';

export const ARTIFACTS = process.env.ARTIFACTS_DIR || join(tmpdir(), 'kuzet-e2e');
mkdirSync(ARTIFACTS, { recursive: true });

/** A required environment variable (the harness sets them all). */
export function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    console.error(`FAIL: environment variable ${name} is not set`);
    process.exit(2);
  }
  return v;
}

export const num = (name) => {
  const v = Number(env(name));
  if (!Number.isFinite(v)) { console.error(`FAIL: ${name} is not a number`); process.exit(2); }
  return v;
};

export const BASE = () => env('KUZET_URL').replace(/\/$/, '');

const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
  '--autoplay-policy=no-user-gesture-required', '--use-fake-device-for-media-stream',
];

/**
 * One script's run: its browser, pages (each with its console and errors kept), steps and
 * failures. `finish()` exits the process: 0 only when every step and check held.
 */
export function createRun(name) {
  const t0 = Date.now();
  const failures = [];
  const pages = [];
  const cleanups = [];
  let browser = null;

  const log = (msg) => console.log(`[${name} +${String(Date.now() - t0).padStart(6)} ms] ${msg}`);

  const run = {
    name,
    log,
    failures,

    async launch() {
      const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
      browser = await chromium.launch({ executablePath, headless: true, args: ARGS, timeout: 60000 });
      log(`browser ${browser.version()} (${executablePath})`);
      return browser;
    },

    /** A fresh context (own cookies); options as for browser.newContext. */
    async context(opts = {}) {
      return browser.newContext({ baseURL: BASE(), locale: 'en-GB', timezoneId: 'UTC', ...opts });
    },

    /** A page whose errors fail the run and whose console is kept for the report. */
    async page(ctx, label) {
      const page = await ctx.newPage();
      const entry = { label, page, console: [] };
      pages.push(entry);
      page.on('console', (m) => {
        const line = `${m.type()}: ${m.text()}`;
        entry.console.push(line);
        if (m.type() === 'error') log(`${label} console ${line}`);
      });
      page.on('pageerror', (e) => {
        entry.console.push(`pageerror: ${e.stack || e.message}`);
        failures.push(`${label}: uncaught page error: ${e.message}`);
        log(`FAIL ${label}: uncaught page error: ${e.message}`);
      });
      page.on('crash', () => failures.push(`${label}: page crashed`));
      return page;
    },

    /** Runs a step; a failure ends the run (later steps depend on it). */
    async step(title, fn) {
      const s = Date.now();
      log(`▶ ${title}`);
      try {
        const out = await fn();
        log(`✓ ${title} (${Date.now() - s} ms)`);
        return out;
      } catch (e) {
        failures.push(`${title}: ${e.message}`);
        log(`✗ ${title} (${Date.now() - s} ms): ${e.message}`);
        await run.finish();
        return undefined;
      }
    },

    /** A soft assertion: recorded, the run goes on. */
    check(ok, message) {
      if (ok) log(`  ok: ${message}`);
      else { failures.push(message); log(`  FAIL: ${message}`); }
      return ok;
    },

    onCleanup(fn) { cleanups.push(fn); },

    async finish() {
      if (failures.length) {
        for (const p of pages) {
          try {
            const file = join(ARTIFACTS, `${name}-failed-${p.label}.png`);
            await p.page.screenshot({ path: file, timeout: 5000 });
            log(`screenshot ${file}`);
          } catch (e) { log(`no screenshot of ${p.label}: ${e.message}`); }
          const file = join(ARTIFACTS, `${name}-failed-${p.label}.console.txt`);
          writeFileSync(file, p.console.join('\n') + '\n');
          console.log(`---- ${p.label} console (${p.console.length} lines, also in ${file}) ----`);
          for (const line of p.console.slice(-60)) console.log(`  ${line}`);
        }
      }
      for (const fn of cleanups) { try { await fn(); } catch { /* best effort */ } }
      try { await browser?.close(); } catch { /* already gone */ }
      const total = Date.now() - t0;
      if (failures.length) {
        console.log(`\n${name}: FAILED (${failures.length}) in ${total} ms`);
        for (const f of failures) console.log(`  - ${f}`);
        console.log(`0 passed, 1 failed`);
        process.exit(1);
      }
      console.log(`\n${name}: all checks held in ${total} ms`);
      console.log('1 passed, 0 failed');
      process.exit(0);
    },
  };
  return run;
}

/** Waits up to `timeout` ms for `selector` to reach `state`; fails with `what`. */
export async function waitFor(page, selector, what, { timeout = 10000, state = 'visible' } = {}) {
  try {
    return await page.locator(selector).first().waitFor({ state, timeout });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what} (${selector} ${state})`);
  }
}

/** Waits for `fn(arg)` in the page to be truthy; resolves with its value. */
export async function waitUntil(page, fn, arg, what, timeout = 10000) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling: 100 });
    return await handle.jsonValue();
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

/** Polls a Node-side condition. */
export async function poll(fn, what, timeout = 10000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function screenshot(page, file) {
  const path = join(ARTIFACTS, file);
  await page.screenshot({ path });
  return path;
}

/** Signs in on `path` (e.g. /console/) through the page's own form. */
export async function signIn(page, path, username, password) {
  await page.goto(path, { waitUntil: 'domcontentloaded' });
  await waitFor(page, 'form#signin', 'the sign-in form');
  await page.fill('form#signin input[name=username]', username);
  await page.fill('form#signin input[name=password]', password);
  await page.click('form#signin button[type=submit]');
}

/** Signs in and waits for the form to go away. */
export async function signInOk(page, path, username, password) {
  await signIn(page, path, username, password);
  try {
    await page.locator('#signin-wrap').waitFor({ state: 'hidden', timeout: 10000 });
  } catch {
    const err = await page.locator('#signin .error').textContent().catch(() => '');
    throw new Error(`sign-in of ${username} on ${path} did not complete: ${err || 'the form stayed'}`);
  }
}

/** Status of a same-origin request made by the page (its cookie goes along). */
export function statusInPage(page, path, method = 'GET') {
  return page.evaluate(async ([p, m]) => (await fetch(p, { method: m, credentials: 'same-origin' })).status, [path, method]);
}

/** Whether every image matching `selector` has loaded (naturalWidth > 0). */
export function imagesLoaded(page, selector) {
  return waitUntil(page, (sel) => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0) && imgs.length;
  }, selector, `images ${selector} to load`, 10000);
}

/**
 * Layout check: each selector's box lies inside the viewport, boxes do not overlap each other,
 * the page does not scroll sideways, and no `contained` element's content spills out of it
 * sideways. Returns a list of problems.
 */
export async function layoutProblems(page, selectors, contained = []) {
  return page.evaluate(([sels, inner]) => {
    const out = [];
    for (const s of inner) {
      for (const el of document.querySelectorAll(s)) {
        if (el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1) out.push(`${s} content spills sideways (${el.scrollWidth} > ${el.clientWidth})`);
      }
    }
    const vw = document.documentElement.clientWidth;
    const vh = document.documentElement.clientHeight;
    if (document.documentElement.scrollWidth > vw + 1) out.push(`page scrolls sideways (${document.documentElement.scrollWidth} > ${vw})`);
    const boxes = [];
    for (const s of sels) {
      const el = document.querySelector(s);
      if (!el) { out.push(`${s} missing`); continue; }
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.left < -1 || r.top < -1 || r.right > vw + 1 || r.bottom > vh + 1) {
        out.push(`${s} outside the viewport (${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)})`);
      }
      boxes.push([s, r]);
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, ra] = boxes[i];
        const [b, rb] = boxes[j];
        const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
        const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
        if (w > 1 && h > 1) out.push(`${a} overlaps ${b}`);
      }
    }
    return out;
  }, [selectors, contained]);
}

// ---------- the stand-in panic button ----------

/**
 * A panic button over plain MQTT: keeps every ack, raises and cancels alarms.
 */
export async function connectButton(run) {
  const id = env('BUTTON_ID');
  const url = env('MQTT_URL');
  const client = mqtt.connect(url, {
    username: id, password: env('BUTTON_PASSWORD'), clientId: `${id}`, clean: true,
    protocolVersion: 4, keepalive: 30, reconnectPeriod: 1000, connectTimeout: 10000,
    will: { topic: `kuzet/v1/buttons/${id}/online`, payload: 'false', qos: 1, retain: true },
  });
  const acks = [];
  const rejects = [];
  client.on('message', (t, payload) => {
    let msg;
    try { msg = JSON.parse(payload.toString()); } catch { return; }
    if (t.endsWith('/ack')) { acks.push({ ...msg, received: Date.now() }); run.log(`button ack ${msg.state}${msg.eta_s !== undefined ? ` eta ${msg.eta_s} s` : ''}`); }
    else { rejects.push(msg); run.log(`button reject ${msg.code}: ${msg.error}`); }
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`button ${id} could not connect to ${url}`)), 10000);
    client.once('connect', () => { clearTimeout(timer); resolve(); });
    client.once('error', (e) => { clearTimeout(timer); reject(new Error(`button ${id}: ${e.message}`)); });
  });
  await client.subscribeAsync([`kuzet/v1/buttons/${id}/ack`, `kuzet/v1/rejects/${id}`], { qos: 1 });
  await client.publishAsync(`kuzet/v1/buttons/${id}/online`, 'true', { qos: 1, retain: true });
  run.onCleanup(() => client.endAsync());
  const alarm = async (action, alarmId = randomUUID(), kind = 'intruder') => {
    await client.publishAsync(`kuzet/v1/buttons/${id}/alarm`,
      JSON.stringify({ alarm_id: alarmId, action, kind, at: new Date().toISOString() }), { qos: 1 });
    return alarmId;
  };
  return {
    id,
    acks,
    rejects,
    raise: (kind) => alarm('raise', randomUUID(), kind),
    cancel: (alarmId) => alarm('cancel', alarmId),
    /** Resolves with the first ack (since `from`, an index into acks) matching `pred`. */
    waitAck(pred, what, timeout = 10000, from = 0) {
      return poll(() => acks.slice(from).find(pred), `button ack: ${what} (acks so far: ${acks.map((a) => a.state).join(', ') || 'none'})`, timeout);
    },
  };
}

/** The officer's tablet context: tablet-sized, with GPS granted at UNIT_LAT/UNIT_LON. */
export async function tabletContext(run, viewport = { width: 1024, height: 768 }) {
  return run.context({
    viewport,
    hasTouch: true,
    permissions: ['geolocation'],
    geolocation: { latitude: num('UNIT_LAT'), longitude: num('UNIT_LON'), accuracy: 8 },
  });
}

/**
 * What the tablet must show while it holds a job: the call's marker and the unit's own marker
 * inside the map, and the header on the call, not on a status button. Checked once the page
 * has laid out (two animation frames: the map refits on the frame after a resize). Returns
 * the problems found.
 */
export function tabletShowsJob(page) {
  return page.evaluate(async () => {
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const box = (sel) => document.querySelector(sel)?.getBoundingClientRect();
    const within = (a, b) => !!a && !!b && a.left >= b.left - 1 && a.right <= b.right + 1 && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
    const out = [];
    const mapBox = box('#tablet-map');
    if (!within(box('#tablet-map .mk-inc .pin'), mapBox)) out.push("the call's marker is not in view");
    if (!within(box('#tablet-map .mk-self'), mapBox)) out.push("the unit's marker is not in view");
    const duty = document.querySelector('#duty');
    if (!duty || duty.hidden || duty.dataset.status !== 'on_incident') out.push(`the header does not say on call (${duty?.hidden ? 'hidden' : duty?.textContent})`);
    const pressed = [...document.querySelectorAll('#status button[aria-pressed="true"]')].filter((b) => b.offsetParent);
    if (pressed.length) out.push(`the header shows status ${pressed.map((b) => b.dataset.status).join(', ')}`);
    return out;
  });
}
