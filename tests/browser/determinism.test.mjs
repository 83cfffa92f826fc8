// Cross-platform determinism: the same seed gives the same MEC trajectory natively
// and in wasm. The native digest comes from `edgewise simulate --json`; the wasm one
// from tests/wasm-probe (a plain cdylib exporting `ew_digest`) loaded in node.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';

import { paths, requirePath } from './helpers.mjs';

// CLI names of `mec::PolicyKind::ALL`, in its order (the probe takes the index).
const POLICIES = ['always-local', 'always-offload', 'random', 'greedy', 'oracle'];
// Names of `mec::presets()`, in its order: the exogenous processes (bursts, background
// edge load, query difficulty, long energy windows) must replay identically too.
const PRESETS = ['default', 'bursty', 'edge-load', 'tight-energy', 'hard-queries', 'foresight'];

const CASES = [
  { seed: 7n, devices: 20, slots: 200, policy: 'greedy' },
  { seed: 1n, devices: 10, slots: 100, policy: 'always-local' },
  { seed: 42n, devices: 50, slots: 60, policy: 'always-offload' },
  { seed: 12345n, devices: 20, slots: 200, policy: 'random' },
  { seed: 2024n, devices: 10, slots: 200, policy: 'oracle' },
  { seed: 9876543210123n, devices: 100, slots: 30, policy: 'greedy' },
  { preset: 'bursty', seed: 11n, devices: 50, slots: 120, policy: 'greedy' },
  { preset: 'edge-load', seed: 12n, devices: 30, slots: 120, policy: 'oracle' },
  { preset: 'tight-energy', seed: 13n, devices: 20, slots: 150, policy: 'greedy' },
  { preset: 'hard-queries', seed: 14n, devices: 20, slots: 100, policy: 'random' },
  { preset: 'foresight', seed: 15n, devices: 100, slots: 60, policy: 'oracle' },
].map((c) => ({ preset: 'default', ...c }));

let probe;

before(async () => {
  const bytes = readFileSync(requirePath(paths.probe, 'the wasm probe', 'EDGEWISE_PROBE_WASM'));
  const { instance } = await WebAssembly.instantiate(bytes, {});
  probe = instance.exports;
  assert.equal(
    probe.ew_policy_count(),
    POLICIES.length,
    'PolicyKind::ALL changed: update POLICIES in determinism.test.mjs',
  );
  assert.equal(
    probe.ew_preset_count(),
    PRESETS.length,
    'mec::presets() changed: update PRESETS in determinism.test.mjs',
  );
});

function wasmDigest({ preset, seed, devices, slots, policy }) {
  const index = POLICIES.indexOf(policy);
  const scenario = PRESETS.indexOf(preset);
  const digest = BigInt.asUintN(64, probe.ew_digest(scenario, seed, devices, slots, index));
  return digest.toString(16).padStart(16, '0');
}

function nativeDigest({ preset, seed, devices, slots, policy }) {
  const bin = requirePath(paths.bin, 'the native `edgewise` binary', 'EDGEWISE_BIN');
  const args = ['simulate', '--preset', preset, '--policy', policy, '--devices', String(devices), '--slots', String(slots), '--seed', String(seed), '--json'];
  const stdout = execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  let report;
  try {
    report = JSON.parse(stdout);
  } catch {
    throw new Error(`\`edgewise ${args.join(' ')}\` did not print one JSON object:\n${stdout}`);
  }
  assert.match(
    String(report.trajectory_digest),
    /^[0-9a-f]{16}$/,
    `\`edgewise ${args.join(' ')}\`: trajectory_digest is not 16 hex digits`,
  );
  return report.trajectory_digest;
}

const digests = [];

for (const c of CASES) {
  test(`native and wasm agree: ${c.preset}, seed ${c.seed}, ${c.devices} devices, ${c.slots} slots, ${c.policy}`, () => {
    const wasm = wasmDigest(c);
    assert.notEqual(wasm, '0000000000000000', 'the wasm probe rejected the configuration');
    assert.equal(nativeDigest(c), wasm);
    digests.push(wasm);
  });
}

test('different scenarios give different digests', () => {
  assert.ok(digests.length > 1, 'too few scenarios passed to compare');
  assert.equal(new Set(digests).size, digests.length, `two scenarios share a digest: ${digests}`);
});
