//! Bounded `model` label values.
//!
//! Every other label has a fixed set of values, but model names come from callers. A
//! program that sends arbitrary names (a typo loop, names taken from user input) would
//! otherwise create an unbounded number of Prometheus series. The first `max` distinct
//! names keep their own value; later ones share [`OVERFLOW_MODEL_LABEL`].

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use metrics::SharedString;

/// The `model` label value used once the distinct-model limit is reached.
pub const OVERFLOW_MODEL_LABEL: &str = "__other__";

/// The `model` label value for operations that name no model (`/api/tags`, `/api/version`).
pub(crate) const NO_MODEL_LABEL: &str = "";

pub(crate) struct ModelLabels {
    max: usize,
    /// Invariant: holds at most `max` entries.
    seen: RwLock<HashMap<Box<str>, SharedString>>,
}

impl ModelLabels {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            seen: RwLock::new(HashMap::new()),
        }
    }

    /// The label value for `model`: its own name while the limit allows, else the overflow value.
    pub(crate) fn label(&self, model: Option<&str>) -> SharedString {
        let Some(model) = model else {
            return SharedString::const_str(NO_MODEL_LABEL);
        };
        if let Some(label) = self
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(model)
        {
            return label.clone();
        }
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(label) = seen.get(model) {
            return label.clone();
        }
        if seen.len() >= self.max {
            return SharedString::const_str(OVERFLOW_MODEL_LABEL);
        }
        let label = SharedString::from(Arc::<str>::from(model));
        seen.insert(model.into(), label.clone());
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_beyond_the_limit_share_the_overflow_value() {
        let labels = ModelLabels::new(2);
        assert_eq!(&*labels.label(Some("a")), "a");
        assert_eq!(&*labels.label(Some("b")), "b");
        assert_eq!(&*labels.label(Some("c")), OVERFLOW_MODEL_LABEL);
        // Names admitted before the limit keep their value.
        assert_eq!(&*labels.label(Some("a")), "a");
        assert_eq!(&*labels.label(None), NO_MODEL_LABEL);
    }
}
