//! The presence pulse (Go's `WHATSAPP_PRESENCE_PULSE_*`): every `interval`, each
//! connected account is marked available for `duration`, then unavailable again.
//! WhatsApp sends typing indicators only to clients it has seen online, and an
//! account that stays unavailable (the default on connect, so that the phone keeps
//! its notifications) would otherwise never be.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use tracing::{Instrument, debug, warn};

use super::Accounts;
use crate::whatsapp::{SessionPhase, WhatsApp};

/// Longest wait between two looks at which accounts are due.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Runs the pulse until the accounts are gone or stopping.
pub fn spawn(accounts: Weak<Accounts>, interval: Duration, duration: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval.min(CHECK_EVERY));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When each account's last pulse began.
        let mut last: HashMap<String, Instant> = HashMap::new();
        loop {
            ticks.tick().await;
            let Some(accounts) = accounts.upgrade() else {
                return;
            };
            if accounts.is_stopping() {
                return;
            }
            let now = Instant::now();
            let open = accounts.list();
            last.retain(|id, _| open.iter().any(|a| &a.id == id));
            for account in open {
                let due = last
                    .get(&account.id)
                    .is_none_or(|began| now.duration_since(*began) >= interval);
                if !due || account.wa.phase() != SessionPhase::Connected {
                    continue;
                }
                last.insert(account.id.clone(), now);
                let span = tracing::info_span!("account", device_id = %account.id);
                tokio::spawn(pulse(account.wa.clone(), duration).instrument(span));
            }
        }
    });
}

/// One pulse of one account.
async fn pulse(wa: std::sync::Arc<dyn WhatsApp>, duration: Duration) {
    if let Err(e) = wa.set_presence(true).await {
        warn!(error = %e, "presence pulse: could not mark the account available");
        return;
    }
    debug!("presence pulse: available");
    tokio::time::sleep(duration).await;
    if wa.phase() != SessionPhase::Connected {
        return;
    }
    match wa.set_presence(false).await {
        Ok(()) => debug!("presence pulse: unavailable again"),
        Err(e) => warn!(error = %e, "presence pulse: could not mark the account unavailable"),
    }
}
