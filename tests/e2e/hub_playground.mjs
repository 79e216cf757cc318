// hub_playground.mjs: the hub in a real browser. Starts `ssehub serve --demo --web DIR` on
// 127.0.0.1 port 0 (with a short --max-lifetime so the hub ends streams and the browser must
// reconnect), then in headless Chromium:
//  0. clock.html (as `make run` serves it) shows the demo publisher's time and myEvent;
//  1. the playground page gets the dev tokens, subscribes with EventSource (onopen before any
//     update), publishes with fetch, and receives the update with its multi-line data exact;
//  2. a private update does not reach the anonymous subscriber, and does reach a page that
//     subscribed with the subscriber token;
//  3. a stream the hub closes is reopened by the browser with Last-Event-ID, and the updates
//     published while it was away are replayed (checked in the page and in /metrics).
// Usage: node hub_playground.mjs PATH/TO/ssehub WEB_DIR
import { Server, check, launchBrowser, log, newPage, run, until } from './lib.mjs';

const [bin, web] = process.argv.slice(2);

async function publish(base, token, fields) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) body.append(k, v);
  const r = await fetch(`${base}/.well-known/mercure`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: body.toString(),
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`publish ${r.status} ${text}`);
  return text.trim();
}

async function eventsOf(page) {
  return page.$$eval('#events li', (lis) => lis.map((li) => ({
    id: li.getAttribute('data-id'), type: li.getAttribute('data-type'),
    data: li.querySelector('pre').textContent,
  })).reverse());
}

run('e2e_hub_playground', 100000, async (ctx) => {
  const hub = new Server('hub', bin, ['serve', '--demo', '--web', web, '--listen', '127.0.0.1:0',
    '--max-lifetime', '4s', '--expiry-sweep', '100ms', '--log-level', 'debug']);
  ctx.servers.push(hub);
  const port = await hub.start();
  const base = `http://127.0.0.1:${port}`;
  const pubTok = await until(() => {
    const l = hub.lines.find((x) => x.startsWith('publisher token: '));
    return l && l.slice('publisher token: '.length);
  }, 5000, 'the publisher token line');

  ctx.browser = await launchBrowser();

  // 0. The classic clock page as `make run` serves it: /clock is the hub's demo topic.
  const clock = await newPage(ctx.browser);
  await clock.goto(`${base}/clock.html`);
  await until(async () => Number(await clock.textContent('#count')) >= 2, 6000,
    'clock.html receives the demo publisher\'s time');
  await until(async () => Number(await clock.textContent('#my-count')) >= 1, 8000,
    'clock.html receives myEvent (every fifth second)');
  check(/^\d{4}-\d\d-\d\dT/.test(await clock.textContent('#now-full')), 'the clock shows the server time');
  await clock.close();

  // 1. Subscribe anonymously from the playground, publish from the page.
  const a = await newPage(ctx.browser);
  await a.goto(`${base}/playground.html`);
  await until(() => a.evaluate(() => document.body.getAttribute('data-tokens')), 5000, 'tokens');
  check(await a.evaluate(() => document.body.getAttribute('data-tokens')) === 'dev',
    'the playground got the dev tokens');
  await a.fill('#sub-topics', '/e2e/{n}');
  await a.click('#sub-go');
  await until(async () => (await a.textContent('#sub-state')) === 'OPEN', 5000, 'page A open');
  check(true, 'EventSource open before any update');
  await a.fill('#pub-topic', '/e2e/1');
  await a.fill('#pub-data', 'hello\n\nworld\n');
  await a.click('#pub-go');
  await until(async () => /^200 urn:uuid:/.test(await a.textContent('#pub-result')), 5000,
    'publish answered 200 with an id');
  const ev1 = await until(async () => (await eventsOf(a)).find((e) => e.data.startsWith('hello')),
    5000, 'the update reaches the page');
  check(ev1.data === 'hello\n\nworld\n', `multi-line data exact (${JSON.stringify(ev1.data)})`);
  check(/^urn:uuid:/.test(ev1.id), 'the event carries the update id');

  // 2. Private updates: not to the anonymous page, yes to the page with a token.
  const b = await newPage(ctx.browser);
  await b.goto(`${base}/playground.html`);
  await until(() => b.evaluate(() => document.body.getAttribute('data-tokens')), 5000, 'tokens B');
  await b.fill('#sub-topics', '/e2e/{n}');
  await b.check('#sub-auth');
  await b.click('#sub-go');
  await until(async () => (await b.textContent('#sub-state')) === 'OPEN', 5000, 'page B open');
  await publish(base, pubTok, { topic: '/e2e/2', data: 'secret', private: 'on' });
  await publish(base, pubTok, { topic: '/e2e/3', data: 'public after' });
  await until(async () => (await eventsOf(a)).some((e) => e.data === 'public after'), 5000,
    'public update reaches A');
  await until(async () => (await eventsOf(b)).some((e) => e.data === 'public after'), 5000,
    'public update reaches B');
  check(!(await eventsOf(a)).some((e) => e.data === 'secret'), 'private not received anonymously');
  check((await eventsOf(b)).some((e) => e.data === 'secret'), 'private received with the token');

  // 3. Reconnect: a plain EventSource; the hub ends the stream after --max-lifetime; the browser
  //    reconnects with Last-Event-ID and gets what was published meanwhile.
  const c = await newPage(ctx.browser);
  await c.goto(`${base}/healthz`); // any same-origin page
  await c.evaluate((url) => {
    window.got = [];
    window.opens = 0;
    window.es = new EventSource(url);
    window.es.onopen = () => { window.opens++; };
    window.es.onmessage = (e) => { window.got.push({ id: e.lastEventId, data: e.data }); };
  }, `${base}/.well-known/mercure?topic=/rc`);
  await until(() => c.evaluate(() => window.opens === 1), 5000, 'reconnect page open');
  await publish(base, pubTok, { topic: '/rc', data: 'r1', retry: '1500' });
  await until(() => c.evaluate(() => window.got.length === 1), 5000, 'r1 live');
  // Wait until the hub ends the stream (the browser is then CONNECTING), publish two updates.
  await until(() => c.evaluate(() => window.es.readyState === 0), 8000, 'stream ended by the hub');
  await publish(base, pubTok, { topic: '/rc', data: 'r2' });
  await publish(base, pubTok, { topic: '/rc', data: 'r3' });
  await until(() => c.evaluate(() => window.opens === 2 && window.got.length >= 3), 8000,
    'reconnected and caught up');
  const got = await c.evaluate(() => window.got);
  log('reconnect page got', JSON.stringify(got));
  check(got.map((e) => e.data).join(',') === 'r1,r2,r3', 'missed updates replayed once, in order');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const replayed = Number((/^ssehub_events_replayed_total (\d+)$/m.exec(metrics) || [])[1]);
  check(replayed >= 2, `the hub replayed them from history (replayed_total ${replayed})`);

  const st = await hub.stop();
  check(st && st.code === 0, `graceful exit on SIGTERM (${JSON.stringify(st)})`);
});
