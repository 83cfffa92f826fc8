//! The model list the page is served with (`models/index.json`, written by
//! `cargo xtask web`) and which model the LLM worker loads from it.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

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
    /// Lower-case hex SHA-256 of the file: what a download or a cached copy is checked
    /// against before it is used.
    pub sha256: String,
}

impl ModelEntry {
    /// How the page lists the entry before anything is downloaded: name, variant and size
    /// (`SmolLM2-135M-Instruct · q4_1 · 98.4 MB`).
    #[must_use]
    pub fn label(&self) -> String {
        format!(
            "{} · {} · {}",
            self.name,
            self.variant,
            megabytes(self.bytes)
        )
    }

    /// Checks `bytes` against this entry's size and SHA-256.
    ///
    /// # Errors
    /// A sentence naming the file, what was expected and what arrived.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), String> {
        if bytes.len() as u64 != self.bytes {
            return Err(format!(
                "{} has {} bytes where {MODEL_INDEX} says {} (an interrupted or truncated transfer)",
                self.file,
                bytes.len(),
                self.bytes
            ));
        }
        let digest: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest != self.sha256 {
            return Err(format!(
                "{} does not match its SHA-256 in {MODEL_INDEX} (expected {}…, got {}…): the \
                 bytes were corrupted on the way or the file was replaced",
                self.file,
                &self.sha256[..12],
                &digest[..12]
            ));
        }
        Ok(())
    }
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
    /// bytes, sha256}, ...]}`, a file name is not a plain name (no `/`, `\` or `..`), or a
    /// digest is not 64 lower-case hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let index: Self = serde_json::from_str(text).map_err(|e| {
            format!(
                "{MODEL_INDEX} is not {{\"models\": [{{file, name, variant, bytes, sha256}}]}}: {e}"
            )
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
            if m.sha256.len() != 64
                || !m
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!(
                    "{MODEL_INDEX}: the sha256 of {} is {:?}, expected 64 lower-case hex digits",
                    m.file, m.sha256
                ));
            }
        }
        Ok(index)
    }

    /// The model the page loads by default: the ECLD variant when shipped, else the first
    /// listed.
    pub fn pick(&self) -> Option<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.variant == ECLD_VARIANT)
            .or_else(|| self.models.first())
    }

    /// The model the visitor chose by file name, or [`ModelIndex::pick`] when they chose
    /// none; `None` when nothing is shipped.
    ///
    /// # Errors
    /// When `file` is not listed (the message lists what is).
    pub fn choose(&self, file: Option<&str>) -> Result<Option<&ModelEntry>, String> {
        let Some(file) = file else {
            return Ok(self.pick());
        };
        self.models
            .iter()
            .find(|m| m.file == file)
            .map(Some)
            .ok_or_else(|| {
                let listed: Vec<&str> = self.models.iter().map(|m| m.file.as_str()).collect();
                format!(
                    "the chosen model {file:?} is not in {MODEL_INDEX} (it lists {})",
                    if listed.is_empty() {
                        "none".to_owned()
                    } else {
                        listed.join(", ")
                    }
                )
            })
    }
}

/// A byte count in decimal megabytes, as download sizes are usually quoted (`98.4 MB`).
#[must_use]
pub fn megabytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // model files are far below 2^52 bytes
    let mb = bytes as f64 / 1e6;
    format!("{mb:.1} MB")
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
            sha256: "0".repeat(64),
        }
    }

    /// SHA-256 of `abc`.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn verify_checks_size_then_digest() {
        let e = ModelEntry {
            bytes: 3,
            sha256: ABC.into(),
            ..entry("m.gguf", "q4_1")
        };
        assert_eq!(e.verify(b"abc"), Ok(()));
        assert!(e.verify(b"ab").unwrap_err().contains("2 bytes where"));
        let err = e.verify(b"abd").unwrap_err();
        assert!(
            err.contains("does not match its SHA-256") && err.contains("ba7816bf8f01"),
            "{err}"
        );
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
    fn a_chosen_model_is_found_by_file_or_named_as_missing() {
        let index = ModelIndex {
            models: vec![entry("a.gguf", "q4_1"), entry("b.gguf", ECLD_VARIANT)],
        };
        assert_eq!(
            index.choose(None).unwrap().map(|m| m.file.as_str()),
            Some("b.gguf")
        );
        let a = index.choose(Some("a.gguf")).unwrap();
        assert_eq!(a.map(|m| m.file.as_str()), Some("a.gguf"));
        let err = index.choose(Some("c.gguf")).unwrap_err();
        assert!(
            err.contains("\"c.gguf\"") && err.contains("a.gguf, b.gguf"),
            "{err}"
        );
        assert_eq!(ModelIndex::default().choose(None), Ok(None));
        assert!(
            ModelIndex::default()
                .choose(Some("a.gguf"))
                .unwrap_err()
                .contains("none")
        );
    }

    #[test]
    fn entries_are_labelled_with_their_download_size() {
        let e = ModelEntry {
            name: "SmolLM2-135M-Instruct".into(),
            bytes: 98_362_432,
            ..entry("m.gguf", "q4_1")
        };
        assert_eq!(e.label(), "SmolLM2-135M-Instruct · q4_1 · 98.4 MB");
        assert_eq!(megabytes(67_049_000), "67.0 MB");
    }

    #[test]
    fn index_parses_and_rejects_paths() {
        let text = format!(
            r#"{{"models":[{{"file":"m.gguf","name":"M","variant":"q4_1","bytes":5,"sha256":"{ABC}"}}]}}"#
        );
        let text = text.as_str();
        let index = ModelIndex::parse(text).unwrap();
        assert_eq!(index.models[0].bytes, 5);
        let bad = text.replace("m.gguf", "../m.gguf");
        assert!(
            ModelIndex::parse(&bad)
                .unwrap_err()
                .contains("plain file name")
        );
        assert!(ModelIndex::parse("[]").unwrap_err().contains("models"));
        let upper = text.replace(ABC, &ABC.to_uppercase());
        assert!(
            ModelIndex::parse(&upper)
                .unwrap_err()
                .contains("64 lower-case hex")
        );
        let unhashed = text.replace(&format!(",\"sha256\":\"{ABC}\""), "");
        assert!(ModelIndex::parse(&unhashed).unwrap_err().contains("sha256"));
    }
}
