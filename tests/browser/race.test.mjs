// The training race end to end in headless Chromium: PPO and WM-PPO learn a small
// scenario (10 devices, seed 7) in the trainer worker, and "the training race improves
// reward": for both learners the mean reward per slot of the last episodes beats the
// first ones by at least 5 %. Also checks that the trainer (burn) is not downloaded before
// the race starts, that both learners take the same number of real environment steps,
// and that "Use these policies" puts the learned policies into the simulation.
// Prints (without asserting) the page's first-load size, the trainer's download size,
// steps per second and the longest main-thread task during training.
// Screenshot: tests/artifacts/race-training.png.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { artifactsDir, launchBrowser, recordProblems, startServer } from './helpers.mjs';

/** Real environment steps per learner: 10 iterations of 4 envs x 128 slots. */
const BUDGET = 5120;
/**
 * Required gain in mean reward per slot, as a fraction of the first episodes' reward (the
 * shipped scenario's untrained policy already offloads about half the queries, so the
 * headroom is small in absolute terms).
 */
const MARGIN_FRACTION = 0.05;

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  await browser.context.addInitScript(() => {
    window.__longtasks = [];
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__longtasks.push({ start: e.startTime, ms: e.duration });
      }).observe({ type: 'longtask', buffered: true });
    } catch {
      // longtask timing unsupported: nothing recorded
    }
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the training race improves reward and its policies run in the simulation', async () => {
  const page = await browser.context.newPage();
  const problems = recordProblems(page, { http: false });
  // Body sizes of every response (the server sends files uncompressed).
  const loads = [];
  page.on('response', async (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
    const body = await res.body().catch(() => null);
    loads.push({ url: res.url(), bytes: body ? body.length : 0, at: Date.now() });
  });

  await page.goto(`${server.url}?devices=10&seed=7`, { waitUntil: 'load' });
  await page.waitForFunction(() => Number(document.querySelector('.app')?.dataset.frames ?? 0) >= 3, null, {
    timeout: 30000,
  });
  const panel = page.locator('#panel-training');
  assert.equal(await panel.getAttribute('data-phase'), 'idle');

  // The main thread's long tasks over a few seconds of simulation without training, to
  // compare with those during training.
  const idleFrom = await page.evaluate(() => performance.now());
  await page.waitForTimeout(5000);
  const idleTasks = await page.evaluate(
    (since) => window.__longtasks.filter((t) => t.start >= since).map((t) => t.ms),
    idleFrom,
  );

  const isTrainer = (url) => /trainer/.test(new URL(url).pathname);
  const firstLoad = [...loads];
  assert.deepEqual(
    firstLoad.filter((l) => isTrainer(l.url)).map((l) => l.url),
    [],
    'the trainer must not be downloaded before a race starts',
  );

  await page.selectOption('#train-budget', String(BUDGET));
  const t0 = Date.now();
  const loadedBefore = firstLoad.length;
  await page.click('#train-start');
  await page.waitForFunction(() => document.querySelector('#panel-training')?.dataset.phase === 'running', null, {
    timeout: 30000,
  });
  const started = await page.evaluate(() => performance.now());
  // Halfway: the progress bar moves and the page still renders simulation frames.
  await page.waitForFunction(
    (budget) => Number(document.querySelector('#train-progress')?.value ?? 0) >= budget,
    BUDGET,
    { timeout: 120000 },
  );
  const frames = Number(await page.locator('.app').getAttribute('data-frames'));
  await page.waitForFunction(() => document.querySelector('#panel-training')?.dataset.phase === 'finished', null, {
    timeout: 150000,
  });
  const wall = (Date.now() - t0) / 1000;
  const loadMs = Number(await panel.getAttribute('data-load-ms'));
  const framesAfter = Number(await page.locator('.app').getAttribute('data-frames'));
  assert.ok(framesAfter > frames, 'the simulation kept rendering while training');
  assert.equal(await panel.getAttribute('data-steps'), `ppo:${BUDGET} wm-ppo:${BUDGET}`);
  assert.equal(
    await page.locator('#train-progress').getAttribute('value'),
    String(2 * BUDGET),
    'the progress bar is full',
  );

  const lanes = {};
  for (const key of ['ppo', 'wm-ppo']) {
    const row = page.locator(`#train-${key}`);
    lanes[key] = {
      first: Number(await row.getAttribute('data-first')),
      last: Number(await row.getAttribute('data-last')),
      episodes: Number(await row.getAttribute('data-episodes')),
      stepsPerS: Number(await row.getAttribute('data-steps-per-s')),
    };
  }
  const tasks = await page.evaluate(
    (since) => window.__longtasks.filter((t) => t.start >= since),
    started,
  );
  const longtasks = tasks.map((t) => t.ms);
  const worst = [...tasks]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 3)
    .map((t) => `${t.ms.toFixed(0)} ms at +${((t.start - started) / 1000).toFixed(1)} s`);
  const trainerBytes = loads.slice(loadedBefore).filter((l) => isTrainer(l.url));
  const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
  console.log(
    `training race (${BUDGET} real env steps each, 10 devices, seed 7): ${wall.toFixed(1)} s wall; ` +
      Object.entries(lanes)
        .map(
          ([k, l]) =>
            `${k}: ${l.episodes} episodes, reward/slot first ${l.first.toFixed(4)} -> last ` +
            `${l.last.toFixed(4)}, ${l.stepsPerS.toFixed(0)} env steps/s`,
        )
        .join('; '),
  );
  console.log(
    `page first load: ${firstLoad.length} responses, ${kib(firstLoad.reduce((a, l) => a + l.bytes, 0))}; ` +
      `trainer download (start to first iteration ${(loadMs / 1000).toFixed(1)} s): ${trainerBytes.map((l) => `${new URL(l.url).pathname} ${kib(l.bytes)}`).join(', ')}; ` +
      `main thread: ${idleTasks.length} long tasks in 5 s before training (longest ` +
      `${Math.max(0, ...idleTasks).toFixed(0)} ms), ${longtasks.length} in ${wall.toFixed(0)} s ` +
      `of training (longest ${Math.max(0, ...longtasks).toFixed(0)} ms; worst: ${worst.join(', ')})`,
  );
  for (const [key, l] of Object.entries(lanes)) {
    assert.ok(l.episodes >= 16, `${key}: only ${l.episodes} episodes finished`);
    const margin = MARGIN_FRACTION * Math.abs(l.first);
    assert.ok(
      l.last > l.first + margin,
      `${key} did not improve: first episodes ${l.first}, last ${l.last} (margin ${margin})`,
    );
  }

  // Run the learned policies in the simulation race.
  await page.click('#train-use');
  await page.waitForFunction(
    () => (document.querySelector('#chip-ppo')?.title ?? '').includes('in this browser'),
    null,
    { timeout: 15000 },
  );
  assert.match((await page.locator('#chip-wm-ppo').getAttribute('title')) ?? '', /trained in this browser for 5120/);
  assert.equal(await page.locator('#train-use').isDisabled(), true);
  await page.locator('#panel-training').scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(artifactsDir(), 'race-training.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
