//! The module-import check: within one crate, no file imports another that imports it back.
//!
//! A two-way import between files means neither can be read (or moved) without the other:
//! one concept split in two, or two concepts tangled. The check is textual, which is enough
//! for this code base's style: it reads every `crate::a::b` path (also inside
//! `use crate::{a, b::c}` groups) outside comments and outside the trailing
//! `#[cfg(test)] mod tests`, resolves each to the longest module path that is a file of the
//! crate, and reports every pair of files that name each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`"a::b"`, `""` for the crate root) → the files it names.
pub type ImportGraph = BTreeMap<String, BTreeSet<String>>;

/// The module path of a file relative to its crate's `src/` (`a/b.rs` and `a/b/mod.rs`
/// are `a::b`; `lib.rs` and `main.rs` are the root, `""`).
#[must_use]
pub fn module_path(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file that counts: without comment lines and without the unit-test module
/// that conventionally ends a file.
fn code_of(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(i) => &source[..i],
        None => source,
    };
    source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths after `crate::` in `code`: `a::b::C` as `["a", "b", "C"]`; a group
/// `crate::{a::x, b}` gives one path per member (nested groups keep their prefix only).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i].chars().next_back().is_some_and(is_ident);
        rest = &rest[i + "crate::".len()..];
        if preceded_by_ident {
            continue; // `edgewise_crate::…` is another crate
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                out.push(path_segments(member.trim()));
            }
        } else {
            out.push(path_segments(rest));
        }
    }
    out
}

fn path_segments(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        segs.push(rest[..len].to_owned());
        match rest[len..].strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    segs
}

/// The import graph of one crate from `(module path, source)` pairs.
#[must_use]
pub fn import_graph<'a>(files: impl IntoIterator<Item = (String, &'a str)>) -> ImportGraph {
    let files: Vec<(String, &str)> = files.into_iter().collect();
    let modules: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    let mut graph = ImportGraph::new();
    for (module, source) in &files {
        let mut named = BTreeSet::new();
        for path in crate_paths(&code_of(source)) {
            let target = (1..=path.len())
                .rev()
                .map(|k| path[..k].join("::"))
                .find(|p| modules.contains(p.as_str()));
            if let Some(t) = target.filter(|t| t != module) {
                named.insert(t);
            }
        }
        graph.insert(module.clone(), named);
    }
    graph
}

/// Every pair of modules that import each other, each pair once, sorted.
#[must_use]
pub fn two_way_imports(graph: &ImportGraph) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (a, named) in graph {
        for b in named {
            if a < b && graph.get(b).is_some_and(|back| back.contains(a)) {
                pairs.push((a.clone(), b.clone()));
            }
        }
    }
    pairs
}

/// The `.rs` files under `src`, as (module path, file), leaving out `src/bin/` (each
/// binary there is a crate of its own).
///
/// # Panics
/// When the directory cannot be read.
#[must_use]
pub fn crate_files(src: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src");
                out.push((module_path(rel), path));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> ImportGraph {
        import_graph(files.iter().map(|(m, s)| ((*m).to_owned(), *s)))
    }

    #[test]
    fn module_paths_follow_rust_s_rules() {
        assert_eq!(module_path(Path::new("lib.rs")), "");
        assert_eq!(module_path(Path::new("ppo.rs")), "ppo");
        assert_eq!(module_path(Path::new("eval/mod.rs")), "eval");
        assert_eq!(module_path(Path::new("eval/stats.rs")), "eval::stats");
    }

    #[test]
    fn finds_a_two_way_import_in_use_lines_groups_and_paths() {
        let g = graph(&[
            ("a", "use crate::b::Thing;\n"),
            ("b", "fn f() { crate::a::helper(); }\n"),
            ("c", "use crate::{d::X, a};\n"),
            ("d", "pub struct X;\n"),
        ]);
        assert_eq!(two_way_imports(&g), [("a".to_owned(), "b".to_owned())]);
        assert_eq!(g["c"], ["a", "d"].map(str::to_owned).into());
    }

    #[test]
    fn doc_links_tests_and_other_crates_do_not_count() {
        let g = graph(&[
            ("a", "use crate::b::Thing;\n"),
            (
                "b",
                "//! See [`crate::a`].\nuse edgewise_crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::a::helper;\n}\n",
            ),
        ]);
        assert!(two_way_imports(&g).is_empty(), "{g:?}");
    }

    #[test]
    fn resolves_to_the_longest_module_that_is_a_file() {
        let g = graph(&[
            ("eval", "pub mod stats;\n"),
            ("eval::stats", "use crate::ppo::Config;\n"),
            ("ppo", "use crate::eval::stats::mean;\n"),
        ]);
        assert_eq!(
            two_way_imports(&g),
            [("eval::stats".to_owned(), "ppo".to_owned())]
        );
    }
}
