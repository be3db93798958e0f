//! The cache of verification verdicts. Keyed by digest and trust material, never a tag; a
//! verdict lives `cacheTtl` when verified and `failureCacheTtl` otherwise, counted from when it
//! was made; errors and timeouts are never stored. A verdict used in the last quarter of its
//! lifetime is due to be verified again, and one refresh per key runs at a time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::facts::{Verification, VerificationStatus};

/// A verdict is due to be verified again when a review uses it in the last quarter of its
/// lifetime.
const REFRESH_AFTER: f64 = 0.75;

/// What a verdict was reached for. A changed trust entry or trusted root never reuses one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub digest: String,
    /// The trust entry's fingerprint.
    pub entry: String,
    /// The trusted root's version.
    pub root: String,
}

/// Who made a verdict that was not cached when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Maker {
    /// This caller verified.
    This,
    /// Another caller was verifying: this one waited for its verdict.
    Another,
}

pub(super) struct Verdicts {
    cache: moka::future::Cache<CacheKey, Cached>,
    lifetime: Lifetime,
    refreshing: Arc<Mutex<HashSet<CacheKey>>>,
}

impl Verdicts {
    pub fn new(max_entries: u64, success: Duration, failure: Duration) -> Verdicts {
        let lifetime = Lifetime { success, failure };
        Verdicts {
            cache: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(lifetime)
                .build(),
            lifetime,
            refreshing: Arc::default(),
        }
    }

    /// The cached verdict of `key`, and whether it is due to be verified again.
    pub async fn get(&self, key: &CacheKey) -> Option<(Verification, bool)> {
        let cached = self.cache.get(key).await?;
        let due = cached.due_for_refresh(&self.lifetime);
        Some((cached.verification, due))
    }

    /// The verdict of `key`, made by `verify` once for every caller that asks meanwhile.
    pub async fn get_or_make(
        &self,
        key: CacheKey,
        verify: impl std::future::Future<Output = Verification>,
    ) -> (Verification, Maker) {
        let this = AtomicBool::new(false);
        let made = self
            .cache
            .try_get_with(key, async {
                this.store(true, Ordering::Release);
                Cached::of(verify.await)
            })
            .await;
        let maker = if this.load(Ordering::Acquire) {
            Maker::This
        } else {
            Maker::Another
        };
        let verification = made.map_or_else(|error| (*error).clone(), |cached| cached.verification);
        (verification, maker)
    }

    /// Stores a new verdict of `key` for its whole lifetime; an error or a timeout comes back
    /// unstored.
    pub async fn store(&self, key: CacheKey, verification: Verification) -> Result<(), Verification> {
        self.cache.insert(key, Cached::of(verification)?).await;
        Ok(())
    }

    /// Claims the refresh of `key`: None while another one runs.
    pub fn claim_refresh(&self, key: CacheKey) -> Option<RefreshClaim> {
        let claimed = self.refreshing.lock().ok()?.insert(key.clone());
        claimed.then(|| RefreshClaim {
            refreshing: self.refreshing.clone(),
            key,
        })
    }
}

/// The refresh of one key; the key can be claimed again once this is dropped, however the
/// refresh ended.
pub(super) struct RefreshClaim {
    refreshing: Arc<Mutex<HashSet<CacheKey>>>,
    key: CacheKey,
}

impl RefreshClaim {
    pub fn key(&self) -> &CacheKey {
        &self.key
    }
}

impl Drop for RefreshClaim {
    fn drop(&mut self) {
        if let Ok(mut refreshing) = self.refreshing.lock() {
            refreshing.remove(&self.key);
        }
    }
}

/// A cached verdict and when it was made.
#[derive(Debug, Clone)]
struct Cached {
    verification: Verification,
    made: Instant,
}

impl Cached {
    /// A verdict to cache; errors and timeouts never are: the next review tries again.
    fn of(verification: Verification) -> Result<Cached, Verification> {
        match verification.status {
            VerificationStatus::Error | VerificationStatus::Timeout => Err(verification),
            _ => Ok(Cached {
                verification,
                made: Instant::now(),
            }),
        }
    }

    fn due_for_refresh(&self, lifetime: &Lifetime) -> bool {
        self.made.elapsed() >= lifetime.of(&self.verification).mul_f64(REFRESH_AFTER)
    }
}

/// How long a verdict is cached: `cacheTtl` when verified, `failureCacheTtl` otherwise.
#[derive(Debug, Clone, Copy)]
struct Lifetime {
    success: Duration,
    failure: Duration,
}

impl Lifetime {
    fn of(&self, verification: &Verification) -> Duration {
        if verification.status == VerificationStatus::Verified {
            self.success
        } else {
            self.failure
        }
    }
}

impl moka::Expiry<CacheKey, Cached> for Lifetime {
    fn expire_after_create(&self, _key: &CacheKey, value: &Cached, _now: Instant) -> Option<Duration> {
        Some(self.of(&value.verification))
    }

    /// A refreshed verdict lives its whole lifetime from when it was made.
    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Cached,
        _now: Instant,
        _until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.of(&value.verification))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(status: VerificationStatus) -> Verification {
        Verification {
            status,
            reason: "test".into(),
            signers: Vec::new(),
            attestations: Vec::new(),
        }
    }

    fn key(digest: &str) -> CacheKey {
        CacheKey {
            digest: digest.into(),
            entry: "entry".into(),
            root: String::new(),
        }
    }

    #[test]
    fn a_verdict_is_due_in_the_last_quarter_of_its_own_lifetime() {
        let lifetime = Lifetime {
            success: Duration::from_secs(600),
            failure: Duration::from_secs(60),
        };
        let due = |status, seconds| {
            let cached = Cached {
                verification: verdict(status),
                made: Instant::now() - Duration::from_secs(seconds),
            };
            cached.due_for_refresh(&lifetime)
        };
        assert!(!due(VerificationStatus::Verified, 440));
        assert!(due(VerificationStatus::Verified, 460));
        // The others live `failureCacheTtl`.
        assert!(!due(VerificationStatus::Unsigned, 40));
        assert!(due(VerificationStatus::Unsigned, 46));
        assert!(due(VerificationStatus::Untrusted, 46));
    }

    #[tokio::test]
    async fn errors_and_timeouts_are_never_stored() {
        let verdicts = Verdicts::new(10, Duration::from_secs(60), Duration::from_secs(60));
        for (digest, status) in [("a", VerificationStatus::Error), ("b", VerificationStatus::Timeout)] {
            assert!(verdicts.store(key(digest), verdict(status)).await.is_err());
            let (_, maker) = verdicts.get_or_make(key(digest), async { verdict(status) }).await;
            assert_eq!(maker, Maker::This);
            assert!(verdicts.get(&key(digest)).await.is_none());
        }
        assert!(verdicts
            .store(key("c"), verdict(VerificationStatus::Unsigned))
            .await
            .is_ok());
        let (found, due) = verdicts.get(&key("c")).await.unwrap();
        assert_eq!((found.status, due), (VerificationStatus::Unsigned, false));
    }

    #[test]
    fn one_refresh_per_key_at_a_time() {
        let verdicts = Verdicts::new(10, Duration::from_secs(60), Duration::from_secs(60));
        let claim = verdicts.claim_refresh(key("a")).expect("the first claim");
        assert!(verdicts.claim_refresh(key("a")).is_none());
        assert!(verdicts.claim_refresh(key("b")).is_some());
        drop(claim);
        assert!(verdicts.claim_refresh(key("a")).is_some());
    }
}
