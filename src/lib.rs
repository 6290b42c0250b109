//! payterm: the payment agent of a Linux point-of-sale terminal.
//!
//! The crate is a pure core (`core`: money, payment codes, the payment state machine and the
//! per-channel policies) wrapped in thin I/O: the SQLite `journal`, the `gateway` clients, the
//! `engine` that runs the state machine against both, the `sandbox` gateways, the `device`
//! drivers, the `ui` screens and the `ecr` local API. See `README.md` for the map.

pub mod clock;
pub mod config;
pub mod core;
pub mod daemon;
pub mod device;
pub mod ecr;
pub mod engine;
pub mod failpoint;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod journal;
pub mod receipt;
pub mod sandbox;
pub mod sign;
pub mod ui;
pub mod util;
