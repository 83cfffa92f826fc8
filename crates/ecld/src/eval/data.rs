//! The evaluation data sets: JSONL files whose first line is a header naming the set, the
//! registry packages the items were generated from (with versions and licences), the
//! generator script and its seed. `crates/ecld/data/make_eval_data.py` writes them;
//! `crates/ecld/data/eval/` holds the committed copies.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use edgewise_llm::error::{Error, Result};

/// The header tag every data file starts with.
pub const DATA_FORMAT: &str = "edgewise-eval-data";
/// The data format version this build reads.
pub const DATA_VERSION: u32 = 1;

/// One registry package a set was generated from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// Package name.
    pub package: String,
    /// Exact version used.
    pub version: String,
    /// Licence of the package and of the data it ships.
    pub licence: String,
}

/// The first line of a data file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataHeader {
    /// Always [`DATA_FORMAT`].
    pub format: String,
    /// Always [`DATA_VERSION`].
    pub version: u32,
    /// `facts`, `mc`, `prose` or `calibration`.
    pub set: String,
    /// What the set is.
    pub description: String,
    /// The script that generated it.
    pub generator: String,
    /// The generator's seed.
    pub seed: u64,
    /// Where the facts and text come from.
    pub sources: Vec<DataSource>,
}

/// A short factual question with known answers (hallucination rate).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactItem {
    /// Unique id.
    pub id: String,
    /// Task family (`capital`, `atomic-number`, `element-from-number`, `chemical-symbol`,
    /// `capital-country`).
    pub family: String,
    /// The question.
    pub question: String,
    /// Accepted answers (any one, as whole words, after normalisation).
    pub answers: Vec<String>,
}

/// A multiple-choice item (generalization accuracy).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McItem {
    /// Unique id.
    pub id: String,
    /// Task family (`continent`, `currency`, `element-symbol`, `element-name`,
    /// `element-period`, `element-block`, `neighbour`).
    pub family: String,
    /// The question.
    pub question: String,
    /// The options.
    pub options: Vec<String>,
    /// Index of the correct option.
    pub answer: usize,
}

/// A held-out prose passage (perplexity) or a calibration text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextItem {
    /// Unique id.
    pub id: String,
    /// Family (calibration sets name one; prose passages need not).
    #[serde(default)]
    pub family: Option<String>,
    /// The text.
    pub text: String,
}

/// Items that can be checked after parsing.
pub trait Item {
    /// The item's id.
    fn id(&self) -> &str;
    /// The task family used to spread a subset over families.
    fn family(&self) -> &str;
    /// A description of what is wrong, if anything.
    fn problem(&self) -> Option<String>;
}

impl Item for FactItem {
    fn id(&self) -> &str {
        &self.id
    }
    fn family(&self) -> &str {
        &self.family
    }
    fn problem(&self) -> Option<String> {
        if self.question.trim().is_empty() {
            return Some("`question` is empty".into());
        }
        if self.answers.is_empty()
            || self
                .answers
                .iter()
                .any(|a| super::metrics::normalise(a).is_empty())
        {
            return Some("`answers` must list at least one non-empty answer".into());
        }
        None
    }
}

impl Item for McItem {
    fn id(&self) -> &str {
        &self.id
    }
    fn family(&self) -> &str {
        &self.family
    }
    fn problem(&self) -> Option<String> {
        if self.options.len() < 2 {
            return Some(format!(
                "`options` has {} entries, expected at least 2",
                self.options.len()
            ));
        }
        if self.answer >= self.options.len() {
            return Some(format!(
                "`answer` is {}, expected an index below {}",
                self.answer,
                self.options.len()
            ));
        }
        if self.options.iter().any(|o| o.trim().is_empty()) {
            return Some("an option is empty".into());
        }
        // Two equal options cannot both be wrong and right.
        for (i, o) in self.options.iter().enumerate() {
            if self.options[..i].contains(o) {
                return Some(format!("option {o:?} appears twice"));
            }
        }
        None
    }
}

impl Item for TextItem {
    fn id(&self) -> &str {
        &self.id
    }
    fn family(&self) -> &str {
        self.family.as_deref().unwrap_or("")
    }
    fn problem(&self) -> Option<String> {
        self.text
            .trim()
            .is_empty()
            .then(|| "`text` is empty".to_owned())
    }
}

/// One parsed data file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSet<T> {
    /// Its header.
    pub header: DataHeader,
    /// Its items, in file order.
    pub items: Vec<T>,
}

impl<T: Item + DeserializeOwned + Clone> DataSet<T> {
    /// Parses JSONL `text` named `file`, expecting the header's `set` to be `set`.
    ///
    /// # Errors
    /// [`Error::EvalData`] naming the file, the line and what was expected.
    pub fn parse(text: &str, file: &str, set: &str) -> Result<Self> {
        let err = |detail: String| Error::EvalData {
            file: file.to_owned(),
            detail,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, first) = lines
            .next()
            .ok_or_else(|| err("the file is empty, expected a header line".into()))?;
        let header: DataHeader = serde_json::from_str(first)
            .map_err(|e| err(format!("line 1: not a data header ({e})")))?;
        if header.format != DATA_FORMAT {
            return Err(err(format!(
                "line 1: `format` is {:?}, expected {DATA_FORMAT:?}",
                header.format
            )));
        }
        if header.version != DATA_VERSION {
            return Err(err(format!(
                "line 1: `version` is {}, this build reads version {DATA_VERSION}",
                header.version
            )));
        }
        if header.set != set {
            return Err(err(format!(
                "line 1: `set` is {:?}, expected {set:?}",
                header.set
            )));
        }
        let mut items: Vec<T> = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (i, line) in lines {
            let item: T =
                serde_json::from_str(line).map_err(|e| err(format!("line {}: {e}", i + 1)))?;
            if let Some(p) = item.problem() {
                return Err(err(format!("line {} (id {:?}): {p}", i + 1, item.id())));
            }
            if !ids.insert(item.id().to_owned()) {
                return Err(err(format!(
                    "line {}: id {:?} appears twice",
                    i + 1,
                    item.id()
                )));
            }
            items.push(item);
        }
        if items.is_empty() {
            return Err(err("no items after the header".into()));
        }
        Ok(Self { header, items })
    }

    /// At most `limit` items, taken round-robin over the families in order of first
    /// appearance (so a small subset still covers every family); all items for `None`.
    #[must_use]
    pub fn subset(&self, limit: Option<usize>) -> Vec<T> {
        let Some(limit) = limit else {
            return self.items.clone();
        };
        let mut families: Vec<(&str, Vec<&T>)> = Vec::new();
        for it in &self.items {
            match families.iter_mut().find(|(f, _)| *f == it.family()) {
                Some((_, v)) => v.push(it),
                None => families.push((it.family(), vec![it])),
            }
        }
        let mut out = Vec::with_capacity(limit.min(self.items.len()));
        let mut round = 0;
        while out.len() < limit {
            let mut any = false;
            for (_, v) in &families {
                if let Some(it) = v.get(round) {
                    any = true;
                    if out.len() < limit {
                        out.push((*it).clone());
                    }
                }
            }
            if !any {
                break;
            }
            round += 1;
        }
        out
    }
}

/// The three evaluation sets (the calibration set is loaded on its own).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalData {
    /// Factual questions.
    pub facts: DataSet<FactItem>,
    /// Multiple-choice items.
    pub mc: DataSet<McItem>,
    /// Held-out prose.
    pub prose: DataSet<TextItem>,
}

/// File names inside a data folder.
pub const FACTS_FILE: &str = "facts.jsonl";
/// Multiple-choice file name.
pub const MC_FILE: &str = "mc.jsonl";
/// Prose file name.
pub const PROSE_FILE: &str = "prose.jsonl";
/// Calibration file name.
pub const CALIBRATION_FILE: &str = "calibration.jsonl";

/// The committed data folder of this crate (`crates/ecld/data/eval`), when run from a build
/// of the repository.
#[must_use]
pub fn committed_data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/eval")
}

#[cfg(not(target_arch = "wasm32"))]
fn read(dir: &std::path::Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| Error::io(path, e))
}

#[cfg(not(target_arch = "wasm32"))]
impl EvalData {
    /// Loads `facts.jsonl`, `mc.jsonl` and `prose.jsonl` from `dir`.
    ///
    /// # Errors
    /// I/O errors naming the file, [`Error::EvalData`] for malformed content.
    pub fn load_dir(dir: &std::path::Path) -> Result<Self> {
        let name = |f: &str| dir.join(f).display().to_string();
        Ok(Self {
            facts: DataSet::parse(&read(dir, FACTS_FILE)?, &name(FACTS_FILE), "facts")?,
            mc: DataSet::parse(&read(dir, MC_FILE)?, &name(MC_FILE), "mc")?,
            prose: DataSet::parse(&read(dir, PROSE_FILE)?, &name(PROSE_FILE), "prose")?,
        })
    }
}

/// Loads the calibration texts from `dir`.
///
/// # Errors
/// As [`EvalData::load_dir`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load_calibration(dir: &std::path::Path) -> Result<DataSet<TextItem>> {
    DataSet::parse(
        &read(dir, CALIBRATION_FILE)?,
        &dir.join(CALIBRATION_FILE).display().to_string(),
        "calibration",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"{"format":"edgewise-eval-data","version":1,"set":"mc","description":"d","generator":"g","seed":1,"sources":[{"package":"p","version":"1","licence":"MIT"}]}"#;

    fn mc(lines: &[&str]) -> Result<DataSet<McItem>> {
        let text = std::iter::once(HEAD)
            .chain(lines.iter().copied())
            .collect::<Vec<_>>()
            .join("\n");
        DataSet::parse(&text, "t.jsonl", "mc")
    }

    #[test]
    fn parses_and_rejects_with_line_numbers() {
        let ok = r#"{"id":"a","family":"f","question":"q","options":["x","y"],"answer":1}"#;
        let d = mc(&[ok]).unwrap();
        assert_eq!(d.items[0].answer, 1);
        assert_eq!(d.header.sources[0].licence, "MIT");
        let bad = r#"{"id":"b","family":"f","question":"q","options":["x","y"],"answer":2}"#;
        let e = mc(&[ok, bad]).unwrap_err().to_string();
        assert!(
            e.contains("t.jsonl") && e.contains("line 3") && e.contains("answer"),
            "{e}"
        );
        let e = mc(&[ok, ok]).unwrap_err().to_string();
        assert!(e.contains("id \"a\" appears twice"), "{e}");
        let dup = r#"{"id":"c","family":"f","question":"q","options":["x","x"],"answer":0}"#;
        let e = mc(&[dup]).unwrap_err().to_string();
        assert!(e.contains("option \"x\" appears twice"), "{e}");
        let e = mc(&[r#"{"id":"a"}"#]).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = DataSet::<McItem>::parse(HEAD, "t.jsonl", "facts")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected \"facts\""), "{e}");
        assert!(mc(&[]).unwrap_err().to_string().contains("no items"));
    }

    #[test]
    fn subset_spreads_over_families() {
        let lines: Vec<String> = (0..6)
            .map(|i| {
                let fam = if i < 4 { "a" } else { "b" };
                format!(
                    r#"{{"id":"{i}","family":"{fam}","question":"q","options":["x","y"],"answer":0}}"#
                )
            })
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let d = mc(&refs).unwrap();
        let s: Vec<String> = d.subset(Some(3)).into_iter().map(|i| i.id).collect();
        assert_eq!(s, ["0", "4", "1"]);
        assert_eq!(d.subset(Some(100)).len(), 6);
        assert_eq!(d.subset(None).len(), 6);
    }

    #[test]
    fn committed_data_loads() {
        let dir = committed_data_dir();
        let d = EvalData::load_dir(&dir).unwrap();
        let cal = load_calibration(&dir).unwrap();
        // Sizes that can resolve a few points of accuracy (issue 13: ±0.14 on 48 items).
        assert!(d.mc.items.len() >= 1000, "{} MC items", d.mc.items.len());
        assert!(d.facts.items.len() >= 600, "{} facts", d.facts.items.len());
        assert!(
            d.prose.items.len() >= 100,
            "{} prose passages",
            d.prose.items.len()
        );
        for (set, ids) in [
            ("mc", d.mc.items.iter().map(|i| &i.id).collect::<Vec<_>>()),
            ("facts", d.facts.items.iter().map(|i| &i.id).collect()),
            ("prose", d.prose.items.iter().map(|i| &i.id).collect()),
            ("calibration", cal.items.iter().map(|i| &i.id).collect()),
        ] {
            let unique: std::collections::HashSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "duplicate ids in {set}");
        }
        for m in &d.mc.items {
            let distinct: std::collections::HashSet<_> = m.options.iter().collect();
            assert_eq!(distinct.len(), 4, "{}: {:?}", m.id, m.options);
            assert!(m.answer < 4, "{}", m.id);
        }
        // A reply that echoes the question must not count as correct.
        for f in &d.facts.items {
            assert!(
                !crate::eval::metrics::contains_answer(&f.question, &f.answers),
                "{}: the question contains its answer",
                f.id
            );
        }
        // The families the generator writes, each with enough items to be reported on.
        let families = |fams: Vec<&str>| {
            let mut out: Vec<(String, usize)> = Vec::new();
            for f in fams {
                match out.iter_mut().find(|(g, _)| g == f) {
                    Some((_, n)) => *n += 1,
                    None => out.push((f.to_owned(), 1)),
                }
            }
            out
        };
        let mc = families(d.mc.items.iter().map(|i| i.family.as_str()).collect());
        let facts = families(d.facts.items.iter().map(|i| i.family.as_str()).collect());
        let names = |v: &[(String, usize)]| v.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&mc),
            [
                "continent",
                "currency",
                "element-symbol",
                "element-name",
                "element-period",
                "element-block",
                "neighbour"
            ]
        );
        assert_eq!(
            names(&facts),
            [
                "capital",
                "atomic-number",
                "element-from-number",
                "chemical-symbol",
                "capital-country"
            ]
        );
        for (f, n) in mc.iter().chain(&facts) {
            assert!(*n >= 50, "family {f} has only {n} items");
        }
        // Calibration (which also supplies the distillation prompts) shares no family with
        // the evaluation.
        for c in &cal.items {
            assert!(
                !c.family().is_empty(),
                "{}: calibration item without family",
                c.id
            );
            assert!(
                !mc.iter().chain(&facts).any(|(f, _)| f == c.family()),
                "{}: family {} is also evaluated",
                c.id,
                c.family()
            );
        }
    }
}
