//! cli (placeholder until written)
