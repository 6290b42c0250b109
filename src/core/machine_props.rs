//! Property tests of the state machine (see docs/reliability.md).
