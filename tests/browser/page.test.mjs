// The web bundle in headless Chromium: the page loads without errors and the live
// simulation advances. Serves www/dist with the native `edgewise serve`.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { artifactsDir, launchBrowser, recordProblems, startServer } from './helpers.mjs';


let server;
let context;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  context = browser.context;
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The slot counter's value, or NaN while it is not a number. */
async function slot(page) {
  const text = await page.locator('#slot-counter').textContent();
  return Number.parseInt(text ?? '', 10);
}

test('page loads without errors and the simulation advances', async () => {
  const page = await context.newPage();
  const problems = recordProblems(page);

  try {
    await page.goto(server.url, { waitUntil: 'load' });
    await page.locator('#slot-counter').waitFor({ timeout: 30000 });
    await page.locator('#mean-latency').waitFor({ state: 'attached', timeout: 5000 });

    // Wait until the counter shows a number, then check it grows over ~2 s.
    await page.waitForFunction(
      () => !Number.isNaN(Number.parseInt(document.querySelector('#slot-counter')?.textContent ?? '', 10)),
      undefined,
      { timeout: 10000 },
    );
    const first = await slot(page);
    await page.waitForTimeout(2000);
    const second = await slot(page);
    assert.ok(
      second > first,
      `the slot counter did not advance in 2 s (was ${first}, now ${second})`,
    );
    assert.deepEqual(problems, [], `the page reported problems:\n${problems.join('\n')}`);
  } catch (err) {
    // Whatever failed, show what the page said: it usually explains the failure.
    if (problems.length > 0) err.message += `\n\npage problems:\n${problems.join('\n')}`;
    throw err;
  } finally {
    await page
      .screenshot({ path: join(artifactsDir(), 'page.png'), fullPage: true })
      .catch((err) => console.error(`screenshot failed: ${err}`));
    await page.close();
  }
});
