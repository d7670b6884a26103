//! telemetry (placeholder until written)
