// The browser app end to end in headless Chromium (launched WITHOUT
// --enable-unsafe-webgpu, so this is also the "no WebGPU" check): the page loads without
// console errors, the worker's simulation advances and schedules queries, controls change
// the charts, the URL round-trips a scenario (bad values get defaults and a note), CSV
// export downloads a file with a header, the tour and the device inspector work.
// It also measures (and prints, without asserting) time to interactive, frames per second
// at 100 devices and the longest main-thread task. Screenshots go to tests/artifacts/.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { artifactsDir, launchBrowser, paths, recordProblems, startServer } from './helpers.mjs';


let server;
let context;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser({ acceptDownloads: true });
  context = browser.context;
  // Record long main-thread tasks from the very start of every page.
  await context.addInitScript(() => {
    window.__longtasks = [];
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__longtasks.push(e.duration);
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

/** A new page that records console errors, page errors and failed requests. */
async function openPage(query = '', viewport) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  const problems = recordProblems(page);
  await page.goto(server.url + query, { waitUntil: 'load' });
  return { page, problems };
}

/** Waits until the page has rendered at least `n` frames from the worker. */
async function waitFrames(page, n = 1, timeout = 30000) {
  await page.waitForFunction(
    (n) => Number(document.querySelector('.app')?.dataset.frames ?? 0) >= n,
    n,
    { timeout },
  );
}

const slot = async (page) =>
  Number.parseInt((await page.locator('#slot-counter').textContent()) ?? '', 10);

/** Total questions scheduled so far by a policy, from its scoreboard row. */
async function questions(page, key) {
  const text = await page.locator(`#score-${key} td`).last().textContent();
  return Number.parseInt((text ?? '').split('/')[1] ?? '', 10);
}

test('loads without errors or WebGPU, runs the race in the worker and schedules queries', async () => {
  const { page, problems } = await openPage();
  try {
    await waitFrames(page, 1);
    // Time to interactive: navigation start → first frame of the race on screen.
    const tti = await page.evaluate(() => performance.now());
    const gpu = await page.evaluate(async () =>
      navigator.gpu ? Boolean(await navigator.gpu.requestAdapter()) : false,
    );
    assert.equal(gpu, false, 'this browser was meant to have no WebGPU adapter');

    const first = await slot(page);
    await page.waitForTimeout(2000);
    const second = await slot(page);
    assert.ok(second > first, `the slot counter did not advance (was ${first}, now ${second})`);
    assert.ok((await questions(page, 'greedy')) > 0, 'greedy scheduled no query');
    // The default scenario is the crowded cell (web/src/scenario.rs DEFAULT_PRESET).
    assert.ok((await page.locator('#network-map .device-g').count()) === 100, '100 devices drawn');
    assert.ok(
      (await page.locator('#chart-latency path.series').count()) >= 4,
      'one latency line per visible policy',
    );
    // A trained policy that is not shipped is explained, not an error.
    const chips = await page.locator('.chip').count();
    assert.equal(chips, 7);
    for (const key of ['wm-ppo', 'ppo']) {
      const absent = await page.locator(`#chip-${key}`).isDisabled();
      if (absent) {
        assert.match(await page.locator('#policy-notes').textContent(), /not shipped|could not be used/);
      }
    }
    console.log(`# measured: time to interactive (first race frame) ${tti.toFixed(0)} ms`);
    assert.deepEqual(problems, [], `the page reported problems:\n${problems.join('\n')}`);
  } finally {
    await page.screenshot({ path: join(artifactsDir(), 'app-desktop.png'), fullPage: true });
    await page.close();
  }
});

test('the scoreboard fits a 1400-px-wide window; the oracle is labelled a reference', async () => {
  const { page, problems } = await openPage('?speed=50', { width: 1400, height: 900 });
  try {
    // Every lane scored and the widest numbers in place (a few slots in).
    await page.waitForFunction(() => Number(document.querySelector('#slot-counter')?.textContent) >= 20);
    const fit = await page.evaluate(() => {
      const box = document.querySelector('#panel-scores .table-scroll');
      const table = box.querySelector('table');
      const panel = document.querySelector('#panel-scores').getBoundingClientRect();
      return {
        overflow: box.scrollWidth - box.clientWidth,
        tableRight: table.getBoundingClientRect().right,
        panelRight: panel.right,
        pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      };
    });
    assert.ok(fit.overflow <= 0, `the scoreboard scrolls sideways by ${fit.overflow} px at 1400 px`);
    assert.ok(fit.tableRight <= fit.panelRight, `the scoreboard sticks out of its panel: ${JSON.stringify(fit)}`);
    assert.ok(fit.pageOverflow <= 0, `the page scrolls sideways by ${fit.pageOverflow} px`);
    const oracle = await page.locator('#score-oracle th').textContent();
    assert.match(oracle, /reference/);
    assert.doesNotMatch(oracle, /bound/);
    await page.screenshot({ path: join(artifactsDir(), 'app-1400.png') });
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    await page.close();
  }
});

test('a control change changes the charts and the URL', async () => {
  const { page, problems } = await openPage();
  try {
    await waitFrames(page, 2);
    await page.locator('#min-accuracy').fill('0.7');
    await page.waitForFunction(() =>
      document.querySelector('#chart-accuracy .reference text')?.textContent.includes('70 %'),
    );
    assert.match(await page.evaluate(() => location.search), /min-accuracy=0\.7(&|$)/);
    await page.locator('#devices').fill('60');
    await page.waitForFunction(
      () => document.querySelectorAll('#network-map .device-g').length === 60,
      undefined,
      { timeout: 15000 },
    );
    assert.match(await page.evaluate(() => location.search), /devices=60&/);
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    await page.close();
  }
});

test('the URL round-trips a scenario; bad values fall back with a note', async () => {
  const query =
    '?devices=37&bandwidth=2.5&budget=0.6&load=0.15&min-accuracy=0.66&max-hallucination=0.1&bursts=2.5&edge-load=0.2&seed=42&speed=25&focus=greedy';
  const { page, problems } = await openPage(query);
  try {
    await waitFrames(page, 1);
    assert.equal(await page.evaluate(() => location.search), query);
    assert.equal(await page.locator('#devices').inputValue(), '37');
    assert.equal(await page.locator('#seed').inputValue(), '42');
    assert.equal(await page.locator('#speed').inputValue(), '25');
    assert.equal(await page.locator('#focus').inputValue(), 'greedy');
    assert.equal(await page.locator('#network-map .device-g').count(), 37);
    await page.reload({ waitUntil: 'load' });
    await waitFrames(page, 1);
    assert.equal(await page.evaluate(() => location.search), query);

    await page.goto(`${server.url}?devices=abc&seed=-1&speed=3&bogus=1&preset=nope`, { waitUntil: 'load' });
    await waitFrames(page, 1);
    const notes = await page.locator('#notes').textContent();
    for (const bit of ['devices=abc', 'seed', 'speed', 'bogus', 'preset']) {
      assert.ok(notes.includes(bit), `no note about ${bit}: ${notes}`);
    }
    assert.equal(await page.locator('#network-map .device-g').count(), 100);
    assert.equal(
      await page.evaluate(() => location.search),
      '?preset=crowded&seed=7&speed=10&focus=wm-ppo',
    );
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    await page.close();
  }
});

test('CSV export downloads a file with a header', async () => {
  const { page, problems } = await openPage('?speed=50');
  try {
    await page.waitForFunction(() => Number(document.querySelector('#slot-counter')?.textContent) >= 10);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('#export-csv').click(),
    ]);
    assert.match(download.suggestedFilename(), /^edgewise-race-seed7-episode\d+\.csv$/);
    const path = join(artifactsDir(), 'export.csv');
    await download.saveAs(path);
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    assert.match(lines[0], /^# edgewise race, scenario \?/);
    assert.equal(lines[1].split(',')[0], 'episode');
    assert.ok(lines[1].includes('latency_s') && lines[1].includes('hallucination'));
    assert.ok(lines.length > 10, `only ${lines.length} lines`);
    assert.equal(lines[2].split(',').length, lines[1].split(',').length);
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    await page.close();
  }
});

test('the inspector explains a device and the tour highlights panels', async () => {
  const { page, problems } = await openPage('?speed=5');
  try {
    await waitFrames(page, 2);
    await page.locator('#network-map .device-g').first().click();
    await page.locator('#inspector h3').waitFor();
    assert.match(await page.locator('#inspector h3').textContent(), /^Device 0/);
    // One row per observation feature (mec's OBS_DIM).
    assert.equal(await page.locator('#inspector .features tr').count(), 30);
    await page.locator('#tour-start').click();
    await page.locator('#tour').waitFor();
    assert.equal(await page.locator('.tour-focus').getAttribute('id'), 'panel-network');
    await page.locator('#tour-next').click();
    assert.equal(await page.locator('.tour-focus').getAttribute('id'), 'panel-policies');
    await page.locator('#tour-next').click();
    assert.equal(await page.locator('.tour-focus').getAttribute('id'), 'chart-latency');
    await page.screenshot({ path: join(artifactsDir(), 'app-tour.png') });
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    await page.close();
  }
});

test('phone layout (390 px) and performance at 100 devices (measured, not asserted)', async () => {
  const { page, problems } = await openPage('?preset=crowded&speed=25');
  try {
    await waitFrames(page, 2);
    const stats = await page.evaluate(
      () =>
        new Promise((resolve) => {
          const app = document.querySelector('.app');
          const frames0 = Number(app.dataset.frames);
          let raf = 0;
          const t0 = performance.now();
          const tick = () => {
            raf += 1;
            if (performance.now() - t0 < 4000) requestAnimationFrame(tick);
            else {
              const s = (performance.now() - t0) / 1000;
              resolve({
                rafFps: raf / s,
                raceFps: (Number(app.dataset.frames) - frames0) / s,
                longest: Math.max(0, ...window.__longtasks),
                longtasks: window.__longtasks.length,
                workerMs: Number(app.dataset.workerMs),
              });
            }
          };
          requestAnimationFrame(tick);
        }),
    );
    console.log(
      `# measured at 100 devices, 25 slots/s: ${stats.rafFps.toFixed(1)} animation frames/s, ` +
        `${stats.raceFps.toFixed(1)} race frames rendered/s, longest main-thread task ` +
        `${stats.longest.toFixed(0)} ms (${stats.longtasks} long tasks since load), ` +
        `worker ${stats.workerMs.toFixed(1)} ms per frame`,
    );
    assert.equal(await page.locator('#network-map .device-g').count(), 100);
    await page.screenshot({ path: join(artifactsDir(), 'app-100-devices.png'), fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(500);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px at 390 px`);
    await page.screenshot({ path: join(artifactsDir(), 'app-phone.png'), fullPage: true });
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    await page.close();
  }
});

test('a missing or broken policy file is explained and the race goes on', async () => {
  // A copy of the bundle where WM-PPO is not shipped and PPO's file is corrupt.
  const root = mkdtempSync(join(tmpdir(), 'edgewise-dist-'));
  cpSync(paths.dist, root, { recursive: true });
  rmSync(join(root, 'policies/wm-ppo-default.json'), { force: true });
  writeFileSync(join(root, 'policies/ppo-default.json'), '{"format": "edgewise-policy", "version": 9}');
  writeFileSync(join(root, 'policies/index.json'), '["ppo-default.json"]\n');
  const own = await startServer({ root });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  try {
    await page.goto(own.url, { waitUntil: 'load' });
    await waitFrames(page, 2);
    const notes = await page.locator('#policy-notes').textContent();
    assert.match(notes, /WM-PPO is not shipped/);
    assert.match(notes, /PPO policy could not be used: .*version 9/);
    assert.ok(await page.locator('#chip-wm-ppo').isDisabled());
    // The network falls back to the first running policy.
    assert.equal(await page.locator('#focus').inputValue(), 'greedy');
    assert.ok((await questions(page, 'greedy')) >= 0);
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    await page.screenshot({ path: join(artifactsDir(), 'app-missing-policy.png') });
    await page.close();
    await own.stop();
    rmSync(root, { recursive: true, force: true });
  }
});
