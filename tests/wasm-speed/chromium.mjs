// Runs the `edgewise-wasm-speed` module in headless Chromium (a worker-free page on the
// main thread), for comparing the browser's engine with Node's on the same work. Usage:
//   node tests/wasm-speed/chromium.mjs MODULE.wasm MODEL.gguf [RUNS]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { launchBrowser, startServer } from '../browser/helpers.mjs';

const [wasmPath, modelPath, runsArg] = process.argv.slice(2);
if (!wasmPath || !modelPath) {
  console.error('usage: node tests/wasm-speed/chromium.mjs MODULE.wasm MODEL.gguf [RUNS]');
  process.exit(2);
}
// Served by `edgewise serve` (127.0.0.1 only) from a scratch folder of copies.
const root = fs.mkdtempSync(join(tmpdir(), 'edgewise-wasm-speed-'));
fs.writeFileSync(join(root, 'index.html'), '<!doctype html><title>wasm speed</title>');
fs.copyFileSync(resolve(wasmPath), join(root, 'module.wasm'));
fs.copyFileSync(resolve(modelPath), join(root, 'model.gguf'));
const server = await startServer({ root });
const browser = await launchBrowser();
try {
  const page = await browser.context.newPage();
  await page.goto(server.url);
  const lines = await page.evaluate(async (runs) => {
    const module = await WebAssembly.compileStreaming(fetch('/module.wasm'));
    const imports = {};
    for (const imp of WebAssembly.Module.imports(module)) {
      imports[imp.module] ??= {};
      imports[imp.module][imp.name] =
        imp.module === 'env' && imp.name === 'now'
          ? () => performance.now()
          : () => { throw new Error(`unexpected call to ${imp.module}.${imp.name}`); };
    }
    const { exports: e } = await WebAssembly.instantiate(module, imports);
    const model = new Uint8Array(await (await fetch('/model.gguf')).arrayBuffer());
    const ptr = e.alloc(model.length);
    new Uint8Array(e.memory.buffer, ptr, model.length).set(model);
    if (e.load(ptr, model.length) !== 0) throw new Error('could not load the model');
    const out = e.alloc(16);
    const lines = [];
    for (let r = 0; r < runs; r++) {
      const sum = e.bench(64, 64, out);
      if (sum === 0n) throw new Error('the forward pass failed');
      const [prefill, decode] = new Float64Array(e.memory.buffer, out, 2);
      lines.push(
        `run ${r + 1}: prefill 64 tokens ${prefill.toFixed(1)} tok/s, decode 64 ${decode.toFixed(1)} tok/s (greedy ids checksum ${BigInt.asUintN(64, sum)})`,
      );
    }
    return lines;
  }, Number(runsArg ?? 3));
  console.log(`Chromium ${browser.context.browser()?.version() ?? ''}`);
  for (const line of lines) console.log(line);
} finally {
  await browser.close();
  await server.stop();
  fs.rmSync(root, { recursive: true, force: true });
}
