// parse_e2e.mjs: the Node peer of `ssehub parse` end to end (issue 13, item 4): npm
// eventsource-parser plus JSON.stringify per event, JSON lines written to a file descriptor.
//
//   node bench/parse_e2e.mjs FILE.sse [--chunk N] [--runs N] [--warmup N] [--out PATH]
//                              [--check OUT.jsonl]
//
// Each run: read FILE.sse from disk in N-byte chunks (default 65536), decode each with one
// streaming TextDecoder, feed the string to the parser; onEvent builds the same line
// `ssehub parse` prints, JSON.stringify({type, data, id}) (type "message" when there is no
// event field, id the last event id), and onRetry {"retry":N}. The lines of one input chunk are
// concatenated into one string and written with one fs.writeSync to PATH (default /dev/null):
// the fastest Node idiom measured here (one write per chunk, not per event; an array of lines
// joined per chunk was 3x slower). Only the work is timed (from opening the input to
// the last write), not Node's start-up: that favours this side. Prints one line in
// run-parse-bench.sh's format: "result impl=js op=e2e case=... events=... lines=... out_bytes=...
// best_s=... median_s=... best_MBps=... median_MBps=... cpu_median_s=..." (cpu: user + system
// time of this process during a run). Exit 1 if the event count is not FILE.meta's.
// --check OUT.jsonl (untimed, before the runs): OUT.jsonl is `ssehub parse FILE.sse`'s output;
// every line must JSON.parse to the same value as this side's line (escapes may differ: Node
// writes \n and a raw DEL where ssehub writes \u000a and \u007f), same number of lines.
import { closeSync, openSync, readSync, readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { createParser } from 'eventsource-parser';

const argv = process.argv.slice(2);
const file = argv[0];
const opts = { chunk: 65536, runs: 5, warmup: 1, out: '/dev/null', check: '' };
for (let i = 1; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '');
  if (!(key in opts) || argv[i + 1] === undefined) {
    process.stderr.write('usage: node parse_e2e.mjs FILE.sse [--chunk N] [--runs N] [--warmup N] [--out PATH]\n');
    process.exit(2);
  }
  opts[key] = key === 'out' || key === 'check' ? argv[i + 1] : Number(argv[i + 1]);
}
if (!file || !file.endsWith('.sse')) {
  process.stderr.write('usage: node parse_e2e.mjs FILE.sse [--chunk N] [--runs N] [--warmup N] [--out PATH]\n');
  process.exit(2);
}
const meta = Object.fromEntries(
  readFileSync(file.slice(0, -4) + '.meta', 'utf8').trim().split(/\s+/).map((kv) => kv.split('=')),
);

// One end-to-end pass; returns {s, cpu, events, lines, outBytes}.
function pass() {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const fd = openSync(file, 'r');
  const out = openSync(opts.out, 'w');
  const chunk = Buffer.allocUnsafe(opts.chunk);
  const decoder = new TextDecoder('utf-8');
  let text = '';
  let events = 0;
  let nlines = 0;
  let outBytes = 0;
  let lastId = '';
  const parser = createParser({
    onEvent(ev) {
      if (ev.id !== undefined) lastId = ev.id;
      text += JSON.stringify({ type: ev.event ?? 'message', data: ev.data, id: lastId }) + '\n';
      nlines++;
      events++;
    },
    onRetry(ms) {
      text += JSON.stringify({ retry: ms }) + '\n';
      nlines++;
    },
  });
  const flush = () => {
    if (!text) return;
    outBytes += writeSync(out, text);
    text = '';
  };
  for (;;) {
    const n = readSync(fd, chunk, 0, opts.chunk, null);
    if (n === 0) break;
    parser.feed(decoder.decode(chunk.subarray(0, n), { stream: true }));
    flush();
  }
  parser.feed(decoder.decode());
  flush();
  closeSync(fd);
  closeSync(out);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { s, cpu: (c.user + c.system) / 1e6, events, lines: nlines, outBytes };
}

if (opts.check) {
  const theirs = readFileSync(opts.check, 'utf8').split('\n');
  if (theirs.pop() !== '') fail(`${opts.check} does not end with a newline`);
  const saved = opts.out;
  opts.out = file.slice(0, -4) + '.node.jsonl';
  pass();
  opts.out = saved;
  const ours = readFileSync(file.slice(0, -4) + '.node.jsonl', 'utf8').split('\n');
  ours.pop();
  if (ours.length !== theirs.length) fail(`lines: ssehub ${theirs.length}, node ${ours.length}`);
  for (let i = 0; i < ours.length; i++) {
    const a = JSON.parse(theirs[i]);
    const b = JSON.parse(ours[i]);
    if (a.type !== b.type || a.data !== b.data || a.id !== b.id || a.retry !== b.retry)
      fail(`line ${i + 1} differs: ssehub ${theirs[i].slice(0, 200)} node ${ours[i].slice(0, 200)}`);
  }
  console.log(`check: ${ours.length} lines, ssehub's output and Node's parse to the same values`);
}

function fail(msg) {
  process.stderr.write(`${file}: MISMATCH ${msg}\n`);
  process.exit(1);
}

const times = [];
const cpus = [];
let last;
for (let i = 0; i < opts.warmup + opts.runs; i++) {
  last = pass();
  if (last.events !== Number(meta.events)) fail(`events ${last.events} (want ${meta.events})`);
  if (i >= opts.warmup) {
    times.push(last.s);
    cpus.push(last.cpu);
  }
}
const med = (v) => {
  v.sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
};
const median = med(times);
const n = times.length;
const bytes = Number(meta.bytes);
const f = (x, d) => x.toFixed(d);
console.log(
  `result impl=js op=e2e case=${basename(file).split('.')[0]} bytes=${bytes} events=${last.events} lines=${last.lines} ` +
    `out_bytes=${last.outBytes} runs=${n} best_s=${f(times[0], 6)} median_s=${f(median, 6)} ` +
    `best_MBps=${f(bytes / times[0] / 1e6, 1)} median_MBps=${f(bytes / median / 1e6, 1)} cpu_median_s=${f(med(cpus), 6)}`,
);
