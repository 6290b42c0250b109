//! A refund's own state machine, beside the attempt's: what a reply proves about a refund,
//! and what the journal may record from it.
//!
//! The rules, all from the aggregator's seed and RELIABILITY.md §7.5: one refund number
//! refunds at most once, so a refund whose outcome is unknown is sent again with the *same*
//! number; only a proven failure frees its amount for another refund; money recorded as
//! returned stays returned — a later reply saying otherwise is a contradiction for a person, not
//! a new state. Pure: no I/O, no clock.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundState {
    /// Journaled; the request may have been sent.
    Intent,
    /// The gateway took it and is still processing it.
    Processing,
    /// The money went back (final).
    Done,
    /// The gateway proved it did not and will not refund under this number (final).
    Failed,
    /// Nothing proves either way: asked again, and re-sent under the same number.
    Unknown,
}

impl RefundState {
    pub const ALL: [RefundState; 5] = [
        RefundState::Intent,
        RefundState::Processing,
        RefundState::Done,
        RefundState::Failed,
        RefundState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Intent => "INTENT",
            RefundState::Processing => "PROCESSING",
            RefundState::Done => "DONE",
            RefundState::Failed => "FAILED",
            RefundState::Unknown => "UNKNOWN",
        }
    }

    /// An unreadable value is unknown: nothing is concluded from it.
    pub fn parse(s: &str) -> RefundState {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .unwrap_or(RefundState::Unknown)
    }

    pub fn is_final(self) -> bool {
        matches!(self, RefundState::Done | RefundState::Failed)
    }

    /// Whether its amount still counts against what may be refunded: every refund that is
    /// done or may still complete.
    pub fn reserves_amount(self) -> bool {
        self != RefundState::Failed
    }
}

/// What one reply proves about a refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    Done,
    Processing,
    Failed,
    Unknown,
}

/// The refund's state after `evidence`, and whether a person must look (a contradiction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundStep {
    pub state: RefundState,
    pub alarm: bool,
}

pub fn apply(current: RefundState, evidence: Evidence) -> RefundStep {
    use Evidence as E;
    use RefundState as S;
    let (state, alarm) = match (current, evidence) {
        // Returned money stays returned; a reply that says otherwise contradicts it.
        (S::Done, E::Done | E::Processing | E::Unknown) => (S::Done, false),
        (S::Done, E::Failed) => (S::Done, true),
        // A proven failure stays one, unless the money turns out to have gone back after all:
        // the truth is recorded, and a person checks why it was thought failed.
        (S::Failed, E::Done) => (S::Done, true),
        (S::Failed, E::Failed | E::Unknown) => (S::Failed, false),
        (S::Failed, E::Processing) => (S::Failed, true),
        (_, E::Done) => (S::Done, false),
        (_, E::Failed) => (S::Failed, false),
        (_, E::Processing) => (S::Processing, false),
        (_, E::Unknown) => (S::Unknown, false),
    };
    RefundStep { state, alarm }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn evidence() -> impl Strategy<Value = Evidence> {
        prop_oneof![
            Just(Evidence::Done),
            Just(Evidence::Processing),
            Just(Evidence::Failed),
            Just(Evidence::Unknown),
        ]
    }

    proptest! {
        /// Any sequence of replies: DONE is never left, FAILED is reached only on a proven
        /// failure, an unknown reply never makes anything final, and a refund that was ever
        /// DONE ends DONE (the money is never counted twice as refundable).
        #[test]
        fn a_refund_never_loses_its_truth(replies in prop::collection::vec(evidence(), 0..40)) {
            let mut s = RefundState::Intent;
            let mut ever_done = false;
            for e in replies {
                let before = s;
                let step = apply(s, e);
                if before == RefundState::Done {
                    prop_assert_eq!(step.state, RefundState::Done);
                }
                if step.state == RefundState::Failed && before != RefundState::Failed {
                    prop_assert_eq!(e, Evidence::Failed);
                }
                if e == Evidence::Unknown && !before.is_final() {
                    prop_assert!(!step.state.is_final());
                }
                s = step.state;
                ever_done |= s == RefundState::Done;
            }
            if ever_done {
                prop_assert_eq!(s, RefundState::Done);
            }
        }
    }

    #[test]
    fn names_round_trip_and_garbage_is_unknown() {
        for s in RefundState::ALL {
            assert_eq!(RefundState::parse(s.as_str()), s);
        }
        assert_eq!(RefundState::parse("DONE?"), RefundState::Unknown);
        assert!(!RefundState::Failed.reserves_amount());
        assert!(RefundState::Unknown.reserves_amount());
    }
}
