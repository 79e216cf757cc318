// client_streams_node.mjs: the peer of bench_client_streams: N npm `eventsource` clients in one
// Node process against the same server (bench_client_streams --serve-only), measuring PSS growth
// per stream and events/s the same way. Not a test; see docs/performance/client.md.
//   node bench/client_streams_node.mjs <path to bench_client_streams> [N] [K] [--server tiny|own]
// `eventsource` is resolved from NODE_PATH (e.g. npm install eventsource@5 into a temp dir).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.NODE_PATH ? process.env.NODE_PATH + '/' : import.meta.url);
const { EventSource } = require('eventsource');
const [bin, nArg, kArg, ...rest] = process.argv.slice(2);
const N = Number(nArg || 5000), K = Number(kArg || 100);
const srv = spawn(bin, ['--events', String(K), ...rest, '--serve-only'], { stdio: ['pipe', 'pipe', 'inherit'] });
const port = await new Promise((res) => srv.stdout.once('data', (d) => res(Number(/port (\d+)/.exec(String(d))[1]))));
const url = `http://127.0.0.1:${port}/events`;

function mem() {
  const t = readFileSync('/proc/self/smaps_rollup', 'utf8');
  return { rss: Number(/Rss:\s+(\d+)/.exec(t)[1]), pss: Number(/Pss:\s+(\d+)/.exec(t)[1]) };
}
const gc = () => { if (global.gc) { global.gc(); global.gc(); } };

let opened = 0, events = 0, first = 0n, last = 0n, target = 0;
let done;
const all = new Promise((r) => (done = r));
function open() {
  const es = new EventSource(url);
  es.onopen = () => { opened++; };
  es.onmessage = () => {
    if (!events) first = process.hrtime.bigint();
    if (++events === target) { last = process.hrtime.bigint(); done(); }
  };
  return es;
}
const waitOpen = async (n) => { while (opened < n) await new Promise((r) => setTimeout(r, 20)); };

const list = [open()];
await waitOpen(1);
gc();
const m0 = mem();
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  list.push(open());
  if (i % 500 === 499) await waitOpen(i + 2);
}
await waitOpen(N + 1);
const openS = Number(process.hrtime.bigint() - t0) / 1e9;
gc();
const m1 = mem();
console.log(`node ${process.version}, eventsource ${require('eventsource/package.json').version}`);
console.log(`streams open: ${opened - 1} of ${N} in ${openS.toFixed(2)} s`);
console.log(`RSS: ${m0.rss} -> ${m1.rss} KiB, +${((m1.rss - m0.rss) / N).toFixed(2)} KiB per stream`);
console.log(`PSS: ${m0.pss} -> ${m1.pss} KiB, +${((m1.pss - m0.pss) / N).toFixed(2)} KiB per stream`);
target = K * opened;
const c0 = process.cpuUsage();
srv.stdin.write('B');
await Promise.race([all, new Promise((r) => setTimeout(r, 120000))]);
const cpu = process.cpuUsage(c0);
if (!last) last = process.hrtime.bigint();
const secs = Number(last - first) / 1e9;
console.log(`events: ${events} of ${target} in ${secs.toFixed(3)} s: ${(events / secs).toFixed(0)} events/s, ` +
  `${((cpu.user + cpu.system) / events).toFixed(2)} us CPU per event (client process)`);
for (const es of list) es.close();
srv.stdin.end();
await new Promise((r) => srv.on('exit', r));
process.exit(0);
