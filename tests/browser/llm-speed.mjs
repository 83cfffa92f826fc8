// In-page CPU (wasm) decode speed of the chat, measured in headless Chromium without
// WebGPU (so the worker runs the whole model on the wasm CPU path). Not a test: it
// prints figures and asserts only that the answers came.
//
//   node tests/browser/llm-speed.mjs [RUNS] [TOKENS]
//
// Needs the web bundle (`cargo xtask web`) and the native binary that serves it
// (EDGEWISE_BIN / EDGEWISE_DIST as for the tests). Each run asks for TOKENS greedy tokens
// (default 64) to a fixed prompt and reads the page's decode tokens/s (data-tok-s: the
// decode steps after the prompt, as the panel shows); prints each run and the median.

import { launchBrowser, startServer } from './helpers.mjs';

const runs = Number(process.argv[2] ?? 5);
const tokens = Number(process.argv[3] ?? 64);
const PROMPT = 'Write a long story about a lighthouse keeper and the sea.';
const TIMEOUT = 300_000;

const server = await startServer();
const browser = await launchBrowser();
try {
  const page = await browser.context.newPage();
  await page.goto(server.url, { waitUntil: 'load' });
  await page.locator('#llm-open').click();
  await page.waitForFunction(
    () => ['ready', 'error', 'no-model'].includes(document.querySelector('#panel-chat')?.dataset.state),
    null,
    { timeout: TIMEOUT },
  );
  const chat = page.locator('#panel-chat');
  if ((await chat.getAttribute('data-state')) !== 'ready') {
    throw new Error(`the chat did not get ready: ${await page.locator('#llm-message').textContent()}`);
  }
  console.log(`backend: ${await page.locator('#llm-backend').textContent()}`);
  const rates = [];
  for (let i = 0; i < runs; i++) {
    const before = Number(await chat.getAttribute('data-answers'));
    await page.locator('#llm-prompt').fill(PROMPT);
    const max = page.locator('#llm-max-tokens');
    await max.fill(String(tokens));
    await max.dispatchEvent('change');
    await page.locator('#llm-send').click();
    await page.waitForFunction(
      (before) => Number(document.querySelector('#panel-chat')?.dataset.answers) > before,
      before,
      { timeout: TIMEOUT },
    );
    const ids = (await chat.getAttribute('data-ids')).split(',').filter(Boolean);
    const rate = Number(await chat.getAttribute('data-tok-s'));
    rates.push(rate);
    console.log(`run ${i + 1}: ${ids.length} tokens, decode ${rate.toFixed(2)} tok/s`);
  }
  rates.sort((a, b) => a - b);
  console.log(
    `median decode ${rates[Math.floor(rates.length / 2)].toFixed(2)} tok/s ` +
      `(min ${rates[0].toFixed(2)}, max ${rates[rates.length - 1].toFixed(2)}, ${runs} runs of ${tokens} tokens)`,
  );
} finally {
  await browser.close();
  await server.stop();
}
