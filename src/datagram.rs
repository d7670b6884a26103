//! datagram (placeholder until written)
