// demo_clock.mjs: the clock example in headless Chromium, end to end.
//
//   node demo_clock.mjs <sse_example_clock binary> <web dir>
//
// Starts the example on 127.0.0.1, port 0, opens clock.html and checks: the state becomes
// OPEN; at least three messages arrive with increasing numeric ids and ISO 8601 times; myEvent
// arrives through its addEventListener listener; the raw stream (read beside the browser)
// starts with "retry: 1000" as text/event-stream and carries a ':' comment. Then the server is
// stopped with SIGTERM (it must exit 0), the page must go CONNECTING, the server is started
// again on the SAME port, the page must go OPEN again, the new server must log the page's last
// id as "reconnect last-event-id=N", and the ids must carry on after N. Finally a page without
// EventSource must say so.
import { check, launchBrowser, log, newPage, run, Server, TestFailure, until } from './lib.mjs';

const [bin, web] = process.argv.slice(2);
if (!bin || !web) {
  console.error('usage: node demo_clock.mjs <sse_example_clock> <web dir>');
  process.exit(2);
}

const demo = (page) => page.evaluate(() => window.demo && {
  state: window.demo.state,
  states: window.demo.states.map((s) => s.state),
  opens: window.demo.opens,
  messages: window.demo.messages,
  myEvents: window.demo.myEvents,
});

// Read the raw stream until a ':' comment line shows up; resolve with what was read.
async function rawStream(port, timeoutMs) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let text = '';
  let type = '';
  try {
    const res = await fetch(`http://127.0.0.1:${port}/clock`, { signal: ac.signal });
    type = res.headers.get('content-type') || '';
    const dec = new TextDecoder();
    for await (const chunk of res.body) {
      text += dec.decode(chunk, { stream: true });
      if (/(^|\n):/.test(text)) break;
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return { type, text };
}

// Start a server on a given port, retrying while the old socket still holds it.
async function startOn(name, port) {
  for (let attempt = 1; ; attempt++) {
    const s = new Server(name, bin, ['--listen', `127.0.0.1:${port}`, '--web', web]);
    try {
      await s.start();
      return s;
    } catch (e) {
      if (attempt >= 10) throw e;
      log(`${name}: start failed (${e.message}), retrying`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

await run('demo_clock', 100000, async (ctx) => {
  const first = new Server('clock#1', bin, ['--listen', '127.0.0.1:0', '--web', web]);
  ctx.servers.push(first);
  const port = await first.start();
  check(port > 0, `clock listens on 127.0.0.1:${port}`);

  const raw = rawStream(port, 12000); // runs beside the browser checks
  ctx.browser = await launchBrowser();
  const page = await newPage(ctx.browser);
  await page.goto(`http://127.0.0.1:${port}/clock.html`);

  await until(async () => (await demo(page))?.state === 'OPEN', 10000, 'state OPEN');
  check((await page.textContent('#state')) === 'OPEN', 'the badge says OPEN');

  const d1 = await until(async () => {
    const d = await demo(page);
    return d.messages.length >= 3 && d;
  }, 8000, 'three messages');
  const ids = d1.messages.map((m) => Number(m.id));
  check(ids.every((id) => Number.isInteger(id) && id > 0), `ids are numbers: ${ids.join(',')}`);
  check(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'ids increase');
  check(d1.messages.every((m) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(m.data) &&
    Math.abs(Date.parse(m.data) - Date.now()) < 60000), 'data is the server time (ISO 8601, UTC)');
  check(new Set(d1.messages.map((m) => m.data)).size === d1.messages.length, 'times differ');
  check(d1.messages.every((m) => m.type === 'message'), 'unnamed events arrive as "message"');
  check(Number(await page.textContent('#count')) >= 3, 'the page shows the message count');

  const d2 = await until(async () => {
    const d = await demo(page);
    return d.myEvents.length >= 1 && d;
  }, 8000, 'myEvent');
  check(d2.myEvents[0].data.length > 0, `myEvent via addEventListener: "${d2.myEvents[0].data}"`);
  check(Number(d2.myEvents[0].id) % 5 === 0, 'myEvent comes with an id that is a multiple of 5');

  const r = await raw;
  check(r.type.startsWith('text/event-stream'), `raw stream Content-Type ${r.type}`);
  check(/^retry: ?1000\r?\n/.test(r.text), 'raw stream starts with "retry: 1000"');
  check(/(^|\n):/.test(r.text), 'raw stream carries a ":" comment');

  // Stop the server: the page must notice and keep trying.
  const before = await demo(page);
  const nStates = before.states.length;
  const exit = await first.stop();
  check(exit.code === 0, `SIGTERM: the clock exits 0 (code ${exit.code}, signal ${exit.signal})`);
  await until(async () => (await demo(page)).states.slice(nStates).includes('CONNECTING'), 5000,
    'state CONNECTING after the server stopped');
  const stopped = await demo(page);
  const lastId = Number(stopped.messages[stopped.messages.length - 1].id);
  log(`page's last id before the restart: ${lastId}`);

  // Start it again on the same port: the browser reconnects with Last-Event-ID.
  const second = await startOn('clock#2', port);
  ctx.servers.push(second);
  check(second.port === port, `restarted on the same port ${port}`);
  await until(async () => {
    const d = await demo(page);
    const s = d.states.slice(nStates);
    return s.indexOf('OPEN', s.indexOf('CONNECTING')) > 0;
  }, 10000, 'state CONNECTING -> OPEN after the restart');
  check(true, 'the page went CONNECTING -> OPEN again');
  await until(() => second.reconnectIds().length > 0, 3000, 'reconnect log line');
  const seen = second.reconnectIds();
  check(seen[0] === lastId, `the server saw Last-Event-ID ${seen[0]} (page had ${lastId})`);
  const d3 = await until(async () => {
    const d = await demo(page);
    return d.messages.length > stopped.messages.length && d;
  }, 5000, 'a message after the restart');
  const next = Number(d3.messages[stopped.messages.length].id);
  check(next === lastId + 1, `ids carry on after the restart (${lastId} -> ${next})`);
  check((await page.textContent('#state')) === 'OPEN', 'the badge says OPEN again');

  // A browser without EventSource gets a clear message.
  const bare = await newPage(ctx.browser);
  await bare.addInitScript(() => { delete window.EventSource; });
  await bare.goto(`http://127.0.0.1:${port}/clock.html`);
  await until(() => bare.isVisible('#unsupported'), 3000, 'the "no EventSource" notice');
  check((await bare.textContent('#unsupported')).includes('EventSource'),
    'without EventSource the page says so');

  const exit2 = await second.stop();
  if (exit2.code !== 0) throw new TestFailure(`second clock exited ${exit2.code}/${exit2.signal}`);
  check(true, 'the restarted clock exits 0 on SIGTERM');
});
