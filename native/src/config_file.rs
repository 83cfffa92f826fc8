//! Hyper-parameter files given on the command line (`--ppo-config`, `--wm-config`):
//! JSON, or TOML when the name ends in `.toml`, holding only the fields to change. They
//! are laid over the defaults of the run at hand (CartPole's PPO defaults differ from the
//! MEC ones), so a field the file leaves out keeps that run's default.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `base` with the fields of the file at `path` replaced; `what` names the file's kind in
/// errors ("PPO config"). Unknown fields and wrong types are refused by `T` itself.
pub fn overlay<T: Serialize + DeserializeOwned>(
    base: &T,
    path: &Path,
    what: &str,
) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let changes: serde_json::Value = if is_toml {
        toml::from_str(&text)
            .with_context(|| format!("{what} {}: not valid TOML", path.display()))?
    } else {
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{what} {}: not valid JSON (name the file *.toml to write it in TOML)",
                path.display()
            )
        })?
    };
    let serde_json::Value::Object(changes) = changes else {
        bail!(
            "{what} {}: expected a table of fields to change, found {changes}",
            path.display()
        );
    };
    let mut merged = serde_json::to_value(base).context("serialising the defaults")?;
    let fields = merged
        .as_object_mut()
        .context("a configuration serialises to a table")?;
    for (k, v) in changes {
        fields.insert(k, v);
    }
    serde_json::from_value(merged).with_context(|| format!("in {what} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Knobs {
        epochs: u32,
        gamma: f64,
    }

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("edgewise-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn json_and_toml_change_only_their_fields() {
        let base = Knobs {
            epochs: 4,
            gamma: 0.99,
        };
        let j = overlay(&base, &file("a.json", r#"{"epochs": 12}"#), "PPO config").unwrap();
        assert_eq!(
            j,
            Knobs {
                epochs: 12,
                gamma: 0.99
            }
        );
        let t = overlay(&base, &file("a.toml", "gamma = 0.9\n"), "PPO config").unwrap();
        assert_eq!(
            t,
            Knobs {
                epochs: 4,
                gamma: 0.9
            }
        );
    }

    #[test]
    fn errors_name_the_file_and_what_was_expected() {
        let base = Knobs {
            epochs: 4,
            gamma: 0.99,
        };
        let err = |name: &str, text: &str| {
            format!(
                "{:#}",
                overlay(&base, &file(name, text), "PPO config").unwrap_err()
            )
        };
        let e = err("b.json", "epochs = 12\n");
        assert!(
            e.contains("b.json") && e.contains("not valid JSON") && e.contains(".toml"),
            "{e}"
        );
        let e = err("c.json", "[1, 2]");
        assert!(e.contains("expected a table"), "{e}");
        let e = err("d.toml", "epoch = 12\n");
        assert!(
            e.contains("d.toml") && e.contains("unknown field `epoch`"),
            "{e}"
        );
    }
}
