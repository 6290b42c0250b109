//! Sensitive fields: `accNo`, `customerInfo` (with `encryptedInfo`), the PIN block, and the
//! decryption of encrypted fields in verified replies; plus the encryption-certificate rotation
//! decision of transaction 95.
//!
//! Owns PROTOCOLS.md §A.6. Encryption is RSA PKCS#1 v1.5 with the UnionPay encryption
//! certificate (send `encryptCertId` = its decimal serial) and the caller's RNG. Decryption uses
//! the merchant signing key and accepts only a [`VerifiedMessage`] field, which keeps the `rsa`
//! crate's private-key timing issue (RUSTSEC-2023-0071, see `sign::rsa`) out of reach of
//! unauthenticated input. Card numbers, PINs and phone numbers never reach `Debug` or errors.

use std::fmt;

use base64::Engine as _;
use rsa::rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::cert::{Certificate, MerchantKey};
use super::verify::VerifiedMessage;
use crate::sign::rsa::{RsaError, encrypt_pkcs1v15};

/// Why a sensitive field could not be produced or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SensitiveError {
    #[error("the card number must be 11 to 19 digits")]
    BadPan,
    #[error("the PIN must be 4 to 12 digits")]
    BadPin,
    #[error("field {0} is not present in the reply")]
    Missing(String),
    #[error("field {0} is not base64")]
    NotBase64(String),
    #[error("decrypted field {0} is not UTF-8 text")]
    NotText(String),
    #[error(transparent)]
    Rsa(#[from] RsaError),
    #[error("the 95 reply has no usable encryptPubKeyCert: {0}")]
    BadUpdateCert(String),
}

/// The UnionPay certificate used to encrypt sensitive fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionCert(Certificate);

impl EncryptionCert {
    pub fn new(cert: Certificate) -> EncryptionCert {
        EncryptionCert(cert)
    }

    /// `encryptCertId` to send with every encrypted field.
    pub fn cert_id(&self) -> String {
        self.0.serial_decimal()
    }

    pub fn certificate(&self) -> &Certificate {
        &self.0
    }

    /// Base64 of the RSA PKCS#1 v1.5 encryption of `plaintext`.
    pub fn encrypt(
        &self,
        plaintext: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<String, SensitiveError> {
        let ct = encrypt_pkcs1v15(self.0.public_key_der(), plaintext, rng)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(ct))
    }
}

fn check_digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// The encrypted `accNo`.
pub fn encrypt_acc_no(
    cert: &EncryptionCert,
    pan: &str,
    rng: &mut dyn CryptoRngCore,
) -> Result<String, SensitiveError> {
    if !check_digits(pan, 11, 19) {
        return Err(SensitiveError::BadPan);
    }
    cert.encrypt(pan.as_bytes(), rng)
}

/// ANSI X9.8 / ISO 9564 format-0 PIN block: PIN field XOR PAN field.
///
/// PIN field: `0N` then the N PIN digits, padded with `F`. PAN field: `0000` then the 12
/// rightmost PAN digits excluding the check digit (shorter PANs left-padded with `0` to 13 digits
/// first, as the SDK does).
pub fn pin_block(pin: &str, pan: &str) -> Result<Zeroizing<[u8; 8]>, SensitiveError> {
    if !check_digits(pin, 4, 12) {
        return Err(SensitiveError::BadPin);
    }
    if !check_digits(pan, 11, 19) {
        return Err(SensitiveError::BadPan);
    }
    let mut pin_field = Zeroizing::new(String::with_capacity(16));
    pin_field.push_str(&format!("{:02}", pin.len()));
    pin_field.push_str(pin);
    while pin_field.len() < 16 {
        pin_field.push('F');
    }
    let padded = format!("{pan:0>13}");
    let pan12 = &padded[padded.len() - 13..padded.len() - 1];
    let pan_field = format!("0000{pan12}");
    let mut out = Zeroizing::new([0u8; 8]);
    for i in 0..8 {
        let p = hex_byte(&pin_field.as_bytes()[2 * i..2 * i + 2]);
        let a = hex_byte(&pan_field.as_bytes()[2 * i..2 * i + 2]);
        out[i] = p ^ a;
    }
    Ok(out)
}

fn hex_byte(two: &[u8]) -> u8 {
    let v = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    };
    (v(two[0]) << 4) | v(two[1])
}

/// The encrypted `pin` sub-field: the format-0 block, RSA-encrypted.
pub fn encrypt_pin(
    cert: &EncryptionCert,
    pin: &str,
    pan: &str,
    rng: &mut dyn CryptoRngCore,
) -> Result<String, SensitiveError> {
    let block = pin_block(pin, pan)?;
    cert.encrypt(&block[..], rng)
}

/// The cardholder details that go into `customerInfo`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomerInfo {
    /// `certifTp`: identity document type ("01" = resident ID card).
    pub certif_tp: Option<String>,
    /// `certifId`: identity document number.
    pub certif_id: Option<String>,
    /// `customerNm`: name.
    pub customer_nm: Option<String>,
    /// `smsCode`.
    pub sms_code: Option<String>,
    /// The PIN (encrypted into `pin` with the PAN).
    pub pin: Option<String>,
    /// Encrypted together into `encryptedInfo`:
    pub phone_no: Option<String>,
    pub cvn2: Option<String>,
    pub expired: Option<String>,
}

impl fmt::Debug for CustomerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = |o: &Option<String>| if o.is_some() { "present" } else { "absent" };
        f.debug_struct("CustomerInfo")
            .field("certif_tp", &self.certif_tp)
            .field("certif_id", &present(&self.certif_id))
            .field("customer_nm", &present(&self.customer_nm))
            .field("sms_code", &present(&self.sms_code))
            .field("pin", &present(&self.pin))
            .field("phone_no", &present(&self.phone_no))
            .field("cvn2", &present(&self.cvn2))
            .field("expired", &present(&self.expired))
            .finish()
    }
}

/// `customerInfo` = Base64("{" + plain sub-fields + "&encryptedInfo=" + RSA(phoneNo, cvn2,
/// expired joined `k=v&…`) + "}"). `pan` is needed only when a PIN is present. Sub-fields come
/// in a fixed order (the SDK uses map order, which the gateway does not depend on).
pub fn customer_info(
    info: &CustomerInfo,
    pan: Option<&str>,
    cert: &EncryptionCert,
    rng: &mut dyn CryptoRngCore,
) -> Result<String, SensitiveError> {
    let mut plain: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("certifTp", &info.certif_tp),
        ("certifId", &info.certif_id),
        ("customerNm", &info.customer_nm),
        ("smsCode", &info.sms_code),
    ] {
        if let Some(v) = v {
            plain.push((k, v.clone()));
        }
    }
    if let Some(pin) = &info.pin {
        let pan = pan.ok_or(SensitiveError::BadPan)?;
        plain.push(("pin", encrypt_pin(cert, pin, pan, rng)?));
    }
    let secret: Vec<String> = [
        ("phoneNo", &info.phone_no),
        ("cvn2", &info.cvn2),
        ("expired", &info.expired),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    let secret = Zeroizing::new(secret.join("&"));
    if !secret.is_empty() {
        plain.push(("encryptedInfo", cert.encrypt(secret.as_bytes(), rng)?));
    }
    let inner: Vec<String> = plain.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = Zeroizing::new(format!("{{{}}}", inner.join("&")));
    Ok(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
}

/// Decrypts an encrypted field (e.g. `accNo`) of a verified reply with the merchant key.
pub fn decrypt_field(
    reply: &VerifiedMessage,
    field: &str,
    key: &MerchantKey,
    rng: &mut dyn CryptoRngCore,
) -> Result<Zeroizing<String>, SensitiveError> {
    let b64 = reply
        .get(field)
        .ok_or_else(|| SensitiveError::Missing(field.to_string()))?;
    decrypt_value(b64, field, key, rng)
}

fn decrypt_value(
    b64: &str,
    field: &str,
    key: &MerchantKey,
    rng: &mut dyn CryptoRngCore,
) -> Result<Zeroizing<String>, SensitiveError> {
    let ct = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| SensitiveError::NotBase64(field.to_string()))?;
    let pt = key.private_key().decrypt_pkcs1v15(&ct, rng)?;
    String::from_utf8(pt.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| SensitiveError::NotText(field.to_string()))
}

/// Masks a card number for display: first 4 and last 4 digits.
pub fn mask_pan(pan: &str) -> String {
    let n = pan.chars().count();
    if n <= 8 {
        return "*".repeat(n);
    }
    let head: String = pan.chars().take(4).collect();
    let tail: String = pan.chars().skip(n - 4).collect();
    format!("{head}{}{tail}", "*".repeat(n - 8))
}

/// What to do with the reply of an encryption-certificate update query (95).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertUpdate {
    /// The gateway's current certificate is the one in use.
    Unchanged,
    /// A new encryption certificate: store it (atomically) and use its `encryptCertId`.
    Replace(Box<EncryptionCert>),
}

/// Decides from a verified 95 reply whether the local encryption certificate must be replaced.
/// Only `certType` 01 (sensitive-information key) is handled; the new certificate must chain to
/// the same trust anchors the caller checks with `check_chain` (pass the middle cert).
pub fn encrypt_cert_update(
    reply: &VerifiedMessage,
    current_cert_id: &str,
    middle: &Certificate,
) -> Result<CertUpdate, SensitiveError> {
    let cert_type = reply.get("certType").unwrap_or("01");
    if cert_type != "01" {
        return Err(SensitiveError::BadUpdateCert(format!(
            "certType {cert_type} is not the sensitive-information key (01)"
        )));
    }
    let pem = reply
        .get("encryptPubKeyCert")
        .ok_or_else(|| SensitiveError::Missing("encryptPubKeyCert".into()))?;
    let cert =
        Certificate::from_pem(pem).map_err(|e| SensitiveError::BadUpdateCert(e.to_string()))?;
    cert.check_issued_by(middle)
        .map_err(SensitiveError::BadUpdateCert)?;
    if cert.serial_decimal() == current_cert_id {
        Ok(CertUpdate::Unchanged)
    } else {
        Ok(CertUpdate::Replace(Box::new(EncryptionCert(cert))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::unionpay::cert::tests::{cert, old_test_key, test_2021_key};
    use crate::gateway::unionpay::message::AcpMessage;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn kat() -> serde_json::Value {
        let p = crate::gateway::unionpay::tests::vectors_dir().join("acp_sign_kat.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn verified_raw(name: &str) -> VerifiedMessage {
        let raw = std::fs::read_to_string(
            crate::gateway::unionpay::tests::vectors_dir()
                .join("unionpay-messages")
                .join(name),
        )
        .unwrap();
        VerifiedMessage::assume_verified(AcpMessage::parse_raw(&raw).unwrap())
    }

    #[test]
    fn decrypt_kat_with_old_test_key() {
        let k = kat();
        let key = old_test_key();
        let pt = decrypt_value(
            k["decrypt_kat"]["ciphertext_b64"].as_str().unwrap(),
            "x",
            &key,
            &mut StdRng::seed_from_u64(0),
        )
        .unwrap();
        assert_eq!(&*pt, k["decrypt_kat"]["plaintext"].as_str().unwrap());
    }

    #[test]
    fn acc_no_in_real_replies_decrypts_with_the_2021_key() {
        let key = test_2021_key();
        for name in [
            "acp_response_query_00_00.raw.txt",
            "acp_notify_consume_01_01.raw.txt",
        ] {
            let m = verified_raw(name);
            let pan = decrypt_field(&m, "accNo", &key, &mut StdRng::seed_from_u64(1)).unwrap();
            assert_eq!(&*pan, "6216***********0018", "{name}");
        }
        // With the wrong key it is an error, not garbage.
        let m = verified_raw("acp_response_query_00_00.raw.txt");
        assert!(
            decrypt_field(&m, "accNo", &old_test_key(), &mut StdRng::seed_from_u64(1)).is_err()
        );
        assert_eq!(
            decrypt_field(&m, "nope", &key, &mut StdRng::seed_from_u64(1)),
            Err(SensitiveError::Missing("nope".into()))
        );
    }

    #[test]
    fn encryption_cert_id_and_round_trip() {
        let enc = EncryptionCert::new(cert("acp_test_enc.cer"));
        assert_eq!(enc.cert_id(), "68759622183");
        // Round trip through a certificate whose private key we have.
        let key = test_2021_key();
        let mine = EncryptionCert::new(key.certificate().clone());
        let mut rng = StdRng::seed_from_u64(3);
        let ct = encrypt_acc_no(&mine, "6226090000000048", &mut rng).unwrap();
        let again = encrypt_acc_no(&mine, "6226090000000048", &mut rng).unwrap();
        assert_ne!(ct, again, "PKCS#1 v1.5 padding is random");
        let pt = decrypt_value(&ct, "accNo", &key, &mut rng).unwrap();
        assert_eq!(&*pt, "6226090000000048");
        assert_eq!(
            encrypt_acc_no(&enc, "12ab", &mut rng),
            Err(SensitiveError::BadPan)
        );
    }

    #[test]
    fn pin_block_format_0() {
        // ISO 9564-1 format 0, worked by hand: PIN 1234, PAN 4111111111111111.
        // PIN field 041234FFFFFFFFFF, PAN field 0000111111111111 -> 041225EEEEEEEEEE.
        let b = pin_block("1234", "4111111111111111").unwrap();
        assert_eq!(hex::encode_upper(&b[..]), "041225EEEEEEEEEE");
        // SDK test card 6226090000000048, PIN 123456: PAN digits 609000000004.
        let b = pin_block("123456", "6226090000000048").unwrap();
        assert_eq!(hex::encode_upper(&b[..]), "061254C6FFFFFFFB");
        // An 11-digit PAN is left-padded to 13 digits first: "0012345678901", whose 12 digits
        // before the check digit are "001234567890".
        let b = pin_block("1234", "12345678901").unwrap();
        assert_eq!(hex::encode_upper(&b[..]), "041234EDCBA9876F");
        assert_eq!(
            pin_block("123", "4111111111111111").map(|_| ()),
            Err(SensitiveError::BadPin)
        );
        assert_eq!(
            pin_block("1234", "4111").map(|_| ()),
            Err(SensitiveError::BadPan)
        );
    }

    #[test]
    fn customer_info_layout() {
        let key = test_2021_key();
        let mine = EncryptionCert::new(key.certificate().clone());
        let info = CustomerInfo {
            certif_tp: Some("01".into()),
            customer_nm: Some("张三".into()),
            phone_no: Some("18100000000".into()),
            cvn2: Some("123".into()),
            ..CustomerInfo::default()
        };
        let mut rng = StdRng::seed_from_u64(9);
        let b64 = customer_info(&info, None, &mine, &mut rng).unwrap();
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        let inner = text.strip_prefix('{').unwrap().strip_suffix('}').unwrap();
        let (plain, enc) = inner.split_once("&encryptedInfo=").unwrap();
        assert_eq!(plain, "certifTp=01&customerNm=张三");
        let secret = decrypt_value(enc, "encryptedInfo", &key, &mut rng).unwrap();
        assert_eq!(&*secret, "phoneNo=18100000000&cvn2=123");
        assert!(!format!("{info:?}").contains("18100000000"));
        let with_pin = CustomerInfo {
            pin: Some("123456".into()),
            ..CustomerInfo::default()
        };
        assert_eq!(
            customer_info(&with_pin, None, &mine, &mut rng),
            Err(SensitiveError::BadPan)
        );
        assert!(customer_info(&with_pin, Some("6226090000000048"), &mine, &mut rng).is_ok());
    }

    #[test]
    fn masking() {
        assert_eq!(mask_pan("6226090000000048"), "6226********0048");
        assert_eq!(mask_pan("1234"), "****");
    }

    #[test]
    fn cert_update_decision() {
        let middle = cert("acp_test_middle.cer");
        let enc = cert("acp_test_enc.cer");
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----",
            base64::engine::general_purpose::STANDARD.encode(enc.der())
        );
        let reply = |ct: &str| {
            VerifiedMessage::assume_verified(
                AcpMessage::from_fields(vec![
                    ("respCode".into(), "00".into()),
                    ("certType".into(), ct.into()),
                    ("encryptPubKeyCert".into(), pem.clone()),
                ])
                .unwrap(),
            )
        };
        assert_eq!(
            encrypt_cert_update(&reply("01"), "68759622183", &middle),
            Ok(CertUpdate::Unchanged)
        );
        assert_eq!(
            encrypt_cert_update(&reply("01"), "1", &middle),
            Ok(CertUpdate::Replace(Box::new(EncryptionCert::new(
                enc.clone()
            ))))
        );
        assert!(encrypt_cert_update(&reply("02"), "1", &middle).is_err());
        let prod_middle = cert("prod/acp_prod_middle.cer");
        assert!(encrypt_cert_update(&reply("01"), "1", &prod_middle).is_err());
    }
}
