//! The layering test: reads `cargo metadata` for the whole workspace and fails on any
//! dependency edge the architecture forbids (see `edgewise_tests::layering`).

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
