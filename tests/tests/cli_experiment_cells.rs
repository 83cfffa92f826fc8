//! CLI tests of `edgewise experiment` as cells: a run split into shards and merged gives
//! the same results and byte-identical policies as the single run; a merge refuses a
//! missing cell and a cell of another plan, naming it and the command that re-runs it;
//! a cell that crashes is re-run and the result is unchanged.
//!
//! All on the tiny plan (`edgewise_tests::experiment::TINY`, 4 cells).

use std::process::Command;

use edgewise_tests::cli::{edgewise_bin, stderr, stdout};
use edgewise_tests::experiment::{
    TINY, TINY_CELLS as CELLS, assert_same_experiment, experiment, files, ok, scratch,
};
use serde_json::Value;

/// The single run (two processes at a time) and the same plan as two shards plus a
/// merge must agree; then the merge's refusals, and the re-run it suggests.
#[test]
fn shards_and_merge_equal_the_single_run() {
    let dir = scratch("experiment-cells");
    let (single, sharded, other) = (dir.join("single"), dir.join("sharded"), dir.join("other"));

    let listed = Command::new(edgewise_bin())
        .arg("experiment")
        .args(TINY)
        .arg("--list-cells")
        .output()
        .unwrap();
    ok(&listed);
    let lines: Vec<Value> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, CELLS);
    let hash = lines[0]["plan_hash"].as_str().unwrap();
    assert!(
        lines
            .iter()
            .all(|l| l["plan_hash"] == hash && l["env_steps"] == 1024)
    );

    ok(&experiment(&single, &["--jobs", "2"], &[]));
    let o = experiment(&sharded, &["--shard", "0/2"], &[]);
    ok(&o);
    assert!(
        stdout(&o).contains("ppo-n10-s1, ppo-n10-s2"),
        "{}",
        stdout(&o)
    );
    ok(&experiment(&sharded, &["--shard", "1/2"], &[]));
    assert!(
        !sharded.join("report.md").exists(),
        "shards write cells only"
    );
    ok(&experiment(&sharded, &["--merge"], &[]));

    assert_same_experiment(&single, &sharded);
    let policies = files(&single, "policies");
    assert_eq!(policies.len(), CELLS.len());
    for id in CELLS {
        assert_eq!(
            std::fs::read(single.join("cells").join(id).join("policy.json")).unwrap(),
            policies[&format!("{id}.json")]
        );
    }
    for f in [
        "report.md",
        "latency_by_population.png",
        "learning_curves_n10.png",
    ] {
        assert!(sharded.join(f).exists(), "{f}");
    }

    // A cell already there for this plan is kept, not retrained.
    let cell_json = sharded.join("cells/ppo-n10-s1/cell.json");
    let before = std::fs::read(&cell_json).unwrap();
    let o = experiment(&sharded, &["--cell", "ppo-n10-s1"], &[]);
    ok(&o);
    assert!(stdout(&o).contains("kept"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&cell_json).unwrap(), before);

    // A cell of another plan (other steps) is refused by name.
    let other_plan = ["--steps", "512", "--cell", "wm-ppo-n10-s1"];
    let o = Command::new(edgewise_bin())
        .arg("experiment")
        .args(&TINY[..4])
        .args(&TINY[6..])
        .args(other_plan)
        .arg("--out")
        .arg(&other)
        .output()
        .unwrap();
    ok(&o);
    let target = sharded.join("cells/wm-ppo-n10-s1");
    std::fs::remove_dir_all(&target).unwrap();
    std::fs::rename(other.join("cells/wm-ppo-n10-s1"), &target).unwrap();
    // A missing cell is named with the command that re-runs it.
    std::fs::remove_dir_all(sharded.join("cells/ppo-n10-s2")).unwrap();
    let o = experiment(&sharded, &["--merge", "--force"], &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("2 of 4 cells are not ready"), "{err}");
    assert!(
        err.contains("cell wm-ppo-n10-s1 in") && err.contains("another plan"),
        "{err}"
    );
    assert!(
        err.contains("cell ppo-n10-s2 is missing") && err.contains("--cell ppo-n10-s2 --out"),
        "{err}"
    );

    // Re-running the two cells as the message says restores the same results.
    for id in ["wm-ppo-n10-s1", "ppo-n10-s2"] {
        let o = experiment(&sharded, &["--cell", id], &[]);
        ok(&o);
    }
    ok(&experiment(&sharded, &["--merge", "--force"], &[]));
    assert_same_experiment(&single, &sharded);
    std::fs::remove_dir_all(&dir).ok();
}

/// A cell process that crashes leaves no cell behind; the run says which cell failed and
/// how to re-run it, and re-running the experiment trains only that cell.
#[test]
fn a_crashed_cell_is_rerun_and_changes_nothing() {
    let dir = scratch("experiment-crash");
    let (out, marker) = (dir.join("out"), dir.join("crashed"));
    let crash = format!("wm-ppo-n10-s2:{}", marker.display());
    let env = [("EDGEWISE_CRASH_ONCE", crash.as_str())];
    let o = experiment(&out, &["--jobs", "2"], &env);
    assert!(!o.status.success(), "the crash must fail the run");
    assert!(marker.exists());
    let err = stderr(&o);
    assert!(
        err.contains("1 of 4 cells failed") && err.contains("--cell wm-ppo-n10-s2 --out"),
        "{err}"
    );
    assert!(!out.join("cells/wm-ppo-n10-s2").exists());
    assert!(!out.join("report.md").exists());

    let o = experiment(&out, &[], &env);
    ok(&o);
    assert!(
        stdout(&o).contains("3 of 4 cells already done"),
        "{}",
        stdout(&o)
    );
    let leftovers: Vec<String> = std::fs::read_dir(out.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let reference = dir.join("reference");
    ok(&experiment(&reference, &[], &[]));
    assert_same_experiment(&reference, &out);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_cell_and_shard_arguments_are_named() {
    let dir = scratch("experiment-bad-args");
    let o = experiment(&dir, &["--cell", "ppo-n50-s1"], &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no cell \"ppo-n50-s1\"") && err.contains("ppo-n10-s1"),
        "{err}"
    );
    let o = experiment(&dir, &["--shard", "2/2"], &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("expected I/N"), "{}", stderr(&o));
    let o = experiment(&dir, &["--merge"], &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("4 of 4 cells are not ready"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}
