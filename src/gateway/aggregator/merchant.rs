//! The aggregator's 运维管理 group (seed 003 §2.4): registering a virtual merchant (Mch_Reg), the
//! SMS code (GetMchSMSValid), looking up a merchant id (GetMchId), WeChat sub-merchant ids
//! (GetPartnerId) and the mini-program login (WXA_Code2Session); GetMchInfo is in mod.rs.
//!
//! Each call is signed, its reply believed only once its signature checks, and turned into a
//! typed value. None of them moves money, so none is journaled. The mini-program's
//! `session_key` is a secret: it is kept in [`SessionKey`], which prints only that it exists.

use serde::Deserialize;

use super::codes::code;
use super::{Aggregator, AggregatorError, Fields};

/// Fields every request carries and registration parameters may not replace: the seed's
/// common parameters, which identify and authenticate us.
const COMMON: [&str; 4] = ["agent_id", "version", "pid", "sign"];

/// Mch_Reg's answer: the new virtual merchant's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub mch_id: String,
}

/// GetMchSMSValid's answer. The seed puts the code's validity, in minutes, in `code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsSent {
    pub valid_minutes: Option<u32>,
    pub msg: String,
}

/// How GetMchId identifies the merchant: the seed takes one of the two pairs.
#[derive(Clone, Debug)]
pub enum MchLogin {
    Sms { mobile: String, valid: String },
    Password { username: String, password: String },
}

/// GetMchId's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MchIdentity {
    pub mch_id: String,
    /// 商户交易码 (case-sensitive): callers print it masked unless asked.
    pub mch_trade_code: String,
    pub full_name: String,
    pub short_name: String,
    /// `0` 待审核, `20` 启用, `30` 停用.
    pub mch_state: String,
}

impl MchIdentity {
    pub fn state_words(&self) -> &'static str {
        match self.mch_state.as_str() {
            "0" => "待审核 awaiting review",
            "20" => "启用 enabled",
            "30" => "停用 disabled",
            _ => "unlisted state",
        }
    }
}

/// One entry of GetPartnerId's `partner_list`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Partner {
    pub pay_channel: String,
    #[serde(default)]
    pub appid: Option<String>,
    /// Empty until WeChat has approved the sub-merchant.
    #[serde(default)]
    pub partner_id: Option<String>,
}

/// GetPartnerId's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerIds {
    pub mch_id: String,
    pub partners: Vec<Partner>,
}

/// The mini-program session key: a secret that signs the user's encrypted data. It is never
/// printed, logged or stored in clear; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(String);

impl SessionKey {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What may be shown: that one was returned, and its length.
    pub fn masked(&self) -> String {
        format!("(returned, {} characters, not shown)", self.0.len())
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey({} chars)", self.0.len())
    }
}

/// WXA_Code2Session's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiniSession {
    pub openid: String,
    pub unionid: Option<String>,
    pub expires_in: Option<u64>,
    pub session_key: Option<SessionKey>,
}

fn refused(r: &Fields) -> AggregatorError {
    let c = r.get("code").unwrap_or("");
    AggregatorError::Refused {
        code: c.into(),
        msg: r
            .get("msg")
            .unwrap_or(super::codes::describe(c))
            .to_string(),
    }
}

fn ok(r: Fields) -> Result<Fields, AggregatorError> {
    if r.get("state") == Some("SUCCESS") && r.get("code") == Some(code::OK) {
        Ok(r)
    } else {
        Err(refused(&r))
    }
}

fn need(r: &Fields, k: &'static str) -> Result<String, AggregatorError> {
    r.get(k)
        .map(str::to_string)
        .ok_or(AggregatorError::Missing(k))
}

fn bad(why: impl Into<String>) -> AggregatorError {
    AggregatorError::BadInput(why.into())
}

/// A mainland mobile number as the SMS service takes it: 11 digits starting with 1.
fn valid_mobile(m: &str) -> bool {
    m.len() == 11 && m.starts_with('1') && m.bytes().all(|b| b.is_ascii_digit())
}

impl Aggregator {
    /// The group's common fields. No `mch_id`: registration and GetMchId come before one is
    /// known, and the others name theirs explicitly.
    fn ops_common(&self) -> Fields {
        let mut f = Fields::new();
        f.set("agent_id", self.cfg.agent_id.as_str())
            .set("version", self.cfg.version.as_str())
            .set("pid", self.cfg.pid.as_str());
        f
    }

    /// Mch_Reg: registers a virtual merchant. Its parameters are agreed per integration
    /// (the seed: 联调时请联系技术支持获取), so they are passed through as given.
    pub fn register_merchant(
        &self,
        params: &[(String, String)],
    ) -> Result<Registered, AggregatorError> {
        if params.is_empty() {
            return Err(bad(
                "no registration parameters: the aggregator's support gives the list (key=value)",
            ));
        }
        let mut f = self.ops_common();
        for (k, v) in params {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad(format!(
                    "{k:?} is not a parameter name (letters, digits, _)"
                )));
            }
            if COMMON.contains(&k.as_str()) {
                return Err(bad(format!(
                    "{k} is set from the configuration and cannot be given"
                )));
            }
            f.set(k, v.as_str());
        }
        let r = ok(self.call("/UnifiedPay/Mch_Reg", f)?)?;
        Ok(Registered {
            mch_id: need(&r, "mch_id")?,
        })
    }

    /// GetMchSMSValid: has the aggregator text a verification code to `mobile`.
    pub fn send_sms_code(&self, mobile: &str) -> Result<SmsSent, AggregatorError> {
        if !valid_mobile(mobile) {
            return Err(bad("the mobile number must be 11 digits starting with 1"));
        }
        let mut f = self.ops_common();
        f.set("mobile", mobile);
        let r = self.call("/Mch/GetMchSMSValid", f)?;
        // Success is `state` alone here: the seed reuses `code` for the validity in minutes.
        if r.get("state") != Some("SUCCESS") {
            return Err(refused(&r));
        }
        Ok(SmsSent {
            valid_minutes: r.get("code").and_then(|c| c.parse().ok()),
            msg: r.get("msg").unwrap_or("").to_string(),
        })
    }

    /// GetMchId: the merchant id (and names, state, trade code) of a mobile+SMS code or a
    /// username+password.
    pub fn merchant_id(&self, login: &MchLogin) -> Result<MchIdentity, AggregatorError> {
        let mut f = self.ops_common();
        match login {
            MchLogin::Sms { mobile, valid } => {
                if !valid_mobile(mobile) {
                    return Err(bad("the mobile number must be 11 digits starting with 1"));
                }
                if valid.is_empty() {
                    return Err(bad("the SMS verification code is empty"));
                }
                f.set("mobile", mobile.as_str())
                    .set("valid", valid.as_str());
            }
            MchLogin::Password { username, password } => {
                if username.is_empty() || password.is_empty() {
                    return Err(bad("both a username and a password are needed"));
                }
                f.set("username", username.as_str())
                    .set("password", password.as_str());
            }
        }
        let r = ok(self.call("/Mch/GetMchId", f)?)?;
        Ok(MchIdentity {
            mch_id: need(&r, "mch_id")?,
            mch_trade_code: need(&r, "mch_trade_code")?,
            full_name: r.get("mch_full_name").unwrap_or("").to_string(),
            short_name: r.get("mch_short_name").unwrap_or("").to_string(),
            mch_state: need(&r, "mch_state")?,
        })
    }

    /// GetPartnerId: the WeChat sub-merchant ids of `mch_id` (default: ours), per channel.
    pub fn partner_ids(&self, mch_id: Option<&str>) -> Result<PartnerIds, AggregatorError> {
        let mut f = self.ops_common();
        f.set("mch_id", mch_id.unwrap_or(&self.cfg.mch_id));
        let r = ok(self.call("/Open/GetPartnerId", f)?)?;
        let list = need(&r, "partner_list")?;
        // The list travels as JSON text inside a signed string field.
        let partners: Vec<Partner> = serde_json::from_str(&list).map_err(|e| {
            AggregatorError::Wire(super::WireError::NotJson(format!("partner_list: {e}")))
        })?;
        Ok(PartnerIds {
            mch_id: need(&r, "mch_id")?,
            partners,
        })
    }

    /// WXA_Code2Session: exchanges a mini-program's login code for the user's openid.
    pub fn code_to_session(
        &self,
        appid: &str,
        js_code: &str,
    ) -> Result<MiniSession, AggregatorError> {
        if appid.is_empty() || js_code.is_empty() {
            return Err(bad(
                "both the mini-program appid and the login code are needed",
            ));
        }
        let mut f = self.ops_common();
        f.set("appid", appid).set("js_code", js_code);
        let r = ok(self.call("/Open/WXA_Code2Session", f)?)?;
        Ok(MiniSession {
            openid: need(&r, "openid")?,
            unionid: r.get("unionid").map(str::to_string),
            expires_in: r.get("expires_in").and_then(|e| e.parse().ok()),
            session_key: r.get("session_key").map(|k| SessionKey(k.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::agg;
    use super::*;

    fn signed(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut f = Fields::new();
        for (k, v) in pairs {
            f.set(k, *v);
        }
        f.signed("k").to_json().into_bytes()
    }

    #[test]
    fn register_passes_parameters_through_signed_and_guards_the_common_ones() {
        let (g, t) = agg(vec![signed(&[
            ("state", "SUCCESS"),
            ("code", "10000"),
            ("mch_id", "V0001"),
        ])]);
        let p = vec![("shop_name".to_string(), "小店".to_string())];
        assert_eq!(g.register_merchant(&p).unwrap().mch_id, "V0001");
        let sent = Fields::from_form(t.sent()[0].as_bytes());
        assert!(sent.verify("k").is_ok());
        assert_eq!(sent.get("shop_name"), Some("小店"));
        assert_eq!(sent.get("mch_id"), None);
        let p = vec![("agent_id".to_string(), "1".to_string())];
        assert!(matches!(
            g.register_merchant(&p),
            Err(AggregatorError::BadInput(_))
        ));
        assert!(matches!(
            g.register_merchant(&[]),
            Err(AggregatorError::BadInput(_))
        ));
    }

    #[test]
    fn sms_success_reads_minutes_from_code() {
        let (g, _) = agg(vec![signed(&[
            ("state", "SUCCESS"),
            ("code", "20"),
            ("msg", "短信验证码已发送"),
        ])]);
        assert_eq!(
            g.send_sms_code("13800000000").unwrap().valid_minutes,
            Some(20)
        );
        assert!(matches!(
            g.send_sms_code("12345"),
            Err(AggregatorError::BadInput(_))
        ));
    }

    #[test]
    fn partner_list_is_parsed_from_its_json_text() {
        let list = r#"[{"pay_channel":"CEB","partner_id":"257012345","appid":"wx2a8d87e234100000"},{"pay_channel":"CCB"}]"#;
        let (g, _) = agg(vec![signed(&[
            ("state", "SUCCESS"),
            ("code", "10000"),
            ("mch_id", "00000001"),
            ("partner_list", list),
        ])]);
        let p = g.partner_ids(None).unwrap();
        assert_eq!(p.partners.len(), 2);
        assert_eq!(p.partners[0].partner_id.as_deref(), Some("257012345"));
        assert_eq!(p.partners[1].partner_id, None);
    }

    #[test]
    fn session_key_never_shows_in_debug_and_unsigned_replies_are_refused() {
        let (g, _) = agg(vec![signed(&[
            ("state", "SUCCESS"),
            ("code", "10000"),
            ("openid", "oDY_z00gEhAdLJ8cLTVd8nGCj-_M"),
            ("session_key", "+rL9Uq02dbP85itL0dz94w=="),
            ("expires_in", "7200"),
        ])]);
        let s = g.code_to_session("wx4da448cd29920000", "023jh17A").unwrap();
        assert_eq!(s.expires_in, Some(7200));
        let shown = format!("{s:?} {}", s.session_key.as_ref().unwrap().masked());
        assert!(!shown.contains("+rL9Uq02dbP85itL0dz94w=="), "{shown}");
        let unsigned = br#"{"state":"SUCCESS","code":"10000","openid":"o"}"#.to_vec();
        let (g, _) = agg(vec![unsigned]);
        assert!(matches!(
            g.code_to_session("wx1", "c"),
            Err(AggregatorError::Wire(_))
        ));
    }
}
