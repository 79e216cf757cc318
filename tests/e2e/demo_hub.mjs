// demo_hub.mjs: the same clock page, fed by the hub (`ssehub serve --demo`), in headless Chromium.
//
//   node demo_hub.mjs <ssehub binary> <web dir>
//
// Starts `ssehub serve --demo` on 127.0.0.1 port 0 and opens clock.html?topic=/demo/clock (the
// page subscribes on /.well-known/mercure). Checks: the state becomes OPEN; at least three
// messages with distinct ids and increasing ISO 8601 times; myEvent arrives through its
// listener; plain clock.html (stream /clock, the classic clock that --demo serves) works
// too; after SIGTERM (exit 0) and a restart on the same port the page goes CONNECTING -> OPEN
// and messages flow again. The hub generates urn:uuid ids, so ids are not compared by size.
import { check, launchBrowser, log, newPage, run, Server, until } from './lib.mjs';

const [bin, web] = process.argv.slice(2);
if (!bin || !web) {
  console.error('usage: node demo_hub.mjs <ssehub> <web dir>');
  process.exit(2);
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const demo = (page) => page.evaluate(() => window.demo && {
  src: window.demo.src,
  state: window.demo.state,
  states: window.demo.states.map((s) => s.state),
  messages: window.demo.messages,
  myEvents: window.demo.myEvents,
});
const hubArgs = (listen) => ['serve', '--demo', '--listen', listen, '--web', web];

await run('demo_hub', 100000, async (ctx) => {
  const first = new Server('hub#1', bin, hubArgs('127.0.0.1:0'));
  ctx.servers.push(first);
  const port = await first.start();
  check(port > 0, `ssehub serve --demo listens on 127.0.0.1:${port}`);

  ctx.browser = await launchBrowser();
  const page = await newPage(ctx.browser);
  await page.goto(`http://127.0.0.1:${port}/clock.html?topic=/demo/clock`);
  await until(async () => (await demo(page))?.state === 'OPEN', 10000, 'state OPEN');
  const d0 = await demo(page);
  check(d0.src === '/.well-known/mercure?topic=%2Fdemo%2Fclock', `the page subscribed to ${d0.src}`);

  const d1 = await until(async () => {
    const d = await demo(page);
    return d.messages.length >= 3 && d;
  }, 8000, 'three messages from the hub');
  const ids = d1.messages.map((m) => m.id);
  check(ids.every((id) => id.length > 0) && new Set(ids).size === ids.length,
    `each message has its own id (${ids.join(' ')})`);
  const times = d1.messages.map((m) => m.data);
  check(times.every((t) => ISO.test(t)) &&
    times.every((t, i) => i === 0 || Date.parse(t) > Date.parse(times[i - 1])),
    'data is the server time, increasing');
  const d2 = await until(async () => {
    const d = await demo(page);
    return d.myEvents.length >= 1 && d;
  }, 8000, 'myEvent from the hub');
  check(ISO.test(d2.myEvents[0].data), `myEvent via addEventListener: ${d2.myEvents[0].data}`);

  // Without ?topic the page opens /clock, the classic clock stream that --demo serves too.
  const plain = await newPage(ctx.browser);
  await plain.goto(`http://127.0.0.1:${port}/clock.html`);
  await until(async () => (await demo(plain))?.messages.length >= 1, 6000, 'a message on /clock');
  check((await demo(plain)).state === 'OPEN', 'plain clock.html (stream /clock) works on the hub');
  await plain.close();

  // Stop and restart the hub on the same port: the page reconnects by itself.
  const nStates = (await demo(page)).states.length;
  const exit = await first.stop();
  check(exit.code === 0, `SIGTERM: ssehub exits 0 (code ${exit.code}, signal ${exit.signal})`);
  await until(async () => (await demo(page)).states.slice(nStates).includes('CONNECTING'), 5000,
    'state CONNECTING after the hub stopped');
  const nMessages = (await demo(page)).messages.length;

  let second;
  for (let attempt = 1; ; attempt++) {
    second = new Server('hub#2', bin, hubArgs(`127.0.0.1:${port}`));
    try {
      await second.start();
      break;
    } catch (e) {
      if (attempt >= 10) throw e;
      log(`hub#2: start failed (${e.message}), retrying`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  ctx.servers.push(second);
  await until(async () => {
    const s = (await demo(page)).states.slice(nStates);
    return s.indexOf('OPEN', s.indexOf('CONNECTING')) > 0;
  }, 10000, 'state CONNECTING -> OPEN after the restart');
  check(true, 'the page went CONNECTING -> OPEN again');
  await until(async () => (await demo(page)).messages.length > nMessages, 5000,
    'a message after the restart');
  check(true, 'messages flow again after the restart');

  const exit2 = await second.stop();
  check(exit2.code === 0, `the restarted hub exits 0 on SIGTERM (code ${exit2.code})`);
});
