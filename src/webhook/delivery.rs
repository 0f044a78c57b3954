//! One worker per webhook URL: takes the due head event of each chat, posts it signed,
//! and records the outcome. 2xx: done. Network errors, 5xx and 429: retried with
//! exponential backoff and jitter (a `Retry-After` in seconds is honoured) until the
//! event is older than the retry window, then dead. Other 4xx: dead at once.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tracing::{debug, warn};

use super::outbox::{Due, Record};
use super::{Webhooks, unix_now};

/// Deliveries in flight per URL (each to a different chat).
const PARALLEL: usize = 16;
/// One attempt's time limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 300;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Retry, no sooner than the receiver asked (seconds).
    Retry {
        after: Option<i64>,
        error: String,
    },
    Final(String),
}

/// `X-Hub-Signature-256`: `sha256=` and the lower-case hex HMAC-SHA256 of the body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds to wait before attempt `attempts + 1`: 1, 2, 4, … up to 5 min, ±50 %.
pub fn backoff(attempts: u32, after: Option<i64>) -> i64 {
    let base = 1i64 << attempts.min(16);
    let jittered = (base as f64 * rand::random_range(0.5..1.5)).round() as i64;
    jittered.clamp(1, MAX_BACKOFF_SECS).max(after.unwrap_or(0))
}

pub async fn worker(webhooks: Arc<Webhooks>, url: String) {
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(webhooks.config.insecure_skip_verify)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .http_status_as_error(false)
        .user_agent("whatsapp-api webhook")
        .build()
        .into();
    let wake = webhooks.wake[&url].clone();
    let stopped = webhooks.stopped();
    tokio::pin!(stopped);
    loop {
        if futures_util::poll!(stopped.as_mut()).is_ready() {
            return;
        }
        // The due heads, or else when the next one falls due.
        let due = webhooks
            .outbox
            .due_or_next(url.clone(), unix_now(), PARALLEL)
            .await;
        let (due, next) = match due {
            Ok(found) => found,
            Err(e) => {
                warn!(url = %super::redact_url(&url), error = %e, "cannot read the webhook outbox; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if due.is_empty() {
            let wait = next.map_or(Duration::from_secs(60), |at| {
                Duration::from_secs((at - unix_now()).clamp(0, 60) as u64)
            });
            tokio::select! {
                () = &mut stopped => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
            }
            continue;
        }
        let attempts = due.into_iter().map(|d| {
            let (secret, agent, url) = (webhooks.config.secret.clone(), agent.clone(), url.clone());
            // Each POST blocks: one blocking task each.
            tokio::task::spawn_blocking(move || {
                let signature = signature(&secret, d.body.as_bytes());
                let outcome = post(
                    &agent,
                    &url,
                    &d.body,
                    &signature,
                    &d.event_id,
                    d.attempts + 1,
                );
                (d, outcome)
            })
        });
        let now = unix_now();
        let records: Vec<Record> = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .map(|(d, outcome)| judge(&webhooks, &url, d, outcome, now))
            .collect();
        // The round's outcomes in one transaction.
        let recorded = webhooks.outbox.record(url.clone(), records, now).await;
        if let Err(e) = recorded {
            warn!(url = %super::redact_url(&url), error = %e, "cannot record webhook outcomes; they will be retried");
        }
    }
}

/// What to record for an attempt at `due` that came to `outcome`.
fn judge(webhooks: &Webhooks, url: &str, due: Due, outcome: Outcome, now: i64) -> Record {
    let number = due.attempts + 1;
    let error = match &outcome {
        Outcome::Delivered => None,
        Outcome::Final(e) | Outcome::Retry { error: e, .. } => Some(e.as_str()),
    };
    webhooks.note(url, error);
    let shown = super::redact_url(url);
    let seq = due.seq;
    match outcome {
        Outcome::Delivered => {
            debug!(url = %shown, event = %due.event_id, attempt = number, "webhook delivered");
            Record::Delivered { seq }
        }
        Outcome::Final(error) => {
            warn!(url = %shown, event = %due.event_id, %error, "webhook refused; not retried");
            Record::Dead { seq, error }
        }
        Outcome::Retry { error, .. }
            if now - due.created_at >= webhooks.config.max_age.as_secs() as i64 =>
        {
            warn!(url = %shown, event = %due.event_id, %error, attempts = number, "webhook event dead: retried for the whole retry window");
            Record::Dead { seq, error }
        }
        Outcome::Retry { after, error } => {
            let wait = backoff(due.attempts, after);
            debug!(url = %shown, event = %due.event_id, %error, retry_in_secs = wait, "webhook attempt failed");
            Record::Retry {
                seq,
                next_at: now + wait,
                error,
            }
        }
    }
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    signature: &str,
    id: &str,
    attempt: u32,
) -> Outcome {
    let sent = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .header("X-Webhook-Id", id)
        .header("X-Webhook-Attempt", attempt.to_string())
        .send(body.as_bytes());
    let res = match sent {
        Ok(res) => res,
        Err(e) => {
            return Outcome::Retry {
                after: None,
                error: e.to_string(),
            };
        }
    };
    let status = res.status().as_u16();
    let after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            after,
            error: format!("HTTP {status}"),
        },
        _ => Outcome::Final(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_exact_body() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231-style vector.
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        for _ in 0..100 {
            assert!((1..=2).contains(&backoff(0, None)));
            assert!((4..=12).contains(&backoff(3, None)));
            assert!(backoff(30, None) <= MAX_BACKOFF_SECS);
            assert!(backoff(0, Some(30)) >= 30);
        }
    }
}
