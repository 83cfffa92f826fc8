// Runs the `edgewise-wasm-speed` module under Node: prefill 64 tokens, decode 64 greedy
// tokens after them, RUNS times. Usage: see tests/wasm-speed/src/lib.rs.
import fs from 'node:fs';

const [wasmPath, modelPath, runsArg] = process.argv.slice(2);
if (!wasmPath || !modelPath) {
  console.error('usage: node tests/wasm-speed/run.mjs MODULE.wasm MODEL.gguf [RUNS]');
  process.exit(2);
}
const module = await WebAssembly.compile(fs.readFileSync(wasmPath));
// `env.now` is the clock; any other import (wasm-bindgen placeholders pulled in by a
// dependency but never called) fails loudly if it is ever called.
const imports = {};
for (const imp of WebAssembly.Module.imports(module)) {
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] =
    imp.module === 'env' && imp.name === 'now'
      ? () => performance.now()
      : () => { throw new Error(`unexpected call to ${imp.module}.${imp.name}`); };
}
const { exports: e } = await WebAssembly.instantiate(module, imports);
const model = fs.readFileSync(modelPath);
const ptr = e.alloc(model.length);
new Uint8Array(e.memory.buffer, ptr, model.length).set(model);
if (e.load(ptr, model.length) !== 0) throw new Error(`could not load ${modelPath}`);
const out = e.alloc(16);
const runs = Number(runsArg ?? 3);
for (let r = 0; r < runs; r++) {
  const sum = e.bench(64, 64, out);
  if (sum === 0n) throw new Error('the forward pass failed');
  const [prefill, decode] = new Float64Array(e.memory.buffer, out, 2);
  console.log(
    `run ${r + 1}: prefill 64 tokens ${prefill.toFixed(1)} tok/s, decode 64 ${decode.toFixed(1)} tok/s (greedy ids checksum ${BigInt.asUintN(64, sum)})`,
  );
}
