//! One waiter per sent message: a send registers its message id before the stanza
//! leaves, and only WhatsApp's acknowledgement of that id (or the loss of the
//! connection) completes it. Nothing is shared between sends and nothing is dropped
//! when acknowledgements arrive in a burst.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::state::Interruption;

/// How a sent message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// WhatsApp accepted it; the server time, in seconds, when it says.
    Accepted { timestamp: Option<i64> },
    /// WhatsApp refused it with this error code.
    Refused(String),
    /// The connection went away before an answer: delivery is unknown.
    Interrupted(Interruption),
}

/// The sends waiting for an acknowledgement.
#[derive(Default)]
pub struct PendingAcks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped whenever the connection the waiters rely on goes away.
    epoch: u64,
    waiters: HashMap<String, oneshot::Sender<AckOutcome>>,
}

/// A registered send; dropping it unregisters the id.
pub struct Waiter {
    id: String,
    rx: oneshot::Receiver<AckOutcome>,
    acks: Arc<PendingAcks>,
}

impl PendingAcks {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the map inconsistent: every operation on it
        // is a single insert or remove.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current connection's epoch: read it before checking that the session is
    /// connected, and pass it to [`register`](Self::register).
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Registers `id`, unless the connection seen at `epoch` is already gone (then
    /// nothing has been sent and the caller reports "not connected").
    pub fn register(self: &Arc<Self>, id: &str, epoch: u64) -> Option<Waiter> {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        inner.waiters.insert(id.to_owned(), tx);
        Some(Waiter {
            id: id.to_owned(),
            rx,
            acks: Arc::clone(self),
        })
    }

    /// Completes the waiter of `id`; `false` when no send waits for it.
    pub fn complete(&self, id: &str, outcome: AckOutcome) -> bool {
        let waiter = self.lock().waiters.remove(id);
        waiter.is_some_and(|tx| tx.send(outcome).is_ok())
    }

    /// Fails every waiting send at once; returns how many there were.
    pub fn interrupt_all(&self, why: Interruption) -> usize {
        let waiters = {
            let mut inner = self.lock();
            inner.epoch += 1;
            std::mem::take(&mut inner.waiters)
        };
        let count = waiters.len();
        for tx in waiters.into_values() {
            let _ = tx.send(AckOutcome::Interrupted(why));
        }
        count
    }

    pub fn len(&self) -> usize {
        self.lock().waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Waiter {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the outcome (the caller bounds it with the send's deadline).
    pub async fn outcome(&mut self) -> AckOutcome {
        match (&mut self.rx).await {
            Ok(outcome) => outcome,
            // Only a waiter removed without an answer; the map never does that.
            Err(_) => AckOutcome::Interrupted(Interruption::ConnectionLost),
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.acks.lock().waiters.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(t: i64) -> AckOutcome {
        AckOutcome::Accepted { timestamp: Some(t) }
    }

    #[tokio::test]
    async fn each_waiter_gets_only_the_ack_of_its_own_id() {
        let acks = Arc::new(PendingAcks::default());
        let epoch = acks.epoch();
        let mut a = acks.register("A", epoch).unwrap();
        let mut b = acks.register("B", epoch).unwrap();
        assert!(!acks.complete("C", accepted(1)), "nobody waits for C");
        assert!(acks.complete("B", accepted(2)));
        assert!(acks.complete("A", AckOutcome::Refused("479".into())));
        assert_eq!(a.outcome().await, AckOutcome::Refused("479".into()));
        assert_eq!(b.outcome().await, accepted(2));
        assert!(!acks.complete("A", accepted(3)), "an id completes once");
    }

    #[tokio::test]
    async fn an_ack_that_arrives_before_the_wait_is_kept() {
        let acks = Arc::new(PendingAcks::default());
        let mut w = acks.register("X", acks.epoch()).unwrap();
        assert!(acks.complete("X", accepted(5)));
        assert_eq!(w.outcome().await, accepted(5));
    }

    #[tokio::test]
    async fn a_burst_of_acks_loses_none() {
        let acks = Arc::new(PendingAcks::default());
        let epoch = acks.epoch();
        let mut waiters: Vec<Waiter> = (0..5_000)
            .map(|i| acks.register(&format!("id{i}"), epoch).unwrap())
            .collect();
        // Acks for other ids interleaved with ours, in reverse order.
        for i in (0..5_000).rev() {
            acks.complete(&format!("other{i}"), accepted(0));
            assert!(acks.complete(&format!("id{i}"), accepted(i)));
        }
        for (i, w) in waiters.iter_mut().enumerate() {
            assert_eq!(w.outcome().await, accepted(i as i64));
        }
    }

    #[tokio::test]
    async fn losing_the_connection_fails_every_waiter_at_once() {
        let acks = Arc::new(PendingAcks::default());
        let epoch = acks.epoch();
        let mut a = acks.register("A", epoch).unwrap();
        let mut b = acks.register("B", epoch).unwrap();
        assert_eq!(acks.interrupt_all(Interruption::Reconnecting), 2);
        let lost = AckOutcome::Interrupted(Interruption::Reconnecting);
        assert_eq!(a.outcome().await, lost);
        assert_eq!(b.outcome().await, lost);
        assert!(acks.is_empty());
    }

    #[test]
    fn a_send_that_saw_the_old_connection_cannot_register_after_it_is_gone() {
        let acks = Arc::new(PendingAcks::default());
        let before = acks.epoch();
        acks.interrupt_all(Interruption::ConnectionLost);
        assert!(acks.register("late", before).is_none());
        assert!(acks.register("fresh", acks.epoch()).is_some());
    }

    #[test]
    fn dropping_a_waiter_unregisters_it() {
        let acks = Arc::new(PendingAcks::default());
        let w = acks.register("A", acks.epoch()).unwrap();
        assert_eq!(w.id(), "A");
        assert_eq!(acks.len(), 1);
        drop(w);
        assert!(acks.is_empty());
        assert!(!acks.complete("A", accepted(1)));
    }
}
