// Shared helpers of the node tests: where the build outputs are, and a managed
// `edgewise serve` process. `cargo xtask test` sets the EDGEWISE_* variables; the
// defaults match its layout so a test file can also be run by hand after a build.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const targetDir = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/edgewise/target');

/** Build outputs the tests need, each overridable by an environment variable. */
export const paths = {
  bin: process.env.EDGEWISE_BIN || join(targetDir, 'debug/edgewise'),
  dist: process.env.EDGEWISE_DIST || join(repoRoot, 'www/dist'),
  probe:
    process.env.EDGEWISE_PROBE_WASM ||
    join(targetDir, 'wasm32-unknown-unknown/release/edgewise_wasm_probe.wasm'),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  artifacts: join(repoRoot, 'tests/artifacts'),
};

/** Throws a clear error when a build output is missing. */
export function requirePath(path, what, envVar) {
  if (!existsSync(path)) {
    throw new Error(
      `${what} not found at ${path}: run \`cargo xtask test\` (which builds it), or set ${envVar}`,
    );
  }
  return path;
}

/** The directory for screenshots and logs (gitignored). */
export function artifactsDir() {
  mkdirSync(paths.artifacts, { recursive: true });
  return paths.artifacts;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `edgewise serve --root <root>` on a free port and waits until it answers.
 * Returns `{ url, stop, output }`; always call `stop()` (it is idempotent).
 */
export async function startServer({ bin = paths.bin, root = paths.dist, timeoutMs = 15000 } = {}) {
  requirePath(bin, 'the native `edgewise` binary', 'EDGEWISE_BIN');
  requirePath(root, 'the web bundle', 'EDGEWISE_DIST');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const child = spawn(bin, ['serve', '--root', root, '--addr', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exit = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );

  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(3000)]);
      if (exited === null) child.kill('SIGKILL');
    }
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== null) {
      throw new Error(`edgewise serve exited early (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const response = await fetch(url, { method: 'HEAD' });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`edgewise serve did not answer at ${url} within ${timeoutMs} ms:\n${output}`);
    }
    await sleep(100);
  }
  return { url, stop, output: () => output };
}

/** Flags for headless Debian Chromium running as root on a machine with no network. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches Chromium with a fresh profile directory. Returns the playwright context and
 * `close()`, which closes it and removes the profile. `options` go to playwright.
 */
export async function launchBrowser(options = {}) {
  requirePath(paths.chromium, 'Chromium', 'CHROMIUM');
  const userDataDir = mkdtempSync(join(tmpdir(), 'edgewise-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: paths.chromium,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      ...options,
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Records what should never happen on a page: console errors, page errors, failed requests
 * and (unless `http` is false) HTTP responses of 400 or more. Returns the live list.
 */
export function recordProblems(page, { http = true } = {}) {
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.stack ?? err}`));
  page.on('requestfailed', (req) =>
    problems.push(`request failed: ${req.url()} (${req.failure()?.errorText})`),
  );
  if (http) {
    page.on('response', (res) => {
      if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
    });
  }
  return problems;
}
