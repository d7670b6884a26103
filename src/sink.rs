//! sink (placeholder until written)
