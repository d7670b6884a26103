//! The AWS parts: credentials, region, endpoints, SigV4 signing and the HTTP client.

pub mod credentials;
pub mod endpoint;
pub mod env;
pub mod profile;
pub mod proxy;
pub mod region;
pub mod signing;
