//! The layering rules of the workspace, checked on the dependency graph.
//!
//! Dependencies point one way: apps (`edgewise`, `edgewise-web`, `edgewise-llm-worker`) depend on libraries,
//! never the reverse; the simulator (`edgewise-mec`), the environment trait
//! (`edgewise-env`) and the policy-file inference (`edgewise-policy`) pull in no ML crate, not even transitively, so they stay small and
//! build for wasm32 on their own; `edgewise-rl` knows the simulator only through
//! `edgewise-env`; `edgewise-rl` and `edgewise-llm` are independent of each other; the
//! research pipeline (`edgewise-ecld`) builds on `edgewise-llm`, never the reverse, and
//! stays out of the browser app.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use serde_json::Value;

/// How a package depends on another (cargo's dependency kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Normal,
    Build,
    Dev,
}

/// One package of the resolved graph.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    /// The package directory relative to the workspace root (`crates/mec`), for
    /// workspace members; `None` for dependencies from a registry or elsewhere.
    pub workspace_dir: Option<String>,
}

impl Package {
    fn is_member(&self) -> bool {
        self.workspace_dir.is_some()
    }

    fn in_dir(&self, dir: &str) -> bool {
        self.workspace_dir
            .as_deref()
            .is_some_and(|d| d == dir || d.starts_with(&format!("{dir}/")))
    }
}

/// A resolved dependency graph: packages and the edges between them.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub packages: Vec<Package>,
    /// `(from, to, kind)` as indices into `packages`.
    pub edges: Vec<(usize, usize, DepKind)>,
}

/// The application packages: nothing under `crates/` may depend on them.
pub const APP_PACKAGES: &[&str] = &["edgewise", "edgewise-web", "edgewise-llm-worker"];

/// Packages that must stay free of ML crates (even transitively).
pub const ML_FREE_PACKAGES: &[&str] = &[
    "edgewise-mec",
    "edgewise-env",
    "edgewise-policy",
    "edgewise-rng",
];

/// Whether a crate is an ML framework (or one of its parts).
pub fn is_ml_crate(name: &str) -> bool {
    const PREFIXES: &[&str] = &["burn", "candle", "cubecl", "wgpu"];
    const EXACT: &[&str] = &["ndarray", "tch", "torch-sys"];
    PREFIXES.iter().any(|p| {
        name == *p || name.starts_with(&format!("{p}-")) || name.starts_with(&format!("{p}_"))
    }) || EXACT.contains(&name)
}

/// A layering rule: no path from a package matching `from` to one matching `to`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub why: &'static str,
    pub from: fn(&Package) -> bool,
    pub to: fn(&Package) -> bool,
    /// Whether the first hop may be a dev-dependency (later hops never are: the
    /// dev-dependencies of a dependency are not part of the build).
    pub include_dev: bool,
}

/// The rules of the workspace.
pub const RULES: &[Rule] = &[
    Rule {
        name: "libraries never depend on apps",
        why: "packages under crates/ must not depend on `edgewise`, `edgewise-web` or \
              `edgewise-llm-worker`",
        from: |p| p.in_dir("crates"),
        to: |p| p.is_member() && APP_PACKAGES.contains(&p.name.as_str()),
        include_dev: true,
    },
    Rule {
        name: "the simulator is free of ML crates",
        why: "edgewise-mec, edgewise-env, edgewise-policy and edgewise-rng must not depend (even \
              transitively) on burn, candle, cubecl, wgpu, ndarray or tch",
        from: |p| p.is_member() && ML_FREE_PACKAGES.contains(&p.name.as_str()),
        to: |p| is_ml_crate(&p.name),
        include_dev: false,
    },
    Rule {
        name: "rl does not depend on llm",
        why: "edgewise-rl and edgewise-llm are independent",
        from: |p| p.is_member() && p.name == "edgewise-rl",
        to: |p| p.is_member() && p.name == "edgewise-llm",
        include_dev: true,
    },
    Rule {
        name: "llm does not depend on rl",
        why: "edgewise-rl and edgewise-llm are independent",
        from: |p| p.is_member() && p.name == "edgewise-llm",
        to: |p| p.is_member() && p.name == "edgewise-rl",
        include_dev: true,
    },
    Rule {
        name: "the web app never depends on the pipeline crate",
        why: "edgewise-web runs models with edgewise-llm only; compression, distillation and \
              evaluation (edgewise-ecld) stay out of the browser bundle",
        from: |p| p.is_member() && (p.name == "edgewise-web" || p.name == "edgewise-llm-worker"),
        to: |p| p.is_member() && p.name == "edgewise-ecld",
        include_dev: true,
    },
    Rule {
        name: "the engine never depends on the pipeline crate",
        why: "edgewise-llm is what the browser and the CLI need to run a model; the research \
              pipeline (edgewise-ecld) builds on it, never the other way",
        from: |p| p.is_member() && p.name == "edgewise-llm",
        to: |p| p.is_member() && p.name == "edgewise-ecld",
        include_dev: true,
    },
    Rule {
        name: "rl knows the simulator only through edgewise-env",
        why: "edgewise-rl drives environments through the edgewise-env trait, not edgewise-mec",
        from: |p| p.is_member() && p.name == "edgewise-rl",
        to: |p| p.is_member() && p.name == "edgewise-mec",
        include_dev: false,
    },
];

/// A forbidden path found in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub why: &'static str,
    /// Package names from the offending package to the forbidden one.
    pub path: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.rule,
            self.path.join(" -> "),
            self.why
        )
    }
}

impl Graph {
    /// Index of the workspace member with this name.
    pub fn member(&self, name: &str) -> Option<usize> {
        self.packages
            .iter()
            .position(|p| p.is_member() && p.name == name)
    }

    /// Builds the graph from `cargo metadata --format-version 1` output.
    ///
    /// # Errors
    /// When the JSON lacks the fields cargo writes (`packages`, `resolve`, ...).
    pub fn from_metadata(metadata: &Value) -> Result<Self, String> {
        let root = metadata["workspace_root"]
            .as_str()
            .ok_or("cargo metadata: no `workspace_root`")?
            .trim_end_matches('/');
        let members: Vec<&str> = metadata["workspace_members"]
            .as_array()
            .ok_or("cargo metadata: no `workspace_members`")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut graph = Self::default();
        let mut index = HashMap::new();
        for package in metadata["packages"]
            .as_array()
            .ok_or("cargo metadata: no `packages`")?
        {
            let id = package["id"].as_str().ok_or("package without `id`")?;
            let name = package["name"].as_str().ok_or("package without `name`")?;
            let workspace_dir = if members.contains(&id) {
                let manifest = package["manifest_path"]
                    .as_str()
                    .ok_or("package without `manifest_path`")?;
                let dir = manifest
                    .strip_suffix("/Cargo.toml")
                    .ok_or_else(|| format!("unexpected manifest path {manifest}"))?;
                Some(
                    dir.strip_prefix(root)
                        .unwrap_or(dir)
                        .trim_start_matches('/')
                        .to_owned(),
                )
            } else {
                None
            };
            index.insert(id.to_owned(), graph.packages.len());
            graph.packages.push(Package {
                name: name.to_owned(),
                workspace_dir,
            });
        }
        let nodes = metadata["resolve"]["nodes"]
            .as_array()
            .ok_or("cargo metadata: no `resolve.nodes` (was --no-deps passed?)")?;
        for node in nodes {
            let from = index[node["id"].as_str().ok_or("node without `id`")?];
            for dep in node["deps"].as_array().ok_or("node without `deps`")? {
                let to = *index
                    .get(dep["pkg"].as_str().ok_or("dep without `pkg`")?)
                    .ok_or("dep on a package missing from `packages`")?;
                for kind in dep["dep_kinds"]
                    .as_array()
                    .ok_or("dep without `dep_kinds`")?
                {
                    let kind = match kind["kind"].as_str() {
                        None => DepKind::Normal,
                        Some("build") => DepKind::Build,
                        Some("dev") => DepKind::Dev,
                        Some(other) => return Err(format!("unknown dependency kind {other}")),
                    };
                    graph.edges.push((from, to, kind));
                }
            }
        }
        Ok(graph)
    }

    /// All rule violations, one (shortest) path per rule and offending package.
    pub fn check(&self, rules: &[Rule]) -> Vec<Violation> {
        let mut out = Vec::new();
        for rule in rules {
            for (start, package) in self.packages.iter().enumerate() {
                if (rule.from)(package)
                    && let Some(path) = self.find_path(start, rule.to, rule.include_dev)
                {
                    out.push(Violation {
                        rule: rule.name,
                        why: rule.why,
                        path: path
                            .into_iter()
                            .map(|i| self.packages[i].name.clone())
                            .collect(),
                    });
                }
            }
        }
        out
    }

    /// Breadth-first search for the shortest path from `start` to a matching package.
    fn find_path(
        &self,
        start: usize,
        target: fn(&Package) -> bool,
        include_dev: bool,
    ) -> Option<Vec<usize>> {
        let mut parent: Vec<Option<usize>> = vec![None; self.packages.len()];
        let mut seen = vec![false; self.packages.len()];
        seen[start] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for &(from, to, kind) in &self.edges {
                let allowed = kind != DepKind::Dev || (include_dev && node == start);
                if from != node || !allowed || seen[to] {
                    continue;
                }
                seen[to] = true;
                parent[to] = Some(node);
                if target(&self.packages[to]) {
                    let mut path = vec![to];
                    let mut at = to;
                    while let Some(p) = parent[at] {
                        path.push(p);
                        at = p;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(to);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small graph builder: `member("crates/mec", "edgewise-mec")`, `dep("x")`, edges.
    #[derive(Default)]
    struct Builder(Graph);

    impl Builder {
        fn member(mut self, dir: &str, name: &str) -> Self {
            self.0.packages.push(Package {
                name: name.into(),
                workspace_dir: Some(dir.into()),
            });
            self
        }
        fn dep(mut self, name: &str) -> Self {
            self.0.packages.push(Package {
                name: name.into(),
                workspace_dir: None,
            });
            self
        }
        fn edge(mut self, from: &str, to: &str, kind: DepKind) -> Self {
            let find = |n: &str| self.0.packages.iter().position(|p| p.name == n).unwrap();
            let edge = (find(from), find(to), kind);
            self.0.edges.push(edge);
            self
        }
    }

    fn workspace() -> Builder {
        Builder::default()
            .member("crates/env", "edgewise-env")
            .member("crates/mec", "edgewise-mec")
            .member("crates/rl", "edgewise-rl")
            .member("crates/llm", "edgewise-llm")
            .member("crates/ecld", "edgewise-ecld")
            .member("crates/xtask", "xtask")
            .member("native", "edgewise")
            .member("web", "edgewise-web")
            .dep("serde")
            .dep("burn")
            .dep("burn-core")
            .dep("candle-core")
            .dep("criterion")
            .dep("sneaky")
            .edge("edgewise-mec", "edgewise-env", DepKind::Normal)
            .edge("edgewise-mec", "serde", DepKind::Normal)
            .edge("edgewise-mec", "criterion", DepKind::Dev)
            .edge("edgewise-rl", "edgewise-env", DepKind::Normal)
            .edge("edgewise-rl", "burn", DepKind::Normal)
            .edge("burn", "burn-core", DepKind::Normal)
            .edge("edgewise-llm", "candle-core", DepKind::Normal)
            .edge("edgewise", "edgewise-mec", DepKind::Normal)
            .edge("edgewise", "edgewise-rl", DepKind::Normal)
            .edge("edgewise", "edgewise-llm", DepKind::Normal)
            .edge("edgewise-ecld", "edgewise-llm", DepKind::Normal)
            .edge("edgewise", "edgewise-ecld", DepKind::Normal)
            .edge("edgewise-web", "edgewise-mec", DepKind::Normal)
            .edge("edgewise-web", "edgewise-llm", DepKind::Normal)
    }

    fn paths(graph: &Graph) -> Vec<String> {
        graph
            .check(RULES)
            .iter()
            .map(|v| v.path.join(" -> "))
            .collect()
    }

    #[test]
    fn clean_graph_passes() {
        let graph = workspace().0;
        assert_eq!(graph.check(RULES), vec![]);
    }

    #[test]
    fn transitive_ml_dependency_of_mec_fails() {
        let graph = workspace()
            .edge("edgewise-mec", "sneaky", DepKind::Normal)
            .edge("sneaky", "burn", DepKind::Build)
            .0;
        assert_eq!(paths(&graph), ["edgewise-mec -> sneaky -> burn"]);
    }

    #[test]
    fn ml_crate_through_a_workspace_library_fails() {
        let graph = workspace()
            .edge("edgewise-env", "edgewise-llm", DepKind::Normal)
            .0;
        let found = paths(&graph);
        assert!(
            found.contains(&"edgewise-env -> edgewise-llm -> candle-core".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(
                &"edgewise-mec -> edgewise-env -> edgewise-llm -> candle-core".to_owned()
            ),
            "{found:?}"
        );
    }

    #[test]
    fn dev_dependencies_of_mec_may_be_anything() {
        let graph = workspace()
            .edge("edgewise-mec", "burn", DepKind::Dev)
            .edge("criterion", "sneaky", DepKind::Normal)
            .0;
        assert_eq!(graph.check(RULES), vec![]);
    }

    #[test]
    fn library_depending_on_app_fails_even_as_dev_dependency() {
        let graph = workspace()
            .edge("edgewise-llm", "edgewise-web", DepKind::Dev)
            .0;
        assert_eq!(paths(&graph), ["edgewise-llm -> edgewise-web"]);
    }

    #[test]
    fn web_app_never_reaches_the_pipeline_crate() {
        let graph = workspace()
            .edge("edgewise-web", "edgewise-ecld", DepKind::Dev)
            .0;
        assert_eq!(paths(&graph), ["edgewise-web -> edgewise-ecld"]);
        let graph = workspace()
            .edge("edgewise-web", "sneaky", DepKind::Normal)
            .edge("sneaky", "edgewise-ecld", DepKind::Normal)
            .0;
        assert_eq!(paths(&graph), ["edgewise-web -> sneaky -> edgewise-ecld"]);
    }

    #[test]
    fn engine_never_reaches_the_pipeline_crate() {
        let graph = workspace()
            .edge("edgewise-llm", "edgewise-ecld", DepKind::Dev)
            .0;
        let found = paths(&graph);
        assert!(
            found.contains(&"edgewise-llm -> edgewise-ecld".to_owned()),
            "{found:?}"
        );
    }

    #[test]
    fn rl_and_llm_stay_apart() {
        let graph = workspace()
            .edge("edgewise-rl", "edgewise-llm", DepKind::Normal)
            .0;
        assert_eq!(paths(&graph), ["edgewise-rl -> edgewise-llm"]);
        let graph = workspace()
            .edge("edgewise-llm", "sneaky", DepKind::Normal)
            .edge("sneaky", "edgewise-rl", DepKind::Normal)
            .0;
        assert_eq!(paths(&graph), ["edgewise-llm -> sneaky -> edgewise-rl"]);
    }

    #[test]
    fn rl_does_not_use_the_simulator_directly() {
        let graph = workspace()
            .edge("edgewise-rl", "edgewise-mec", DepKind::Normal)
            .0;
        assert_eq!(paths(&graph), ["edgewise-rl -> edgewise-mec"]);
    }

    #[test]
    fn violations_read_well() {
        let graph = workspace().edge("edgewise-mec", "burn", DepKind::Normal).0;
        let text = graph.check(RULES)[0].to_string();
        assert!(
            text.starts_with("the simulator is free of ML crates: edgewise-mec -> burn ("),
            "{text}"
        );
    }

    #[test]
    fn recognises_ml_crates() {
        for name in [
            "burn",
            "burn-ndarray",
            "candle-core",
            "cubecl-wgpu",
            "wgpu",
            "wgpu-core",
            "ndarray",
            "tch",
        ] {
            assert!(is_ml_crate(name), "{name}");
        }
        for name in ["burnish", "serde", "ndarray-stats-like", "rand", "libm"] {
            assert!(!is_ml_crate(name), "{name}");
        }
    }

    #[test]
    fn parses_cargo_metadata() {
        let metadata = serde_json::json!({
            "workspace_root": "/w",
            "workspace_members": ["path+file:///w/crates/mec#edgewise-mec@0.1.0"],
            "packages": [
                {"id": "path+file:///w/crates/mec#edgewise-mec@0.1.0", "name": "edgewise-mec",
                 "manifest_path": "/w/crates/mec/Cargo.toml"},
                {"id": "registry+x#burn@0.22.1", "name": "burn",
                 "manifest_path": "/r/burn-0.22.1/Cargo.toml"},
            ],
            "resolve": {"nodes": [
                {"id": "path+file:///w/crates/mec#edgewise-mec@0.1.0",
                 "deps": [{"pkg": "registry+x#burn@0.22.1",
                           "dep_kinds": [{"kind": null, "target": null}]}]},
                {"id": "registry+x#burn@0.22.1", "deps": []},
            ]},
        });
        let graph = Graph::from_metadata(&metadata).unwrap();
        assert_eq!(
            graph.packages[0].workspace_dir.as_deref(),
            Some("crates/mec")
        );
        assert_eq!(graph.packages[1].workspace_dir, None);
        assert_eq!(graph.edges, vec![(0, 1, DepKind::Normal)]);
        assert_eq!(paths(&graph), ["edgewise-mec -> burn"]);
    }
}
