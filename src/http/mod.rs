//! Server-side HTTP/1.1 shared by the proxy and the OTLP receiver: reading request heads and
//! bodies within limits, and writing answers.

pub mod chunked;
pub mod request;
pub mod response;
