//! 无感支付 debits as the engine's `upapi` gateway: the contract customer's consume, and its
//! query, undo/reversal and refunds (seed 001: these are 全渠道 (ACP) transactions).
//!
//! The debit is an ACP back-end consume (txnType 01, txnSubType 01) signed with the merchant's
//! ACP key and carrying the contract (`contractId`, `planId`); its reply is believed only after
//! ACP's full verification ([`verify_report`]) and the merId/orderId echo. The exact debit
//! fields are not public (PROTOCOLS.md §E: "NOT found"): `bizType` is configuration (default
//! 000301) and the contract fields are this project's reading — a deployment confirms them with
//! UnionPay. Everything after the debit is ordinary ACP on the order's own orderId/txnTime, so it
//! is delegated to [`AcpGateway`] (its query schedule, undo window, refund follow-ups and the
//! encryption-certificate update, 95). Nothing here journals or waits.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::core::authcode::Wallet;
use crate::core::machine::Reply;
use crate::core::policy::Policy;
use crate::gateway::transport::{HttpRequest, Timeouts, Transport, UreqTransport};
use crate::gateway::unionpay::message::Signer;
use crate::gateway::unionpay::txn::{CONTENT_TYPE, classify_reply};
use crate::gateway::unionpay::{
    AcpError, AcpGateway, AcpKeys, AcpRequest, CertUpdateOutcome, Endpoint, TxnKind, Verdict,
    verify_report,
};
use crate::gateway::{AttemptRef, Credential, Gateway, GatewayReply, RefundOutcome, RefundRef};

use super::UpapiConfig;

pub struct ContractGateway {
    acp: AcpGateway,
    keys: AcpKeys,
    cfg: UpapiConfig,
    consume_url: String,
    transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for ContractGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ContractGateway {{ merId: {}, consume_url: {} }}",
            self.cfg.acp.mer_id, self.consume_url
        )
    }
}

fn unknown(why: impl Into<String>) -> GatewayReply {
    let why = why.into();
    GatewayReply::new(Reply::unknown(why.clone()), why)
}

impl ContractGateway {
    /// Loads the ACP keys of `[gateways.upapi.acp]`; follow-ups are recorded in
    /// `upapi-followups.jsonl` beside the journal unless configured otherwise.
    pub fn from_config(
        cfg: &crate::config::Config,
        u: &UpapiConfig,
    ) -> Result<ContractGateway, AcpError> {
        let mut acp_cfg = u.acp.clone();
        if acp_cfg.state_file.is_none() {
            acp_cfg.state_file = Some(
                cfg.journal_path()
                    .with_file_name("upapi-followups.jsonl")
                    .display()
                    .to_string(),
            );
        }
        let keys = AcpKeys::load(cfg, &acp_cfg)?;
        let acp = AcpGateway::from_config(cfg, &acp_cfg)?;
        let t = Timeouts {
            connect: Duration::from_millis(acp_cfg.connect_timeout_ms),
            total: Duration::from_millis(acp_cfg.timeout_ms),
        };
        Ok(ContractGateway::new(
            acp,
            keys,
            u.clone(),
            Arc::new(UreqTransport::new(t)),
        ))
    }

    pub fn new(
        acp: AcpGateway,
        keys: AcpKeys,
        cfg: UpapiConfig,
        transport: Arc<dyn Transport>,
    ) -> ContractGateway {
        let consume_url = cfg.consume_url.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                cfg.acp.base_url.trim_end_matches('/'),
                Endpoint::BackTrans.path()
            )
        });
        ContractGateway {
            acp,
            keys,
            cfg,
            consume_url,
            transport,
        }
    }

    /// The ACP channel behind the debits.
    pub fn acp(&self) -> &AcpGateway {
        &self.acp
    }

    /// 加密公钥更新查询 (ACP 95): fetches and installs UnionPay's current encryption certificate.
    pub fn update_encryption_cert(&self) -> Result<CertUpdateOutcome, AcpError> {
        self.acp.update_encryption_cert()
    }

    /// The signed debit request for `a` on `contract_id`.
    pub fn consume_request(&self, a: &AttemptRef, contract_id: &str) -> Result<String, String> {
        let c = &self.cfg.acp;
        let mut f = std::collections::BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            f.insert(k.to_string(), v.to_string());
        };
        put("version", "5.1.0");
        put("encoding", "UTF-8");
        put("signMethod", "01");
        put("txnType", "01");
        put("txnSubType", "01");
        put("bizType", &self.cfg.consume_biz_type);
        put("channelType", "07");
        put("accessType", &c.access_type);
        put("merId", &c.mer_id);
        put("orderId", &a.out_trade_no);
        put("txnTime", &a.chan_txn_time);
        put("txnAmt", &a.amount.fen().to_string());
        put("currencyCode", "156");
        put("backUrl", &c.back_url);
        put("contractId", contract_id);
        put("planId", &self.cfg.plan_id);
        if let Some(t) = &c.term_id {
            put("termId", t);
        }
        if let Some(q) = &c.acq_ins_code {
            put("acqInsCode", q);
        }
        let req = AcpRequest {
            endpoint: Endpoint::BackTrans,
            kind: TxnKind::QrConsume,
            fields: f,
        };
        // Debits are signed with the certificate (signMethod 01) whatever the follow-ups use.
        let key = self
            .keys
            .cert_key()
            .map_err(|e| format!("cannot sign the debit: {e}"))?;
        req.sign(Signer::Cert(key), &mut rand::thread_rng())
            .map(|s| s.body)
            .map_err(|e| format!("cannot sign the debit: {e}"))
    }
}

impl Gateway for ContractGateway {
    fn name(&self) -> &'static str {
        "upapi"
    }

    fn policy(&self, wallet: Option<Wallet>) -> Policy {
        Gateway::policy(&self.acp, wallet)
    }

    fn txn_time(&self, created_ms: i64) -> String {
        Gateway::txn_time(&self.acp, created_ms)
    }

    fn endpoint(&self) -> Option<String> {
        Some(self.cfg.base_url.clone())
    }

    fn pay(&self, a: &AttemptRef, credential: &Credential) -> GatewayReply {
        let Credential::Contract { contract_id } = credential else {
            return GatewayReply::new(
                Reply::Failed {
                    code: "unsupported".into(),
                    reason: "the upapi gateway debits contracts only; nothing was sent".into(),
                },
                "not sent",
            );
        };
        let body = match self.consume_request(a, contract_id) {
            Ok(b) => b,
            Err(e) => {
                return GatewayReply::new(
                    Reply::Failed {
                        code: "build".into(),
                        reason: e.clone(),
                    },
                    format!("not sent: {e}"),
                );
            }
        };
        let req = HttpRequest {
            url: self.consume_url.clone(),
            content_type: CONTENT_TYPE,
            headers: vec![],
            body: body.into_bytes(),
        };
        let resp = match self.transport.post(&req) {
            Ok(r) if r.status == 200 => r,
            Ok(r) => return unknown(format!("HTTP {}", r.status)),
            Err(e) => return unknown(e.to_string()),
        };
        let Ok(text) = String::from_utf8(resp.body) else {
            return unknown("the reply is not UTF-8 text");
        };
        let now = UNIX_EPOCH + Duration::from_millis(crate::util::now_ms().max(0) as u64);
        let m = match verify_report(&text, &self.keys.trust, now).into_verified() {
            Ok(m) => m,
            Err(r) => {
                return unknown(match r.failure() {
                    Some((step, why)) => {
                        format!("reply not verified at step {}: {why}", step.name())
                    }
                    None => "reply not verified".into(),
                });
            }
        };
        if m.get("merId").is_some_and(|x| x != self.cfg.acp.mer_id)
            || m.get("orderId").is_some_and(|x| x != a.out_trade_no)
        {
            return unknown("the reply is for another merchant or order");
        }
        let detail = format!(
            "respCode {} {}",
            m.get("respCode").unwrap_or("-"),
            m.get("respMsg").unwrap_or("")
        );
        let reply = match m.get("respCode") {
            // Accepted: a back-end consume's result comes by query (or notification).
            Some("00") | Some("A6") => Reply::Pending,
            _ => match classify_reply(TxnKind::QrConsume, &m) {
                Verdict::Done => Reply::Pending,
                Verdict::Failed { code, message } => Reply::Failed {
                    code,
                    reason: message,
                },
                Verdict::Unknown { reason } => Reply::unknown(reason),
            },
        };
        let mut g = GatewayReply::new(reply, detail);
        g.chan_trade_no = m.get("queryId").map(str::to_string);
        g
    }

    fn query(&self, a: &AttemptRef) -> GatewayReply {
        Gateway::query(&self.acp, a)
    }

    fn reverse(&self, a: &AttemptRef) -> GatewayReply {
        Gateway::reverse(&self.acp, a)
    }

    fn refund(&self, a: &AttemptRef, r: &RefundRef) -> RefundOutcome {
        Gateway::refund(&self.acp, a, r)
    }

    fn refund_query(&self, a: &AttemptRef, out_refund_no: &str) -> RefundOutcome {
        Gateway::refund_query(&self.acp, a, out_refund_no)
    }
}
