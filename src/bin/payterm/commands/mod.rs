//! One file per command or command family, as cargo lays out its own. Each exposes functions
//! that take the parsed arguments and return an exit code (or a [`crate::output::Fail`]); none
//! parses arguments, and none holds payment logic: the library decides, a command wires and
//! prints. Shared wiring is in context.rs and output.rs, never copied between commands.

pub(crate) mod acp;
pub(crate) mod cancel;
pub(crate) mod chinaums;
pub(crate) mod config;
pub(crate) mod contract;
pub(crate) mod daemon;
pub(crate) mod journal;
pub(crate) mod merchant;
pub(crate) mod misc;
pub(crate) mod pay;
pub(crate) mod preauth;
pub(crate) mod query;
pub(crate) mod receipt;
pub(crate) mod reconcile;
pub(crate) mod recover;
pub(crate) mod refund;
pub(crate) mod sandbox;
pub(crate) mod shift;
