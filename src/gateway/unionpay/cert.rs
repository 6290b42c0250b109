//! Certificates and keys for ACP: X.509 (PEM or DER), the merchant signing key from PKCS#12, the
//! sensitive-field encryption certificate, and certId (= the serial number in decimal).
//!
//! Owns certificate parsing and the per-certificate checks (validity at a given time, "issued by"
//! with SHA-1 or SHA-2 RSA signatures). It does not decide trust policy (that is `verify.rs`), reads
//! no clock (time is a parameter), and never prints key material; `Debug` of a key shows only its
//! certId.

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::der::{self, DerError, SEQUENCE, ctx_cons};
use super::pkcs12::{self, Pkcs12Error};
use crate::sign::rsa::{RsaError, RsaHash, RsaPrivateKey, verify_pkcs1};

const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_CN: &str = "2.5.4.3";
const OID_OU: &str = "2.5.4.11";

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("malformed certificate: {0}")]
    Der(#[from] DerError),
    #[error("malformed PEM: {0}")]
    Pem(String),
    #[error("unsupported certificate: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Pkcs12(#[from] Pkcs12Error),
    #[error(transparent)]
    Rsa(#[from] RsaError),
    #[error("the PKCS#12 file has {keys} key(s) and no certificate matching the first key")]
    NoMatchingCert { keys: usize },
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: String },
}

/// A distinguished name: the attributes in certificate order, plus the raw DER for exact matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    raw: Vec<u8>,
    attrs: Vec<(String, String)>,
}

impl Name {
    /// The (last) common name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.attrs
            .iter()
            .rev()
            .find(|(oid, _)| oid == OID_CN)
            .map(|(_, v)| v.as_str())
    }

    /// Every organizational unit, in order.
    pub fn org_units(&self) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(oid, _)| oid == OID_OU)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The DER encoding (what chain building compares).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (oid, value)) in self.attrs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let label = match oid.as_str() {
                "2.5.4.6" => "C",
                "2.5.4.10" => "O",
                OID_OU => "OU",
                OID_CN => "CN",
                "2.5.4.7" => "L",
                "2.5.4.8" => "ST",
                "1.2.840.113549.1.9.1" => "emailAddress",
                other => other,
            };
            write!(f, "{label}={value}")?;
        }
        Ok(())
    }
}

/// A parsed X.509 certificate with an RSA key.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Range<usize>,
    serial: Vec<u8>,
    issuer: Name,
    subject: Name,
    not_before: i64,
    not_after: i64,
    public_key: Vec<u8>,
    sig_alg: String,
    signature: Vec<u8>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Certificate {{ serial: {}, subject: {}, issuer: {} }}",
            self.serial_decimal(),
            self.subject,
            self.issuer
        )
    }
}

fn parse_name(tlv: der::Tlv<'_>) -> Result<Name, DerError> {
    let mut attrs = Vec::new();
    let mut rdns = tlv.reader();
    while !rdns.is_empty() {
        let mut set = rdns.expect(der::SET, "name.rdn")?.reader();
        while !set.is_empty() {
            let mut atv = set.sequence("name.attribute")?;
            let oid = atv.oid("name.attribute.type")?;
            let value = atv.any("name.attribute.value")?;
            let text = der::directory_string(&value)
                .ok_or_else(|| DerError::new(format!("name attribute {oid}: unreadable string")))?;
            attrs.push((oid, text));
        }
    }
    Ok(Name {
        raw: tlv.raw.to_vec(),
        attrs,
    })
}

fn sig_hash(oid: &str) -> Option<RsaHash> {
    match oid {
        "1.2.840.113549.1.1.5" => Some(RsaHash::Sha1),
        "1.2.840.113549.1.1.11" => Some(RsaHash::Sha256),
        "1.2.840.113549.1.1.12" => Some(RsaHash::Sha384),
        "1.2.840.113549.1.1.13" => Some(RsaHash::Sha512),
        _ => None,
    }
}

fn sig_alg_name(oid: &str) -> &str {
    match oid {
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        other => other,
    }
}

impl Certificate {
    /// Parses one DER certificate; trailing bytes are refused.
    pub fn from_der(input: &[u8]) -> Result<Certificate, CertError> {
        let outer = der::single(input, SEQUENCE, "certificate")?;
        let header_len = outer.raw.len() - outer.content.len();
        let mut cert = outer.reader();
        let tbs_tlv = cert.expect(SEQUENCE, "certificate.tbs")?;
        let tbs = header_len..header_len + tbs_tlv.raw.len();
        let mut alg = cert.sequence("certificate.signatureAlgorithm")?;
        let sig_alg = alg.oid("certificate.signatureAlgorithm")?;
        let sig_bits = cert.expect(der::BIT_STRING, "certificate.signature")?;
        cert.finish("certificate")?;
        let signature = match sig_bits.content {
            [0, rest @ ..] => rest.to_vec(),
            _ => return Err(DerError::new("certificate.signature: unused bits").into()),
        };

        let mut t = tbs_tlv.reader();
        t.optional(ctx_cons(0), "tbs.version")?;
        let serial_tlv = t.expect(der::INTEGER, "tbs.serialNumber")?;
        // Serials are positive by RFC 5280; a negative one is shown as its magnitude bytes.
        let serial = der::uint_magnitude(serial_tlv.content, "tbs.serialNumber")
            .unwrap_or(serial_tlv.content)
            .to_vec();
        let mut inner_alg = t.sequence("tbs.signature")?;
        let inner_sig_alg = inner_alg.oid("tbs.signature")?;
        if inner_sig_alg != sig_alg {
            return Err(
                DerError::new("tbs.signature differs from the outer signatureAlgorithm").into(),
            );
        }
        let issuer = parse_name(t.expect(SEQUENCE, "tbs.issuer")?)?;
        let mut validity = t.sequence("tbs.validity")?;
        let nb = validity.any("tbs.validity.notBefore")?;
        let na = validity.any("tbs.validity.notAfter")?;
        validity.finish("tbs.validity")?;
        let not_before = der::time_to_unix(&nb, "tbs.validity.notBefore")?;
        let not_after = der::time_to_unix(&na, "tbs.validity.notAfter")?;
        let subject = parse_name(t.expect(SEQUENCE, "tbs.subject")?)?;
        let mut spki = t.sequence("tbs.subjectPublicKeyInfo")?;
        let mut spki_alg = spki.sequence("spki.algorithm")?;
        let key_oid = spki_alg.oid("spki.algorithm")?;
        if key_oid != OID_RSA_ENCRYPTION {
            return Err(CertError::Unsupported(format!(
                "public key algorithm {key_oid} (ACP uses RSA)"
            )));
        }
        let key_bits = spki.expect(der::BIT_STRING, "spki.subjectPublicKey")?;
        let public_key = match key_bits.content {
            [0, rest @ ..] => rest.to_vec(),
            _ => return Err(DerError::new("spki.subjectPublicKey: unused bits").into()),
        };
        der::single(&public_key, SEQUENCE, "spki.RSAPublicKey")?;
        // Remaining optional fields (unique ids, extensions) are not needed for ACP's checks.
        Ok(Certificate {
            der: input.to_vec(),
            tbs,
            serial,
            issuer,
            subject,
            not_before,
            not_after,
            public_key,
            sig_alg,
            signature,
        })
    }

    /// Parses exactly one PEM `CERTIFICATE` block (CRLF or LF line ends; surrounding whitespace
    /// allowed, nothing else). The base64 must be canonical.
    pub fn from_pem(text: &str) -> Result<Certificate, CertError> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let t = text.trim();
        let body = t
            .strip_prefix(BEGIN)
            .and_then(|r| r.strip_suffix(END))
            .ok_or_else(|| CertError::Pem(format!("expected one {BEGIN} … {END} block")))?;
        if body.contains("-----") {
            return Err(CertError::Pem("more than one PEM block".into()));
        }
        let mut b64 = String::with_capacity(body.len());
        for c in body.chars() {
            match c {
                ' ' | '\t' | '\r' | '\n' => {}
                'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' | '=' => b64.push(c),
                other => {
                    return Err(CertError::Pem(format!(
                        "character {other:?} in base64 body"
                    )));
                }
            }
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| CertError::Pem(format!("base64: {e}")))?;
        Certificate::from_der(&der)
    }

    /// DER or PEM, decided by the first byte.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Certificate, CertError> {
        if bytes.first() == Some(&0x30) {
            Certificate::from_der(bytes)
        } else {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| CertError::Pem("neither DER nor UTF-8 PEM".into()))?;
            Certificate::from_pem(text)
        }
    }

    /// Reads a `.cer`/`.pem`/`.der` file.
    pub fn load(path: &Path) -> Result<Certificate, CertError> {
        let bytes = std::fs::read(path).map_err(|e| CertError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        Certificate::from_pem_or_der(&bytes)
    }

    /// The serial number in decimal: ACP's `certId` / `encryptCertId`.
    pub fn serial_decimal(&self) -> String {
        der::be_bytes_to_decimal(&self.serial)
    }

    pub fn subject(&self) -> &Name {
        &self.subject
    }

    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    /// notBefore as Unix seconds.
    pub fn not_before_unix(&self) -> i64 {
        self.not_before
    }

    /// notAfter as Unix seconds.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after
    }

    /// The DER `RSAPublicKey`.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key
    }

    /// The whole certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The name of the signature algorithm (e.g. `sha1WithRSAEncryption`).
    pub fn signature_algorithm(&self) -> &str {
        sig_alg_name(&self.sig_alg)
    }

    /// Checks notBefore ≤ `now` ≤ notAfter; the error says which bound failed and when.
    pub fn check_validity(&self, now: SystemTime) -> Result<(), String> {
        let now_s = unix_seconds(now);
        if now_s < self.not_before {
            return Err(format!(
                "not yet valid: valid from {} (checked at {})",
                fmt_unix(self.not_before),
                fmt_unix(now_s)
            ));
        }
        if now_s > self.not_after {
            return Err(format!(
                "expired on {} (checked at {})",
                fmt_unix(self.not_after),
                fmt_unix(now_s)
            ));
        }
        Ok(())
    }

    /// Checks that `issuer` issued this certificate: the issuer name matches the issuer's subject
    /// byte for byte, and the signature verifies with the issuer's key (SHA-1 accepted, because
    /// UnionPay's CFCA chains are SHA-1 signed).
    pub fn check_issued_by(&self, issuer: &Certificate) -> Result<(), String> {
        if self.issuer.raw != issuer.subject.raw {
            return Err(format!(
                "issuer is \"{}\", not \"{}\"",
                self.issuer, issuer.subject
            ));
        }
        let hash = sig_hash(&self.sig_alg).ok_or_else(|| {
            format!(
                "unsupported signature algorithm {}",
                sig_alg_name(&self.sig_alg)
            )
        })?;
        let tbs = self
            .der
            .get(self.tbs.clone())
            .ok_or_else(|| "internal: tbs range".to_string())?;
        if verify_pkcs1(hash, &issuer.public_key, tbs, &self.signature) {
            Ok(())
        } else {
            Err(format!(
                "the {} signature does not verify with the key of \"{}\"",
                self.signature_algorithm(),
                issuer.subject
            ))
        }
    }
}

pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn fmt_unix(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("@{s}"))
}

/// The merchant's signing key and certificate, as loaded from the PKCS#12 file UnionPay issues.
pub struct MerchantKey {
    key: RsaPrivateKey,
    cert: Certificate,
    cert_id: String,
}

impl fmt::Debug for MerchantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MerchantKey {{ certId: {}, key: redacted }}",
            self.cert_id
        )
    }
}

impl MerchantKey {
    /// Loads the first private key of a PFX and the certificate whose public key matches it
    /// (UnionPay's test PFX carries two unrelated CA certificates as well).
    pub fn from_pkcs12(pfx: &[u8], password: &str) -> Result<MerchantKey, CertError> {
        let contents = pkcs12::parse(pfx, password)?;
        let key_der = contents
            .keys
            .first()
            .ok_or(CertError::NoMatchingCert { keys: 0 })?;
        let key = RsaPrivateKey::from_pkcs8_der(key_der)?;
        let mut found = None;
        for der in &contents.certs {
            let cert = Certificate::from_der(der)?;
            if cert.public_key == key.public_key_der() {
                found = Some(cert);
                break;
            }
        }
        let cert = found.ok_or(CertError::NoMatchingCert {
            keys: contents.keys.len(),
        })?;
        let cert_id = cert.serial_decimal();
        Ok(MerchantKey { key, cert, cert_id })
    }

    /// Reads a PFX file. The password is used once and not kept.
    pub fn load_pkcs12(path: &Path, password: &str) -> Result<MerchantKey, CertError> {
        let bytes = std::fs::read(path).map_err(|e| CertError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        MerchantKey::from_pkcs12(&bytes, password)
    }

    /// `certId` to send: the signing certificate's serial in decimal.
    pub fn cert_id(&self) -> &str {
        &self.cert_id
    }

    /// The signing certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The private key, for signing and for decrypting fields of verified replies.
    pub fn private_key(&self) -> &RsaPrivateKey {
        &self.key
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn vectors() -> std::path::PathBuf {
        crate::gateway::unionpay::tests::vectors_dir().join("unionpay-certs")
    }

    pub(crate) fn cert(name: &str) -> Certificate {
        Certificate::load(&vectors().join(name)).unwrap()
    }

    pub(crate) fn old_test_key() -> MerchantKey {
        MerchantKey::load_pkcs12(&vectors().join("acp_test_sign.pfx"), "000000").unwrap()
    }

    pub(crate) fn test_2021_key() -> MerchantKey {
        MerchantKey::load_pkcs12(&vectors().join("test-2021/unipayAppCert.pfx"), "000000").unwrap()
    }

    #[test]
    fn cert_ids_are_decimal_serials() {
        assert_eq!(old_test_key().cert_id(), "68759663125");
        assert_eq!(test_2021_key().cert_id(), "69903319369");
        assert_eq!(cert("acp_test_enc.cer").serial_decimal(), "68759622183");
        assert_eq!(cert("verify_test.cer").serial_decimal(), "69026276696");
        assert_eq!(
            cert("test-2021/unipayCertPublicKey.cer").serial_decimal(),
            "69678957876"
        );
    }

    #[test]
    fn names_and_dates() {
        let c = cert("test-2021/unipayCertPublicKey.cer");
        assert_eq!(
            c.subject().common_name(),
            Some("041@8310000000083040@中国银联股份有限公司@00016495")
        );
        assert_eq!(
            c.subject().org_units(),
            vec!["Local RA OCA1", "Enterprises"]
        );
        assert_eq!(c.issuer().common_name(), Some("CFCA TEST OCA1"));
        assert_eq!(c.not_after_unix(), 1_753_924_756);
        assert_eq!(c.signature_algorithm(), "sha1WithRSAEncryption");
        let at = |s: i64| UNIX_EPOCH + std::time::Duration::from_secs(s as u64);
        assert!(c.check_validity(at(1_700_000_000)).is_ok());
        assert!(
            c.check_validity(at(1_753_924_757))
                .unwrap_err()
                .starts_with("expired on 2025-07-31 01:19:16 UTC")
        );
        assert!(
            c.check_validity(at(1_500_000_000))
                .unwrap_err()
                .starts_with("not yet valid")
        );
    }

    #[test]
    fn pem_and_der_load_the_same_certificate() {
        let pem = cert("acp_test_middle.cer");
        let der = Certificate::from_der(pem.der()).unwrap();
        assert_eq!(pem, der);
        assert_eq!(Certificate::from_pem_or_der(pem.der()).unwrap(), pem);
    }

    #[test]
    fn sha1_chains_verify_and_wrong_issuers_do_not() {
        let middle = cert("acp_test_middle.cer");
        let root = cert("acp_test_root.cer");
        let leaf = cert("test-2021/unipayCertPublicKey.cer");
        leaf.check_issued_by(&middle).unwrap();
        middle.check_issued_by(&root).unwrap();
        root.check_issued_by(&root).unwrap();
        old_test_key()
            .certificate()
            .check_issued_by(&middle)
            .unwrap();
        test_2021_key()
            .certificate()
            .check_issued_by(&middle)
            .unwrap();
        cert("acp_test_enc.cer").check_issued_by(&middle).unwrap();
        cert("verify_test.cer").check_issued_by(&middle).unwrap();
        assert!(
            leaf.check_issued_by(&root)
                .unwrap_err()
                .contains("issuer is")
        );
        let prod_middle = cert("prod/acp_prod_middle.cer");
        assert!(leaf.check_issued_by(&prod_middle).is_err());
        prod_middle
            .check_issued_by(&cert("prod/acp_prod_root.cer"))
            .unwrap();
    }

    #[test]
    fn bad_pem_is_refused() {
        let c = cert("acp_test_middle.cer");
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.der());
        let good = format!("-----BEGIN CERTIFICATE-----\r\n{b64}\r\n-----END CERTIFICATE-----");
        assert_eq!(Certificate::from_pem(&good).unwrap(), c);
        assert!(
            Certificate::from_pem(&good.replace("BEGIN CERTIFICATE", "BEGIN CERTIFICATF")).is_err()
        );
        assert!(Certificate::from_pem(&format!("{good}x")).is_err());
        assert!(Certificate::from_pem(&good.replacen('M', "!", 1)).is_err());
        assert!(Certificate::from_pem("").is_err());
    }

    #[test]
    fn every_truncation_of_a_certificate_is_an_error() {
        let c = cert("acp_test_root.cer");
        for cut in 0..c.der().len() {
            assert!(Certificate::from_der(&c.der()[..cut]).is_err());
        }
    }

    #[test]
    fn debug_shows_cert_id_only() {
        let k = old_test_key();
        assert_eq!(
            format!("{k:?}"),
            "MerchantKey { certId: 68759663125, key: redacted }"
        );
    }
}
