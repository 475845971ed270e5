//! Prompts for the workload: one from a flag, or many from a JSONL file, picked per
//! request index so that a run is reproducible whatever the concurrency.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng as _, SeedableRng as _};

use crate::config::PromptOrder;

/// A non-empty list of prompts (cheap to clone).
#[derive(Debug, Clone)]
pub struct Prompts {
    texts: Arc<[String]>,
    file: Option<PathBuf>,
}

/// A prompt file that cannot be used; the message names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum PromptsError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is neither a JSON string nor an object with a string `prompt`.
    #[error("{}:{line}: expected a JSON string or an object with a string \"prompt\"", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The file holds no prompt.
    #[error("{}: no prompts in file", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Prompts {
    /// One prompt for every request.
    pub fn single(prompt: impl Into<String>) -> Self {
        Self {
            texts: Arc::from(vec![prompt.into()]),
            file: None,
        }
    }

    /// Reads a JSONL file: each non-blank line is a JSON string or an object with a
    /// string field `prompt` (other fields are ignored).
    pub fn from_jsonl(path: impl AsRef<Path>) -> Result<Self, PromptsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PromptsError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut texts = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|_| PromptsError::Line {
                    path: path.to_owned(),
                    line: i + 1,
                })?;
            let prompt = match &value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => match o.get("prompt") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => {
                        return Err(PromptsError::Line {
                            path: path.to_owned(),
                            line: i + 1,
                        });
                    }
                },
                _ => {
                    return Err(PromptsError::Line {
                        path: path.to_owned(),
                        line: i + 1,
                    });
                }
            };
            texts.push(prompt);
        }
        if texts.is_empty() {
            return Err(PromptsError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            texts: Arc::from(texts),
            file: Some(path.to_owned()),
        })
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Always false: a `Prompts` holds at least one prompt.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The file the prompts came from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The only prompt, when there is exactly one.
    pub(crate) fn only(&self) -> Option<&str> {
        (self.texts.len() == 1).then(|| self.texts[0].as_str())
    }

    /// The prompt of request `index`.
    pub(crate) fn pick(&self, index: u64, order: PromptOrder, seed: u64) -> &str {
        let n = self.texts.len() as u64;
        let i = match order {
            PromptOrder::RoundRobin => index % n,
            PromptOrder::Random => {
                // A fresh generator per index keeps the choice independent of which task
                // happens to issue the request.
                let mut rng = rand::rngs::SmallRng::seed_from_u64(
                    seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                rng.random_range(0..n)
            }
        };
        &self.texts[i as usize]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write as _;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_strings_and_objects_and_cycles() {
        let f = file("\"a\"\n\n{\"prompt\":\"b\",\"id\":2}\n\"c\"\n");
        let p = Prompts::from_jsonl(f.path()).unwrap();
        assert_eq!(p.len(), 3);
        let rr: Vec<&str> = (0..4)
            .map(|i| p.pick(i, PromptOrder::RoundRobin, 0))
            .collect();
        assert_eq!(rr, ["a", "b", "c", "a"]);
        let r1: Vec<&str> = (0..50).map(|i| p.pick(i, PromptOrder::Random, 9)).collect();
        let r2: Vec<&str> = (0..50).map(|i| p.pick(i, PromptOrder::Random, 9)).collect();
        assert_eq!(r1, r2);
        for x in ["a", "b", "c"] {
            assert!(r1.contains(&x));
        }
    }

    #[test]
    fn bad_files_name_file_and_line() {
        let f = file("\"ok\"\n{\"text\":1}\n");
        let e = Prompts::from_jsonl(f.path()).unwrap_err().to_string();
        assert!(e.contains(":2:"), "{e}");
        assert!(e.contains(&f.path().display().to_string()));
        let f = file("\n\n");
        assert!(matches!(
            Prompts::from_jsonl(f.path()),
            Err(PromptsError::Empty { .. })
        ));
        assert!(Prompts::from_jsonl("/nonexistent/p.jsonl").is_err());
    }
}
