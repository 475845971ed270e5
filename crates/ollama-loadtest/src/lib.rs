//! ollama-loadtest (being written).
