//! receive (placeholder until written)
