// hub_cors.mjs: a page of another origin reads the hub's response headers with fetch().
//
//   node hub_cors.mjs <ssehub binary> <web dir>
//
// One `ssehub serve --web` serves the page (origin http://127.0.0.1:A); the hub runs on
// http://127.0.0.1:B with --cors-origins http://127.0.0.1:A. In headless Chromium the page
// subscribes with fetch() (a Last-Event-ID request header asks for a replay) and reads the Link
// (hub discovery) and Last-Event-ID response headers: without Access-Control-Expose-Headers the
// browser hides them (get() returns null), although they are on the wire.
import { check, launchBrowser, newPage, run, Server } from './lib.mjs';

const [bin, web] = process.argv.slice(2);
if (!bin || !web) {
  console.error('usage: node hub_cors.mjs <ssehub> <web dir>');
  process.exit(2);
}
const KEY = 'e2e-cors-secret-0123456789abcdef';

await run('hub_cors', 60000, async (ctx) => {
  const site = new Server('site', bin, ['serve', '--listen', '127.0.0.1:0', '--web', web,
    '--publisher-jwt-key', KEY]);
  ctx.servers.push(site);
  const sitePort = await site.start();
  const origin = `http://127.0.0.1:${sitePort}`;
  const hub = new Server('hub', bin, ['serve', '--listen', '127.0.0.1:0', '--anonymous',
    '--publish-anonymous', '--cors-origins', origin]);
  ctx.servers.push(hub);
  const hubUrl = `http://127.0.0.1:${await hub.start()}`;

  const pub = await fetch(`${hubUrl}/.well-known/mercure`, {
    method: 'POST', body: new URLSearchParams({ topic: '/cors', id: 'first', data: 'x' }),
  });
  check(pub.status === 200, `published from node: ${pub.status}`);

  ctx.browser = await launchBrowser();
  const page = await newPage(ctx.browser);
  await page.goto(`${origin}/`);
  const got = await page.evaluate(async (url) => {
    const ac = new AbortController();
    const r = await fetch(`${url}/.well-known/mercure?topic=/cors`, {
      signal: ac.signal, headers: { 'Last-Event-ID': 'earliest' },
    });
    const out = { status: r.status, link: r.headers.get('Link'),
      lastEventId: r.headers.get('Last-Event-ID'), type: r.headers.get('Content-Type') };
    ac.abort();
    return out;
  }, hubUrl);
  check(got.status === 200, `cross-origin subscribe answered ${got.status}`);
  check(got.link && got.link.includes('rel="mercure"'), `fetch() reads Link: ${got.link}`);
  check(got.lastEventId !== null, `fetch() reads Last-Event-ID: ${got.lastEventId}`);

  const ans = await page.evaluate(async (url) => {
    const r = await fetch(`${url}/.well-known/mercure`, {
      method: 'POST', body: new URLSearchParams({ topic: '/cors', data: 'from the page' }),
    });
    return { status: r.status, link: r.headers.get('Link') };
  }, hubUrl);
  check(ans.status === 200 && ans.link !== null, `cross-origin publish reads Link: ${ans.link}`);
  const stopped = await hub.stop();
  check(stopped.code === 0, 'the hub exits 0 after SIGTERM');
});
