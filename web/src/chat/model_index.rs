//! The model list the page is served with (`models/index.json`, written by
//! `cargo xtask web`) and which model the LLM worker loads from it.

use serde::{Deserialize, Serialize};

/// Path of the model list, relative to the page.
pub const MODEL_INDEX: &str = "models/index.json";

/// The command that fills the model cache (shown when the bundle ships no model).
pub const GET_MODEL_HINT: &str = "no model is shipped with this build: run `cargo xtask setup` (downloads the model into \
     the cache), then `cargo xtask web`";

/// One model file of the bundle (an entry of `models/index.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// File name inside `models/`.
    pub file: String,
    /// Human-readable name.
    pub name: String,
    /// `"ecld"` for the compressed deployment variant, else the quantisation (`"q4_1"`).
    pub variant: String,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// `models/index.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIndex {
    /// Every model file shipped.
    pub models: Vec<ModelEntry>,
}

/// Variant name of the ECLD-compressed model (preferred when shipped).
pub const ECLD_VARIANT: &str = "ecld";

impl ModelIndex {
    /// Parses the index.
    ///
    /// # Errors
    /// A message naming the problem when `text` is not `{"models": [{file, name, variant,
    /// bytes}, ...]}`, or a file name is not a plain name (no `/`, `\` or `..`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let index: Self = serde_json::from_str(text).map_err(|e| {
            format!("{MODEL_INDEX} is not {{\"models\": [{{file, name, variant, bytes}}]}}: {e}")
        })?;
        for m in &index.models {
            if m.file.is_empty()
                || m.file.contains('/')
                || m.file.contains('\\')
                || m.file.contains("..")
            {
                return Err(format!(
                    "{MODEL_INDEX}: model file {:?} is not a plain file name",
                    m.file
                ));
            }
        }
        Ok(index)
    }

    /// The model the page loads: the ECLD variant when shipped, else the first listed.
    pub fn pick(&self) -> Option<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.variant == ECLD_VARIANT)
            .or_else(|| self.models.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, variant: &str) -> ModelEntry {
        ModelEntry {
            file: file.into(),
            name: file.into(),
            variant: variant.into(),
            bytes: 1,
        }
    }

    #[test]
    fn index_prefers_the_ecld_variant() {
        let mut index = ModelIndex {
            models: vec![entry("a.gguf", "q4_1")],
        };
        assert_eq!(index.pick().map(|m| m.file.as_str()), Some("a.gguf"));
        index.models.push(entry("b.gguf", ECLD_VARIANT));
        assert_eq!(index.pick().map(|m| m.file.as_str()), Some("b.gguf"));
        assert_eq!(ModelIndex::default().pick(), None);
    }

    #[test]
    fn index_parses_and_rejects_paths() {
        let text = r#"{"models":[{"file":"m.gguf","name":"M","variant":"q4_1","bytes":5}]}"#;
        let index = ModelIndex::parse(text).unwrap();
        assert_eq!(index.models[0].bytes, 5);
        let bad = text.replace("m.gguf", "../m.gguf");
        assert!(
            ModelIndex::parse(&bad)
                .unwrap_err()
                .contains("plain file name")
        );
        assert!(ModelIndex::parse("[]").unwrap_err().contains("models"));
    }
}
