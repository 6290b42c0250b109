//! The HTTP transport: bytes out, bytes in, every timeout set.
//!
//! ureq with rustls on ring. It never interprets a body and never retries: whether a request
//! that timed out reached the gateway is unknowable here, and deciding what that means belongs to
//! the state machine. Status codes come back as values, not errors, so a gateway can read an
//! error body.

use std::time::Duration;

use thiserror::Error;

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub url: String,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The reply's `Authorization` header: ChinaUMS signs replies there (OPEN-BODY-SIG,
    /// PROTOCOLS.md §D.2); other gateways sign inside the body and leave it unset.
    pub authorization: Option<String>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The connection was never made: the request certainly did not arrive.
    #[error("could not connect to {host}: {why}")]
    NotSent { host: String, why: String },
    /// The request may have arrived; no reply was read.
    #[error("no reply from {host}: {why}")]
    NoReply { host: String, why: String },
}

impl TransportError {
    pub fn certainly_not_sent(&self) -> bool {
        matches!(self, TransportError::NotSent { .. })
    }
}

pub trait Transport: Send + Sync {
    fn post(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Timeouts for one gateway's requests.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

pub struct UreqTransport {
    agent: ureq::Agent,
}

impl UreqTransport {
    pub fn new(t: Timeouts) -> UreqTransport {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(t.connect))
            .timeout_global(Some(t.total))
            .http_status_as_error(false)
            .max_idle_connections_per_host(2)
            .user_agent(concat!("payterm/", env!("CARGO_PKG_VERSION")))
            .build();
        UreqTransport {
            agent: ureq::Agent::new_with_config(config),
        }
    }
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| "the gateway".to_string())
}

impl Transport for UreqTransport {
    fn post(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let host = host_of(&req.url);
        let mut r = self
            .agent
            .post(&req.url)
            .header("Content-Type", req.content_type);
        for (k, v) in &req.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        match r.send(&req.body[..]) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let authorization = resp
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(4 * 1024 * 1024)
                    .read_to_vec()
                    .map_err(|e| TransportError::NoReply {
                        host: host.clone(),
                        why: e.to_string(),
                    })?;
                Ok(HttpResponse {
                    status,
                    body,
                    authorization,
                })
            }
            Err(e) => {
                let why = e.to_string();
                let not_sent = matches!(
                    e,
                    ureq::Error::ConnectionFailed | ureq::Error::HostNotFound
                ) || matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                if not_sent {
                    Err(TransportError::NotSent { host, why })
                } else {
                    Err(TransportError::NoReply { host, why })
                }
            }
        }
    }
}
