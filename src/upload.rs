//! upload (placeholder until written)
