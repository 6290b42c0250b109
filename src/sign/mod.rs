//! Signing and verification primitives, one file per algorithm family.

pub mod md5;
pub mod rsa;
pub mod sm3;
