// lib.mjs: helpers shared by the browser end-to-end tests (headless Debian Chromium driven by
// playwright-core): prerequisites and the skip rule, starting and stopping a server program
// that prints "listening on http://HOST:PORT/" first, waiting on page state, and the run
// wrapper that always cleans up and maps the outcome to an exit code.
//
// Exit codes: 0 pass, 1 fail, 77 skip (CTest SKIP_RETURN_CODE). A skip happens only when
// /usr/bin/chromium or node_modules/playwright-core is missing and CI is not "true"; in CI a
// missing browser is a failure, so it cannot go unnoticed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

export const CHROMIUM = process.env.SSE_CHROMIUM || '/usr/bin/chromium';
const SKIP = 77;

export class TestFailure extends Error {}

export function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args);
}

export function check(cond, what) {
  if (!cond) throw new TestFailure(what);
  log('ok:', what);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Poll fn() (sync or async) until it returns a truthy value; throw what on timeout.
export async function until(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new TestFailure(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

// Thrown when a prerequisite is missing; run() turns it into a skip (or, in CI, a failure).
export class TestSkip extends Error {}

function missing(what) {
  throw new TestSkip(`${what} is missing (scripts/install-deps test installs it)`);
}

// Launch headless Chromium, or exit 77/1 when it or playwright-core is missing. extraArgs: more
// command-line switches (e.g. --ignore-certificate-errors for a test certificate).
export async function launchBrowser(extraArgs = []) {
  if (!fs.existsSync(CHROMIUM)) missing(CHROMIUM);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    missing(`node_modules/playwright-core (${e.code || e.message})`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', ...extraArgs],
  });
}

// A page whose console errors and crashes show up in the test log.
export async function newPage(browser) {
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') log('page console:', m.text());
  });
  page.on('pageerror', (e) => log('page error:', e.message));
  return page;
}

// A running server program. lines: every stdout line so far.
export class Server {
  // opts.cwd: the working directory (default: this process's).
  constructor(name, bin, args, opts = {}) {
    this.name = name;
    this.bin = bin;
    this.args = args;
    this.cwd = opts.cwd;
    this.lines = [];
    this.exited = null; // {code, signal} once it exits
  }

  // Start it and resolve with the port from its first line; rejects if it exits or is silent.
  start(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const p = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.cwd });
      this.proc = p;
      let buf = '';
      let done = false;
      const finish = (err, port) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(port);
      };
      const timer = setTimeout(() => finish(new TestFailure(
        `${this.name}: no "listening on" line within ${timeoutMs} ms`)), timeoutMs);
      p.stdout.setEncoding('utf8');
      p.stdout.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.lines.push(line);
          log(`${this.name}>`, line);
          const m = /^listening on http:\/\/(\S+):(\d+)\//.exec(line);
          if (m) {
            this.port = Number(m[2]);
            finish(null, this.port);
          }
        }
      });
      p.stderr.setEncoding('utf8');
      p.stderr.on('data', (chunk) => {
        for (const line of chunk.split('\n')) if (line) log(`${this.name}!`, line);
      });
      p.on('error', (e) => finish(new TestFailure(`${this.name}: cannot run ${this.bin}: ${e.message}`)));
      p.on('exit', (code, signal) => {
        this.exited = { code, signal };
        log(`${this.name}: exited code=${code} signal=${signal}`);
        finish(new TestFailure(`${this.name}: exited before listening (code ${code}, signal ${signal})`));
      });
    });
  }

  // SIGTERM, then wait for the exit (SIGKILL after timeoutMs). Resolves with {code, signal}.
  async stop(timeoutMs = 5000) {
    if (!this.proc || this.exited) return this.exited;
    this.proc.kill('SIGTERM');
    try {
      await until(() => this.exited, timeoutMs, `${this.name} to exit after SIGTERM`);
    } catch (e) {
      this.proc.kill('SIGKILL');
      await until(() => this.exited, 2000, `${this.name} to die after SIGKILL`);
      throw e;
    }
    return this.exited;
  }

  kill() {
    if (this.proc && !this.exited) this.proc.kill('SIGKILL');
  }

  // Values N of every "reconnect last-event-id=N" line logged so far.
  reconnectIds() {
    const ids = [];
    for (const l of this.lines) {
      const m = /^reconnect last-event-id=(\d+)$/.exec(l);
      if (m) ids.push(Number(m[1]));
    }
    return ids;
  }
}

// Run body(ctx) with a hard time limit; always close the browser and kill the servers.
// ctx.servers: push every Server there; ctx.browser is set by the body.
export async function run(name, limitMs, body) {
  const ctx = { servers: [], browser: null };
  let rc = 1;
  const limit = setTimeout(() => {
    console.error(`FAIL ${name}: the whole test took longer than ${limitMs} ms`);
    for (const s of ctx.servers) s.kill();
    process.exit(1);
  }, limitMs);
  try {
    await body(ctx);
    console.log(`PASS ${name}`);
    rc = 0;
  } catch (e) {
    if (e instanceof TestSkip && process.env.CI !== 'true') {
      console.log(`SKIP ${name}: ${e.message}`);
      rc = SKIP;
    } else if (e instanceof TestSkip) {
      console.error(`FAIL ${name}: ${e.message}, and CI=true`);
    } else {
      console.error(`FAIL ${name}: ${e instanceof TestFailure ? e.message : e.stack || e}`);
    }
  } finally {
    for (const s of ctx.servers) s.kill();
    if (ctx.browser) await ctx.browser.close().catch(() => {});
    clearTimeout(limit);
  }
  process.exit(rc);
}
