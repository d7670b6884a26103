//! The `xray` binary: a drop-in replacement for the AWS X-Ray daemon.

fn main() {}
