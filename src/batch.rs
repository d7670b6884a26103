//! batch (placeholder until written)
