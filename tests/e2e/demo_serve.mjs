// demo_serve.mjs: `ssehub serve --demo` as a new user meets it, in headless Chromium: every demo
// page with both classic streams, from the pages built into the binary.
//
//   node demo_serve.mjs <ssehub binary> <screenshot dir> [--install <cmake> <build dir>] [--raw]
//
// The hub is started with its working directory in a fresh temporary folder, outside the source
// tree, and no --web: the pages must come from the binary itself. With --install, the build is
// first installed with `cmake --install <build dir> --prefix <a temporary folder>` and that
// installed ssehub is tested instead (the binary needs no file outside itself).
//
// Checks, each "within 7 s" counted on the page's own clock from the moment its script opened
// the EventSource (what the page recorded later is not counted; so a slow page load on a loaded
// machine does not eat into the window, nor does the test's own polling):
// - raw HTTP: GET / is the landing page; /oneshot with Last-Event-ID 41 answers one event
//   (id 42, the server time, retry: 1000) with Cache-Control: no-cache, then ends; /clock
//   starts with retry: 1000 and a ":" comment, then events with increasing ids;
// - clock.html: at least 5 events, at least 4 distinct server times, ids increasing, state
//   OPEN, at least one myEvent (addEventListener); the Close button calls close(): state
//   CLOSED and no event after it; without EventSource the page says so (typeof check);
// - oneshot.html: at least 4 connections, one event each, ids strictly increasing across
//   them, the state seen alternating OPEN / CONNECTING;
// - index.html: every link answers 200 and its page loads (no resource failing);
// - no console error and no page error on any page.
// With --raw only the raw HTTP checks run, then SIGTERM must make it exit 0: no browser, so the
// ASan/UBSan run covers the demo code (a leak or sanitizer report makes the exit code non-zero).
// Screenshots of each page go to <screenshot dir>/<prefix>-<page>.png (prefix "serve-demo", or
// "installed-demo" with --install), for people to look at.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { check, launchBrowser, log, run, Server, sleep, TestFailure } from './lib.mjs';

const argv = process.argv.slice(2);
const [argBin, shotDir] = argv;
const installAt = argv.indexOf('--install');
if (!argBin || !shotDir || (installAt >= 0 && argv.length < installAt + 3)) {
  console.error('usage: node demo_serve.mjs <ssehub> <screenshot dir> [--install <cmake> <build dir>]');
  process.exit(2);
}
const rawOnly = argv.includes('--raw');
const install = installAt >= 0 ? { cmake: argv[installAt + 1], build: argv[installAt + 2] } : null;
const prefix = install ? 'installed-demo' : 'serve-demo';
const WINDOW_MS = 7000;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

// The demo state a page keeps in window.demo (web/demo.js).
const demoState = (page) => page.evaluate(() => window.demo && {
  now: performance.now(),
  supported: window.demo.supported,
  state: window.demo.state,
  states: window.demo.states.map((s) => s.state),
  stateTimes: window.demo.states.map((s) => s.t),
  opens: window.demo.opens,
  openTimes: window.demo.openTimes,
  messages: window.demo.messages,
  myEvents: window.demo.myEvents,
});

// What page recorded in the first WINDOW_MS after it opened its EventSource (its entries carry
// t, ms since navigation; the first state entry is the EventSource's creation): polled until
// ok(d) holds or the page's clock passes the window (or 30 s pass here, for a page that never
// runs its script). Returns the last such view, or null.
async function inWindow(page, ok) {
  const end = Date.now() + 30000;
  let d = null;
  for (;;) {
    const all = await demoState(page);
    if (all && all.states.length) {
      const limit = all.stateTimes[0] + WINDOW_MS;
      const early = (list) => list.filter((e) => e.t <= limit);
      const states = all.states.filter((s, i) => all.stateTimes[i] <= limit);
      d = { ...all, messages: early(all.messages), myEvents: early(all.myEvents), states,
        state: states[states.length - 1], opens: all.openTimes.filter((t) => t <= limit).length };
      if (ok(d) || all.now > limit) return d;
    }
    if (Date.now() > end) return d;
    await sleep(100);
  }
}

// A page whose console errors, page errors and failed responses are collected.
async function watchedPage(browser, problems, name) {
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${name}: ${r.status()} for ${r.url()}`);
  });
  return page;
}

async function screenshot(page, name) {
  const file = path.join(shotDir, `${prefix}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log('screenshot:', file);
}

// GET url with headers; resolves {status, headers, body} when the response ends, or after
// limitMs (then aborted, ended: false). stopWhen(body) may end it early.
function rawGet(url, headers, limitMs, stopWhen = () => false) {
  return new Promise((resolve, reject) => {
    let body = '';
    let res0 = null;
    const req = http.get(url, { headers }, (res) => {
      res0 = res;
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
        if (stopWhen(body)) finish(false);
      });
      res.on('end', () => finish(true));
    });
    const timer = setTimeout(() => finish(false), limitMs);
    let done = false;
    function finish(ended) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      if (!res0) reject(new TestFailure(`no response from ${url} within ${limitMs} ms`));
      else resolve({ status: res0.statusCode, headers: res0.headers, body, ended });
    }
    req.on('error', (e) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new TestFailure(`${url}: ${e.message}`));
      }
    });
  });
}

const temps = [];
function tempDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `ssehub-${tag}-`));
  temps.push(d);
  return d;
}
process.on('exit', () => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

await run(`demo_serve${install ? ' (installed)' : ''}${rawOnly ? ' (raw)' : ''}`, 150000, async (ctx) => {
  fs.mkdirSync(shotDir, { recursive: true });
  let bin = path.resolve(argBin);
  if (install) {
    const dest = tempDir('prefix');
    const r = spawnSync(install.cmake, ['--install', install.build, '--prefix', dest],
      { encoding: 'utf8' });
    check(r.status === 0, `cmake --install ${install.build} --prefix ${dest} (exit ${r.status}` +
      `${r.status ? `: ${r.stderr || r.stdout}` : ''})`);
    bin = path.join(dest, 'bin', 'ssehub');
    check(fs.existsSync(bin), `the installed program is ${bin}`);
  }
  const cwd = tempDir('cwd');
  const hub = new Server('ssehub', bin, ['serve', '--demo', '--listen', '127.0.0.1:0'], { cwd });
  ctx.servers.push(hub);
  const port = await hub.start();
  check(port > 0, `ssehub serve --demo listens on 127.0.0.1:${port}, working directory ${cwd}`);
  const base = `http://127.0.0.1:${port}`;

  // ---- raw HTTP
  const home = await rawGet(`${base}/`, {}, 3000);
  check(home.status === 200 && /^text\/html/.test(home.headers['content-type']) &&
    /<title>ssehub demos<\/title>/.test(home.body), 'GET / is the built-in landing page (text/html)');
  const one = await rawGet(`${base}/oneshot`, { 'Last-Event-ID': '41' }, 3000);
  const oneEvents = one.body.split(/\n\n/).filter((e) => /(^|\n)data:/.test(e));
  check(one.status === 200 && /^text\/event-stream/.test(one.headers['content-type']) &&
    one.headers['cache-control'] === 'no-cache',
  '/oneshot: 200 text/event-stream, Cache-Control: no-cache');
  check(one.ended && oneEvents.length === 1 && /(^|\n)id: 42\n/.test(one.body) &&
    /(^|\n)retry: 1000\n/.test(one.body) &&
    ISO.test((/(^|\n)data: (.*)\n/.exec(one.body) || [])[2] || ''),
  `/oneshot with Last-Event-ID 41: one event, id 42, the server time, retry 1000, then the end (${JSON.stringify(one.body)})`);
  const clk = await rawGet(`${base}/clock`, {}, 4000, (b) => (b.match(/\nid: /g) || []).length >= 2);
  const clkIds = [...clk.body.matchAll(/(?:^|\n)id: (\d+)\n/g)].map((m) => Number(m[1]));
  check(clk.status === 200 && clk.body.startsWith('retry: 1000\n') && /(^|\n):/.test(clk.body) &&
    clkIds.length >= 2 && clkIds[1] === clkIds[0] + 1,
  `/clock: retry: 1000 first, a ":" comment, ids up by one (${JSON.stringify(clk.body)})`);

  if (rawOnly) {
    // SIGTERM with a clock stream open: the stream ends, the program exits 0 (under ASan: no
    // leak, no use after free in the demo's stream list).
    const open = rawGet(`${base}/clock`, {}, 8000);
    await sleep(1500);
    const exit = await hub.stop();
    const last = await open;
    check(last.ended && /(^|\n)id: \d+\n/.test(last.body), 'SIGTERM ends an open /clock stream');
    check(exit.code === 0, `SIGTERM: ssehub exits 0 (code ${exit.code}, signal ${exit.signal})`);
    return;
  }
  ctx.browser = await launchBrowser();
  const problems = [];

  // ---- the clock page
  const clock = await watchedPage(ctx.browser, problems, 'clock.html');
  await clock.goto(`${base}/clock.html`);
  const c = { d: await inWindow(clock, (d) => d.messages.length >= 5 && d.state === 'OPEN' &&
    new Set(d.messages.map((m) => m.data)).size >= 4 && d.myEvents.length >= 1) };
  check(c.d, 'clock.html runs its script (window.demo)');
  const cTimes = new Set(c.d.messages.map((m) => m.data));
  check(c.d.messages.length >= 5, `clock: ${c.d.messages.length} events within 7 s (at least 5)`);
  check(cTimes.size >= 4 && [...cTimes].every((t) => ISO.test(t)),
    `clock: ${cTimes.size} distinct server times (at least 4)`);
  const cIds = c.d.messages.map((m) => Number(m.id));
  check(cIds.every((id, i) => Number.isInteger(id) && (i === 0 || id > cIds[i - 1])),
    `clock: ids increase (${cIds.join(',')})`);
  check(c.d.state === 'OPEN', `clock: state ${c.d.state}`);
  check(c.d.myEvents.length >= 1, `clock: ${c.d.myEvents.length} myEvent (at least 1)`);
  check(await clock.locator('#state').textContent() === 'OPEN', 'clock: the badge shows OPEN');
  await screenshot(clock, 'clock');
  // The Close button: es.close(), state CLOSED, and nothing arrives after it.
  await clock.click('#toggle');
  const closedAt = (await demoState(clock)).messages.length;
  await sleep(1500);
  const cc = await demoState(clock);
  check(cc.state === 'CLOSED' && cc.messages.length === closedAt &&
    await clock.locator('#state').textContent() === 'CLOSED',
  `clock: Close makes it CLOSED and no event arrives after (${cc.messages.length - closedAt} did)`);
  await clock.close();

  // Without EventSource the page says so rather than failing (its typeof check).
  const bare = await watchedPage(ctx.browser, problems, 'clock.html without EventSource');
  await bare.addInitScript(() => { delete window.EventSource; });
  await bare.goto(`${base}/clock.html`);
  const b = await demoState(bare);
  check(b && b.supported === false && b.state === 'UNSUPPORTED' &&
    await bare.locator('#unsupported').isVisible(),
  'without EventSource: the notice shows and nothing is opened');
  await bare.close();

  // ---- the one-shot page
  const oneshot = await watchedPage(ctx.browser, problems, 'oneshot.html');
  await oneshot.goto(`${base}/oneshot.html`);
  const o = { d: await inWindow(oneshot, (d) => d.opens >= 4 && d.messages.length >= 4) };
  check(o.d, 'oneshot.html runs its script (window.demo)');
  check(o.d.opens >= 4, `one-shot: ${o.d.opens} connections within 7 s (at least 4)`);
  const oIds = o.d.messages.map((m) => Number(m.id));
  check(oIds.length >= 4 && oIds.every((id, i) => Number.isInteger(id) && (i === 0 || id > oIds[i - 1])),
    `one-shot: ids strictly increasing across the connections (${oIds.join(',')})`);
  check(Math.abs(o.d.messages.length - o.d.opens) <= 1,
    `one-shot: one event per connection (${o.d.messages.length} events, ${o.d.opens} opens)`);
  const seen = o.d.states.slice(o.d.states.indexOf('OPEN'));
  const alternating = seen.every((s, i) => s === (i % 2 === 0 ? 'OPEN' : 'CONNECTING'));
  check(alternating && seen.filter((s) => s === 'OPEN').length >= 4 &&
    seen.filter((s) => s === 'CONNECTING').length >= 3,
  `one-shot: the state alternates OPEN / CONNECTING (${o.d.states.join(' ')})`);
  await screenshot(oneshot, 'oneshot');
  await oneshot.close();

  // ---- the landing page and every link on it
  const index = await watchedPage(ctx.browser, problems, 'index.html');
  const r0 = await index.goto(`${base}/`, { waitUntil: 'load' });
  check(r0.status() === 200, 'the landing page answers 200');
  await screenshot(index, 'index');
  const links = [...new Set(await index.$$eval('a[href]', (as) => as.map((a) => a.href)))];
  check(links.length >= 4, `the landing page has ${links.length} links (${links.join(' ')})`);
  for (const url of links) {
    check(url.startsWith(`${base}/`), `link ${url} stays on this server`);
    const p = await watchedPage(ctx.browser, problems, url.slice(base.length));
    const r = await p.goto(url, { waitUntil: 'load' });
    const title = await p.title();
    check(r.status() === 200 && title.length > 0, `link ${url}: 200, page "${title}" loads`);
    if (url.endsWith('/playground.html')) {
      await sleep(1000); // let it fetch its token and subscribe
      await screenshot(p, 'playground');
    }
    await p.close();
  }
  await index.close();

  check(problems.length === 0, `no console error, page error or failed request on any page${
    problems.length ? `: ${problems.join('; ')}` : ''}`);
  const exit = await hub.stop();
  check(exit.code === 0, `SIGTERM: ssehub exits 0 (code ${exit.code}, signal ${exit.signal})`);
});
