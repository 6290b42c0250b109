//! The ChinaUMS transport: JSON bytes out with an `Authorization` header, bytes *and* the reply's
//! `Authorization` header in.
//!
//! The shared transport returns bodies only; ChinaUMS may sign replies with an OPEN-BODY-SIG
//! header (PROTOCOLS.md §D.2), so this one keeps that header for the gateway to verify. Like the
//! shared transport it never interprets a body, never retries, and reports "not sent" only when
//! the connection was certainly never made.

use std::time::Duration;

use crate::gateway::transport::TransportError;

/// A reply: status, body and the `Authorization` header if the server sent one.
#[derive(Clone, Debug)]
pub struct UmsResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub authorization: Option<String>,
}

pub trait UmsTransport: Send + Sync {
    /// POSTs `body` as `application/json; charset=UTF-8` with the given `Authorization`
    /// (none for the token request, which carries its own signature).
    fn post_json(
        &self,
        url: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<UmsResponse, TransportError>;
}

pub struct UreqUms {
    agent: ureq::Agent,
}

impl UreqUms {
    pub fn new(connect: Duration, total: Duration) -> UreqUms {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect))
            .timeout_global(Some(total))
            .http_status_as_error(false)
            .max_idle_connections_per_host(2)
            .user_agent(concat!("payterm/", env!("CARGO_PKG_VERSION")))
            .build();
        UreqUms {
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
        .unwrap_or_else(|| "ChinaUMS".to_string())
}

impl UmsTransport for UreqUms {
    fn post_json(
        &self,
        url: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<UmsResponse, TransportError> {
        let host = host_of(url);
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json; charset=UTF-8");
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        let r = req.send(body);
        match r {
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
                Ok(UmsResponse {
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
