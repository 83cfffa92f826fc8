#!/usr/bin/env python3
"""Checks that llama.cpp's loader accepts edgewise's GGUF files and computes what we compute.

Not run in CI (it needs a llama.cpp build). Setup, once (builds llama.cpp from source; CPU only):

    python3 -m venv VENV && VENV/bin/pip install cmake ninja scikit-build-core numpy \
        typing-extensions diskcache jinja2
    CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DLLAMA_CURL=OFF" \
        VENV/bin/pip install --no-build-isolation llama-cpp-python==0.3.36

and our side: `cargo build --release -p edgewise-ecld --example llama_compat`.

Check mode (default), for each GGUF file:
  1. load it with llama.cpp (records the loader's error text when it refuses);
  2. compare the prompt tokenisation (llama.cpp's vs ours) for fixed prompts;
  3. run our engine's greedy decoding (the `llama_compat` example) and llama.cpp's greedy
     decoding from the same prompt token ids; report the first divergence and our logit
     margin there (a divergence at a near-tie is rounding, not a bug);
  4. teacher-forced top-token agreement: llama.cpp evaluates prompt + our greedy tokens and
     we count the positions where its arg-max is our token (robust to one early divergence).

Bench mode (`--bench FILE`): llama.cpp's own prefill/decode speed (512-token prompt, 128
greedy decode tokens, 1 and 2 threads, median of --runs), with the load average.

Prints a table and writes everything as JSON (`--json-out`).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWrite one sentence about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a concise assistant.<|im_end|>\n<|im_start|>user\n"
    "How many legs does a spider have?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. In the morning, the",
]


@contextlib.contextmanager
def captured_stderr():
    """Captures the C library's stderr (llama.cpp logs there) into a string list."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def load_llama(path: str, n_ctx: int, threads: int, logits_all: bool):
    """(model, None) or (None, the loader's error lines)."""
    from llama_cpp import Llama

    with captured_stderr() as log:
        try:
            llm = Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=logits_all,
                verbose=True,
                seed=0,
            )
            err = None
        except Exception as e:  # llama-cpp-python raises ValueError on a refused file
            llm, err = None, str(e)
    if llm is None:
        lines = [
            ln
            for ln in log[0].splitlines()
            if "error" in ln.lower() or "fail" in ln.lower() or "wrong" in ln.lower()
        ]
        return None, [err] + lines[-6:]
    return llm, None


def ours(engine: str, path: str, n: int) -> list[dict]:
    res = subprocess.run(
        [engine, "greedy", path, str(n), *PROMPTS],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"our engine failed on {path}: {res.stderr.strip()}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def llama_greedy(llm, prompt_tokens: list[int], n: int) -> list[int]:
    llm.reset()
    llm.eval(prompt_tokens)
    out: list[int] = []
    for _ in range(n):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(t)
        llm.eval([t])
    return out


def teacher_forced_argmax(llm, prompt_tokens: list[int], ours_tokens: list[int]) -> list[int]:
    """llama.cpp's arg-max after the prompt and after each of our tokens but the last."""
    llm.reset()
    seq = prompt_tokens + ours_tokens[:-1]
    llm.eval(seq)
    start = len(prompt_tokens) - 1
    return [int(np.argmax(llm.scores[start + i])) for i in range(len(ours_tokens))]


def check(path: str, engine: str, n: int, threads: int) -> dict:
    rec: dict = {"file": path, "size_bytes": os.path.getsize(path)}
    llm, err = load_llama(path, n_ctx=512, threads=threads, logits_all=True)
    rec["llamacpp_loads"] = llm is not None
    if llm is None:
        rec["llamacpp_error"] = err
        return rec
    rec["n_params_llamacpp"] = llm.n_params() if hasattr(llm, "n_params") else None
    rec["prompts"] = []
    total = agree = 0
    for r in ours(engine, path, n):
        p = r["prompt"]
        lt = llm.tokenize(p.encode("utf-8"), add_bos=False, special=True)
        greedy = llama_greedy(llm, r["prompt_tokens"], n)
        forced = teacher_forced_argmax(llm, r["prompt_tokens"], r["tokens"])
        div = next((i for i, (a, b) in enumerate(zip(greedy, r["tokens"])) if a != b), None)
        ok = sum(int(a == b) for a, b in zip(forced, r["tokens"]))
        total += len(forced)
        agree += ok
        rec["prompts"].append(
            {
                "prompt": p,
                "tokenization_equal": lt == r["prompt_tokens"],
                "ours": r["tokens"],
                "ours_text": r["text"],
                "llamacpp": greedy,
                "llamacpp_text": llm.detokenize(greedy).decode("utf-8", "replace"),
                "first_divergence": div,
                "our_margin_at_divergence": None if div is None else r["margins"][div],
                "teacher_forced_agreement": f"{ok}/{len(forced)}",
            }
        )
    rec["top_token_agreement"] = f"{agree}/{total}"
    with captured_stderr():
        del llm
    return rec


def last_argmax(llm) -> int:
    """Arg-max of the last evaluated token's logits (without `logits_all` llama-cpp-python
    keeps no copy; read llama.cpp's buffer directly)."""
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
    return int(np.argmax(logits))


def bench(path: str, runs: int, prompt_len: int, decode: int) -> dict:
    rec: dict = {"file": path, "prompt_tokens": prompt_len, "decode_tokens": decode, "runs": runs}
    rec["loadavg_before"] = os.getloadavg()
    for threads in (1, 2):
        llm, err = load_llama(path, n_ctx=prompt_len + decode + 8, threads=threads, logits_all=False)
        if llm is None:
            rec["error"] = err
            return rec
        # A deterministic prompt: token ids of a repeated text, cut to prompt_len.
        text = " ".join(["The edge server schedules each query to the device or the cloud."] * 64)
        ids = llm.tokenize(text.encode(), add_bos=False, special=False)[:prompt_len]
        assert len(ids) == prompt_len, len(ids)
        pp, tg = [], []
        for _ in range(runs + 1):  # the first run warms up caches and is dropped
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(ids)
            t1 = time.perf_counter()
            tok = last_argmax(llm)
            t2 = time.perf_counter()
            for _ in range(decode):
                llm.eval([tok])
                tok = last_argmax(llm)
            t3 = time.perf_counter()
            pp.append(prompt_len / (t1 - t0))
            tg.append(decode / (t3 - t2))
        rec[f"threads_{threads}"] = {
            "prefill_tok_s_median": statistics.median(pp[1:]),
            "decode_tok_s_median": statistics.median(tg[1:]),
            "prefill_tok_s_all": pp[1:],
            "decode_tok_s_all": tg[1:],
        }
        with captured_stderr():
            del llm
    rec["loadavg_after"] = os.getloadavg()
    return rec


def default_engine() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path(__file__).resolve().parents[3] / "target")
    return str(Path(target) / "release" / "examples" / "llama_compat")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="GGUF files or globs to check")
    ap.add_argument("--engine", default=default_engine(), help="the llama_compat example binary")
    ap.add_argument("--n-tokens", type=int, default=16, help="greedy tokens per prompt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", metavar="FILE", help="measure llama.cpp's speed on FILE instead")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json-out", help="write the results here")
    a = ap.parse_args()

    if a.bench:
        res = bench(a.bench, a.runs, 512, 128)
        la = res["loadavg_before"]
        print(f"llama.cpp on {a.bench} (load average before {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f})")
        for t in (1, 2):
            r = res.get(f"threads_{t}")
            if r:
                print(
                    f"  {t} thread(s): prefill {r['prefill_tok_s_median']:.0f} tok/s (512 tokens), "
                    f"decode {r['decode_tok_s_median']:.0f} tok/s (128 tokens), median of {a.runs}"
                )
        results = res
    else:
        files = sorted({f for pat in a.files for f in (glob.glob(pat) or [pat])})
        if not files:
            ap.error("no GGUF files given")
        if not os.access(a.engine, os.X_OK):
            ap.error(f"engine binary {a.engine} not found: cargo build --release -p edgewise-ecld --example llama_compat")
        results = []
        for f in files:
            rec = check(f, a.engine, a.n_tokens, a.threads)
            results.append(rec)
            name = Path(f).name
            if not rec["llamacpp_loads"]:
                print(f"{name}: llama.cpp REFUSES it: {' | '.join(x for x in rec['llamacpp_error'] if x)}")
                continue
            toks = all(p["tokenization_equal"] for p in rec["prompts"])
            divs = [p["first_divergence"] for p in rec["prompts"]]
            print(
                f"{name}: loads; tokenisation {'identical' if toks else 'DIFFERS'}; "
                f"teacher-forced top-token agreement {rec['top_token_agreement']}; "
                f"first greedy divergence per prompt {divs}"
            )
            for p in rec["prompts"]:
                if p["first_divergence"] is not None:
                    print(
                        f"    diverges at token {p['first_divergence']} (our top-2 margin there "
                        f"{p['our_margin_at_divergence']:.3f}): ours {p['ours_text']!r} vs "
                        f"llama.cpp {p['llamacpp_text']!r}"
                    )
    if a.json_out:
        tmp = a.json_out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(results, fh, indent=1)
        os.replace(tmp, a.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
