//! xray-relay: receives X-Ray segments over UDP, keeps them in a fixed pool and uploads them in batches.
//!
//! The modules follow the data: [`receive`] → [`pool`] → [`batch`] → [`upload`], with the AWS
//! parts (credentials, signing, region, endpoints) in [`aws`], and [`telemetry`] beside them.

pub mod aws;
pub mod batch;
pub mod cli;
pub mod config;
pub mod datagram;
pub mod go_addr;
pub mod go_url;
pub mod http;
pub mod logging;
pub mod otlp;
pub mod pool;
pub mod proxy;
pub mod reader;
pub mod receive;
pub mod relay;
pub mod replay;
pub mod retry;
pub mod settings;
pub mod shutdown;
pub mod sink;
pub mod spool;
pub mod stats;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod throttle;
pub mod upload;
