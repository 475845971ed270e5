//! Deterministic "model output": token counts, generated words, pacing and embeddings.
//!
//! Everything is a pure function of the configured seed, the model name, the request's
//! input and the request's own `seed` option, so the same request gets the same answer.
//! One token is one word from a fixed list; the first has no leading space.

use std::time::Duration;

use crate::config::ModelSpec;
use crate::fault::splitmix64;

const WORDS: [&str; 64] = [
    "the",
    "model",
    "answers",
    "with",
    "a",
    "short",
    "and",
    "steady",
    "stream",
    "of",
    "plain",
    "words",
    "that",
    "mean",
    "nothing",
    "much",
    "but",
    "arrive",
    "at",
    "an",
    "even",
    "pace",
    "so",
    "clients",
    "can",
    "measure",
    "time",
    "to",
    "first",
    "token",
    "throughput",
    "under",
    "load",
    "while",
    "each",
    "request",
    "gets",
    "its",
    "own",
    "seeded",
    "sequence",
    "every",
    "run",
    "repeats",
    "exactly",
    "same",
    "way",
    "for",
    "same",
    "prompt",
    "simulated",
    "llama",
    "server",
    "queue",
    "slot",
    "cache",
    "context",
    "window",
    "batch",
    "sample",
    "reply",
    "done",
    "here",
    "now",
];

/// FNV-1a over bytes: a stable hash for seeding from request text.
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Tokens a text of this many bytes counts as (about 4 bytes a token, at least 1).
pub(crate) fn tokens_for(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(4)).unwrap_or(u32::MAX).max(1)
}

/// A uniform float in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The shape of one answer, fixed before generation starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) prompt_tokens: u32,
    /// Tokens of `thinking` text, generated before the answer.
    pub(crate) thinking_tokens: u32,
    /// Tokens of answer text.
    pub(crate) output_tokens: u32,
    /// `"stop"` or `"length"`.
    pub(crate) done_reason: &'static str,
    seed: u64,
}

impl Plan {
    /// Plans an answer: `thinking_tokens` of thinking when `think`, then the model's output
    /// length varied by jitter; the total is capped by `num_predict` (then `"length"`) and
    /// by the context window.
    pub(crate) fn new(
        spec: &ModelSpec,
        seed: u64,
        prompt_tokens: u32,
        num_predict: Option<i64>,
        think: bool,
    ) -> Self {
        let mut thinking_tokens = if think { spec.thinking_tokens } else { 0 };
        let base = f64::from(spec.output_tokens.max(1));
        let vary = if spec.jitter > 0.0 {
            1.0 + spec.jitter * (2.0 * unit(splitmix64(seed ^ 0x5eed)) - 1.0)
        } else {
            1.0
        };
        let mut output_tokens = (base * vary).round().max(1.0) as u32;
        let mut done_reason = "stop";
        let room = spec.context_length.saturating_sub(prompt_tokens);
        let limit = num_predict
            .filter(|n| *n >= 0)
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX))
            .min(room);
        if thinking_tokens.saturating_add(output_tokens) > limit {
            thinking_tokens = thinking_tokens.min(limit);
            output_tokens = limit - thinking_tokens;
            done_reason = "length";
        }
        Plan {
            prompt_tokens: prompt_tokens.min(spec.context_length),
            thinking_tokens,
            output_tokens,
            done_reason,
            seed,
        }
    }

    /// All generated tokens (thinking and answer): the `eval_count`.
    pub(crate) fn generated(&self) -> u32 {
        self.thinking_tokens + self.output_tokens
    }

    /// Whether generated token `i` is thinking text.
    pub(crate) fn is_thinking(&self, i: u32) -> bool {
        i < self.thinking_tokens
    }

    /// The text of generated token `i`: a word, with a leading space except at the start
    /// of the thinking text and of the answer.
    pub(crate) fn token(&self, i: u32) -> &'static str {
        let h = splitmix64(self.seed ^ u64::from(i).wrapping_mul(0x9E37_79B9));
        let word = WORDS[(h % WORDS.len() as u64) as usize];
        if i == 0 || i == self.thinking_tokens {
            word
        } else {
            SPACED[(h % WORDS.len() as u64) as usize]
        }
    }

    /// The token id of output token `i` (for `context`).
    pub(crate) fn token_id(&self, i: u32) -> u32 {
        let h = splitmix64(self.seed ^ u64::from(i).wrapping_mul(0x9E37_79B9));
        1000 + (h % WORDS.len() as u64) as u32
    }

    /// The whole answer text.
    pub(crate) fn text(&self) -> String {
        self.join(self.thinking_tokens..self.generated())
    }

    /// The whole thinking text (empty when the answer has none).
    pub(crate) fn thinking_text(&self) -> String {
        self.join(0..self.thinking_tokens)
    }

    fn join(&self, range: std::ops::Range<u32>) -> String {
        let mut s = String::with_capacity(range.len() * 7);
        for i in range {
            s.push_str(self.token(i));
        }
        s
    }

    /// `context`: prompt token ids then output token ids.
    pub(crate) fn context(&self, prompt_hash: u64) -> Vec<u32> {
        let mut ctx = Vec::with_capacity((self.prompt_tokens + self.generated()) as usize);
        for i in 0..self.prompt_tokens {
            ctx.push(1 + (splitmix64(prompt_hash ^ u64::from(i)) % 32_000) as u32);
        }
        for i in 0..self.generated() {
            ctx.push(self.token_id(i));
        }
        ctx
    }

    /// Simulated prompt-evaluation time.
    pub(crate) fn prompt_eval_time(&self, spec: &ModelSpec) -> Duration {
        per_tokens(self.prompt_tokens, spec.prompt_tokens_per_sec)
    }

    /// Simulated time of output token `i`, jittered.
    pub(crate) fn token_time(&self, spec: &ModelSpec, i: u32) -> Duration {
        let base = per_tokens(1, spec.tokens_per_sec);
        if spec.jitter == 0.0 || base.is_zero() {
            return base;
        }
        let u = unit(splitmix64(self.seed ^ 0x7177 ^ u64::from(i)));
        let factor = (1.0 + spec.jitter * (2.0 * u - 1.0)).max(0.0);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    }

    /// Simulated time of the whole generation.
    pub(crate) fn eval_time(&self, spec: &ModelSpec) -> Duration {
        (0..self.generated())
            .map(|i| self.token_time(spec, i))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

/// The word list with a leading space, so tokens are `&'static str` without allocating.
static SPACED: [&str; 64] = {
    [
        " the",
        " model",
        " answers",
        " with",
        " a",
        " short",
        " and",
        " steady",
        " stream",
        " of",
        " plain",
        " words",
        " that",
        " mean",
        " nothing",
        " much",
        " but",
        " arrive",
        " at",
        " an",
        " even",
        " pace",
        " so",
        " clients",
        " can",
        " measure",
        " time",
        " to",
        " first",
        " token",
        " throughput",
        " under",
        " load",
        " while",
        " each",
        " request",
        " gets",
        " its",
        " own",
        " seeded",
        " sequence",
        " every",
        " run",
        " repeats",
        " exactly",
        " same",
        " way",
        " for",
        " same",
        " prompt",
        " simulated",
        " llama",
        " server",
        " queue",
        " slot",
        " cache",
        " context",
        " window",
        " batch",
        " sample",
        " reply",
        " done",
        " here",
        " now",
    ]
};

fn per_tokens(tokens: u32, per_sec: f64) -> Duration {
    if !per_sec.is_finite() || per_sec <= 0.0 || tokens == 0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(f64::from(tokens) / per_sec).unwrap_or(Duration::MAX)
}

/// A deterministic embedding of `input`: components uniform in [-1, 1], L2-normalised
/// when `normalize` (as `/api/embed` does; the legacy `/api/embeddings` does not).
pub(crate) fn embedding(
    seed: u64,
    model: &str,
    input: &str,
    dim: usize,
    normalize: bool,
) -> Vec<f64> {
    let h = hash_bytes(hash_bytes(seed, model.as_bytes()), input.as_bytes());
    let mut v: Vec<f64> = (0..dim as u64)
        .map(|i| unit(splitmix64(h ^ i.wrapping_mul(0xA24B_AED4_963E_E407))) * 2.0 - 1.0)
        .collect();
    if normalize {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            for x in &mut v {
                *x /= norm;
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_and_capped() {
        let spec = ModelSpec::chat("m");
        let a = Plan::new(&spec, 42, 10, None, false);
        let b = Plan::new(&spec, 42, 10, None, false);
        assert_eq!(a.text(), b.text());
        assert_eq!(a.done_reason, "stop");
        let capped = Plan::new(&spec, 42, 10, Some(3), false);
        assert_eq!(capped.output_tokens, 3);
        assert_eq!(capped.done_reason, "length");
        let ctx = Plan::new(&spec, 42, spec.context_length - 2, None, false);
        assert_eq!(ctx.output_tokens, 2);
        assert_eq!(ctx.done_reason, "length");
        assert_eq!(
            a.context(7).len(),
            (a.prompt_tokens + a.output_tokens) as usize
        );
    }

    #[test]
    fn thinking_comes_first_and_counts_against_the_cap() {
        let spec = ModelSpec {
            thinking_tokens: 5,
            ..ModelSpec::chat("m")
        };
        let p = Plan::new(&spec, 1, 10, None, true);
        assert_eq!(p.thinking_tokens, 5);
        assert_eq!(p.generated(), 5 + p.output_tokens);
        assert!(!p.thinking_text().starts_with(' ') && !p.text().starts_with(' '));
        assert_eq!(p.thinking_text().split(' ').count(), 5);
        let capped = Plan::new(&spec, 1, 10, Some(7), true);
        assert_eq!((capped.thinking_tokens, capped.output_tokens), (5, 2));
        assert_eq!(capped.done_reason, "length");
        assert_eq!(Plan::new(&spec, 1, 10, None, false).thinking_tokens, 0);
    }

    #[test]
    fn embeddings_are_deterministic_and_normalised() {
        let v = embedding(1, "m", "hello", 64, true);
        assert_eq!(v, embedding(1, "m", "hello", 64, true));
        assert_ne!(v, embedding(1, "m", "hellp", 64, true));
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-9);
        let raw = embedding(1, "m", "hello", 64, false);
        let norm: f64 = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() > 1e-3);
    }
}
