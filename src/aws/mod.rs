//! The AWS parts: credentials, region, endpoints, SigV4 signing and the HTTP client.
//!
//! Everything reads the environment through an [`Env`] snapshot. Start-up wiring:
//!
//! ```no_run
//! use std::sync::Arc;
//! use xray_relay::aws::{ClientSettings, CredentialsProvider, Env, XRayClient};
//! use xray_relay::aws::{ChainSettings, ImdsClient, resolve_region, xray_endpoint};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let env = Env::from_process();
//! let imds = Arc::new(ImdsClient::from_env(&env));
//! let region = resolve_region(None, false, &env, || imds.region())?;
//! let chain = ChainSettings::new(&env, &region, imds.clone());
//! let credentials = Arc::new(CredentialsProvider::default_chain(&chain));
//! let settings = ClientSettings::new(xray_endpoint(None, &region, &env), region);
//! let client = Arc::new(XRayClient::new(&settings, credentials, &env)?);
//! match client.post_json("/TraceSegments", br#"{"TraceSegmentDocuments":[]}"#) {
//!     Ok(response) => println!("HTTP {}", response.status),
//!     Err(error) => println!("{error} (counts as {:?})", error.class()),
//! }
//! # Ok(())
//! # }
//! ```

pub mod backend_error;
pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod env;
pub mod imds;
pub mod profile;
pub mod proxy;
pub mod region;
pub mod signing;
pub mod small_http;
pub mod sts;
#[cfg(test)]
pub(crate) mod test_http;
pub mod timestamp;

pub use backend_error::{BackendError, ErrorClass};
pub use client::{
    ClientBuildError, ClientSettings, ForwardRequest, ForwardResponse, Response, XRayClient,
};
pub use credentials::{
    ChainSettings, Credentials, CredentialsError, CredentialsProvider, CredentialsSource,
};
pub use endpoint::{EndpointUrl, xray_endpoint};
pub use env::Env;
pub use imds::{ImdsClient, ImdsError};
pub use region::{RegionNotFound, resolve_region};
pub use signing::{RequestToSign, Signer, XRAY_SERVICE};
pub use sts::{StsClient, sts_endpoint};
