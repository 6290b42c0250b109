//! Signing and verification primitives, one file per algorithm family.

pub mod hmac;
pub mod md5;
pub mod rsa;
pub mod sha256;
pub mod sm3;
