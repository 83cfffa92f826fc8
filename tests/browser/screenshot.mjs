// Takes the README's screenshot (docs/screenshot.png): the page at 1400×900 after the
// simulation has run for a while. Not a test; run after `cargo xtask test` (which builds
// the bundle and the server):  node tests/browser/screenshot.mjs [OUT.png] [SECONDS]
import { join } from 'node:path';
import { launchBrowser, repoRoot, startServer } from './helpers.mjs';

const out = process.argv[2] || join(repoRoot, 'docs/screenshot.png');
const seconds = Number(process.argv[3] || 20);
const server = await startServer();
const browser = await launchBrowser({ viewport: { width: 1400, height: 900 } });
try {
  const page = await browser.context.newPage();
  await page.goto(server.url, { waitUntil: 'load' });
  await page.waitForTimeout(seconds * 1000);
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.stop();
}
