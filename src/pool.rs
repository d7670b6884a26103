//! pool (placeholder until written)
