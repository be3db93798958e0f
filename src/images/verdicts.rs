//! The cache of verification verdicts. Keyed by digest and trust material, never a tag; a
//! verdict lives `cacheTtl` when verified and `failureCacheTtl` otherwise, counted from when it
//! was made; errors and timeouts are never stored. The first review to use a verdict in the
//! last quarter of its lifetime is told to verify it again: once per verdict, so a refresh that
//! fails is not tried again until the verdict expires (a failing registry is not asked at every
//! review).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// A cached verdict found.
pub(super) struct Hit {
    pub verification: Verification,
    /// This caller is the one to verify it again: the first to use it in the last quarter of
    /// its lifetime.
    pub refresh: bool,
}

pub(super) struct Verdicts {
    cache: moka::future::Cache<CacheKey, Cached>,
    lifetime: Lifetime,
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
        }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Hit> {
        let cached = self.cache.get(key).await?;
        let refresh = cached.claims_refresh(&self.lifetime);
        Some(Hit {
            verification: cached.verification,
            refresh,
        })
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
}

/// A cached verdict, when it was made, and whether a review was told to refresh it.
#[derive(Debug, Clone)]
struct Cached {
    verification: Verification,
    made: Instant,
    refresh_claimed: Arc<AtomicBool>,
}

impl Cached {
    /// A verdict to cache; errors and timeouts never are: the next review tries again.
    fn of(verification: Verification) -> Result<Cached, Verification> {
        match verification.status {
            VerificationStatus::Error | VerificationStatus::Timeout => Err(verification),
            _ => Ok(Cached {
                verification,
                made: Instant::now(),
                refresh_claimed: Arc::default(),
            }),
        }
    }

    fn due_for_refresh(&self, lifetime: &Lifetime) -> bool {
        self.made.elapsed() >= lifetime.of(&self.verification).mul_f64(REFRESH_AFTER)
    }

    /// True for the first caller once the verdict is due; the flag is shared by every copy of
    /// this verdict the cache hands out.
    fn claims_refresh(&self, lifetime: &Lifetime) -> bool {
        self.due_for_refresh(lifetime) && !self.refresh_claimed.swap(true, Ordering::AcqRel)
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

    /// `cacheTtl` 10 minutes, `failureCacheTtl` 1 minute.
    fn lifetime() -> Lifetime {
        Lifetime {
            success: Duration::from_secs(600),
            failure: Duration::from_secs(60),
        }
    }

    fn made_ago(status: VerificationStatus, seconds: u64) -> Cached {
        Cached {
            verification: verdict(status),
            made: Instant::now() - Duration::from_secs(seconds),
            refresh_claimed: Arc::default(),
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
        let due = |status, seconds| made_ago(status, seconds).due_for_refresh(&lifetime());
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
        let hit = verdicts.get(&key("c")).await.unwrap();
        assert_eq!(
            (hit.verification.status, hit.refresh),
            (VerificationStatus::Unsigned, false)
        );
    }

    #[test]
    fn the_first_use_in_the_last_quarter_claims_the_refresh_once_per_verdict() {
        let lifetime = lifetime();
        let made_ago = |seconds| made_ago(VerificationStatus::Verified, seconds);
        let early = made_ago(100);
        assert!(!early.claims_refresh(&lifetime));
        let due = made_ago(500);
        // Copies, as the cache hands them out, share the claim: whatever became of the first
        // refresh, the others do not start one.
        let (first, second) = (due.clone(), due.clone());
        assert!(first.claims_refresh(&lifetime));
        assert!(!second.claims_refresh(&lifetime));
        assert!(!due.claims_refresh(&lifetime));
        // A new verdict may be refreshed again.
        assert!(made_ago(500).claims_refresh(&lifetime));
    }
}
