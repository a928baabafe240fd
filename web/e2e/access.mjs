// Who sees what: signed-out requests get 401; an officer on the console is refused and
// gets 403 from the console's data and from pictures of incidents not theirs; oversight sees
// the audit log with a verified chain and nothing that changes anything; signing out in one
// tab closes the console's live feed in another.

import {
  createRun, env, BASE, waitFor, waitUntil, screenshot, signIn, signInOk, statusInPage, layoutProblems,
} from './lib.mjs';

const run = createRun('access');

await run.step('signed-out requests are refused with 401', async () => {
  for (const path of ['/api/v1/map', '/api/v1/incidents', '/api/v1/live', '/api/v1/reviews', '/api/v1/tablet', '/api/v1/audit']) {
    const res = await fetch(BASE() + path);
    run.check(res.status === 401, `GET ${path} signed out: ${res.status} (want 401)`);
  }
  for (const path of ['/console/', '/oversight/', '/tablet/', '/static/common.js', '/vendor/leaflet/leaflet.js', '/vendor/mqtt.min.js']) {
    const res = await fetch(BASE() + path);
    run.check(res.status === 200, `GET ${path} (public): ${res.status}`);
    if (path.endsWith('/')) {
      const csp = res.headers.get('content-security-policy') || '';
      run.check(/default-src 'self'/.test(csp), `${path} carries a CSP (${csp ? 'yes' : 'none'})`);
    }
  }
});

await run.launch();
const officerPage = await run.page(await run.context({ viewport: { width: 1280, height: 800 } }), 'officer-console');

await run.step('an officer signing in on the console is not allowed in', async () => {
  await signIn(officerPage, '/console/', env('OFFICER_USER'), env('OFFICER_PASSWORD'));
  await waitUntil(officerPage, () => /not allowed/i.test(document.querySelector('#signin .error')?.textContent || ''), null,
    'the "not allowed" message on the sign-in form');
  run.check(await officerPage.locator('#signin').isVisible(), 'the sign-in form stays');
  await officerPage.waitForTimeout(1500);
  run.check(await officerPage.locator('#queue .incident').count() === 0, 'no incidents in the queue');
  run.check(await officerPage.locator('#units .unit').count() === 0, 'no units listed');
  const conn = (await officerPage.textContent('#conn')).trim();
  run.check(conn !== 'live', `no live feed for the officer (#conn says "${conn}")`);
  for (const path of ['/api/v1/live', '/api/v1/incidents', '/api/v1/reviews', '/api/v1/audit']) {
    const status = await statusInPage(officerPage, path);
    run.check(status === 403, `GET ${path} with the officer's session: ${status} (want 403)`);
  }
  const assign = await officerPage.evaluate(async () => (await fetch('/api/v1/incidents/00000000-0000-0000-0000-000000000001/assign', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ unit_id: 'x' }),
  })).status);
  run.check(assign === 403, `POST assign with the officer's session: ${assign} (want 403)`);
  // Pictures: only those of an incident the officer's unit was sent to (none here).
  const face = await statusInPage(officerPage, '/api/v1/watchlist/wp-none/face.jpg');
  run.check(face === 403, `GET a watchlist face with the officer's session: ${face} (want 403)`);
  const sighting = await statusInPage(officerPage, '/api/v1/sightings/00000000-0000-0000-0000-000000000001/frame.jpg');
  run.check(sighting === 403, `GET a sighting's frame with the officer's session: ${sighting} (want 403)`);
});

const dispPage = await run.page(await run.context({ viewport: { width: 1024, height: 768 } }), 'dispatcher-tablet');
await run.step('a dispatcher on the tablet page and on the oversight view is refused', async () => {
  await signIn(dispPage, '/tablet/', env('DISPATCHER_USER'), env('DISPATCHER_PASSWORD'));
  await waitUntil(dispPage, () => /not allowed/i.test(document.querySelector('#signin .error')?.textContent || ''), null,
    'the "not allowed" message on the tablet');
  run.check(!(await dispPage.locator('#offer').isVisible()), 'no offer card');
  await dispPage.goto('/oversight/');
  await waitUntil(dispPage, () => /not allowed/i.test(document.querySelector('#signin .error')?.textContent || ''), null,
    'the "not allowed" message on the oversight view');
  run.check(await statusInPage(dispPage, '/api/v1/audit') === 403, 'GET /api/v1/audit with the dispatcher\'s session is 403');
});

const ovPage = await run.page(await run.context({ viewport: { width: 1280, height: 800 } }), 'oversight');
await run.step('oversight sees the audit log and a verified chain', async () => {
  await signInOk(ovPage, '/oversight/', env('OVERSIGHT_USER'), env('OVERSIGHT_PASSWORD'));
  await waitFor(ovPage, '#audit tbody tr', 'audit rows');
  const rows = await ovPage.locator('#audit tbody tr').count();
  run.check(rows > 0, `the audit table has rows (${rows})`);
  const cells = await ovPage.locator('#audit tbody tr').first().locator('td').count();
  run.check(cells === 7, `each row has seq, time, actor, action, subject, detail, hash (${cells} cells)`);
  await waitUntil(ovPage, () => /verified: (yes|no)/i.test(document.querySelector('#chain')?.textContent || ''), null, '#chain to report');
  const chain = (await ovPage.textContent('#chain')).trim();
  run.check(/verified: yes/i.test(chain), `#chain says verified (${chain})`);
  await waitUntil(ovPage, () => document.querySelector('#conn')?.textContent.trim() === 'live', null, 'the oversight feed to be live');
  // Filter by an action that the sign-in just wrote.
  await ovPage.fill('#audit-filter input[name=action]', 'auth.sign_in');
  await ovPage.click('#audit-filter button[type=submit]');
  await waitUntil(ovPage, () => {
    const cells = [...document.querySelectorAll('#audit tbody td.action')];
    return cells.length > 0 && cells.every((c) => c.textContent === 'auth.sign_in');
  }, null, 'only auth.sign_in rows after filtering');
  const changers = await ovPage.locator('[data-action=confirm], [data-action=reject], [data-action=assign], [data-action=cancel]').count();
  run.check(changers === 0, 'no buttons that change anything');
  const problems = await layoutProblems(ovPage, ['.topbar', '#alerts-panel', '#audit-panel']);
  run.check(problems.length === 0, `oversight layout is clean${problems.length ? `: ${problems.join('; ')}` : ''}`);
  run.log(`saved ${await screenshot(ovPage, 'oversight.png')}`);
});

const consoleCtx = await run.context({ viewport: { width: 1280, height: 800 } });
const consolePage = await run.page(consoleCtx, 'dispatcher-console');
await run.step('a dispatcher issues an area warning on the map, extends it and cancels it', async () => {
  await signInOk(consolePage, '/console/', env('DISPATCHER_USER'), env('DISPATCHER_PASSWORD'));
  await waitUntil(consolePage, () => document.querySelector('#conn')?.textContent.trim() === 'live', null, 'the console feed to be live');
  await consolePage.click('[data-action=new-warning]');
  await waitFor(consolePage, 'form[data-form=warning]', 'the warning form');
  await consolePage.fill('form[data-form=warning] input[name=headline]', 'Police operation at the school');
  await consolePage.fill('form[data-form=warning] textarea[name=description]', 'Police on scene; keep clear.');
  await consolePage.fill('form[data-form=warning] input[name=area]', 'The school and the streets around it');
  // The centre is where the dispatcher clicks.
  const box = await consolePage.locator('#map').boundingBox();
  await consolePage.mouse.click(box.x + box.width / 2 + 30, box.y + box.height / 2 - 20);
  await consolePage.click('[data-action=issue-warning]');
  await waitFor(consolePage, '#warnings .warning[data-state="in force"]', 'the warning listed in force');
  const count = (await consolePage.textContent('#warnings-count')).trim();
  run.check(count === '1', `one warning in force (${count})`);
  const shapes = await consolePage.evaluate(() => document.querySelectorAll('#map path.leaflet-interactive').length);
  run.check(shapes >= 1, `its area is drawn on the map (${shapes} shapes)`);
  await consolePage.click('#warnings [data-action=extend-warning]');
  await waitUntil(consolePage, () => /2 message/.test(document.querySelector('#warnings .warning')?.textContent || ''), null,
    'the update listed (2 messages)');
  await consolePage.fill('#warnings input[name=reason]', 'operation over');
  await consolePage.click('#warnings [data-action=cancel-warning]');
  await waitFor(consolePage, '#warnings .warning[data-state=cancelled]', 'the warning listed as cancelled');
  const feed = await consolePage.evaluate(async () => {
    const res = await fetch('/api/v1/warnings/feed.atom');
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
  });
  run.check(feed.status === 200 && /atom\+xml/.test(feed.type), `the Atom feed answers (${feed.status} ${feed.type})`);
  const entries = (feed.text.match(/<entry>/g) || []).length;
  run.check(entries === 3, `the feed has the Alert, the Update and the Cancel (${entries} entries)`);
  run.check(/<msgType>Cancel<\/msgType>/.test(feed.text), 'the feed carries the Cancel');
});

await run.step('signing out in another tab closes the console\'s live feed', async () => {
  const other = await run.page(consoleCtx, 'dispatcher-second-tab');
  await other.goto('/console/');
  const out = await other.evaluate(async () => (await fetch('/api/v1/session', { method: 'DELETE' })).status);
  run.check(out === 200, `DELETE /api/v1/session from the second tab: ${out}`);
  // The first tab's feed is closed by kuzet (signed_out), and the page asks to sign in.
  await waitFor(consolePage, '#signin', 'the sign-in form on the first tab');
  run.check(await statusInPage(consolePage, '/api/v1/incidents') === 401, 'the first tab\'s session is gone');
});

await run.finish();
