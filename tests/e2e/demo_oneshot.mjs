// demo_oneshot.mjs: the one-shot example in headless Chromium, end to end.
//
//   node demo_oneshot.mjs <sse_example_oneshot binary> <web dir>
//
// Starts the example on 127.0.0.1, port 0, opens oneshot.html and checks that the page advances
// only by reconnecting: at least three messages with ids 1, 2, 3, ... (each the previous + 1),
// at least three distinct server times, at least three separate opens, the state flipping back
// to CONNECTING between them, and the server logging each reconnect's Last-Event-ID. A raw
// request must get exactly one event with "retry: 1000" and then the end of the response.
// SIGTERM must make the server exit 0.
import { check, launchBrowser, newPage, run, Server, until } from './lib.mjs';

const [bin, web] = process.argv.slice(2);
if (!bin || !web) {
  console.error('usage: node demo_oneshot.mjs <sse_example_oneshot> <web dir>');
  process.exit(2);
}

await run('demo_oneshot', 60000, async (ctx) => {
  const server = new Server('oneshot', bin, ['--listen', '127.0.0.1:0', '--web', web]);
  ctx.servers.push(server);
  const port = await server.start();
  check(port > 0, `oneshot listens on 127.0.0.1:${port}`);

  // One raw request: one event, then the response ends (fetch's text() resolves).
  const res = await fetch(`http://127.0.0.1:${port}/oneshot`, {
    headers: { 'Last-Event-ID': '41' },
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.text();
  check(res.status === 200 && res.headers.get('content-type').startsWith('text/event-stream'),
    'raw request: 200 text/event-stream');
  check(/(^|\n)id: ?42\r?\n/.test(body) && /(^|\n)retry: ?1000\r?\n/.test(body) &&
    body.split(/\r?\n\r?\n/).filter((e) => /(^|\n)data:/.test(e)).length === 1,
    `raw request with Last-Event-ID 41: one event, id 42, retry 1000, then the end (${JSON.stringify(body)})`);

  ctx.browser = await launchBrowser();
  const page = await newPage(ctx.browser);
  await page.goto(`http://127.0.0.1:${port}/oneshot.html`);

  const d = await until(async () => {
    const v = await page.evaluate(() => window.demo && {
      messages: window.demo.messages, opens: window.demo.opens,
      states: window.demo.states.map((s) => s.state),
    });
    return v && v.messages.length >= 3 && new Set(v.messages.map((m) => m.data)).size >= 3 && v;
  }, 15000, 'three messages with three distinct times');
  const ids = d.messages.map((m) => Number(m.id));
  check(ids.every((id, i) => id === i + 1), `ids go 1, 2, 3, ... (${ids.join(',')})`);
  check(new Set(d.messages.map((m) => m.data)).size >= 3, 'at least three distinct server times');
  check(d.opens >= 3, `the page opened ${d.opens} connections (one per event)`);
  const s = d.states;
  const flips = s.filter((x, i) => i > 0 && x === 'CONNECTING' && s[i - 1] === 'OPEN').length;
  check(flips >= 2, `the state went OPEN -> CONNECTING ${flips} times (${s.join(' ')})`);

  const logged = server.reconnectIds();
  check(logged.includes(1) && logged.includes(2),
    `the server saw Last-Event-ID on the reconnects (${logged.join(',')})`);

  const exit = await server.stop();
  check(exit.code === 0, `SIGTERM: the oneshot exits 0 (code ${exit.code}, signal ${exit.signal})`);
});
