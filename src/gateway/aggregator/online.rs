//! `payterm config check --online` for the aggregator: one signed GetMchInfo, which moves no
//! money, and every way it can fail explained in an installer's words.
//!
//! Unlike [`Aggregator::call`] this reads a reply before its signature is checked: a 20002
//! answer is signed with the gateway's key, which is exactly the one we do not have when ours is
//! wrong, and telling "wrong key" from "tampered reply" is the point of the check. Nothing read
//! here is believed beyond that diagnosis.

use thiserror::Error;

use super::codes::code;
use super::{Aggregator, FORM, Fields, MerchantInfo, TransportError, WireError};
use crate::gateway::transport::HttpRequest;

/// Why the aggregator cannot be used as configured.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OnlineProblem {
    #[error(
        "wrong key: the aggregator answered 20002 签名错误 (signature rejected) — {key_file} does not hold the MD5 key the aggregator issued for agent_id {agent_id}"
    )]
    WrongKey { key_file: String, agent_id: String },
    #[error(
        "wrong key: the aggregator's reply does not check with the key in {key_file} — it is not the key the aggregator signs with (or something between us altered the reply)"
    )]
    ReplyUnverified { key_file: String },
    #[error(
        "wrong path: {url} answered HTTP 404 — base_url must be the gateway's address only (e.g. https://pay.example.com); payterm adds /Open/GetMchInfo, /UnifiedPay/Gateway … itself"
    )]
    WrongPath { url: String },
    #[error(
        "{url} answered HTTP {status}: the gateway is failing, or base_url is not the aggregator"
    )]
    Status { url: String, status: u16 },
    #[error(
        "{url} answered, but not as the aggregator ({why}): base_url points at some other server"
    )]
    NotAggregator { url: String, why: String },
    #[error(
        "timeout: {host} gave no answer within timeout_ms = {ms} ms — the gateway or the uplink is down, or a firewall drops the traffic"
    )]
    Timeout { host: String, ms: u64 },
    #[error(
        "no answer: {host} closed the connection without replying ({why}) — the gateway is failing or something in between cuts the connection"
    )]
    NoAnswer { host: String, why: String },
    #[error(
        "connection refused: nothing accepts connections at {host} — the port in base_url is wrong, or the gateway is stopped"
    )]
    Refused { host: String },
    #[error(
        "DNS: the name {host} cannot be resolved — check the spelling of base_url and the terminal's DNS servers (/etc/resolv.conf)"
    )]
    Dns { host: String },
    #[error(
        "TLS: the secure connection to {host} failed ({why}) — check the terminal's clock (`date`: a wrong date makes valid certificates look expired) and that base_url names the gateway's real host"
    )]
    Tls { host: String, why: String },
    #[error(
        "wrong merchant: the aggregator knows no mch_id {mch_id} under agent_id {agent_id} (20005 商户错误)"
    )]
    WrongMerchant { mch_id: String, agent_id: String },
    #[error("wrong agent: the aggregator does not accept agent_id {agent_id} (20012 代理商错误)")]
    WrongAgent { agent_id: String },
    #[error("the aggregator refused the check: {code} {msg}")]
    GatewayRefused { code: String, msg: String },
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
        .unwrap_or_else(|| url.to_string())
}

impl Aggregator {
    /// One signed GetMchInfo: the merchant's names when URL, key and ids are right, else why not.
    pub fn check_online(&self) -> Result<MerchantInfo, OnlineProblem> {
        let url = self.url("/Open/GetMchInfo");
        let host = host_of(&url);
        let req = HttpRequest {
            url: url.clone(),
            content_type: FORM,
            headers: vec![("X-Requested-With".into(), "XMLHttpRequest".into())],
            body: self
                .common(None)
                .signed(self.key.expose())
                .to_form()
                .into_bytes(),
        };
        let resp = self
            .transport
            .post(&req)
            .map_err(|e| self.transport_problem(&host, &e))?;
        match resp.status {
            200 => {}
            404 => return Err(OnlineProblem::WrongPath { url }),
            status => return Err(OnlineProblem::Status { url, status }),
        }
        let r = Fields::from_json(&resp.body).map_err(|e| OnlineProblem::NotAggregator {
            url: url.clone(),
            why: e.to_string(),
        })?;
        let c = r.get("code").unwrap_or("");
        // Judged before the reply's signature: see the module's comment.
        if c == code::SIGN_ERROR {
            return Err(OnlineProblem::WrongKey {
                key_file: self.cfg.key_file.clone(),
                agent_id: self.cfg.agent_id.clone(),
            });
        }
        match r.verify(self.key.expose()) {
            Ok(()) => {}
            Err(WireError::Unsigned) if r.get("state").is_none() => {
                return Err(OnlineProblem::NotAggregator {
                    url,
                    why: "a JSON reply without state or sign".into(),
                });
            }
            Err(_) => {
                return Err(OnlineProblem::ReplyUnverified {
                    key_file: self.cfg.key_file.clone(),
                });
            }
        }
        if r.get("state") == Some("SUCCESS") && c == code::OK {
            return Ok(MerchantInfo {
                mch_id: r.get("mch_id").unwrap_or(&self.cfg.mch_id).to_string(),
                full_name: r.get("FullName").unwrap_or("").to_string(),
                short_name: r.get("ShortName").unwrap_or("").to_string(),
            });
        }
        Err(match c {
            code::MERCHANT_ERROR => OnlineProblem::WrongMerchant {
                mch_id: self.cfg.mch_id.clone(),
                agent_id: self.cfg.agent_id.clone(),
            },
            code::AGENT_ERROR => OnlineProblem::WrongAgent {
                agent_id: self.cfg.agent_id.clone(),
            },
            _ => OnlineProblem::GatewayRefused {
                code: c.to_string(),
                msg: r
                    .get("msg")
                    .unwrap_or(super::codes::describe(c))
                    .to_string(),
            },
        })
    }

    /// The transport reports ureq's words; these are the ones each failure is known by.
    fn transport_problem(&self, host: &str, e: &TransportError) -> OnlineProblem {
        let (TransportError::NotSent { why, .. } | TransportError::NoReply { why, .. }) = e;
        let w = why.to_ascii_lowercase();
        let host = host.to_string();
        if w.contains("host not found")
            || w.contains("failed to lookup")
            || w.contains("name or service")
            || w.contains("resolve")
            || w.contains("dns")
        {
            OnlineProblem::Dns { host }
        } else if w.contains("refused") || w.contains("connection failed") {
            OnlineProblem::Refused { host }
        } else if w.contains("rustls")
            || w.contains("tls")
            || w.contains("certificate")
            || w.contains("handshake")
        {
            OnlineProblem::Tls {
                host,
                why: why.clone(),
            }
        } else if w.contains("timeout") || w.contains("timed out") {
            OnlineProblem::Timeout {
                host,
                ms: self.cfg.timeout_ms,
            }
        } else {
            OnlineProblem::NoAnswer {
                host,
                why: why.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::agg;
    use super::*;

    #[test]
    fn a_20002_is_a_wrong_key_even_though_its_reply_cannot_be_verified() {
        let mut f = Fields::new();
        f.set("state", "FAIL")
            .set("code", "20002")
            .set("msg", "签名错误");
        let (g, _) = agg(vec![f.clone().signed("gateway-key").to_json().into_bytes()]);
        assert!(matches!(
            g.check_online(),
            Err(OnlineProblem::WrongKey { .. })
        ));
        f.set("code", "10000").set("state", "SUCCESS");
        let (g, _) = agg(vec![f.signed("gateway-key").to_json().into_bytes()]);
        assert!(matches!(
            g.check_online(),
            Err(OnlineProblem::ReplyUnverified { .. })
        ));
    }

    #[test]
    fn transport_words_map_to_their_problem() {
        let (g, _) = agg(vec![]);
        let p = |why: &str| {
            g.transport_problem(
                "h:1",
                &TransportError::NotSent {
                    host: "h".into(),
                    why: why.into(),
                },
            )
        };
        assert!(matches!(p("host not found"), OnlineProblem::Dns { .. }));
        assert!(matches!(
            p("io: Connection refused (os error 111)"),
            OnlineProblem::Refused { .. }
        ));
        assert!(matches!(
            p("rustls: invalid peer certificate: Expired"),
            OnlineProblem::Tls { .. }
        ));
        assert!(matches!(
            p("timeout: global"),
            OnlineProblem::Timeout { .. }
        ));
        assert!(matches!(
            p("io: broken pipe"),
            OnlineProblem::NoAnswer { .. }
        ));
    }
}
