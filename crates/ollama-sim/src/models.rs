//! The local model store: what `/api/tags` lists, what `/api/copy`, `/api/delete` and
//! `/api/pull` change, and how request names map to models.
//!
//! Name matching follows Ollama: the tag defaults to `latest`, the `library/` namespace
//! and the `registry.ollama.ai/` host may be spelled out, and case is ignored. Matching
//! works on the request string in place so the hot path allocates nothing.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::config::ModelSpec;
use crate::fault::splitmix64;

/// A model present in the store.
#[derive(Debug)]
pub(crate) struct LocalModel {
    /// Canonical short name, always with a tag (`llama3.2:latest`).
    pub(crate) name: String,
    pub(crate) spec: Arc<ModelSpec>,
    /// Bare hex digest.
    pub(crate) digest: String,
    pub(crate) modified_at: SystemTime,
}

/// The store. Reads vastly outnumber writes, hence the `RwLock`.
pub(crate) struct Registry {
    /// Present models, newest first (the `/api/tags` order).
    local: RwLock<Vec<Arc<LocalModel>>>,
    /// Everything `/api/pull` can fetch: the configured models.
    remote: Vec<Arc<ModelSpec>>,
}

/// `llama3.2` becomes `llama3.2:latest`; host and `library/` prefixes are dropped.
pub(crate) fn canonical_name(name: &str) -> String {
    let short = strip_prefixes(name.trim());
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') {
        short.to_owned()
    } else {
        format!("{short}:latest")
    }
}

fn strip_prefixes(name: &str) -> &str {
    let name = name.strip_prefix("registry.ollama.ai/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name)
}

/// Whether a request name designates the canonical `name`, without allocating.
pub(crate) fn name_matches(request: &str, canonical: &str) -> bool {
    let short = strip_prefixes(request.trim());
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') {
        short.eq_ignore_ascii_case(canonical)
    } else {
        // Byte slices: a request-controlled length must not split a UTF-8 character.
        let (c, n) = (canonical.as_bytes(), short.len());
        c.len() == n + ":latest".len()
            && c[..n].eq_ignore_ascii_case(short.as_bytes())
            && c[n..].eq_ignore_ascii_case(b":latest")
    }
}

/// The full name Ollama prints in capability errors (`registry.ollama.ai/library/x:latest`).
pub(crate) fn full_name(canonical: &str) -> String {
    let first = canonical.split('/').next().unwrap_or(canonical);
    if canonical.contains('/') && (first.contains('.') || first.contains(':')) {
        canonical.to_owned()
    } else if canonical.contains('/') {
        format!("registry.ollama.ai/{canonical}")
    } else {
        format!("registry.ollama.ai/library/{canonical}")
    }
}

/// A deterministic 64-hex-digit digest for a model without a configured one.
fn derived_digest(name: &str) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..4u64).fold(String::with_capacity(64), |mut s, i| {
        let _ = write!(s, "{:016x}", splitmix64(h ^ i));
        s
    })
}

impl Registry {
    pub(crate) fn new(specs: &[ModelSpec]) -> Self {
        let now = SystemTime::now();
        let remote: Vec<Arc<ModelSpec>> = specs.iter().cloned().map(Arc::new).collect();
        // Configured order is kept as "newest first": the first model is the newest.
        let local = remote
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                Arc::new(LocalModel::new(
                    canonical_name(&spec.name),
                    spec.clone(),
                    now.checked_sub(Duration::from_secs(60 * (i as u64 + 1)))
                        .unwrap_or(now),
                ))
            })
            .collect();
        Registry {
            local: RwLock::new(local),
            remote,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<LocalModel>>> {
        self.local
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<LocalModel>>> {
        self.local
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The present model a request name designates.
    pub(crate) fn find(&self, request_name: &str) -> Option<Arc<LocalModel>> {
        self.read()
            .iter()
            .find(|m| name_matches(request_name, &m.name))
            .cloned()
    }

    /// All present models, newest first.
    pub(crate) fn list(&self) -> Vec<Arc<LocalModel>> {
        self.read().clone()
    }

    /// Removes a model; false when it was not there.
    pub(crate) fn delete(&self, request_name: &str) -> bool {
        let mut local = self.write();
        let before = local.len();
        local.retain(|m| !name_matches(request_name, &m.name));
        local.len() != before
    }

    /// Copies `source` to `destination` (replacing an existing destination).
    pub(crate) fn copy(&self, source: &Arc<LocalModel>, destination: &str) {
        let name = canonical_name(destination);
        let copy = Arc::new(LocalModel {
            name: name.clone(),
            spec: source.spec.clone(),
            digest: source.digest.clone(),
            modified_at: SystemTime::now(),
        });
        let mut local = self.write();
        local.retain(|m| !name_matches(&name, &m.name));
        local.insert(0, copy);
    }

    /// The configured spec `/api/pull` can restore for a name.
    pub(crate) fn remote(&self, request_name: &str) -> Option<Arc<ModelSpec>> {
        self.remote
            .iter()
            .find(|s| name_matches(request_name, &canonical_name(&s.name)))
            .cloned()
    }

    /// Makes a pulled model present (fresh `modified_at`).
    pub(crate) fn install(&self, spec: Arc<ModelSpec>) {
        let name = canonical_name(&spec.name);
        let model = Arc::new(LocalModel::new(name.clone(), spec, SystemTime::now()));
        let mut local = self.write();
        local.retain(|m| !name_matches(&name, &m.name));
        local.insert(0, model);
    }
}

/// The bare-hex digest of a spec: the configured one, else one derived from its name.
pub(crate) fn digest_of(spec: &ModelSpec) -> String {
    if spec.digest.is_empty() {
        derived_digest(&canonical_name(&spec.name))
    } else {
        spec.digest.to_ascii_lowercase()
    }
}

impl LocalModel {
    fn new(name: String, spec: Arc<ModelSpec>, modified_at: SystemTime) -> Self {
        let digest = digest_of(&spec);
        LocalModel {
            name,
            spec,
            digest,
            modified_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_like_ollama() {
        assert_eq!(canonical_name("llama3.2"), "llama3.2:latest");
        assert_eq!(
            canonical_name("registry.ollama.ai/library/llama3.2:1b"),
            "llama3.2:1b"
        );
        assert!(name_matches("llama3.2", "llama3.2:latest"));
        assert!(name_matches("Llama3.2:LATEST", "llama3.2:latest"));
        assert!(name_matches("library/llama3.2", "llama3.2:latest"));
        assert!(!name_matches("llama3.2:1b", "llama3.2:latest"));
        assert!(!name_matches("llama3", "llama3.2:latest"));
        // Equal lengths, but byte 2 is inside the euro sign: must not panic.
        assert!(!name_matches("ab", "a€:x€"));
        assert_eq!(
            full_name("test:latest"),
            "registry.ollama.ai/library/test:latest"
        );
        assert_eq!(derived_digest("x").len(), 64);
    }
}
