//! settings (placeholder until written)
