//! shutdown (placeholder until written)
