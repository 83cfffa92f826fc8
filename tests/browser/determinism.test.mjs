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

const CASES = [
  { seed: 7n, devices: 20, slots: 200, policy: 'greedy' },
  { seed: 1n, devices: 10, slots: 100, policy: 'always-local' },
  { seed: 42n, devices: 50, slots: 60, policy: 'always-offload' },
  { seed: 12345n, devices: 20, slots: 200, policy: 'random' },
  { seed: 2024n, devices: 10, slots: 200, policy: 'oracle' },
  { seed: 9876543210123n, devices: 100, slots: 30, policy: 'greedy' },
];

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
});

function wasmDigest({ seed, devices, slots, policy }) {
  const index = POLICIES.indexOf(policy);
  const digest = BigInt.asUintN(64, probe.ew_digest(seed, devices, slots, index));
  return digest.toString(16).padStart(16, '0');
}

function nativeDigest({ seed, devices, slots, policy }) {
  const bin = requirePath(paths.bin, 'the native `edgewise` binary', 'EDGEWISE_BIN');
  const args = ['simulate', '--policy', policy, '--devices', String(devices), '--slots', String(slots), '--seed', String(seed), '--json'];
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
  test(`native and wasm agree: seed ${c.seed}, ${c.devices} devices, ${c.slots} slots, ${c.policy}`, () => {
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
