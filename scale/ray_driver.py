#!/usr/bin/env python3
"""Run an `edgewise experiment` on a Ray cluster: one Ray task per cell, then the merge.

The plan is split by the binary itself (`edgewise experiment PLAN --list-cells`). Each
cell runs as a Ray task that starts the `edgewise` binary on one thread
(`--cell ID --out TMP`), packs the cell's directory into a tar archive and returns it
through Ray's object store, so no filesystem is shared between the nodes. A task that
fails (the process crashes or is killed, the worker dies) is retried up to
`--max-retries` times; a cell is deterministic and written atomically, so a retry gives
the same bytes. The driver unpacks every cell into OUT/cells/ and runs
`edgewise experiment PLAN --merge --out OUT` where it runs itself, then writes
OUT/ray-summary.json (host, seconds and attempts per cell).

Only the standard library and Ray. Usage (see docs/scale-out.md):

    python scale/ray_driver.py --binary target/release/edgewise --out runs/quick \
        [--address ray://HOST:10001 | auto] [--ship-binary] [--max-retries 3] \
        -- --preset quick [--steps N ...]

Under `ray job submit`, leave out --address: the job already knows its cluster.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import ray

CRASH_ONCE_VAR = "EDGEWISE_CRASH_ONCE"
ONE_THREAD = {"RAYON_NUM_THREADS": "1"}
# glibc allocator settings a cell runs with unless the node sets GLIBC_TUNABLES itself
# (as `edgewise experiment --jobs` does, native/src/experiment_jobs.rs MALLOC_TUNABLES):
# about a third less CPU time, identical results.
MALLOC_TUNABLES = {
    "GLIBC_TUNABLES":
        "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824",
}
TASK_PREFIX = "edgewise-cell:"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after `--` choose the plan, exactly as for `edgewise experiment`.",
    )
    p.add_argument("--binary", required=True,
                   help="the edgewise binary: its path on every node, or (with --ship-binary) "
                        "on the driver's node only")
    p.add_argument("--ship-binary", action="store_true",
                   help="send the binary to the workers through the object store instead of "
                        "expecting it at --binary on every node")
    p.add_argument("--out", required=True, type=Path,
                   help="output directory on the driver's node (cells/, report.md, ...)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: Ray's own resolution: RAY_ADDRESS, "
                        "the job's cluster under `ray job submit`, else a local instance)")
    p.add_argument("--max-retries", type=int, default=3,
                   help="retries per cell after a crash, a kill or a lost worker (default 3)")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help="seconds after which a cell's process is killed (and the task retried)")
    p.add_argument("--force", action="store_true",
                   help="pass --force to the merge (replace an existing report)")
    p.add_argument("--crash-once", metavar="CELL:MARKER", default=None,
                   help="test hook: cell CELL aborts once, leaving file MARKER (which must be "
                        "visible to its retry, so a single-node cluster)")
    p.add_argument("plan", nargs=argparse.REMAINDER,
                   help="-- followed by the plan arguments, e.g. -- --preset quick")
    args = p.parse_args(argv)
    if args.plan and args.plan[0] == "--":
        args.plan = args.plan[1:]
    if not args.plan:
        p.error("give the plan after `--`, e.g. -- --preset quick")
    if args.crash_once is not None and ":" not in args.crash_once:
        p.error(f"--crash-once {args.crash_once!r}: expected CELL:MARKER")
    if args.max_retries < 0:
        p.error("--max-retries must be 0 or more")
    return args


def list_cells(binary: str, plan: list[str]) -> list[dict]:
    """The plan's cells, as the binary lists them (one JSON object per line)."""
    proc = subprocess.run([binary, "experiment", *plan, "--list-cells"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"listing the cells failed ({binary} exited {proc.returncode}):\n{proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def done_here(out: Path, cell: dict) -> bool:
    """A cell already in OUT/cells for the same plan (a resumed driver skips it)."""
    try:
        meta = json.loads((out / "cells" / cell["id"] / "cell.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("plan_hash") == cell["plan_hash"]


@ray.remote(num_cpus=1)
def run_cell(binary, plan: list[str], cell_id: str, extra_env: dict,
             timeout: float | None) -> dict:
    """Train and evaluate one cell in a scratch directory; return it as a tar archive."""
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=f"edgewise-{cell_id}-"))
    try:
        if isinstance(binary, bytes):
            exe = scratch / "edgewise"
            exe.write_bytes(binary)
            exe.chmod(0o755)
        else:
            exe = Path(binary)
        out = scratch / "out"
        env = {**MALLOC_TUNABLES, **os.environ, **ONE_THREAD, **extra_env}
        proc = subprocess.run(
            [str(exe), "experiment", *plan, "--cell", cell_id, "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.splitlines()[-10:])
            raise RuntimeError(f"cell {cell_id} exited with {proc.returncode} on "
                               f"{socket.gethostname()}:\n{tail}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(out / "cells" / cell_id, arcname=cell_id)
        return {"id": cell_id, "tar": buf.getvalue(), "host": socket.gethostname(),
                "seconds": time.monotonic() - started}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def unpack(out: Path, result: dict) -> None:
    """Put a returned cell into OUT/cells/ID, replacing what was there, atomically."""
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{result['id']}.unpack-", dir=cells))
    try:
        with tarfile.open(fileobj=io.BytesIO(result["tar"]), mode="r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python < 3.11.4: the archive comes from our own task
                tar.extractall(tmp)  # noqa: S202
        final = cells / result["id"]
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp / result["id"], final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def attempts(names: set[str], wait_s: float = 15.0) -> dict | None:
    """Attempts per cell task from Ray's state API: {cell: ["FAILED", "FINISHED"]}.

    Task events reach the state API a moment after the tasks end, so poll until every
    cell's last attempt has finished (None when the state API is unavailable)."""
    try:
        from ray.util.state import list_tasks
    except ImportError:
        return None
    job = ray.get_runtime_context().get_job_id()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            tasks = list_tasks(filters=[("job_id", "=", job)], limit=10_000,
                               raise_on_missing_output=False)
        except Exception as e:  # noqa: BLE001 - the summary is best effort
            print(f"note: Ray's state API did not answer ({e}); attempts not recorded")
            return None
        per: dict[str, list] = {}
        for t in sorted(tasks, key=lambda t: t.attempt_number):
            if t.name in names:
                per.setdefault(t.name[len(TASK_PREFIX):], []).append(t.state)
        if (len(per) == len(names) and all(v[-1] == "FINISHED" for v in per.values())) \
                or time.monotonic() > deadline:
            return per


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    exe = Path(args.binary).resolve()
    if not exe.is_file():
        sys.exit(f"--binary {args.binary}: no such file")
    if not os.access(exe, os.X_OK):  # uploaded with `--working-dir`, which drops the mode
        exe.chmod(exe.stat().st_mode | 0o755)
    binary = str(exe)
    started = time.monotonic()
    cells = list_cells(binary, args.plan)
    todo = [c for c in cells if not done_here(args.out, c)]
    skipped = len(cells) - len(todo)
    print(f"plan {cells[0]['plan_hash'][:12]}: {len(cells)} cells, "
          f"{skipped} already in {args.out}, {len(todo)} to run", flush=True)

    ray.init(address=args.address)
    print(f"Ray cluster: {ray.cluster_resources().get('CPU', 0):.0f} CPUs", flush=True)
    payload = ray.put(Path(binary).read_bytes()) if args.ship_binary else binary
    crash_env = {}
    if args.crash_once:
        crash_env = {CRASH_ONCE_VAR: args.crash_once}
    pending = {}
    for c in todo:
        extra = crash_env if crash_env and args.crash_once.split(":", 1)[0] == c["id"] else {}
        ref = run_cell.options(
            name=TASK_PREFIX + c["id"], max_retries=args.max_retries, retry_exceptions=True,
        ).remote(payload, args.plan, c["id"], extra, args.cell_timeout)
        pending[ref] = c["id"]

    summary = {"plan_hash": cells[0]["plan_hash"], "skipped": skipped, "cells": {}}
    failed = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        cell_id = pending.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            failed[cell_id] = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
            print(f"cell {cell_id} failed after {args.max_retries} retries: {failed[cell_id]}",
                  flush=True)
            continue
        unpack(args.out, result)
        summary["cells"][cell_id] = {"host": result["host"], "seconds": result["seconds"]}
        done = len(summary["cells"]) + len(failed)
        print(f"[{done}/{len(todo)}] {cell_id} done on {result['host']} "
              f"in {result['seconds']:.1f} s", flush=True)

    names = {TASK_PREFIX + c["id"] for c in todo}
    per_cell = attempts(names) if todo else {}
    for cell_id, states in (per_cell or {}).items():
        summary["cells"].setdefault(cell_id, {})["attempts"] = states
    retried = {k: v for k, v in (per_cell or {}).items() if len(v) > 1}
    if retried:
        print("retried: " + ", ".join(f"{k} ({' -> '.join(v)})" for k, v in sorted(retried.items())))

    if failed:
        plan = " ".join(args.plan)
        lines = "\n".join(f"  {k}: {v}\n    re-run: edgewise experiment {plan} --cell {k} "
                          f"--out {args.out}" for k, v in sorted(failed.items()))
        summary["failed"] = failed
        write_summary(args.out, summary, started)
        print(f"{len(failed)} cells failed; not merging. Re-run this driver (finished cells "
              f"are kept) or run them by hand:\n{lines}", file=sys.stderr)
        return 1

    merge = [binary, "experiment", *args.plan, "--merge", "--out", str(args.out)]
    if args.force:
        merge.append("--force")
    rc = subprocess.run(merge, check=False).returncode
    write_summary(args.out, summary, started)
    return rc


def write_summary(out: Path, summary: dict, started: float) -> None:
    summary["wall_s"] = time.monotonic() - started
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".ray-summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / "ray-summary.json")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
