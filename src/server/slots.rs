//! Review slots, a pool per registry: a review that waits on registries holds one slot of each
//! registry it contacts, so a registry that never answers fills its own pool and holds up only
//! the reviews of its images, never those of the registries that answer.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Pools kept before idle ones are dropped (wildcard allow-list entries admit many hosts).
const MAX_IDLE_POOLS: usize = 1024;

#[derive(Debug)]
pub struct ReviewSlots {
    per_registry: usize,
    pools: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The slots a review holds; released when dropped.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] Vec<OwnedSemaphorePermit>);

impl ReviewSlots {
    pub fn new(per_registry: usize) -> ReviewSlots {
        ReviewSlots {
            per_registry,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// One slot of each of `registries`, taken in their order (the same for every review, so
    /// no two reviews can each hold what the other waits for).
    pub async fn acquire(&self, registries: &BTreeSet<String>) -> Held {
        let mut held = Vec::with_capacity(registries.len());
        for registry in registries {
            let permit = self.pool(registry).acquire_owned().await;
            held.push(permit.expect("review slot pools are never closed"));
        }
        Held(held)
    }

    /// Free slots of `registry`'s pool.
    pub fn available(&self, registry: &str) -> usize {
        self.pool(registry).available_permits()
    }

    fn pool(&self, registry: &str) -> Arc<Semaphore> {
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if pools.len() >= MAX_IDLE_POOLS && !pools.contains_key(registry) {
            // A pool no review holds (only the map refers to it) is full: dropping it loses nothing.
            pools.retain(|_, pool| Arc::strong_count(pool) > 1);
        }
        pools
            .entry(registry.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_registry)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(registries: &[&str]) -> BTreeSet<String> {
        registries.iter().map(|r| r.to_string()).collect()
    }

    #[tokio::test]
    async fn a_full_pool_holds_up_only_its_own_registry() {
        let slots = ReviewSlots::new(1);
        let _stuck = slots.acquire(&set(&["slow.example"])).await;
        assert_eq!(slots.available("slow.example"), 0);
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            slots.acquire(&set(&["fast.example"])),
        )
        .await;
        assert!(other.is_ok(), "a review of another registry waited");
        let both = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            slots.acquire(&set(&["fast.example", "slow.example"])),
        )
        .await;
        assert!(
            both.is_err(),
            "a review of both registries needs the slow one's slot too"
        );
    }

    #[tokio::test]
    async fn slots_come_back_when_the_review_ends() {
        let slots = ReviewSlots::new(2);
        let held = slots.acquire(&set(&["a.example", "b.example"])).await;
        assert_eq!((slots.available("a.example"), slots.available("b.example")), (1, 1));
        drop(held);
        assert_eq!((slots.available("a.example"), slots.available("b.example")), (2, 2));
    }

    #[tokio::test]
    async fn idle_pools_are_dropped_and_held_ones_kept() {
        let slots = ReviewSlots::new(1);
        let held = slots.acquire(&set(&["held.example"])).await;
        for i in 0..MAX_IDLE_POOLS {
            drop(slots.acquire(&set(&[&format!("r{i}.example")])).await);
        }
        assert!(slots.pools.lock().unwrap().len() <= MAX_IDLE_POOLS);
        assert_eq!(slots.available("held.example"), 0, "a pool in use was dropped");
        drop(held);
    }
}
