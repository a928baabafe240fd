// Oversight opened after the fact: a custodial camera dropped off before the page was opened,
// and the page shows it at once, from the state the live feed sends on connecting (a patrol
// camera's alert is not shown). The camera comes back: the row says ok and the count drops.
// A reconnect replaces the page's alerts with the open ones: none.

import mqtt from 'mqtt';
import { createRun, env, waitFor, waitUntil, screenshot, signInOk, layoutProblems } from './lib.mjs';

const run = createRun('oversight');
const CAMERA = env('CAMERA_ID');
const PATROL = env('PATROL_CAMERA_ID');

await run.launch();
const ctx = await run.context({ viewport: { width: 1280, height: 800 } });
// Every frame of the live feed, in order, per socket: to tell the state on connecting (before
// `ready`) from later events.
await ctx.addInitScript(() => {
  const Native = window.WebSocket;
  const live = { sockets: [], frames: [] };
  window.liveLog = live;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const socket = live.sockets.push(this) - 1;
      this.addEventListener('message', (ev) => {
        try {
          const m = JSON.parse(ev.data);
          live.frames.push({ socket, type: m.type, camera: m.data?.camera, state: m.data?.state });
        } catch { /* not JSON: not ours */ }
      });
    }
  };
});
const page = await run.page(ctx, 'oversight');

const row = (camera) => `#alerts .alert[data-camera="${camera}"]`;
const count = async () => (await page.textContent('#alerts-count')).trim();

await run.step('opened after the camera dropped off, the page shows its alert at once', async () => {
  await signInOk(page, '/oversight/', env('OVERSIGHT_USER'), env('OVERSIGHT_PASSWORD'));
  await waitFor(page, row(CAMERA), `the alert row of ${CAMERA}`);
  run.check(await page.getAttribute(row(CAMERA), 'data-state') === 'offline', `${CAMERA} is offline`);
  run.check(/went offline/.test(await page.textContent(row(CAMERA))), 'the row says what kuzet noticed');
  run.check(await count() === '1', `the count is 1 (${await count()})`);
  const frames = await page.evaluate(() => window.liveLog.frames.filter((f) => f.socket === 0));
  const ready = frames.findIndex((f) => f.type === 'ready');
  const alert = frames.findIndex((f) => f.type === 'integrity' && f.camera === CAMERA);
  run.check(ready > 0, `the feed sent ready (frames: ${frames.map((f) => f.type).join(', ')})`);
  run.check(alert >= 0 && alert < ready, `the alert came with the state on connecting, before ready (at ${alert}, ready at ${ready})`);
  run.check(await page.locator(row(PATROL)).count() === 0, `no row for the patrol camera ${PATROL}`);
  run.check(!/since this page opened/i.test(await page.textContent('#alerts-panel')), 'no "since this page opened"');
  const problems = await layoutProblems(page, ['.topbar', '#alerts-panel', '#audit-panel']);
  run.check(problems.length === 0, `layout is clean${problems.length ? `: ${problems.join('; ')}` : ''}`);
  run.log(`saved ${await screenshot(page, 'oversight-after-the-fact.png')}`);
});

await run.step('the camera comes back: its row says ok, nothing is open', async () => {
  const camera = mqtt.connect(env('MQTT_URL'), {
    username: CAMERA, password: env('CAMERA_PASSWORD'), clientId: CAMERA, clean: true,
    protocolVersion: 4, keepalive: 30, reconnectPeriod: 0, connectTimeout: 10000,
  });
  run.onCleanup(() => camera.endAsync());
  await new Promise((resolve, reject) => {
    camera.once('connect', resolve);
    camera.once('error', (e) => reject(new Error(`camera ${CAMERA}: ${e.message}`)));
  });
  await camera.publishAsync(`kuzet/v1/cameras/${CAMERA}/online`, 'true', { qos: 1, retain: true });
  await waitUntil(page, (sel) => document.querySelector(sel)?.dataset.state === 'ok', row(CAMERA), `${CAMERA}'s row to say ok`);
  run.check(await count() === '0', `the count is 0 (${await count()})`);
});

await run.step('after a reconnect the page holds the open alerts only: none', async () => {
  await page.evaluate(() => window.liveLog.sockets[0].close());
  await waitUntil(page, () => window.liveLog.frames.some((f) => f.socket === 1 && f.type === 'ready'), null,
    'the second connection to send its state');
  await waitUntil(page, () => document.querySelector('#conn')?.textContent.trim() === 'live', null, 'the feed to be live again');
  run.check(await page.locator('#alerts .alert').count() === 0, 'no alert rows');
  const empty = (await page.textContent('#alerts')).trim();
  run.check(empty === 'No open alerts.', `the panel says "No open alerts." (${empty})`);
  run.check(await count() === '0', `the count is 0 (${await count()})`);
});

await run.finish();
