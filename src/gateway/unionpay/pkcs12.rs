//! PKCS#12 (`.pfx`) reader for UnionPay merchant signing keys.
//!
//! Owns: parsing the PFX, checking its password MAC (HMAC-SHA1/SHA-256 via `ring`), and
//! decrypting the legacy PKCS#12 PBE bags UnionPay's tools still produce —
//! `pbeWithSHAAnd40BitRC2-CBC` (certificate bag of `acp_test_sign.pfx`),
//! `pbeWithSHAAnd128BitRC2-CBC` and `pbeWithSHAAnd3-KeyTripleDES-CBC` — with the RFC 7292
//! Appendix B key derivation implemented here on `ring`'s SHA-1. PBES2 (what OpenSSL 3 writes by
//! default) is refused with a clear error. It must not keep the password, log any key byte, or
//! hand out anything but PKCS#8 key DER (zeroized on drop) and certificate DER.

use rc2::cipher::{self, BlockDecryptMut, KeyInit};
use ring::digest;
use zeroize::Zeroizing;

use super::der::{self, DerError, Reader, SEQUENCE, ctx_cons, ctx_prim};

const OID_DATA: &str = "1.2.840.113549.1.7.1";
const OID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const OID_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
const OID_SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const OID_CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const OID_SAFE_CONTENTS_BAG: &str = "1.2.840.113549.1.12.10.1.6";
const OID_X509_CERT: &str = "1.2.840.113549.1.9.22.1";
const OID_PBE_SHA_3DES: &str = "1.2.840.113549.1.12.1.3";
const OID_PBE_SHA_RC2_128: &str = "1.2.840.113549.1.12.1.5";
const OID_PBE_SHA_RC2_40: &str = "1.2.840.113549.1.12.1.6";
const OID_PBES2: &str = "1.2.840.113549.1.5.13";
const OID_SHA1: &str = "1.3.14.3.2.26";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";

/// Upper bound on PBE/MAC iterations, so a hostile file cannot pin the CPU for minutes.
const MAX_ITERATIONS: u64 = 1_000_000;

/// Why a PFX could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Pkcs12Error {
    #[error("not a valid PKCS#12 file: {0}")]
    Malformed(#[from] DerError),
    #[error("wrong password for the PKCS#12 file, or the file is corrupted (MAC check failed)")]
    BadPassword,
    #[error(
        "the PKCS#12 file uses encryption {0}, which is not supported (supported: the legacy PKCS#12 PBE algorithms; re-export with `openssl pkcs12 -export -legacy`)"
    )]
    UnsupportedAlgorithm(String),
    #[error("the PKCS#12 file has no MAC; refusing an unauthenticated key file")]
    NoMac,
    #[error("decryption of a PKCS#12 bag failed (wrong password or corrupted file)")]
    DecryptFailed,
}

/// The key and certificate bags of a PFX.
pub struct Pkcs12Contents {
    /// PKCS#8 `PrivateKeyInfo` DER of every key bag, in file order.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// DER of every X.509 certificate bag, in file order.
    pub certs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Pkcs12Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pkcs12Contents {{ keys: {} (redacted), certs: {} }}",
            self.keys.len(),
            self.certs.len()
        )
    }
}

/// Parses and decrypts a PFX with its password (UTF-8; `000000` for UnionPay's test files).
pub fn parse(pfx: &[u8], password: &str) -> Result<Pkcs12Contents, Pkcs12Error> {
    let bmp = bmp_password(password);
    let outer = der::single(pfx, SEQUENCE, "pfx")?;
    let mut r = outer.reader();
    let version = r.small_uint("pfx.version")?;
    if version != 3 {
        return Err(DerError::new(format!("pfx.version: expected 3, found {version}")).into());
    }
    let auth_safe_ci = r.expect(SEQUENCE, "pfx.authSafe")?;
    let mac_data = r.optional(SEQUENCE, "pfx.macData")?;
    r.finish("pfx")?;

    let mut ci = auth_safe_ci.reader();
    let ct = ci.oid("pfx.authSafe.contentType")?;
    if ct != OID_DATA {
        return Err(Pkcs12Error::UnsupportedAlgorithm(format!(
            "authSafe content type {ct} (public-key integrity mode)"
        )));
    }
    let mut wrapped = ci.expect(ctx_cons(0), "pfx.authSafe.content")?.reader();
    let auth_safe = wrapped.octet_string("pfx.authSafe.content")?;

    let mac_data = mac_data.ok_or(Pkcs12Error::NoMac)?;
    verify_mac(&mac_data.reader(), auth_safe, &bmp)?;

    let mut out = Pkcs12Contents {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    let mut infos = der::single(auth_safe, SEQUENCE, "authenticatedSafe")?.reader();
    while !infos.is_empty() {
        let mut info = infos.sequence("authenticatedSafe.contentInfo")?;
        let ct = info.oid("contentInfo.contentType")?;
        let mut content = info.expect(ctx_cons(0), "contentInfo.content")?.reader();
        let safe_contents: Zeroizing<Vec<u8>> = match ct.as_str() {
            OID_DATA => Zeroizing::new(content.octet_string("contentInfo.data")?.to_vec()),
            OID_ENCRYPTED_DATA => {
                let mut ed = content.sequence("encryptedData")?;
                let _version = ed.small_uint("encryptedData.version")?;
                let mut eci = ed.sequence("encryptedData.encryptedContentInfo")?;
                let _ct = eci.oid("encryptedContentInfo.contentType")?;
                let alg = eci.expect(SEQUENCE, "encryptedContentInfo.algorithm")?;
                let data = eci.expect(ctx_prim(0), "encryptedContentInfo.encryptedContent")?;
                pbe_decrypt(&alg.reader(), data.content, &bmp)?
            }
            other => {
                return Err(Pkcs12Error::UnsupportedAlgorithm(format!(
                    "content type {other} (enveloped data)"
                )));
            }
        };
        read_safe_contents(&safe_contents, &bmp, &mut out, 0)?;
    }
    Ok(out)
}

fn read_safe_contents(
    der_bytes: &[u8],
    bmp: &[u8],
    out: &mut Pkcs12Contents,
    depth: u8,
) -> Result<(), Pkcs12Error> {
    if depth > 4 {
        return Err(DerError::new("safeContents nested too deeply").into());
    }
    let mut bags = der::single(der_bytes, SEQUENCE, "safeContents")?.reader();
    while !bags.is_empty() {
        let mut bag = bags.sequence("safeBag")?;
        let bag_id = bag.oid("safeBag.bagId")?;
        let value = bag.expect(ctx_cons(0), "safeBag.bagValue")?;
        // Attributes (friendlyName, localKeyId) are not needed: keys are matched to certificates
        // by their public key, which cannot be mislabelled.
        match bag_id.as_str() {
            OID_KEY_BAG => {
                let inner = der::single(value.content, SEQUENCE, "keyBag")?;
                out.keys.push(Zeroizing::new(inner.raw.to_vec()));
            }
            OID_SHROUDED_KEY_BAG => {
                let mut epki = der::single(value.content, SEQUENCE, "shroudedKeyBag")?.reader();
                let alg = epki.expect(SEQUENCE, "shroudedKeyBag.algorithm")?;
                let data = epki.octet_string("shroudedKeyBag.encryptedData")?;
                let plain = pbe_decrypt(&alg.reader(), data, bmp)?;
                // Check it is one well-formed element before handing it on.
                der::single(&plain, SEQUENCE, "shroudedKeyBag.privateKeyInfo")?;
                out.keys.push(plain);
            }
            OID_CERT_BAG => {
                let mut cb = der::single(value.content, SEQUENCE, "certBag")?.reader();
                let cert_type = cb.oid("certBag.certId")?;
                if cert_type == OID_X509_CERT {
                    let mut v = cb.expect(ctx_cons(0), "certBag.certValue")?.reader();
                    out.certs
                        .push(v.octet_string("certBag.certValue")?.to_vec());
                }
            }
            OID_SAFE_CONTENTS_BAG => {
                read_safe_contents(value.content, bmp, out, depth + 1)?;
            }
            _ => {} // CRL and secret bags are irrelevant here.
        }
    }
    Ok(())
}

/// The password as PKCS#12 wants it: BMPString (UTF-16BE) with a two-byte terminator.
fn bmp_password(password: &str) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for unit in password.encode_utf16() {
        v.extend_from_slice(&unit.to_be_bytes());
    }
    v.extend_from_slice(&[0, 0]);
    v
}

#[derive(Clone, Copy)]
enum KdfHash {
    Sha1,
    Sha256,
}

impl KdfHash {
    fn alg(self) -> &'static digest::Algorithm {
        match self {
            KdfHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            KdfHash::Sha256 => &digest::SHA256,
        }
    }
}

/// RFC 7292 Appendix B.2 key derivation. `id` 1 = key, 2 = IV, 3 = MAC key.
fn kdf(
    hash: KdfHash,
    bmp_password: &[u8],
    salt: &[u8],
    iterations: u64,
    id: u8,
    n: usize,
) -> Zeroizing<Vec<u8>> {
    let alg = hash.alg();
    let u = alg.output_len();
    let v = alg.block_len();
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(len).collect()
    };
    let mut i_buf = Zeroizing::new(fill(salt));
    i_buf.extend_from_slice(&fill(bmp_password));
    let d = vec![id; v];
    let mut out = Zeroizing::new(Vec::with_capacity(n + u));
    while out.len() < n {
        let mut ctx = digest::Context::new(alg);
        ctx.update(&d);
        ctx.update(&i_buf);
        let mut a = ctx.finish();
        for _ in 1..iterations {
            a = digest::digest(alg, a.as_ref());
        }
        out.extend_from_slice(a.as_ref());
        if out.len() >= n {
            break;
        }
        // I_j = (I_j + B + 1) mod 2^(8v), with B = A repeated to v bytes.
        let b: Vec<u8> = a.as_ref().iter().copied().cycle().take(v).collect();
        for block in i_buf.chunks_mut(v) {
            let mut carry: u16 = 1;
            for k in (0..v).rev() {
                let sum = u16::from(block[k]) + u16::from(b[k]) + carry;
                block[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

fn pbe_params(alg: &Reader<'_>) -> Result<(String, Vec<u8>, u64), Pkcs12Error> {
    let mut alg = alg.clone();
    let oid = alg.oid("pbe.algorithm")?;
    if oid == OID_PBES2 {
        return Err(Pkcs12Error::UnsupportedAlgorithm("PBES2".into()));
    }
    let mut params = alg.sequence("pbe.parameters")?;
    let salt = params.octet_string("pbe.salt")?.to_vec();
    let iterations = params.small_uint("pbe.iterations")?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(DerError::new(format!("pbe.iterations: {iterations} out of range")).into());
    }
    Ok((oid, salt, iterations))
}

fn pbe_decrypt(
    alg: &Reader<'_>,
    ciphertext: &[u8],
    bmp: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error> {
    let (oid, salt, iterations) = pbe_params(alg)?;
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(8) {
        return Err(Pkcs12Error::DecryptFailed);
    }
    let iv = kdf(KdfHash::Sha1, bmp, &salt, iterations, 2, 8);
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    match oid.as_str() {
        OID_PBE_SHA_RC2_40 | OID_PBE_SHA_RC2_128 => {
            let (key_len, eff_bits) = if oid == OID_PBE_SHA_RC2_40 {
                (5, 40)
            } else {
                (16, 128)
            };
            let key = kdf(KdfHash::Sha1, bmp, &salt, iterations, 1, key_len);
            let cipher = rc2::Rc2::new_with_eff_key_len(&key, eff_bits);
            cbc_decrypt(cipher, &iv, &mut buf);
        }
        OID_PBE_SHA_3DES => {
            let key = kdf(KdfHash::Sha1, bmp, &salt, iterations, 1, 24);
            let cipher =
                des::TdesEde3::new_from_slice(&key).map_err(|_| Pkcs12Error::DecryptFailed)?;
            cbc_decrypt(cipher, &iv, &mut buf);
        }
        other => return Err(Pkcs12Error::UnsupportedAlgorithm(other.to_string())),
    }
    let pad = usize::from(*buf.last().ok_or(Pkcs12Error::DecryptFailed)?);
    if pad == 0
        || pad > 8
        || pad > buf.len()
        || buf[buf.len() - pad..]
            .iter()
            .any(|&b| usize::from(b) != pad)
    {
        return Err(Pkcs12Error::DecryptFailed);
    }
    let keep = buf.len() - pad;
    buf.truncate(keep);
    Ok(buf)
}

/// CBC decryption in place over any 8-byte block cipher (length already checked).
fn cbc_decrypt<C: BlockDecryptMut<BlockSize = cipher::consts::U8>>(
    mut cipher: C,
    iv: &[u8],
    buf: &mut [u8],
) {
    let mut prev = [0u8; 8];
    prev.copy_from_slice(&iv[..8]);
    for chunk in buf.chunks_exact_mut(8) {
        let mut saved = [0u8; 8];
        saved.copy_from_slice(chunk);
        let block = cipher::generic_array::GenericArray::from_mut_slice(chunk);
        cipher.decrypt_block_mut(block);
        for (b, p) in chunk.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        prev = saved;
    }
}

fn verify_mac(mac_data: &Reader<'_>, auth_safe: &[u8], bmp: &[u8]) -> Result<(), Pkcs12Error> {
    let mut m = mac_data.clone();
    let mut digest_info = m.sequence("macData.mac")?;
    let mut alg = digest_info.sequence("macData.mac.algorithm")?;
    let alg_oid = alg.oid("macData.mac.algorithm")?;
    let expected = digest_info.octet_string("macData.mac.digest")?;
    let salt = m.octet_string("macData.macSalt")?;
    let iterations = if m.is_empty() {
        1
    } else {
        m.small_uint("macData.iterations")?
    };
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(DerError::new(format!("macData.iterations: {iterations} out of range")).into());
    }
    let (kdf_hash, hmac_alg) = match alg_oid.as_str() {
        OID_SHA1 => (KdfHash::Sha1, ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        OID_SHA256 => (KdfHash::Sha256, ring::hmac::HMAC_SHA256),
        other => {
            return Err(Pkcs12Error::UnsupportedAlgorithm(format!(
                "MAC digest {other}"
            )));
        }
    };
    let key_len = kdf_hash.alg().output_len();
    let key = kdf(kdf_hash, bmp, salt, iterations, 3, key_len);
    let key = ring::hmac::Key::new(hmac_alg, &key);
    ring::hmac::verify(&key, auth_safe, expected).map_err(|_| Pkcs12Error::BadPassword)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> std::path::PathBuf {
        crate::gateway::unionpay::tests::vectors_dir().join("unionpay-certs")
    }

    #[test]
    fn kdf_matches_openssl_known_answer() {
        // PKCS12_key_gen_uni(SHA1, "smeg", salt 0A58CF64530D823F, id 1, iter 1, 24 bytes), the
        // classic test vector shipped with OpenSSL and BouncyCastle.
        let bmp = bmp_password("smeg");
        let salt = hex::decode("0A58CF64530D823F").unwrap();
        let key = kdf(KdfHash::Sha1, &bmp, &salt, 1, 1, 24);
        assert_eq!(
            hex::encode_upper(&key[..]),
            "8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3"
        );
        let iv = kdf(KdfHash::Sha1, &bmp, &salt, 1, 2, 8);
        assert_eq!(hex::encode_upper(&iv[..]), "79993DFE048D3B76");
    }

    #[test]
    fn reads_legacy_rc2_test_pfx() {
        let pfx = std::fs::read(vectors().join("acp_test_sign.pfx")).unwrap();
        let c = parse(&pfx, "000000").unwrap();
        assert_eq!(c.keys.len(), 1);
        assert_eq!(c.certs.len(), 3, "leaf plus two extra CA certificates");
    }

    #[test]
    fn reads_3des_test_pfx() {
        let pfx = std::fs::read(vectors().join("test-2021/unipayAppCert.pfx")).unwrap();
        let c = parse(&pfx, "000000").unwrap();
        assert_eq!(c.keys.len(), 1);
        assert!(!c.certs.is_empty());
    }

    #[test]
    fn wrong_password_is_reported_as_such() {
        let pfx = std::fs::read(vectors().join("acp_test_sign.pfx")).unwrap();
        assert_eq!(parse(&pfx, "000001").unwrap_err(), Pkcs12Error::BadPassword);
    }

    #[test]
    fn truncated_or_flipped_files_are_errors_not_panics() {
        let pfx = std::fs::read(vectors().join("acp_test_sign.pfx")).unwrap();
        for cut in [0, 1, 10, 100, 1000, pfx.len() - 1] {
            assert!(parse(&pfx[..cut], "000000").is_err());
        }
        for pos in (0..pfx.len()).step_by(97) {
            let mut bad = pfx.clone();
            bad[pos] ^= 0x41;
            assert!(parse(&bad, "000000").is_err(), "flip at {pos} accepted");
        }
    }
}
