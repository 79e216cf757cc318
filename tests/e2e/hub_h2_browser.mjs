// hub_h2_browser.mjs: one page, 20 EventSources to the hub over HTTPS: with HTTP/2 all 20 open
// and get every update over ONE connection; with HTTP/1.1 (--no-h2) the browser opens only 6.
//
//   node hub_h2_browser.mjs <ssehub binary> <screenshot dir> [--break-h2]
//
// The test makes a self-signed certificate for localhost / 127.0.0.1 with the `openssl` CLI in
// a temporary folder and starts `ssehub serve --anonymous --publisher-jwt-key K --tls-listen
// 127.0.0.1:0` (HTTP/2 by ALPN is on by default). Headless Chromium (--ignore-certificate-errors)
// opens https://127.0.0.1:PORT/livez, writes a small status page into it (same origin as the
// hub) and opens 20 EventSources, each on its own topic /h2/I plus the shared /h2/all. Then:
//  - all 20 reach OPEN (onopen fired, readyState 1);
//  - the hub's /metrics (read over plain HTTP with a connection of its own) counts 20
//    subscribers and 1 + 1 connections (the page's, and the /metrics request itself); CDP's
//    Network.responseReceived says protocol "h2" and the same connectionId for all 20;
//  - N updates to /h2/all and one to each /h2/I (published over HTTPS with a publisher JWT)
//    arrive at every EventSource exactly once and in order.
// The contrast that makes the test able to fail: the same page against a hub with --no-h2.
// Chromium allows 6 HTTP/1.1 connections per host, so exactly 6 EventSources open within a few
// seconds and the rest stay CONNECTING; /metrics counts 6 + 1 connections.
// --break-h2 starts the first hub with --no-h2 too (to see this test fail).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  check, launchBrowser, log, run, Server, sleep, TestFailure, TestSkip, until,
} from './lib.mjs';

const [bin, shots, ...flags] = process.argv.slice(2);
if (!bin || !shots) {
  console.error('usage: node hub_h2_browser.mjs <ssehub> <screenshot dir> [--break-h2]');
  process.exit(2);
}
const BREAK_H2 = flags.includes('--break-h2');
const KEY = 'e2e-h2-browser-secret-0123456789ab';
const SOURCES = 20; // EventSources in the page
const UPDATES = 5; // updates to the shared topic
const H1_LIMIT = 6; // Chromium's HTTP/1.1 connections per host

// A self-signed certificate for localhost and 127.0.0.1, made by the openssl CLI.
function makeCertificate(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
      'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    if (e.code === 'ENOENT') throw new TestSkip('openssl');
    throw new TestFailure(`openssl req failed: ${e.stderr || e.message}`);
  }
  return { cert, key };
}

function b64url(s) {
  return Buffer.from(s).toString('base64url');
}

// An HS256 publisher JWT that may publish to every topic.
function publisherJwt() {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ mercure: { publish: ['*'] } }));
  const sig = crypto.createHmac('sha256', KEY).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// One request on a connection of its own (no keep-alive pool), so the hub's connection gauge
// counts it exactly while it runs and never afterwards. Resolves with {status, body}.
function request(mod, url, opts = {}, body = null) {
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      agent: false, rejectUnauthorized: false, ...opts,
      headers: { Connection: 'close', ...(opts.headers || {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: text, alpn: res.socket.alpnProtocol }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.end(body);
  });
}

async function metrics(plainUrl) {
  const r = await request(http, `${plainUrl}/metrics`);
  if (r.status !== 200) throw new TestFailure(`/metrics answered ${r.status}`);
  const val = (name) => {
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.body);
    if (!m) throw new TestFailure(`/metrics has no ${name}`);
    return Number(m[1]);
  };
  return { connections: val('ssehub_connections'), subscribers: val('ssehub_subscribers') };
}

// /metrics until its connection count less the scrape's own is want (a closed request's socket
// may still be counted for a moment on a loaded machine), at most 3 s; returns the last scrape.
async function settledMetrics(plainUrl, want) {
  let m;
  try {
    await until(async () => { m = await metrics(plainUrl); return m.connections - 1 === want; },
      3000, `/metrics: ${want} + 1 connections`);
  } catch (e) {
    if (!(e instanceof TestFailure)) throw e;
  }
  return m;
}

async function publish(tlsUrl, topic, id, data) {
  const body = new URLSearchParams({ topic, id, data }).toString();
  const r = await request(https, `${tlsUrl}/.well-known/mercure`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${publisherJwt()}`,
      'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) },
  }, body);
  if (r.status !== 200) throw new TestFailure(`publish ${id} to ${topic} answered ${r.status}: ${r.body}`);
}

// Start a hub with a plain and a TLS listener; resolves with both base URLs.
async function startHub(ctx, name, certs, extra) {
  const hub = new Server(name, bin, ['serve', '--listen', '127.0.0.1:0', '--anonymous',
    '--publisher-jwt-key', KEY, '--tls-listen', '127.0.0.1:0', '--tls-cert', certs.cert,
    '--tls-key', certs.key, ...extra]);
  ctx.servers.push(hub);
  const port = await hub.start();
  const tlsLine = await until(() => hub.lines.find((l) => /^listening on https:/.test(l)), 5000,
    `${name}: a "listening on https://" line`);
  const tlsPort = Number(/:(\d+)\/ \(TLS\)$/.exec(tlsLine)[1]);
  return { hub, plainUrl: `http://127.0.0.1:${port}`, tlsUrl: `https://127.0.0.1:${tlsPort}` };
}

// Open the hub's origin in a fresh page, write the status page, collect the protocol and
// connection of every subscribe response through CDP, and open the EventSources.
async function openPage(browser, tlsUrl) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') log('page console:', m.text()); });
  page.on('pageerror', (e) => log('page error:', e.message));
  const responses = [];
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Network.responseReceived', (ev) => {
    if (ev.response.url.includes('/.well-known/mercure')) {
      responses.push({ protocol: ev.response.protocol, connectionId: ev.response.connectionId });
    }
  });
  await cdp.send('Network.enable');
  const live = await page.goto(`${tlsUrl}/livez`);
  check(live && live.ok(), `the page opens ${tlsUrl}/livez`);
  await page.setContent(`<!doctype html><title>20 EventSources</title>
    <style>body{font:14px sans-serif} td{padding:2px 8px} .o{background:#cfc} .c{background:#fcc}</style>
    <h1>20 EventSources, one origin</h1><p id=origin></p><table id=t></table>`);
  const origin = await page.evaluate(({ n }) => {
    window.sources = [];
    document.getElementById('origin').textContent = location.origin;
    const table = document.getElementById('t');
    for (let i = 0; i < n; i++) {
      const row = table.insertRow();
      row.insertCell().textContent = `#${i}`;
      const state = row.insertCell();
      const got = row.insertCell();
      const url = `/.well-known/mercure?topic=${encodeURIComponent(`/h2/${i}`)}` +
        `&topic=${encodeURIComponent('/h2/all')}`;
      const s = { es: new EventSource(url), opened: 0, data: [] };
      const show = () => {
        state.textContent = ['CONNECTING', 'OPEN', 'CLOSED'][s.es.readyState];
        row.className = s.es.readyState === 1 ? 'o' : 'c';
        got.textContent = s.data.join(' ');
      };
      s.es.onopen = () => { s.opened++; show(); };
      s.es.onmessage = (e) => { s.data.push(e.data); show(); };
      s.es.onerror = show;
      show();
      window.sources.push(s);
    }
    return location.origin;
  }, { n: SOURCES });
  check(origin === tlsUrl, `the EventSources are same-origin to the hub: ${origin}`);
  const states = () => page.evaluate(() => window.sources.map((s) => ({
    readyState: s.es.readyState, opened: s.opened, data: s.data })));
  return { page, responses, states };
}

await run('hub_h2_browser', 110000, async (ctx) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-h2-e2e-'));
  try {
    const certs = makeCertificate(tmp);
    fs.mkdirSync(shots, { recursive: true });
    ctx.browser = await launchBrowser(['--ignore-certificate-errors']);

    // 1. HTTP/2: all 20 open, one connection, every update once and in order.
    const h2 = await startHub(ctx, 'hub-h2', certs, BREAK_H2 ? ['--no-h2'] : []);
    const a = await openPage(ctx.browser, h2.tlsUrl);
    let last = [];
    try {
      await until(async () => {
        last = await a.states();
        return last.every((s) => s.readyState === 1 && s.opened === 1);
      }, 15000, `all ${SOURCES} EventSources OPEN over HTTP/2`);
    } catch (e) {
      const open = last.filter((s) => s.readyState === 1).length;
      await a.page.screenshot({ path: path.join(shots, 'hub_h2_browser-failed.png') });
      throw new TestFailure(`${e.message} (${open} of ${SOURCES} open)`);
    }
    check(true, `all ${SOURCES} EventSources reached OPEN (onopen fired once, readyState 1)`);
    await until(async () => (await metrics(h2.plainUrl)).subscribers === SOURCES, 5000,
      `/metrics: ${SOURCES} subscribers`);
    const m = await settledMetrics(h2.plainUrl, 1);
    check(m.connections - 1 === 1,
      `/metrics: ${m.connections} connections = 1 for the page's ${SOURCES} streams + 1 for /metrics`);
    await until(() => a.responses.length >= SOURCES, 5000, 'CDP: a response for each EventSource');
    const protocols = [...new Set(a.responses.map((r) => r.protocol))];
    const conns = [...new Set(a.responses.map((r) => r.connectionId))];
    check(protocols.length === 1 && protocols[0] === 'h2', `CDP: every response over ${protocols}`);
    check(conns.length === 1, `CDP: every response on connection ${conns.join(', ')}`);

    const expected = [];
    for (let k = 0; k < UPDATES; k++) {
      await publish(h2.tlsUrl, '/h2/all', `all-${k}`, `all-${k}`);
      expected.push(`all-${k}`);
    }
    for (let i = 0; i < SOURCES; i++) await publish(h2.tlsUrl, `/h2/${i}`, `own-${i}`, `own-${i}`);
    const want = (i) => JSON.stringify([...expected, `own-${i}`]);
    await until(async () => {
      last = await a.states();
      return last.every((s, i) => s.data.length >= UPDATES + 1);
    }, 10000, `every EventSource to receive ${UPDATES + 1} updates`);
    await sleep(300); // a duplicate would arrive now
    last = await a.states();
    const wrong = last.map((s, i) => ({ i, got: JSON.stringify(s.data) }))
      .filter((s) => s.got !== want(s.i));
    check(wrong.length === 0, `each of the ${SOURCES} received every update exactly once, in order` +
      (wrong.length ? `; wrong: ${JSON.stringify(wrong.slice(0, 3))}` : ''));
    check(last.every((s) => s.readyState === 1 && s.opened === 1), 'no EventSource reconnected');
    const after = await settledMetrics(h2.plainUrl, 1);
    check(after.connections - 1 === 1, `/metrics: still 1 page connection after publishing (${after.connections} - 1)`);
    await a.page.screenshot({ path: path.join(shots, 'hub_h2_browser.png'), fullPage: true });
    log(`screenshot: ${path.join(shots, 'hub_h2_browser.png')}`);
    await a.page.close();
    const stopped = await h2.hub.stop();
    check(stopped.code === 0, 'the HTTP/2 hub exits 0 after SIGTERM');

    // 2. The contrast: HTTP/1.1 only (--no-h2): the browser opens 6 connections, no more.
    const h1 = await startHub(ctx, 'hub-h1', certs, ['--no-h2']);
    const b = await openPage(ctx.browser, h1.tlsUrl);
    await until(async () => {
      last = await b.states();
      return last.filter((s) => s.readyState === 1).length >= H1_LIMIT;
    }, 15000, `${H1_LIMIT} EventSources OPEN over HTTP/1.1`);
    await sleep(3000); // time for more to open, if the browser would let them
    last = await b.states();
    const open = last.filter((s) => s.readyState === 1).length;
    check(open === H1_LIMIT, `HTTP/1.1: ${open} of ${SOURCES} EventSources OPEN after 3 s (the rest wait)`);
    const m1 = await settledMetrics(h1.plainUrl, H1_LIMIT);
    check(m1.connections - 1 === H1_LIMIT && m1.subscribers === H1_LIMIT,
      `HTTP/1.1: /metrics: ${m1.connections} - 1 connections, ${m1.subscribers} subscribers`);
    const p1 = [...new Set(b.responses.map((r) => r.protocol))];
    check(p1.length === 1 && p1[0] === 'http/1.1', `HTTP/1.1: CDP: responses over ${p1}`);
    await b.page.screenshot({ path: path.join(shots, 'hub_h2_browser-http1.png'), fullPage: true });
    await b.page.close();
    const stopped1 = await h1.hub.stop();
    check(stopped1.code === 0, 'the HTTP/1.1 hub exits 0 after SIGTERM');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
