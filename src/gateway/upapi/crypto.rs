//! 3DES field encryption of the 云闪付 open platform (PROTOCOLS.md §E): DES-EDE3 in ECB mode with
//! PKCS#5 padding, Base64 text, the key given as 48 hex characters (`symmetricKey`).
//!
//! `ring` has no 3DES; the `des` crate does the block cipher and this file does the mode and the
//! padding. ECB is what the platform specifies, not a choice made here: it only ever protects
//! short fields (mobile numbers, card numbers). The key is held in a zeroizing buffer, never
//! printed; decryption errors never echo the ciphertext or the key.

use base64::Engine as _;
use des::TdesEde3;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use thiserror::Error;
use zeroize::Zeroizing;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the symmetric key must be 48 hex characters (24 bytes)")]
    BadKey,
    #[error("the encrypted field is not Base64")]
    NotBase64,
    #[error("the encrypted field is not a whole number of 8-byte blocks")]
    BadLength,
    #[error("the encrypted field does not decrypt with this key (bad padding)")]
    BadPadding,
    #[error("the decrypted field is not UTF-8 text")]
    NotText,
}

/// A 3DES key (24 bytes: K1‖K2‖K3).
pub struct SymmetricKey(Zeroizing<[u8; 24]>);

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(redacted)")
    }
}

impl SymmetricKey {
    /// From the platform's hex form.
    pub fn from_hex(hex_key: &str) -> Result<SymmetricKey, CryptoError> {
        let bytes = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| CryptoError::BadKey)?);
        if bytes.len() != 24 {
            return Err(CryptoError::BadKey);
        }
        let mut k = Zeroizing::new([0u8; 24]);
        k.copy_from_slice(&bytes);
        Ok(SymmetricKey(k))
    }

    fn cipher(&self) -> TdesEde3 {
        // 24 bytes is the only length checked above; new_from_slice cannot fail for it.
        match TdesEde3::new_from_slice(&self.0[..]) {
            Ok(c) => c,
            Err(_) => unreachable!("a 24-byte key is valid for DES-EDE3"),
        }
    }

    /// Encrypts `plain` to Base64.
    pub fn encrypt(&self, plain: &str) -> String {
        let c = self.cipher();
        let mut buf = plain.as_bytes().to_vec();
        let pad = 8 - buf.len() % 8;
        buf.extend(std::iter::repeat_n(pad as u8, pad));
        for block in buf.chunks_exact_mut(8) {
            c.encrypt_block(GenericArray::from_mut_slice(block));
        }
        base64::engine::general_purpose::STANDARD.encode(buf)
    }

    /// Decrypts a Base64 field.
    pub fn decrypt(&self, b64: &str) -> Result<Zeroizing<String>, CryptoError> {
        let mut buf = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| CryptoError::NotBase64)?,
        );
        if buf.is_empty() || buf.len() % 8 != 0 {
            return Err(CryptoError::BadLength);
        }
        let c = self.cipher();
        for block in buf.chunks_exact_mut(8) {
            c.decrypt_block(GenericArray::from_mut_slice(block));
        }
        let pad = buf[buf.len() - 1] as usize;
        if pad == 0 || pad > 8 || !buf[buf.len() - pad..].iter().all(|&b| b as usize == pad) {
            return Err(CryptoError::BadPadding);
        }
        let n = buf.len() - pad;
        let text = std::str::from_utf8(&buf[..n]).map_err(|_| CryptoError::NotText)?;
        Ok(Zeroizing::new(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nist_sp800_67_style_known_answer() {
        // K1=0123456789ABCDEF K2=23456789ABCDEF01 K3=456789ABCDEF0123, "The qufc" → A826FD8CE53B855F
        // (the first block of the SP 800-67 example), checked through the ECB layer: the
        // padding block follows it.
        let k = SymmetricKey::from_hex("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123").unwrap();
        let enc = k.encrypt("The qufc");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&enc)
            .unwrap();
        assert_eq!(hex::encode_upper(&raw[..8]), "A826FD8CE53B855F");
        assert_eq!(raw.len(), 16, "a whole padding block after 8 bytes");
        assert_eq!(k.decrypt(&enc).unwrap().as_str(), "The qufc");
    }

    #[test]
    fn round_trip_and_errors() {
        let k = SymmetricKey::from_hex(&"1f".repeat(24)).unwrap();
        for s in ["", "13800138000", "6226 0000 0000 0000 000", "手机号"] {
            assert_eq!(k.decrypt(&k.encrypt(s)).unwrap().as_str(), s);
        }
        assert_eq!(
            SymmetricKey::from_hex("abcd").unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(
            SymmetricKey::from_hex(&"zz".repeat(24)).unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(k.decrypt("***").unwrap_err(), CryptoError::NotBase64);
        assert_eq!(k.decrypt("AAAA").unwrap_err(), CryptoError::BadLength);
        let other = SymmetricKey::from_hex(&"2e".repeat(24)).unwrap();
        assert!(other.decrypt(&k.encrypt("13800138000")).is_err());
        assert_eq!(format!("{k:?}"), "SymmetricKey(redacted)");
    }
}
