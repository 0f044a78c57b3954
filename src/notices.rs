//! What happens to the accounts themselves (a phone paired, an account logged out,
//! its webhook changed), for those listening on `/ws`. One channel for the process;
//! each notice names its account, and each listener keeps the ones it may see.
//! A listener that falls behind loses the oldest notices, never slows an account.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

/// Notices kept for a listener that has not read them yet.
const BACKLOG: usize = 64;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A phone paired: `device` is the linked device's JID (`628…:12@s.whatsapp.net`).
    Paired { device: String },
    /// The account was logged out; its slot stays.
    LoggedOut { by: Logout },
    /// The account's own webhook was set.
    WebhookChanged,
}

/// Who logged an account out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logout {
    /// The phone (or WhatsApp) removed the device.
    Phone,
    /// `GET /app/logout`.
    App,
    /// `POST /devices/:id/logout`.
    Devices,
}

/// One notice: an event of the account `account` (its slot id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub account: String,
    pub event: Event,
}

/// The process's notices, and the bound on their listeners.
#[derive(Clone)]
pub struct Notices {
    sender: broadcast::Sender<Notice>,
    listeners: Arc<Semaphore>,
}

impl Notices {
    /// Room for at most `listeners` at once.
    pub fn new(listeners: usize) -> Self {
        Notices {
            sender: broadcast::channel(BACKLOG).0,
            listeners: Arc::new(Semaphore::new(listeners)),
        }
    }

    /// Tells every listener; nobody listening is fine.
    pub fn publish(&self, account: &str, event: Event) {
        let _ = self.sender.send(Notice {
            account: account.to_owned(),
            event,
        });
    }

    /// A new listener, while there is room for one: it hears notices from now on,
    /// and frees its room when dropped.
    pub fn listen(&self) -> Option<Listener> {
        let room = self.listeners.clone().try_acquire_owned().ok()?;
        Some(Listener {
            receiver: self.sender.subscribe(),
            _room: room,
        })
    }

    /// The notices of one account.
    pub fn of(&self, account: &str) -> AccountNotices {
        AccountNotices {
            notices: self.clone(),
            account: account.to_owned(),
        }
    }
}

/// A listener of [`Notices`].
pub struct Listener {
    pub receiver: broadcast::Receiver<Notice>,
    _room: OwnedSemaphorePermit,
}

/// The notices of one account, for its session.
#[derive(Clone)]
pub struct AccountNotices {
    notices: Notices,
    account: String,
}

impl AccountNotices {
    pub fn publish(&self, event: Event) {
        self.notices.publish(&self.account, event);
    }
}

impl std::fmt::Debug for AccountNotices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountNotices({})", self.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_hear_every_notice_and_are_bounded() {
        let notices = Notices::new(2);
        let mut first = notices.listen().unwrap();
        let second = notices.listen().unwrap();
        assert!(notices.listen().is_none(), "no room for a third");
        drop(second);
        let mut third = notices.listen().expect("room again");
        notices.of("a").publish(Event::WebhookChanged);
        for listener in [&mut first, &mut third] {
            let heard = listener.receiver.recv().await.unwrap();
            assert_eq!(heard.account, "a");
            assert_eq!(heard.event, Event::WebhookChanged);
        }
    }

    #[tokio::test]
    async fn a_slow_listener_loses_the_oldest_notices_only() {
        let notices = Notices::new(1);
        let mut slow = notices.listen().unwrap();
        for n in 0..BACKLOG + 10 {
            notices.publish(&n.to_string(), Event::WebhookChanged);
        }
        assert!(matches!(
            slow.receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
        assert_eq!(slow.receiver.recv().await.unwrap().account, "10");
    }
}
