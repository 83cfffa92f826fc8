//! The architecture tests: the layering test reads `cargo metadata` for the whole workspace
//! and fails on any dependency edge the architecture forbids (see
//! `edgewise_tests::layering`); the module-import test fails when two files of one crate
//! import each other (see `edgewise_tests::module_imports`).

use std::path::Path;
use std::process::Command;

use edgewise_tests::layering::{Graph, RULES};

fn workspace_graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(root)
        .output()
        .expect("could not run `cargo metadata`");
    assert!(
        output.status.success(),
        "`cargo metadata` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("`cargo metadata` printed invalid JSON");
    Graph::from_metadata(&json).expect("unexpected `cargo metadata` output")
}

#[test]
fn workspace_respects_layering() {
    let graph = workspace_graph();
    // The rules name these packages: fail loudly if one is renamed rather than
    // silently checking nothing.
    for name in [
        "edgewise-env",
        "edgewise-mec",
        "edgewise-policy",
        "edgewise",
        "edgewise-web",
        "edgewise-llm-worker",
        "edgewise-llm",
        "edgewise-ecld",
    ] {
        assert!(
            graph.member(name).is_some(),
            "workspace member `{name}` not found"
        );
    }
    assert!(
        !graph.edges.is_empty(),
        "`cargo metadata` reported no dependency edges"
    );
    let violations = graph.check(RULES);
    assert!(
        violations.is_empty(),
        "forbidden dependencies:\n  {}",
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    use edgewise_tests::module_imports::{crate_files, import_graph, two_way_imports};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");
    let mut sources: Vec<std::path::PathBuf> = vec![
        root.join("native/src"),
        root.join("web/src"),
        root.join("tests/src"),
    ];
    for entry in std::fs::read_dir(root.join("crates")).expect("reading crates/") {
        let src = entry.expect("directory entry").path().join("src");
        if src.is_dir() {
            sources.push(src);
        }
    }
    let mut found = Vec::new();
    for src in &sources {
        let files = crate_files(src);
        assert!(!files.is_empty(), "no sources under {}", src.display());
        let texts: Vec<(String, String)> = files
            .into_iter()
            .map(|(m, p)| {
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
                (m, text)
            })
            .collect();
        let graph = import_graph(texts.iter().map(|(m, t)| (m.clone(), t.as_str())));
        for (a, b) in two_way_imports(&graph) {
            found.push(format!("{}: `{a}` and `{b}`", src.display()));
        }
    }
    assert!(
        found.is_empty(),
        "files that import each other (move what both need into one of them, or a third):\n{}",
        found.join("\n")
    );
}
