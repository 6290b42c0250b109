//! The ECR listener's own accept loop, because `axum::serve` has no connection cap and no read
//! timeouts: a few thousand idle sockets (no token is needed to open one) used to exhaust the
//! daemon's file limit, and half-sent bodies its memory.
//!
//! At most `max_connections` connections are open. When one more arrives, the least recently
//! active connection that has no request being handled is closed to make room (an attacker's
//! idle sockets go first, a register's next connection gets in); when every connection has a
//! request being handled, the new one is closed. A request's header must arrive within the
//! read timeout (hyper's `header_read_timeout`, which also closes a keep-alive connection
//! idle that long), and then its body within the read timeout again, at most `max_body` bytes
//! ([`read_body`]); the body is read before any handler runs, so handlers see whole bodies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Notify;

use super::ApiError;

/// Largest request body: a payment request with every field at its limit fits many times over.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub read_timeout: Duration,
    pub max_body: usize,
}

impl Limits {
    pub fn from_config(e: &crate::config::Ecr) -> Limits {
        Limits {
            max_connections: e.max_connections.max(1),
            read_timeout: Duration::from_millis(e.read_timeout_ms.max(1)),
            max_body: MAX_BODY,
        }
    }
}

/// One open connection, as the eviction sees it.
struct Conn {
    /// The [`Table::clock`] value of its last activity (accepted, request started or ended).
    last: AtomicU64,
    /// Requests of this connection whose body was read and whose response is not finished.
    handling: AtomicUsize,
    close: Notify,
}

#[derive(Default)]
struct Table {
    clock: AtomicU64,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Table {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a new connection, closing another to stay within `max`; `None` when every
    /// open connection is handling a request.
    fn admit(&self, max: usize) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= max {
            let victim = open
                .iter()
                .filter(|(_, c)| c.handling.load(Ordering::SeqCst) == 0)
                .min_by_key(|(_, c)| c.last.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let c = open.remove(&victim?)?;
            // notify_one keeps the wake-up if the task is not waiting yet.
            c.close.notify_one();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Conn {
            last: AtomicU64::new(self.tick()),
            handling: AtomicUsize::new(0),
            close: Notify::new(),
        });
        open.insert(id, c.clone());
        Some((id, c))
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// The connection a request came on, for [`read_body`].
#[derive(Clone)]
struct ConnRef(Arc<Conn>, Arc<Table>);

/// Marks its connection busy while it lives: held by the response body, so a streaming answer
/// (the event stream) keeps its connection from being evicted.
struct Handling(Arc<Conn>, Arc<Table>);

impl Handling {
    fn new(c: &ConnRef) -> Handling {
        c.0.handling.fetch_add(1, Ordering::SeqCst);
        c.0.last.store(c.1.tick(), Ordering::Relaxed);
        Handling(c.0.clone(), c.1.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.last.store(self.1.tick(), Ordering::Relaxed);
        self.0.handling.fetch_sub(1, Ordering::SeqCst);
    }
}

fn too_large(max: usize) -> Response {
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is larger than {max} bytes"),
    )
    .into_response()
}

/// Reads the whole body within the limits before the handler runs, answering with the API's
/// JSON errors: 413 `too_large`, 408 `timeout` when it does not arrive in time.
pub async fn read_body(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return too_large(limits.max_body);
    }
    let conn = req.extensions().get::<ConnRef>().cloned();
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, limits.max_body);
    let bytes = match tokio::time::timeout(limits.read_timeout, limited.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return too_large(limits.max_body);
        }
        Ok(Err(e)) => {
            return super::bad("bad_request", format!("the body could not be read: {e}"))
                .into_response();
        }
        Err(_) => {
            return ApiError(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    limits.read_timeout.as_millis()
                ),
            )
            .into_response();
        }
    };
    let busy = conn.as_ref().map(Handling::new);
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    match busy {
        None => res,
        Some(busy) => res.map(|b| {
            Body::new(b.map_frame(move |f| {
                let _ = &busy;
                f
            }))
        }),
    }
}

/// Serves `router` on `listener` within `limits` until the runtime stops.
pub async fn accept_loop<L>(mut listener: L, router: Router, limits: Limits)
where
    L: Listener,
    L::Io: Unpin,
{
    let table = Arc::new(Table::default());
    loop {
        // axum's accept waits out errors such as EMFILE instead of spinning.
        let (io, _) = listener.accept().await;
        let Some((id, conn)) = table.admit(limits.max_connections) else {
            drop(io);
            continue;
        };
        let (router, table) = (router.clone(), table.clone());
        tokio::spawn(async move {
            let cref = ConnRef(conn.clone(), table.clone());
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                cref.0.last.store(cref.1.tick(), Ordering::Relaxed);
                req.extensions_mut().insert(cref.clone());
                let mut router = router.clone();
                tower_service::Service::call(&mut router, req)
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout);
            let served = b.serve_connection(TokioIo::new(io), svc);
            tokio::select! {
                _ = served => {}
                // Evicted: dropping the connection closes the socket.
                _ = conn.close.notified() => {}
            }
            table.remove(id);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_active_idle_connection_makes_room() {
        let t = Table::default();
        let (a, ca) = t.admit(2).unwrap();
        let (_b, cb) = t.admit(2).unwrap();
        // `a` is handling a request: `b`, although newer, is the one closed.
        ca.handling.fetch_add(1, Ordering::SeqCst);
        let (_c, _) = t.admit(2).unwrap();
        let open = t.open.lock().unwrap();
        assert!(open.contains_key(&a) && open.len() == 2);
        assert!(!open.values().any(|c| Arc::ptr_eq(c, &cb)));
        drop(open);
        // Every connection busy: the newcomer is refused.
        for c in t.open.lock().unwrap().values() {
            c.handling.fetch_add(1, Ordering::SeqCst);
        }
        assert!(t.admit(2).is_none());
    }
}
