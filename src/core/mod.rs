//! The pure core: money, payment codes, per-channel policies, the payment state machine and the
//! refund state machine.
//!
//! Nothing in here performs I/O, reads a clock, sleeps or logs: time comes in as an argument and
//! decisions go out as values. That is what lets every path, every crash point included, be tested
//! in microseconds. The journal, the gateways and the engine that drives them live elsewhere.

pub mod authcode;
pub mod machine;
pub mod money;
pub mod policy;
pub mod refund;

#[cfg(test)]
mod machine_props;

pub use authcode::{AuthCode, Wallet};
pub use machine::{Attempt, AttemptState, Next, Op, ReverseAction};
pub use money::Amount;
