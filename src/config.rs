//! config (placeholder until written)
