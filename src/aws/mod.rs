//! The AWS parts: credentials, region, endpoints, SigV4 signing and the HTTP client.

pub mod credentials;
pub mod env;
pub mod profile;
