use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::*;
use crate::gateway::HttpResponse;

pub(crate) struct Canned {
    replies: Mutex<Vec<Value>>,
    sent: Mutex<Vec<(String, Value)>>,
}

impl Transport for Canned {
    fn post(&self, req: &HttpRequest) -> Result<crate::gateway::HttpResponse, TransportError> {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        self.sent.lock().unwrap().push((req.url.clone(), body));
        let mut r = self.replies.lock().unwrap();
        if r.is_empty() {
            return Err(TransportError::NotSent {
                host: "x".into(),
                why: "refused".into(),
            });
        }
        Ok(HttpResponse {
            status: 200,
            body: serde_json::to_vec(&r.remove(0)).unwrap(),
            authorization: None,
        })
    }
}

const SECRET: &str = "upapi-test-secret";
const KEY_HEX: &str = "0123456789abcdef0123456789abcdeffedcba9876543210";

fn cfg() -> UpapiConfig {
    let acp = r#"
[acp]
base_url = "http://127.0.0.1:1"
mer_id = "777290058110048"
sign_pfx = "p"
sign_password_file = "p"
encrypt_cert = "e"
middle_cert = "m"
root_cert = "r"
back_url = "http://127.0.0.1:1/n"
"#;
    toml::from_str(&format!(
        r#"base_url = "http://127.0.0.1:1"
app_id = "a5949221470c4059b9b0b45a90c81527"
secret_file = "s"
symmetric_key_file = "k"
plan_id = "PLAN0001"
notify_cert = "c"
{acp}"#
    ))
    .unwrap()
}

pub(crate) fn client(replies: Vec<Value>, clock: Arc<AtomicI64>) -> (Upapi, Arc<Canned>) {
    let t = Arc::new(Canned {
        replies: Mutex::new(replies),
        sent: Mutex::new(vec![]),
    });
    let c = clock.clone();
    let u = Upapi::new(
        cfg(),
        SECRET.into(),
        KEY_HEX,
        crate::sandbox::acp::SANDBOX_SIGN_CERT.as_bytes(),
        t.clone(),
        Arc::new(move || c.load(Ordering::SeqCst)),
    )
    .unwrap();
    (u, t)
}

pub(crate) fn ok(params: Value) -> Value {
    json!({"resp": "00", "msg": "成功", "params": params})
}

fn verify_sig(body: &Value) -> bool {
    let flat: Vec<(String, String)> = body
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|x| (k.clone(), x.to_string())))
        .collect();
    crate::sign::sha256::upapi_verify(
        flat.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SECRET,
        body["signature"].as_str().unwrap(),
    )
}

const T0: i64 = 1_795_312_800_000;

#[test]
fn backend_token_is_signed_cached_and_renewed_before_expiry_and_after_a10() {
    let clock = Arc::new(AtomicI64::new(T0));
    let tok = |t: &str| ok(json!({"backendToken": t, "expiresIn": 7200}));
    let info = || ok(json!({"contractId": "C1", "contractStatus": "1"}));
    let (u, t) = client(
        vec![
            tok("B1"),
            info(),
            info(),
            tok("B2"),
            info(),
            json!({"resp": "a10", "msg": "backendToken 无效"}),
            tok("B3"),
            info(),
        ],
        clock.clone(),
    );
    assert_eq!(
        u.contract_info("OPEN1").unwrap(),
        ContractStatus::Signed {
            contract_id: "C1".into()
        }
    );
    clock.fetch_add(6_000_000, Ordering::SeqCst); // 100 minutes: still good (renewed 10 min early)
    u.contract_info("OPEN1").unwrap();
    clock.fetch_add(600_001, Ordering::SeqCst); // inside the margin
    u.contract_info("OPEN1").unwrap();
    u.contract_info("OPEN1").unwrap(); // a10: renewed and sent once more
    let sent = t.sent.lock().unwrap();
    let methods: Vec<&str> = sent
        .iter()
        .map(|(u, _)| u.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "backendToken",
            "contract.info",
            "contract.info",
            "backendToken",
            "contract.info",
            "contract.info",
            "backendToken",
            "contract.info"
        ]
    );
    for (_, b) in sent.iter() {
        assert!(verify_sig(b), "every call is signed: {b}");
        assert!(b.get("secret").is_none(), "the secret is never sent");
    }
    assert_eq!(sent[0].1["nonceStr"].as_str().unwrap().len(), 16);
    assert_eq!(sent[0].1["timestamp"], (T0 / 1000).to_string());
    assert_eq!(sent[1].1["backendToken"], "B1");
    assert_eq!(sent[2].1["backendToken"], "B1");
    assert_eq!(sent[4].1["backendToken"], "B2");
    assert_eq!(sent[7].1["backendToken"], "B3");
    assert!(!format!("{u:?}").contains(SECRET));
}

#[test]
fn sign_contract_with_an_authorization_code_and_decrypt_the_mobile() {
    let key = SymmetricKey::from_hex(KEY_HEX).unwrap();
    let (u, t) = client(
        vec![
            ok(json!({"backendToken": "B", "expiresIn": 7200})),
            ok(
                json!({"accessToken": "AT", "openId": "OPEN1", "expiresIn": 3600, "scope": "upapi_contract"}),
            ),
            ok(
                json!({"contractId": "CID9", "contractCode": "CC1", "planId": "PLAN0001", "openId": "OPEN1",
                      "operationTime": "20261122100000", "mobile": key.encrypt("13800138000")}),
            ),
        ],
        Arc::new(AtomicI64::new(T0)),
    );
    let user = u.user_auth("CODE123").unwrap();
    assert_eq!(user.open_id, "OPEN1");
    assert!(!format!("{user:?}").contains("AT\""));
    let c = u.contract_apply(&user, "CC1").unwrap();
    assert_eq!(c.contract_id, "CID9");
    assert_eq!(c.masked_mobile.as_deref(), Some("1380***8000"));
    let sent = t.sent.lock().unwrap();
    assert_eq!(sent[1].1["grantType"], "authorization_code");
    assert_eq!(sent[1].1["code"], "CODE123");
    assert_eq!(sent[2].1["accessToken"], "AT");
    assert_eq!(sent[2].1["planId"], "PLAN0001");
    assert!(matches!(
        u.contract_apply(&user, "bad code!"),
        Err(UpapiError::Build(_))
    ));
}

#[test]
fn arrears_follow_the_documented_reading() {
    let b = || ok(json!({"backendToken": "B", "expiresIn": 7200}));
    let (u, _) = client(
        vec![
            b(),
            ok(json!({"enable": "0"})),
            ok(json!({"enable": "2"})),
            ok(json!({"enable": "x"})),
        ],
        Arc::new(AtomicI64::new(T0)),
    );
    assert_eq!(u.arrears("O").unwrap(), 0);
    assert_eq!(u.arrears("O").unwrap(), 2);
    assert_eq!(u.arrears("O").unwrap(), 0, "not a number: not arrears");
    let e = u.arrears("O").unwrap_err();
    assert!(e.is_unreachable(), "{e}");
}

#[test]
fn relieve_notice_is_verified_with_unionpays_key() {
    use crate::sign::rsa::RsaPrivateKey;
    let key = RsaPrivateKey::from_pkcs8_der(crate::sandbox::acp::SANDBOX_SIGN_KEY).unwrap();
    let fields: Vec<(String, String)> = [
        ("appId", "a5949221470c4059b9b0b45a90c81527"),
        ("timestamp", "1795312800"),
        ("nonceStr", "abcdefgh12345678"),
        ("operateTime", "20261122100000"),
        ("openId", "OPEN1"),
        ("trid", "TR1"),
        ("contractId", "CID9"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let text = notice_string_to_sign(&fields);
    let sig = key
        .sign_pkcs1(RsaHash::Sha256, text.as_bytes(), &mut rand::thread_rng())
        .unwrap();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &fields {
        q.append_pair(k, v);
    }
    q.append_pair(
        "signature",
        &base64::engine::general_purpose::STANDARD.encode(&sig),
    );
    let query = q.finish();
    let (u, _) = client(vec![], Arc::new(AtomicI64::new(T0)));
    let n = u.verify_relieve_notice(&query).unwrap();
    assert_eq!(n.contract_id, "CID9");
    assert_eq!(n.digest.len(), 64);
    let forged = query.replace("CID9", "CID8");
    assert!(matches!(
        u.verify_relieve_notice(&forged),
        Err(UpapiError::BadNotice(_))
    ));
    assert!(matches!(
        u.verify_relieve_notice("openId=x"),
        Err(UpapiError::BadNotice(_))
    ));
    assert_eq!(notice_reply(true), r#"{"resp":"00"}"#);
}

#[test]
fn config_problems_are_explained() {
    let mut c = cfg();
    assert!(c.problems(true).is_empty(), "{:?}", c.problems(true));
    c.plan_id.clear();
    c.offline.per_customer = "abc".into();
    let p = c.problems(true);
    assert!(
        p.iter().any(|(f, _)| f == "gateways.upapi.plan_id"),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|(f, _)| f == "gateways.upapi.offline.per_customer"),
        "{p:?}"
    );
}

#[test]
fn a_contract_reply_without_its_status_says_nothing_about_the_contract() {
    let b = || ok(json!({"backendToken": "B", "expiresIn": 7200}));
    let (u, _) = client(
        vec![
            b(),
            ok(json!({"contractId": "C1"})),
            ok(json!({"contractId": "C1", "contractStatus": ""})),
        ],
        Arc::new(AtomicI64::new(T0)),
    );
    let e = u.contract_info("O");
    assert!(matches!(e, Err(UpapiError::BadReply(_))), "{e:?}");
    // The documented empty status: not signed.
    assert_eq!(u.contract_info("O").unwrap(), ContractStatus::NotSigned);
}
