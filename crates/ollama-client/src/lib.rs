//! ollama-client (being written).
