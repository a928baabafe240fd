// A face match end to end: the review appears on the console with both pictures, the
// dispatcher confirms, a wanted-person incident opens and the officer's tablet gets it with
// the person's photo, accepts and works it to cleared.

import {
  createRun, env, waitFor, waitUntil, screenshot, signInOk, tabletContext, imagesLoaded,
  layoutProblems, tabletShowsJob,
} from './lib.mjs';

const run = createRun('face');
const UNIT = env('UNIT_ID');
const PERSON = env('PERSON_ID');
const REVIEW_TIMEOUT = Number(process.env.REVIEW_TIMEOUT_MS || 90000);

await run.launch();
const con = await run.page(await run.context({ viewport: { width: 1280, height: 800 } }), 'console');
// Portrait this time: the tablet layout is checked both ways across the scripts.
const tab = await run.page(await tabletContext(run, { width: 800, height: 1280 }), 'tablet');

await run.step('dispatcher and officer sign in', async () => {
  await signInOk(con, '/console/', env('DISPATCHER_USER'), env('DISPATCHER_PASSWORD'));
  await waitUntil(con, () => document.querySelector('#conn')?.textContent.trim() === 'live', null, '#conn to say live');
  await signInOk(tab, '/tablet/', env('OFFICER_USER'), env('OFFICER_PASSWORD'));
  await waitUntil(tab, () => document.querySelector('#conn')?.textContent.trim() === 'connected', null, 'tablet #conn to say connected', 15000);
  await waitFor(con, `#units .unit[data-unit-id="${UNIT}"][data-status="available"]`, `unit ${UNIT} available`, { timeout: 15000 });
});

let reviewId;
await run.step(`a review of ${PERSON} appears with both pictures`, async () => {
  const t = Date.now();
  const sel = `#reviews .review[data-person-id="${PERSON}"]`;
  await waitFor(con, sel, `a pending review of ${PERSON}`, { timeout: REVIEW_TIMEOUT });
  run.log(`review on the console after ${Date.now() - t} ms`);
  reviewId = await con.getAttribute(sel, 'data-review-id');
  await imagesLoaded(con, `#reviews .review[data-review-id="${reviewId}"] img.sighting-face`);
  await imagesLoaded(con, `#reviews .review[data-review-id="${reviewId}"] img.watchlist-face`);
  run.check(true, 'the sighting face and the watchlist photo loaded');
  const problems = await layoutProblems(con, ['.topbar', '#queue-panel', '#reviews-panel', '#alerts-panel', '.col-map', '#detail-panel', '#units-panel'], ['.topbar', '#queue', '#reviews', '#detail', '#units']);
  run.check(problems.length === 0, `console layout with a review is clean${problems.length ? `: ${problems.join('; ')}` : ''}`);
  run.log(`saved ${await screenshot(con, 'review.png')}`);
});

let incidentId;
await run.step('the dispatcher confirms; a wanted-person incident opens', async () => {
  const before = new Set(await con.locator('#queue .incident').evaluateAll((els) => els.map((e) => e.dataset.incidentId)));
  await con.click(`#reviews .review[data-review-id="${reviewId}"] button[data-action=confirm]`);
  await waitFor(con, `#reviews .review[data-review-id="${reviewId}"]`, 'the review to go away', { state: 'detached' });
  incidentId = await waitUntil(con, (known) => {
    const row = [...document.querySelectorAll('#queue .incident[data-kind="wanted_person"]')]
      .find((r) => !known.includes(r.dataset.incidentId));
    return row?.dataset.incidentId;
  }, [...before], 'a new wanted_person incident in the queue');
  run.log(`incident ${incidentId}`);
  await waitFor(con, `#detail[data-incident-id="${incidentId}"]`, 'the confirmed incident opened in the detail');
  await imagesLoaded(con, '#detail img.watchlist-face');
});

await run.step('the tablet gets the offer with the wanted person and accepts', async () => {
  const t = Date.now();
  await waitFor(tab, `#offer:not([hidden])[data-incident-id="${incidentId}"]`, 'the offer on the tablet', { timeout: 15000 });
  run.log(`offer on the tablet after ${Date.now() - t} ms`);
  await imagesLoaded(tab, '#offer img.wanted-face');
  run.check(true, 'the offer shows the wanted person\'s photo');
  await tab.click('#offer button[data-action=accept]');
  await waitFor(tab, `#job[data-incident-id="${incidentId}"]`, 'the job card');
  await imagesLoaded(tab, '#job img.wanted-face');
  run.check(true, 'the wanted person\'s photo loaded on the job card');
  await waitFor(con, `#units .unit[data-unit-id="${UNIT}"][data-incident-id="${incidentId}"]`, 'the unit on the incident on the console');
  const problems = await layoutProblems(tab, ['.topbar', '.cards', '.map-wrap'], ['#job', '.topbar']);
  run.check(problems.length === 0, `tablet layout at 800x1280 is clean${problems.length ? `: ${problems.join('; ')}` : ''}`);
  const shown = await tabletShowsJob(tab);
  run.check(shown.length === 0, `the tablet shows the call, the unit and its status${shown.length ? `: ${shown.join('; ')}` : ''}`);
  run.log(`saved ${await screenshot(tab, 'tablet-face.png')}`);
});

await run.step('the officer works the job to cleared; the incident closes', async () => {
  for (const step of ['en_route', 'on_scene', 'cleared']) {
    await tab.click(`#job button[data-action=${step}]`);
    if (step !== 'cleared') await waitFor(tab, `#job[data-progress="${step}"]`, `progress ${step}`);
  }
  await waitFor(tab, '#job', 'the job to end after cleared', { state: 'hidden' });
  await waitFor(con, `#queue .incident[data-incident-id="${incidentId}"]`, 'the incident to leave the queue', { state: 'detached' });
  await waitFor(con, `#detail[data-incident-id="${incidentId}"][data-state="closed"]`, 'the detail to say closed');
});

await run.finish();
