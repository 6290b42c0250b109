//! Which attempts this process is driving right now, so that no two of its threads drive one.
//!
//! A sale's thread sends the pay request and waits for the reply while the attempt is still
//! PAY_INTENT in the journal. The recovery loop, running beside it in the daemon, reads that
//! row as "sent before a crash" and would query it at once — and a "no such order" from a
//! request that has not arrived yet would fence a sale that is about to succeed. A claim is
//! taken on the order number *before* the attempt row becomes visible and held until the
//! driving thread returns; any other drive of that attempt in the process leaves it to the
//! holder, who sees every committed change on its next step. Claims are memory only: a crash
//! releases them all, which is exactly when recovery must take over. Between processes the
//! journal's version check keeps concurrent drivers consistent; this does not replace it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// The set of order numbers being driven; cheap to clone, shared by a process's engines.
#[derive(Clone, Debug, Default)]
pub struct Claims(Arc<Mutex<HashSet<String>>>);

/// Held while an attempt is driven; dropping it releases the claim.
#[derive(Debug)]
pub struct Claim {
    claims: Claims,
    out_trade_no: String,
}

impl Claims {
    /// Claims `out_trade_no`, unless another thread of this process holds it.
    pub fn take(&self, out_trade_no: &str) -> Option<Claim> {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert(out_trade_no.to_string()).then(|| Claim {
            claims: self.clone(),
            out_trade_no: out_trade_no.to_string(),
        })
    }

    /// Whether `out_trade_no` is being driven now.
    pub fn held(&self, out_trade_no: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(out_trade_no)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.out_trade_no);
    }
}

#[cfg(test)]
mod tests {
    use super::Claims;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let c = Claims::default();
        let a = c.take("T1").expect("free");
        assert!(c.take("T1").is_none(), "a second driver must be refused");
        assert!(c.clone().take("T1").is_none(), "clones share the set");
        let b = c.take("T2").expect("another order is free");
        assert!(c.held("T1") && c.held("T2"));
        drop(a);
        assert!(!c.held("T1"));
        assert!(c.take("T1").is_some());
        drop(b);
        assert!(!c.held("T2"));
    }

    #[test]
    fn a_panicking_driver_still_releases_its_claim() {
        let c = Claims::default();
        let c2 = c.clone();
        let r = std::thread::spawn(move || {
            let _claim = c2.take("T9").expect("free");
            panic!("driver died");
        })
        .join();
        assert!(r.is_err());
        assert!(!c.held("T9"));
    }
}
