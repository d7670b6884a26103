//! logging (placeholder until written)
