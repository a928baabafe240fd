// A panic button press end to end: the console shows it, the officer's tablet gets the offer
// and accepts, the button hears "dispatched", progress reaches the console; then the
// dispatcher cancels it and both the button and the tablet are told.

import {
  createRun, env, waitFor, waitUntil, screenshot, signInOk, connectButton, tabletContext,
  layoutProblems, tabletShowsJob,
} from './lib.mjs';

const run = createRun('panic');
const UNIT = env('UNIT_ID');

await run.launch();
const consoleCtx = await run.context({ viewport: { width: 1280, height: 800 } });
const con = await run.page(consoleCtx, 'console');
const tabCtx = await tabletContext(run);
const tab = await run.page(tabCtx, 'tablet');

await run.step('dispatcher signs in on the console and the feed is live', async () => {
  await signInOk(con, '/console/', env('DISPATCHER_USER'), env('DISPATCHER_PASSWORD'));
  await waitUntil(con, () => document.querySelector('#conn')?.textContent.trim() === 'live', null, '#conn to say live');
  await waitFor(con, '#map.leaflet-container', 'the Leaflet map');
});

await run.step('officer signs in on the tablet and MQTT connects', async () => {
  await signInOk(tab, '/tablet/', env('OFFICER_USER'), env('OFFICER_PASSWORD'));
  await waitUntil(tab, () => document.querySelector('#conn')?.textContent.trim() === 'connected', null, 'tablet #conn to say connected', 15000);
  await waitUntil(tab, () => /GPS ±/.test(document.querySelector('#gps')?.textContent || ''), null, 'the tablet to have a GPS fix');
});

await run.step(`unit ${UNIT} shows available on the console`, async () => {
  await waitFor(con, `#units .unit[data-unit-id="${UNIT}"][data-status="available"]`, `unit ${UNIT} available in #units`, { timeout: 15000 });
  await waitFor(con, '#map .mk-unit', 'a unit marker on the map');
});

const button = await run.step('the panic button connects', () => connectButton(run));

let incidentId;
const t0 = Date.now();
await run.step('the button raises an alarm; the console queue shows it on top and on the map', async () => {
  await button.raise('intruder');
  const ack = await button.waitAck((a) => a.state === 'received', 'received');
  incidentId = ack.incident_id;
  run.log(`ack received after ${ack.received - t0} ms, incident ${incidentId}`);
  await waitFor(con, `#queue .incident[data-incident-id="${incidentId}"]`, 'the incident in #queue', { timeout: 10000 });
  run.log(`incident in the console queue after ${Date.now() - t0} ms`);
  const top = await con.locator('#queue .incident').first().getAttribute('data-incident-id');
  run.check(top === incidentId, `the new incident is at the top of the queue (top is ${top})`);
  const prio = await con.locator(`#queue .incident[data-incident-id="${incidentId}"]`).getAttribute('data-priority');
  run.check(prio === '1', `a panic alarm is priority 1 (got ${prio})`);
  await waitFor(con, '#map .mk-inc', 'the incident marker on the map');
  await waitUntil(con, () => (document.documentElement.dataset.sounds || '').split(' ').includes('priority1'), null, 'the console to sound the priority-1 alarm', 5000);
});

let offerId;
await run.step('the tablet gets the offer and accepts it', async () => {
  await waitFor(tab, '#offer:not([hidden])[data-offer-id]', 'the offer card on the tablet', { timeout: 10000 });
  run.log(`offer on the tablet after ${Date.now() - t0} ms`);
  offerId = await tab.getAttribute('#offer', 'data-offer-id');
  await waitUntil(tab, () => (document.documentElement.dataset.sounds || '').split(' ').includes('offer'), null, 'the tablet to ring for the offer', 5000);
  const inc = await tab.getAttribute('#offer', 'data-incident-id');
  run.check(inc === incidentId, `the offer is for the incident (${inc})`);
  const countdown = await tab.textContent('#offer-countdown');
  run.check(/^\d+s$/.test(countdown.trim()), `the offer shows a countdown (${countdown.trim()})`);
  await tab.click('#offer button[data-action=accept]');
  await waitFor(tab, `#job[data-incident-id="${incidentId}"][data-progress="accepted"]`, 'the job card after accepting');
  run.check(await tab.locator('#offer').isHidden(), 'the offer card is gone after accepting');
});

await run.step('the button hears "dispatched" with an ETA', async () => {
  const ack = await button.waitAck((a) => a.state === 'dispatched' && a.incident_id === incidentId, 'dispatched');
  run.check(Number.isFinite(ack.eta_s), `dispatched carries eta_s (${ack.eta_s})`);
  run.log(`dispatched after ${ack.received - t0} ms`);
});

await run.step('the officer reports en route; the console shows it', async () => {
  await tab.click('#job button[data-action=en_route]');
  await waitFor(tab, '#job[data-progress="en_route"]', 'the job in progress en_route');
  run.check(await tab.locator('#job button[data-action=on_scene]').isEnabled(), 'On scene is the next step');
  run.check(await tab.locator('#job button[data-action=cleared]').isDisabled(), 'Cleared is not yet enabled');
  await waitFor(con, `#queue .incident[data-incident-id="${incidentId}"][data-state="en_route"]`, 'the queue row in state en_route');
  const unitRow = `#units .unit[data-unit-id="${UNIT}"][data-incident-id="${incidentId}"]`;
  await waitFor(con, unitRow, 'the unit row on the incident', { timeout: 5000 });
  await waitUntil(con, (sel) => /en route/.test(document.querySelector(sel)?.textContent || ''), unitRow, 'the unit row to say en route', 5000);
  const status = await con.getAttribute(unitRow, 'data-status');
  run.check(status === 'on_incident', `the unit's status on the console is on_incident (${status})`);
});

await run.step('screenshots with the incident detail open', async () => {
  await con.click(`#queue .incident[data-incident-id="${incidentId}"]`);
  await waitFor(con, `#detail[data-incident-id="${incidentId}"]`, 'the incident detail');
  await waitFor(con, '#detail table.timeline tr', 'the timeline in the detail');
  await waitFor(con, '#detail [data-action=cancel]', 'the cancel button');
  await waitFor(tab, '#tablet-map .leaflet-overlay-pane path', 'the route or line on the tablet map', { state: 'attached' });
  await con.waitForTimeout(400); // the map's pan animation
  const problems = await layoutProblems(con, ['.topbar', '#queue-panel', '#reviews-panel', '#alerts-panel', '.col-map', '#detail-panel', '#units-panel'], ['.topbar', '#queue', '#reviews', '#detail', '#units']);
  run.check(problems.length === 0, `console layout at 1280x800 is clean${problems.length ? `: ${problems.join('; ')}` : ''}`);
  const tproblems = await layoutProblems(tab, ['.topbar', '.cards', '.map-wrap'], ['#job', '.topbar']);
  run.check(tproblems.length === 0, `tablet layout at 1024x768 is clean${tproblems.length ? `: ${tproblems.join('; ')}` : ''}`);
  run.log(`saved ${await screenshot(con, 'console.png')}`);
  const shown = await tabletShowsJob(tab);
  run.check(shown.length === 0, `the tablet shows the call, the unit and its status${shown.length ? `: ${shown.join('; ')}` : ''}`);
  run.log(`saved ${await screenshot(tab, 'tablet.png')}`);
});

await run.step('the dispatcher cancels the incident; button and tablet are told', async () => {
  const from = button.acks.length;
  await con.click('#detail [data-action=cancel]');
  await con.fill('#detail input[name=reason]', 'end-to-end test: drill');
  const answer = con.waitForResponse((r) => r.url().endsWith(`/api/v1/incidents/${incidentId}/cancel`), { timeout: 10000 });
  await con.click('#detail [data-action=confirm-cancel]');
  const res = await answer;
  run.check(res.status() === 200, `POST .../cancel answers 200 (got ${res.status()}: ${(await res.text()).slice(0, 120)})`);
  await waitFor(con, `#queue .incident[data-incident-id="${incidentId}"]`, 'the incident to leave the queue', { state: 'detached' });
  await waitFor(con, '#detail[data-state="cancelled"]', 'the detail to show cancelled');
  const ack = await button.waitAck((a) => a.state === 'cancelled' && a.incident_id === incidentId, 'cancelled', 10000, from);
  run.log(`cancelled ack after ${ack.received - t0} ms`);
  await waitFor(tab, '#job', 'the tablet job to end', { state: 'hidden' });
  await waitUntil(tab, () => /cancel/i.test(document.querySelector('#notice')?.textContent || ''), null, 'the tablet to say cancelled');
  await waitFor(con, `#units .unit[data-unit-id="${UNIT}"]:not([data-incident-id])`, 'the unit to be off the incident', { timeout: 5000 });
});

await run.finish();
