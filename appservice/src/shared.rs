//! One computation shared by many readers: after a change, the first reader of a key
//! computes its value and every reader that comes meanwhile waits for that answer; later
//! readers get it until the key is forgotten (a change) or the value is older than its
//! maximum age. A failed computation is not kept. Used where many readers react to the
//! same change: the embed configuration every open page's availability stream reads again,
//! the counts behind every waiting visitor's place in the queue.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// How many keys may pile up before stale ones are dropped.
const PRUNE_AT: usize = 1024;

struct Entry<T> {
    since: Instant,
    cell: Arc<OnceCell<T>>,
}

/// Values by key, each computed once per change.
pub struct Shared<T> {
    max_age: Duration,
    entries: Mutex<HashMap<String, Entry<T>>>,
}

impl<T: Clone> Shared<T> {
    /// Values serve at most `max_age` without a change being signalled.
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, entries: Mutex::default() }
    }

    /// The value of `key`, computed by `compute` unless a computation since the last
    /// change is done or under way (then its answer).
    pub async fn get<E, F, Fut>(&self, key: &str, compute: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cell = {
            let mut all = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if all.len() >= PRUNE_AT && !all.contains_key(key) {
                // Keys come and go (rooms, people): the stale ones are dropped now and then.
                all.retain(|_, e| e.since.elapsed() <= self.max_age);
            }
            let entry = all
                .entry(key.to_owned())
                .or_insert_with(|| Entry { since: Instant::now(), cell: Arc::default() });
            if entry.since.elapsed() > self.max_age {
                *entry = Entry { since: Instant::now(), cell: Arc::default() };
            }
            entry.cell.clone()
        };
        cell.get_or_try_init(compute).await.cloned()
    }

    /// `key` changed: the next read computes it afresh.
    pub fn forget(&self, key: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn read(s: &Shared<usize>, runs: &AtomicUsize, fail: bool) -> Result<usize, ()> {
        s.get("inst", || async {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if fail {
                Err(())
            } else {
                Ok(n)
            }
        })
        .await
    }

    #[tokio::test]
    async fn many_readers_after_a_change_cost_one_computation() {
        let s = Shared::new(Duration::from_secs(60));
        let runs = AtomicUsize::new(0);
        let answers = futures::future::join_all((0..200).map(|_| read(&s, &runs, false))).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation for 200 readers");
        assert!(answers.iter().all(|a| *a == Ok(1)), "all get its answer");
        assert_eq!(read(&s, &runs, false).await, Ok(1), "kept until a change");
        s.forget("inst");
        assert_eq!(read(&s, &runs, false).await, Ok(2), "computed afresh after a change");
    }

    #[tokio::test]
    async fn stale_keys_are_dropped_when_many_piled_up() {
        let s: Shared<usize> = Shared::new(Duration::from_millis(10));
        for k in 0..PRUNE_AT {
            let _ = s.get(&k.to_string(), || async { Ok::<_, ()>(k) }).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = s.get("new", || async { Ok::<_, ()>(0) }).await;
        assert_eq!(
            s.entries.lock().unwrap_or_else(PoisonError::into_inner).len(),
            1,
            "only the fresh key is left"
        );
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_and_old_values_expire() {
        let s = Shared::new(Duration::from_millis(50));
        let runs = AtomicUsize::new(0);
        assert_eq!(read(&s, &runs, true).await, Err(()));
        assert_eq!(read(&s, &runs, false).await, Ok(2), "the failure was not kept");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(read(&s, &runs, false).await, Ok(3), "older than its maximum age: computed again");
    }
}
