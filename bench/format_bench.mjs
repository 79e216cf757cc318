// format_bench.mjs: the Node peer of bench/format_bench.c — npm eventsource-parser on the same
// input files, measured the same way (issue 2, item 8).
//
//   node bench/format_bench.mjs parse FILE.sse [--chunk N] [--runs N] [--warmup N] [--strings 1]
//                                 [--verify 0]
//
// Reads FILE.sse (written by `bench_format_bench gen`) into one Buffer, then times feeding it the
// way a real consumer does: each chunk of N bytes (default 65536) is decoded with one streaming
// TextDecoder (`decode(chunk, {stream: true})`, so decoding counts, as the C parser's UTF-8
// handling does) and the string is passed to parser.feed(). The onEvent callback counts events
// and sums data lengths. A first, untimed pass also hashes every event (UTF-8 bytes, FNV-1a 32,
// the same as the C side) and checks events, data bytes and hash against FILE.meta. Then
// --warmup untimed runs (default 3: lets V8 optimise) and --runs timed runs (default 7).
// --verify 0 skips the hash (an untimed pass still counts data bytes; every run checks the
// event count and data length). The result line shows what this side counted.
// Prints one "result impl=js op=parse ..." line in the C side's format; exit 1 on a mismatch.
// With --strings 1 the chunks are decoded before the clock starts and only parser.feed() is
// timed (impl=js-str): the parser's own speed, a stricter peer than a real consumer.
//
//   node bench/format_bench.mjs encode FILE.sse [--runs N] [--warmup N] [--bytes N]
//
// The encoder peer (eventsource-parser has none): the Node idiom of SSE servers, a template
// string per event with the data's line ends (CR, LF, CRLF) turned into "\ndata: ", converted
// to UTF-8 bytes with Buffer.from() as res.write() would. The events are FILE.sse's, parsed
// once before the clock starts (with --bytes, those of its first N bytes); the output must equal
// FILE.sse (its start) byte for byte (checked once).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { createParser } from 'eventsource-parser';

function usage() {
  process.stderr.write(
    'usage: node format_bench.mjs parse FILE.sse [--chunk N] [--runs N] [--warmup N] [--strings 0|1] [--verify 0|1]\n' +
      '       node format_bench.mjs encode FILE.sse [--runs N] [--warmup N] [--bytes N]\n',
  );
  process.exit(2);
}

const argv = process.argv.slice(2);
if (argv.length < 2 || !['parse', 'encode'].includes(argv[0])) usage();
const op = argv[0];
const file = argv[1];
const opts = { chunk: 65536, runs: 7, warmup: 3, strings: 0, verify: 1, bytes: 0 };
for (let i = 2; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '');
  const v = Number(argv[i + 1]);
  if (!(key in opts) || !Number.isInteger(v) || v < (['warmup', 'strings', 'verify', 'bytes'].includes(key) ? 0 : 1)) usage();
  opts[key] = v;
}

if (!file.endsWith('.sse')) usage();
const meta = Object.fromEntries(
  readFileSync(file.slice(0, -4) + '.meta', 'utf8').trim().split(/\s+/).map((kv) => kv.split('=')),
);
const want = {
  events: Number(meta.events),
  dataBytes: Number(meta.data_bytes),
  dataUnits: Number(meta.data_units),
  hash: parseInt(meta.hash, 16) >>> 0,
};
const buf = readFileSync(file);

function fail(msg) {
  process.stderr.write(`${file}: MISMATCH ${msg}\n`);
  process.exit(1);
}

function fnv(h, bytes) {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}
const FF = Uint8Array.of(0xff);
const FE = Uint8Array.of(0xfe);
const f = (x, d) => x.toFixed(d);

// got: what this side counted itself (events, UTF-8 data bytes, UTF-16 data units).
function report(impl, chunk, bytes, times, got) {
  times.sort((a, b) => a - b);
  const best = times[0];
  const n = times.length;
  const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  console.log(
    `result impl=${impl} op=${op} case=${basename(file).split('.')[0]} chunk=${chunk} bytes=${bytes} ` +
      `events=${got.events} data_bytes=${got.dataBytes} data_units=${got.units} runs=${n} best_s=${f(best, 6)} median_s=${f(median, 6)} ` +
      `best_MBps=${f(bytes / best / 1e6, 1)} median_MBps=${f(bytes / median / 1e6, 1)} ` +
      `best_Meps=${f(got.events / best / 1e6, 3)} median_Meps=${f(got.events / median / 1e6, 3)}`,
  );
}

if (op === 'encode') {
  // --bytes N: only the events wholly inside the first N bytes (bench_format_bench encode
  // --scale makes the same prefix of events)
  const input = opts.bytes ? buf.subarray(0, Math.min(buf.length, opts.bytes)) : buf;
  const evs = [];
  const parser = createParser({ onEvent: (ev) => evs.push(ev) });
  parser.feed(new TextDecoder('utf-8').decode(input));
  parser.reset(); // drops an event cut by --bytes
  if (!opts.bytes && evs.length !== want.events) fail(`events ${evs.length} (want ${want.events})`);
  const lineEnd = /\r\n|\r|\n/g;
  const encode = (ev) => {
    let s = '';
    if (ev.id !== undefined) s += `id: ${ev.id}\n`;
    if (ev.event !== undefined) s += `event: ${ev.event}\n`;
    return Buffer.from(`${s}data: ${ev.data.replace(lineEnd, '\ndata: ')}\n\n`, 'utf8');
  };
  // once, untimed: the wire bytes must be the file's
  const all = Buffer.concat(evs.map(encode));
  if (!all.equals(buf.subarray(0, all.length))) fail('encoded output differs from the input file');
  const times = [];
  let bytes = 0;
  for (let i = 0; i < opts.warmup + opts.runs; i++) {
    bytes = 0;
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < evs.length; k++) bytes += encode(evs[k]).length;
    const t = Number(process.hrtime.bigint() - t0) / 1e9;
    if (i >= opts.warmup) times.push(t);
  }
  if (bytes !== all.length || (!opts.bytes && bytes !== buf.length)) fail(`encoded ${bytes} bytes (want ${buf.length})`);
  let dataBytes = 0;
  let units = 0;
  for (const ev of evs) {
    dataBytes += Buffer.byteLength(ev.data, 'utf8');
    units += ev.data.length;
  }
  report('js', 0, bytes, times, { events: evs.length, dataBytes, units });
  process.exit(0);
}

// --strings: the decoded chunks, made once, outside the clock.
let strs = null;
if (opts.strings) {
  strs = [];
  const decoder = new TextDecoder('utf-8');
  for (let off = 0; off < buf.length; off += opts.chunk)
    strs.push(decoder.decode(buf.subarray(off, off + opts.chunk), { stream: true }));
  const rest = decoder.decode();
  if (rest) strs.push(rest);
}

// One pass over buf in chunk-sized feeds; returns seconds.
function pass(chunk, onEvent) {
  if (strs) {
    const t0 = process.hrtime.bigint();
    const parser = createParser({ onEvent });
    for (let i = 0; i < strs.length; i++) parser.feed(strs[i]);
    parser.reset();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  }
  const t0 = process.hrtime.bigint();
  const decoder = new TextDecoder('utf-8');
  const parser = createParser({ onEvent });
  for (let off = 0; off < buf.length; off += chunk) {
    parser.feed(decoder.decode(buf.subarray(off, off + chunk), { stream: true }));
  }
  const rest = decoder.decode();
  if (rest) parser.feed(rest);
  parser.reset(); // end of stream: an incomplete event is dropped
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

// Untimed verification pass (with --verify 0, an untimed pass that only counts data bytes).
let countedBytes = 0;
if (!opts.verify) {
  pass(opts.chunk, (ev) => {
    countedBytes += Buffer.byteLength(ev.data, 'utf8');
  });
  if (countedBytes !== want.dataBytes) fail(`data bytes ${countedBytes} (want ${want.dataBytes})`);
} else {
  let events = 0;
  let dataBytes = 0;
  let hash = 2166136261;
  pass(opts.chunk, (ev) => {
    events++;
    const data = Buffer.from(ev.data, 'utf8');
    dataBytes += data.length;
    hash = fnv(hash, Buffer.from(ev.event ?? 'message', 'utf8'));
    hash = fnv(hash, FF);
    hash = fnv(hash, data);
    hash = fnv(hash, FF);
    hash = fnv(hash, Buffer.from(ev.id ?? '', 'utf8'));
    hash = fnv(hash, FE);
  });
  if (events !== want.events || dataBytes !== want.dataBytes)
    fail(`events ${events} (want ${want.events}), data bytes ${dataBytes} (want ${want.dataBytes})`);
  if (hash !== want.hash) fail(`event hash ${hash.toString(16)} (want ${want.hash.toString(16)})`);
  countedBytes = dataBytes;
}

// Warm-up and timed runs: the callback only counts, like the C side's.
let events = 0;
let units = 0;
const onEvent = (ev) => {
  events++;
  units += ev.data.length;
};
const times = [];
for (let i = 0; i < opts.warmup + opts.runs; i++) {
  events = 0;
  units = 0;
  const t = pass(opts.chunk, onEvent);
  if (events !== want.events || units !== want.dataUnits)
    fail(`events ${events} (want ${want.events}), data UTF-16 units ${units} (want ${want.dataUnits})`);
  if (i >= opts.warmup) times.push(t);
}
report(strs ? 'js-str' : 'js', opts.chunk, buf.length, times, { events, dataBytes: countedBytes, units });
