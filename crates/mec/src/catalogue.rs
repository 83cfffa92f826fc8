//! The variant catalogue: the plain serde record that joins the LLM work (`edgewise eval`
//! writes it) to the simulator and the web app (which read it). Design §4.5.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::MecError;

/// The catalogue file's format tag.
pub const CATALOGUE_FORMAT: &str = "edgewise-catalogue";
/// The catalogue format version this build reads and writes.
pub const CATALOGUE_VERSION: u32 = 1;

const DEFAULT_CATALOGUE: &str = include_str!("../data/default-catalogue.json");

/// Speed and energy of one variant on one device class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassProfile {
    /// Prompt processing speed, tokens/s.
    pub prefill_tok_s: f64,
    /// Generation speed, tokens/s.
    pub decode_tok_s: f64,
    /// Energy per processed or generated token, joules.
    pub joules_per_token: f64,
}

/// One compressed (or base) model variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantProfile {
    /// Unique name, e.g. `ecld-q4`.
    pub name: String,
    /// How it was made: `base`, `quant-only`, `prune-only`, `ecld`.
    pub method: String,
    /// Size on disk and in memory, bytes.
    pub bytes: f64,
    /// Parameter count.
    pub params: f64,
    /// Generalization accuracy in [0, 1].
    pub accuracy: f64,
    /// Hallucination rate in [0, 1].
    pub hallucination_rate: f64,
    /// Speed and energy per device class (classes where it cannot run are absent).
    pub per_class: BTreeMap<String, ClassProfile>,
    /// Where the figures come from: `measured: ...` or `assumption: ...`.
    pub source: String,
}

/// A set of variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Always [`CATALOGUE_FORMAT`].
    pub format: String,
    /// Always [`CATALOGUE_VERSION`].
    pub version: u32,
    /// Free text: how the catalogue was produced.
    #[serde(default)]
    pub description: String,
    /// The variants.
    pub variants: Vec<VariantProfile>,
}

impl Catalogue {
    /// The catalogue committed with the repository (`crates/mec/data/default-catalogue.json`).
    #[must_use]
    pub fn default_catalogue() -> Self {
        Self::from_json_str(DEFAULT_CATALOGUE).expect("the committed default catalogue is valid")
    }

    /// Parse and validate a catalogue.
    pub fn from_json_str(text: &str) -> Result<Self, MecError> {
        let c: Self = serde_json::from_str(text).map_err(|e| MecError::Catalogue(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Look a variant up by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<(usize, &VariantProfile)> {
        self.variants
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == name)
    }

    /// Check the format tag, version, ranges and name uniqueness.
    pub fn validate(&self) -> Result<(), MecError> {
        let bad = |m: String| Err(MecError::Catalogue(m));
        if self.format != CATALOGUE_FORMAT {
            return bad(format!(
                "`format` is {:?}, expected {CATALOGUE_FORMAT:?}",
                self.format
            ));
        }
        if self.version != CATALOGUE_VERSION {
            return bad(format!(
                "`version` is {}, this build reads version {CATALOGUE_VERSION}",
                self.version
            ));
        }
        if self.variants.is_empty() {
            return bad("`variants` is empty, expected at least one variant".into());
        }
        for (i, v) in self.variants.iter().enumerate() {
            if self.variants[..i].iter().any(|o| o.name == v.name) {
                return bad(format!("variant name {:?} appears twice", v.name));
            }
            let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
            if !unit(v.accuracy) {
                return bad(format!(
                    "variants[{i}] ({}): accuracy {} is not in [0, 1]",
                    v.name, v.accuracy
                ));
            }
            if !unit(v.hallucination_rate) {
                return bad(format!(
                    "variants[{i}] ({}): hallucination_rate {} is not in [0, 1]",
                    v.name, v.hallucination_rate
                ));
            }
            if !(v.bytes.is_finite() && v.bytes > 0.0) {
                return bad(format!(
                    "variants[{i}] ({}): bytes {} must be > 0",
                    v.name, v.bytes
                ));
            }
            for (class, p) in &v.per_class {
                for (what, x) in [
                    ("prefill_tok_s", p.prefill_tok_s),
                    ("decode_tok_s", p.decode_tok_s),
                    ("joules_per_token", p.joules_per_token),
                ] {
                    if !(x.is_finite() && x > 0.0) {
                        return bad(format!(
                            "variants[{i}] ({}).per_class.{class}.{what} = {x} must be > 0",
                            v.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Serialise to pretty JSON.
    #[must_use]
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("catalogue serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalogue_loads_and_says_where_figures_come_from() {
        let c = Catalogue::default_catalogue();
        assert!(c.variants.len() >= 4);
        for v in &c.variants {
            assert!(
                v.source.starts_with("assumption") || v.source.starts_with("measured"),
                "{}",
                v.name
            );
        }
        let again = Catalogue::from_json_str(&c.to_json_pretty()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn wrong_version_and_ranges_rejected() {
        let mut c = Catalogue::default_catalogue();
        c.version = 9;
        assert!(c.validate().unwrap_err().to_string().contains("version"));
        let mut c = Catalogue::default_catalogue();
        c.variants[0].accuracy = 1.5;
        assert!(c.validate().unwrap_err().to_string().contains("accuracy"));
        assert!(Catalogue::from_json_str("{}").is_err());
    }
}
