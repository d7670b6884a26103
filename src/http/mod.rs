//! Server-side HTTP/1.1 shared by the proxy and the OTLP receiver: the connection loop and
//! its limits ([`server`], which hands each request to a service), reading request heads and
//! bodies within limits ([`request`], [`chunked`]), and writing answers ([`response`]).

pub mod chunked;
pub mod request;
pub mod response;
pub mod server;

use smol::lock::{Semaphore, SemaphoreGuardArc};
use std::sync::Arc;
use std::time::Duration;

/// Takes one of `slots` (bodies or forwards in progress), or `None` once `wait` has passed:
/// the caller answers 503 rather than hold the connection open without bound.
pub async fn take_slot(slots: &Arc<Semaphore>, wait: Duration) -> Option<SemaphoreGuardArc> {
    smol::future::or(async { Some(slots.acquire_arc().await) }, async {
        smol::Timer::after(wait).await;
        None
    })
    .await
}
