//! ollama-sim (being written).
