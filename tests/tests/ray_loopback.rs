//! The Ray driver (`scale/ray_driver.py`) end to end on a one-machine Ray cluster bound
//! to 127.0.0.1: the tiny plan submitted with `ray job submit`, one cell made to crash
//! once; Ray must retry it, and the merged experiment must equal the sequential run.
//!
//! Needs Ray in a virtual environment named by `EDGEWISE_RAY_VENV`; `cargo xtask test`
//! (step `ray`) creates it outside the clone and runs this test. The cluster is always
//! stopped, also when an assertion fails: it is started as `ray start --head --block`,
//! whose SIGTERM stops every process it started (and nothing else on the machine, unlike
//! `ray stop`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgewise_tests::cli::{edgewise_bin, stderr, stdout};
use edgewise_tests::experiment::{TINY, assert_same_experiment, experiment, ok, scratch};
use serde_json::Value;

/// Ports away from Ray's defaults, so a developer's own cluster is left alone.
const GCS_PORT: u16 = 6390;
const DASHBOARD_PORT: u16 = 8275;
const CLIENT_PORT: u16 = 9921;
const AGENT_PORT: u16 = 52375;
/// Keep Ray on loopback (it maps 127.0.0.1 to the interface address otherwise) and
/// send no usage statistics.
const RAY_ENV: [(&str, &str); 2] = [
    ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"),
    ("RAY_USAGE_STATS_ENABLED", "0"),
];
const CRASHING_CELL: &str = "wm-ppo-s2";

/// A running single-node cluster; stopped when dropped.
struct Cluster {
    head: Child,
    log: PathBuf,
}

impl Cluster {
    fn start(venv: &Path, dir: &Path) -> Self {
        let log = dir.join("ray-head.log");
        let file = std::fs::File::create(&log).unwrap();
        let head = ray_command(venv)
            .args([
                "start",
                "--head",
                "--block",
                "--num-cpus=2",
                "--node-ip-address=127.0.0.1",
                "--dashboard-host=127.0.0.1",
                "--disable-usage-stats",
                "--include-dashboard=true",
            ])
            .arg(format!("--port={GCS_PORT}"))
            .arg(format!("--dashboard-port={DASHBOARD_PORT}"))
            .arg(format!("--ray-client-server-port={CLIENT_PORT}"))
            .arg(format!("--dashboard-agent-listen-port={AGENT_PORT}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start ray");
        let mut cluster = Self { head, log };
        cluster.wait_ready(Duration::from_secs(180));
        cluster
    }

    /// Wait until the dashboard (which takes job submissions) answers.
    fn wait_ready(&mut self, limit: Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.head.try_wait().unwrap() {
                panic!(
                    "ray start exited early ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if dashboard_answers() {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "the Ray dashboard did not answer within {limit:?}:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn stop(&mut self) {
        if self.head.try_wait().ok().flatten().is_some() {
            return;
        }
        // `ray start --block` stops the processes it started on SIGTERM.
        let _ = Command::new("kill")
            .args(["-TERM", &self.head.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if self.head.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "ray start --block (pid {}) did not stop within 60 s; killing it",
            self.head.id()
        );
        let _ = self.head.kill();
        let _ = self.head.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ray` from the virtual environment, with the environment's `bin` first on PATH (the
/// job's entry point runs `python` from there) and Ray kept on loopback.
fn ray_command(venv: &Path) -> Command {
    let bin = venv.join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let mut cmd = Command::new(bin.join("ray"));
    cmd.env("PATH", std::env::join_paths(paths).unwrap())
        .env("VIRTUAL_ENV", venv)
        .envs(RAY_ENV);
    cmd
}

/// Run a command to completion, killing it (and failing) after `limit`.
fn output_within(cmd: &mut Command, dir: &Path, limit: Duration) -> Output {
    let (out_path, err_path) = (dir.join("job.stdout"), dir.join("job.stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start the command");
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

fn dashboard_answers() -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", DASHBOARD_PORT)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /api/version HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")
}

#[test]
#[ignore = "needs Ray: `cargo xtask test` runs it (step `ray`) with EDGEWISE_RAY_VENV set"]
fn ray_retries_a_crashed_cell_and_matches_the_sequential_run() {
    let venv = PathBuf::from(
        std::env::var_os("EDGEWISE_RAY_VENV")
            .expect("EDGEWISE_RAY_VENV must name the virtual environment with Ray"),
    );
    let dir = scratch("ray-loopback");
    let (sequential, distributed) = (dir.join("sequential"), dir.join("ray"));
    let marker = dir.join("crashed");
    ok(&experiment(&sequential, &[], &[]));

    let driver_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scale");
    let mut cluster = Cluster::start(&venv, &dir);
    let mut submit = ray_command(&venv);
    submit
        .args(["job", "submit"])
        .arg(format!("--address=http://127.0.0.1:{DASHBOARD_PORT}"))
        .arg("--working-dir")
        .arg(&driver_dir)
        // One machine: the binary is at the same path for every task. (--ship-binary
        // would put the ~0.5 GB debug build into the object store.)
        .args(["--", "python", "ray_driver.py", "--binary"])
        .arg(edgewise_bin())
        .arg("--out")
        .arg(&distributed)
        .arg("--crash-once")
        .arg(format!("{CRASHING_CELL}:{}", marker.display()))
        .args(["--max-retries", "2", "--"])
        .args(TINY);
    let job = output_within(&mut submit, &dir, Duration::from_secs(300));
    cluster.stop();
    let (out, err) = (stdout(&job), stderr(&job));
    assert!(job.status.success(), "{out}\n{err}");
    assert!(out.contains("succeeded"), "{out}\n{err}");

    assert!(marker.exists(), "cell {CRASHING_CELL} did not crash");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(distributed.join("ray-summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["cells"][CRASHING_CELL]["attempts"],
        serde_json::json!(["FAILED", "FINISHED"]),
        "{summary:#}"
    );
    assert!(
        out.contains(&format!("retried: {CRASHING_CELL} (FAILED -> FINISHED)")),
        "{out}"
    );
    assert_same_experiment(&sequential, &distributed);
    std::fs::remove_dir_all(&dir).ok();
}
