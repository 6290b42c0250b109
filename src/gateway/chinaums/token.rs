//! A bearer token held in memory with its expiry and renewed before it expires.
//!
//! Used for ChinaUMS's access token and 云闪付's backendToken. The clock is passed in (Unix
//! milliseconds) so tests move time instead of sleeping. The token is a secret: it never appears
//! in `Debug` output. This type does no I/O: the caller hands it the function that fetches a
//! fresh token.

use std::fmt;
use std::sync::Mutex;

/// A shared wall clock, in Unix milliseconds.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(crate::util::now_ms)
}

#[derive(Clone, PartialEq, Eq)]
struct Held {
    value: String,
    expires_at_ms: i64,
}

/// A cached token: fetched on first use, reused while more than `margin_ms` of its life remains,
/// renewed after that (and after [`TokenCache::invalidate`]).
pub struct TokenCache {
    held: Mutex<Option<Held>>,
    margin_ms: i64,
    fetches: Mutex<u64>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.lock().as_ref().map(|h| h.expires_at_ms);
        write!(
            f,
            "TokenCache {{ expires_at_ms: {exp:?}, token: redacted }}"
        )
    }
}

impl TokenCache {
    /// `margin_ms`: how long before expiry a token is renewed.
    pub fn new(margin_ms: i64) -> TokenCache {
        TokenCache {
            held: Mutex::new(None),
            margin_ms: margin_ms.max(0),
            fetches: Mutex::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        match self.held.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The cached token if it is still good at `now`, else a fresh one from `fetch`, which
    /// returns the token and its lifetime in seconds. A fetch error leaves the cache empty.
    pub fn get<E>(
        &self,
        now: i64,
        fetch: impl FnOnce() -> Result<(String, u64), E>,
    ) -> Result<String, E> {
        let mut g = self.lock();
        if let Some(h) = g.as_ref()
            && now < h.expires_at_ms - self.margin_ms
        {
            return Ok(h.value.clone());
        }
        *g = None;
        let (value, expires_in_s) = fetch()?;
        if let Ok(mut n) = self.fetches.lock() {
            *n += 1;
        }
        let life = (expires_in_s as i64).saturating_mul(1000);
        *g = Some(Held {
            value: value.clone(),
            expires_at_ms: now.saturating_add(life),
        });
        Ok(value)
    }

    /// Forgets the token (the server said it is no longer valid).
    pub fn invalidate(&self) {
        *self.lock() = None;
    }

    /// When the held token expires, if one is held.
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.lock().as_ref().map(|h| h.expires_at_ms)
    }

    /// How many tokens were fetched so far (for tests and status output).
    pub fn fetches(&self) -> u64 {
        self.fetches.lock().map(|n| *n).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_until_the_margin_then_renewed() {
        let c = TokenCache::new(300_000);
        let mut n = 0;
        let mut fetch = |_: ()| {
            n += 1;
            Ok::<_, String>((format!("tok{n}"), 3600))
        };
        let t0 = 1_000_000;
        assert_eq!(c.get(t0, || fetch(())).unwrap(), "tok1");
        assert_eq!(c.get(t0 + 3_000_000, || fetch(())).unwrap(), "tok1");
        // 3600 s life, renewed 300 s before: at t0 + 3300 s a new one is fetched.
        assert_eq!(c.get(t0 + 3_300_000, || fetch(())).unwrap(), "tok2");
        assert_eq!(c.expires_at_ms(), Some(t0 + 3_300_000 + 3_600_000));
        c.invalidate();
        assert_eq!(c.get(t0 + 3_300_001, || fetch(())).unwrap(), "tok3");
        assert_eq!(c.fetches(), 3);
        assert!(!format!("{c:?}").contains("tok3"));
    }

    #[test]
    fn a_failed_fetch_caches_nothing() {
        let c = TokenCache::new(0);
        assert!(c.get(0, || Err::<(String, u64), _>("down")).is_err());
        assert_eq!(c.expires_at_ms(), None);
        assert_eq!(c.get(0, || Ok::<_, ()>(("t".into(), 10))).unwrap(), "t");
        assert_eq!(c.get(9_999, || Ok::<_, ()>(("u".into(), 10))).unwrap(), "t");
        assert_eq!(
            c.get(10_000, || Ok::<_, ()>(("u".into(), 10))).unwrap(),
            "u"
        );
    }
}
