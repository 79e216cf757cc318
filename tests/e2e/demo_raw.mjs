// demo_raw.mjs: the two examples over plain HTTP, without a browser (so it also runs in the
// ASan/UBSan build, where a leak or an error at exit fails the test through the exit code).
//
//   node demo_raw.mjs <sse_example_clock> <sse_example_oneshot> <web dir>
//
// clock: two streams receive byte-identical ticks (one frame fanned out), "retry: 1000" first,
// ids increasing by one, myEvent on multiples of five, a ':' comment on multiples of seven; a
// third stream with Last-Event-ID 1000 is logged and makes the next id 1001 on every stream (one
// of 2^53 or more is ignored);
// static files are served (200 / 404); SIGTERM with streams open ends them and exits 0.
// oneshot: three chained requests get ids 1, 2, 3, each one event then the end; a Last-Event-ID of
// 2^64-1 starts again at 1; SIGTERM exits 0.
import { check, run, Server, until } from './lib.mjs';

const [clockBin, oneshotBin, web] = process.argv.slice(2);
if (!clockBin || !oneshotBin || !web) {
  console.error('usage: node demo_raw.mjs <sse_example_clock> <sse_example_oneshot> <web dir>');
  process.exit(2);
}

// An open event stream read in the background; blocks: the raw text of each finished block.
class RawStream {
  constructor(url, headers = {}) {
    this.ac = new AbortController();
    this.text = '';
    this.ended = false;
    this.done = this.read(url, headers);
  }

  async read(url, headers) {
    try {
      const res = await fetch(url, { headers, signal: this.ac.signal });
      this.type = res.headers.get('content-type');
      const dec = new TextDecoder();
      for await (const chunk of res.body) this.text += dec.decode(chunk, { stream: true });
      this.ended = true;
    } catch (e) {
      if (e.name !== 'AbortError') this.error = e;
    }
  }

  get blocks() {
    return this.text.split('\n\n').slice(0, -1);
  }

  // The block carrying "id: n", with what follows up to the next id (the rest of that tick).
  tick(n) {
    const b = this.blocks;
    const i = b.findIndex((x) => new RegExp(`(^|\\n)id: ?${n}(\\n|$)`).test(x));
    if (i < 0) return null;
    let j = i + 1;
    while (j < b.length && !/(^|\n)id:/.test(b[j])) j++;
    // A comment before the next tick's event belongs to that tick: cut it off.
    return b.slice(i, j).join('\n\n').replace(/\n:[^\n]*$/, '');
  }

  ids() {
    return [...this.text.matchAll(/(?:^|\n)id: ?(\d+)\n/g)].map((m) => Number(m[1]));
  }

  close() {
    this.ac.abort();
  }
}

await run('demo_raw', 60000, async (ctx) => {
  const clock = new Server('clock', clockBin, ['--listen', '127.0.0.1:0', '--web', web]);
  ctx.servers.push(clock);
  const port = await clock.start();
  const base = `http://127.0.0.1:${port}`;

  const page = await fetch(`${base}/clock.html`);
  check(page.status === 200 && page.headers.get('content-type').startsWith('text/html') &&
    (await page.text()).includes('demo.js'), 'clock serves clock.html from the web dir');
  const nope = await fetch(`${base}/no-such-page.html`);
  await nope.text();
  check(nope.status === 404, 'a missing file is 404');

  const a = new RawStream(`${base}/clock`);
  const b = new RawStream(`${base}/clock`);
  await until(() => a.ids().some((id) => id >= 7) && b.ids().some((id) => id >= 7), 12000,
    'both streams reach id 7');
  check(a.type.startsWith('text/event-stream'), `Content-Type ${a.type}`);
  check(a.text.startsWith('retry: 1000\n\n') && b.text.startsWith('retry: 1000\n\n'),
    'each stream starts with "retry: 1000"');
  const ids = a.ids();
  check(ids.every((id, i) => i === 0 || id === ids[i - 1] + 1), `ids go up by one (${ids.join(',')})`);
  const common = ids.filter((id) => b.ids().includes(id));
  check(common.length >= 3 && common.every((id) => a.tick(id) === b.tick(id)),
    `both streams got byte-identical ticks ${common.join(',')}`);
  check(/\nevent: myEvent\ndata: [^\n]+$/.test(a.tick(5)), 'id 5 is followed by a myEvent');
  check(ids.filter((id) => id % 5 !== 0).every((id) => !a.tick(id).includes('myEvent')),
    'other ids have no myEvent');
  check(/(^|\n): [^\n]+\nid: ?7\n/.test(a.text), 'a ":" comment comes with id 7');

  const c = new RawStream(`${base}/clock`, { 'Last-Event-ID': '1000' });
  await until(() => clock.reconnectIds().includes(1000), 3000, 'the reconnect log line');
  check(true, 'clock logs "reconnect last-event-id=1000"');
  await until(() => c.ids().length > 0, 3000, 'an event on the resumed stream');
  check(c.ids()[0] === 1001, `the next id after Last-Event-ID 1000 is ${c.ids()[0]}`);
  await until(() => a.ids().includes(1001), 2000, 'id 1001 on the first stream too');
  check(a.tick(1001) === c.tick(1001), 'the resumed stream gets the same frame as the others');

  const huge = new RawStream(`${base}/clock`, { 'Last-Event-ID': '9007199254740992' });
  await until(() => huge.ids().length > 0, 3000, 'an event after a too large Last-Event-ID');
  check(huge.ids()[0] < 2000, `Last-Event-ID 2^53 is ignored (next id ${huge.ids()[0]})`);
  huge.close();

  const exit = await clock.stop(5000);
  check(exit.code === 0, `SIGTERM with 3 open streams: clock exits 0 (code ${exit.code})`);
  await until(() => a.ended && b.ended && c.ended, 3000, 'the streams end on shutdown');
  check(true, 'shutdown ends every stream cleanly');
  for (const s of [a, b, c]) s.close();

  const oneshot = new Server('oneshot', oneshotBin, ['--listen', '127.0.0.1:0', '--web', web]);
  ctx.servers.push(oneshot);
  const port2 = await oneshot.start();
  let last = null;
  for (let n = 1; n <= 3; n++) {
    const headers = last === null ? {} : { 'Last-Event-ID': String(last) };
    const res = await fetch(`http://127.0.0.1:${port2}/oneshot`, {
      headers, signal: AbortSignal.timeout(5000),
    });
    const text = await res.text(); // resolves only because the response ends
    const m = /(?:^|\n)id: ?(\d+)\n/.exec(text);
    check(m && Number(m[1]) === n && /(^|\n)retry: ?1000\n/.test(text) &&
      (text.match(/(^|\n)data:/g) || []).length === 1, `oneshot request ${n}: one event, id ${n}, then the end`);
    last = Number(m[1]);
  }
  check(oneshot.reconnectIds().join(',') === '1,2', 'oneshot logs Last-Event-ID 1 and 2');
  const wrap = await (await fetch(`http://127.0.0.1:${port2}/oneshot`, {
    headers: { 'Last-Event-ID': '18446744073709551615' }, signal: AbortSignal.timeout(5000),
  })).text();
  check(/(^|\n)id: ?1\n/.test(wrap), 'oneshot starts again at 1 after a Last-Event-ID of 2^64-1');
  const exit2 = await oneshot.stop(5000);
  check(exit2.code === 0, `SIGTERM: oneshot exits 0 (code ${exit2.code})`);
});
