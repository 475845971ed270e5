//! ollama-telemetry (being written).
