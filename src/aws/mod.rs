//! The AWS parts: credentials, region, endpoints, SigV4 signing and the HTTP client.
