//! The real session: the [`Machine`] behind one lock, the clients it runs, and one
//! worker task that does everything touching the store (build a client, stop one,
//! delete the store) strictly in the order the transitions asked for it.
//!
//! No lock is held across a network wait: a request changes the state under the lock
//! and queues its store work, then waits (for a QR code, a connection, its job)
//! with nothing held, so logout and shutdown never queue behind a hung reconnect.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, error, info, warn};
use whatsapp_rust::Client;
use whatsapp_rust::pair_code::{PairCodeOptions, PairError};
use whatsapp_rust::wacore::pair_code::PairCodeRejection;

use super::acks::PendingAcks;
use super::autoreply::AutoReply;
use super::bot::{self, Live, STOP_BUDGET};
use super::events::SessionEvents;
use super::state::{ClientEvent, Effects, Forget, Machine, PairingStep, Phase, Refusal};
use super::{PairingCode, SessionPhase, SessionStatus, WhatsAppError};

/// How long `/app/login` waits for WhatsApp to hand out the first QR code.
const FIRST_QR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `/app/reconnect` waits for the new connection to be ready.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `/app/logout` waits for WhatsApp to confirm the logout.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the real session needs from the configuration.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Where the WhatsApp session is kept.
    pub store: super::session_store::SessionStore,
    /// The device name the phone lists (Go's `--os`); set when pairing.
    pub device_name: Option<String>,
    /// `--whatsapp-proxy`: the WebSocket goes through it.
    pub proxy: Option<super::proxy::Proxy>,
    pub autoreply: Option<String>,
    /// At most one auto-reply per chat in this time.
    pub autoreply_interval: Duration,
    pub ack_timeout: Duration,
    /// `--auto-mark-read`: incoming messages are marked read as they arrive.
    pub auto_mark_read: bool,
    /// `--auto-reject-call`: incoming calls are rejected as they ring.
    pub auto_reject_call: bool,
    /// `--presence-on-connect`: announced after every connect (`None`: nothing).
    pub presence_on_connect: Option<bool>,
    /// `--webhook-include-outgoing`: this account's sends go to its webhooks too.
    pub include_outgoing: bool,
    /// Test builds only: the fake WhatsApp server's WebSocket URL.
    pub ws_url: Option<String>,
    /// Takes incoming messages before they are acknowledged (message store,
    /// webhooks).
    pub inbound: super::inbound::Inbound,
    /// The account's span: the session's own log lines carry its `device_id`.
    pub span: tracing::Span,
    /// Pairings and logouts, for `/ws`.
    pub notices: crate::notices::AccountNotices,
}

pub(super) struct Inner {
    pub settings: ClientSettings,
    machine: Mutex<Machine<Live>>,
    /// Bumped after every transition, for those waiting for one.
    changes: watch::Sender<u64>,
    jobs: mpsc::UnboundedSender<Job>,
    pub acks: Arc<PendingAcks>,
    pub autoreply: Option<Arc<AutoReply>>,
}

/// Store work, done one job at a time in the order it was queued.
enum Job {
    /// Stop a client (logging it out at WhatsApp first if asked), then delete the
    /// store as `forget` says.
    Finish {
        client: Option<Live>,
        logout: bool,
        forget: Forget,
        budget: Duration,
        done: Option<oneshot::Sender<()>>,
    },
    /// Build the client of `generation`; `fresh` deletes the store first (pairing).
    Build {
        generation: u64,
        fresh: bool,
        done: oneshot::Sender<Result<(), WhatsAppError>>,
    },
}

impl Inner {
    fn machine(&self) -> MutexGuard<'_, Machine<Live>> {
        // Transitions never panic half way (they are plain moves), so a poisoned
        // lock still holds a consistent state.
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a transition under the lock. Its effects take hold before the lock is
    /// released: pending sends fail at once and the store work is queued in order.
    pub fn step<R>(&self, transition: impl FnOnce(&mut Machine<Live>) -> (R, Effects<Live>)) -> R {
        self.step_finishing(transition, false, None)
    }

    /// [`step`](Self::step), logging the stopped client out at WhatsApp first if
    /// `logout`; `done` fires once the store work is finished (at once if there is
    /// none).
    fn step_finishing<R>(
        &self,
        transition: impl FnOnce(&mut Machine<Live>) -> (R, Effects<Live>),
        logout: bool,
        done: Option<oneshot::Sender<()>>,
    ) -> R {
        let result = {
            let mut machine = self.machine();
            let (result, effects) = transition(&mut machine);
            self.take_effects(effects, logout, done);
            result
        };
        self.changes.send_modify(|n| *n += 1);
        result
    }

    fn take_effects(
        &self,
        effects: Effects<Live>,
        logout: bool,
        done: Option<oneshot::Sender<()>>,
    ) {
        if let Some(why) = effects.fail_pending {
            let failed = self.acks.interrupt_all(why);
            if failed > 0 {
                warn!(sends = failed, reason = ?why, "sends waiting for WhatsApp failed");
            }
        }
        if effects.stop.is_some() || effects.forget != Forget::Nothing {
            self.queue(Job::Finish {
                client: effects.stop,
                logout,
                forget: effects.forget,
                budget: STOP_BUDGET,
                done,
            });
        }
    }

    fn queue(&self, job: Job) {
        // The worker lives as long as any handle to the session.
        let _ = self.jobs.send(job);
    }

    /// The webhooks, when configured.
    pub fn messages(&self) -> Option<&Arc<crate::messages::MessageStore>> {
        self.settings.inbound.messages.as_ref()
    }

    pub fn webhooks(&self) -> Option<&Arc<crate::webhook::Webhooks>> {
        self.settings.inbound.webhooks.as_ref()
    }

    /// The generation of the current client.
    pub fn generation(&self) -> u64 {
        self.machine().generation()
    }

    /// An event of the client of `generation`.
    pub fn client_event(&self, generation: u64, event: ClientEvent) {
        self.step(|m| ((), m.on_event(generation, event)));
    }

    /// The phase and a handle on its client, read under the lock. The client is
    /// asked anything only after the lock is released: the client may be dispatching
    /// an event into [`step`](Self::step) while holding locks of its own.
    fn snapshot(&self) -> (SessionPhase, Option<Arc<Client>>) {
        let machine = self.machine();
        let phase = match machine.phase() {
            Phase::LoggedOut => SessionPhase::LoggedOut,
            Phase::Pairing { .. } => SessionPhase::Pairing,
            Phase::Connecting { .. } => SessionPhase::Connecting,
            Phase::Connected { .. } => SessionPhase::Connected,
            Phase::Reconnecting { .. } => SessionPhase::Reconnecting,
            Phase::Replaced { .. } => SessionPhase::Replaced,
            Phase::Stopping => SessionPhase::Stopping,
        };
        (phase, machine.client().map(|live| live.client.clone()))
    }

    /// The phase, with a connected phase whose client lost its socket (or its login,
    /// as on a 503 from WhatsApp) reported as reconnecting.
    pub fn phase(&self) -> SessionPhase {
        match self.snapshot() {
            (SessionPhase::Connected, Some(client)) if usable(&client) => SessionPhase::Connected,
            (SessionPhase::Connected, _) => SessionPhase::Reconnecting,
            (phase, _) => phase,
        }
    }

    pub fn status(&self) -> SessionStatus {
        self.phase().status()
    }

    pub fn device_id(&self) -> Option<whatsapp_rust::Jid> {
        match self.snapshot() {
            (SessionPhase::LoggedOut | SessionPhase::Pairing, _) => None,
            (_, client) => client?.pn(),
        }
    }

    /// The connected client, or the API's error for why there is none.
    pub fn ready_client(&self) -> Result<Arc<Client>, WhatsAppError> {
        match self.snapshot() {
            (SessionPhase::Connected, Some(client)) if usable(&client) => Ok(client),
            (SessionPhase::LoggedOut | SessionPhase::Pairing, _) => Err(WhatsAppError::NotLoggedIn),
            _ => Err(WhatsAppError::NotConnected),
        }
    }

    /// Waits until `check` answers, the state changing in between, for at most
    /// `timeout`.
    async fn wait_for<T>(
        &self,
        timeout: Duration,
        check: impl Fn(&Machine<Live>) -> Option<T>,
    ) -> Option<T> {
        let mut changes = self.changes.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                changes.borrow_and_update();
                if let Some(found) = check(&self.machine()) {
                    return Some(found);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Queues the build of the client of `generation` and waits for it.
    async fn build(&self, generation: u64, fresh: bool) -> Result<(), WhatsAppError> {
        let (done, built) = oneshot::channel();
        self.queue(Job::Build {
            generation,
            fresh,
            done,
        });
        built
            .await
            .unwrap_or_else(|_| Err(WhatsAppError::Failed("the session is stopping".into())))
    }

    /// `/app/login`.
    pub async fn pairing_code(&self) -> Result<PairingCode, WhatsAppError> {
        // A second round only when the attempt we waited for ended meanwhile.
        for _ in 0..2 {
            let step = self.step(|m| (m.begin_pairing(Instant::now()), Effects::none()));
            let (generation, started) = match step.map_err(refused)? {
                PairingStep::Show(code) => return Ok(code),
                PairingStep::Wait(generation) => (generation, false),
                PairingStep::Start(generation) => {
                    info!("starting a pairing attempt");
                    if let Err(e) = self.build(generation, true).await {
                        self.step(|m| ((), m.abandon_pairing(generation)));
                        return Err(e);
                    }
                    (generation, true)
                }
            };
            match self.wait_for_code(generation).await {
                Some(Some(code)) => return Ok(code),
                Some(None) if started => {
                    return Err(WhatsAppError::Failed("the pairing attempt ended".into()));
                }
                Some(None) => continue,
                None => {
                    // No code came (WhatsApp unreachable?): do not leave it retrying.
                    self.step(|m| ((), m.abandon_pairing(generation)));
                    return Err(WhatsAppError::Timeout(
                        FIRST_QR_TIMEOUT,
                        "the QR code from WhatsApp",
                    ));
                }
            }
        }
        Err(WhatsAppError::Failed("the pairing attempt ended".into()))
    }

    /// `/app/login-with-code`: a pairing attempt as for a QR code (its socket is up
    /// once the first QR code came), then an 8-character code for `phone` (digits
    /// with the country code) that its owner types under "Link with phone number
    /// instead". Whichever the phone completes, QR or code, logs in. A new request
    /// replaces a code still outstanding.
    pub async fn link_code(&self, phone: &str) -> Result<String, WhatsAppError> {
        self.pairing_code().await?;
        let client = self
            .machine()
            .client()
            .map(|live| Arc::clone(&live.client))
            .ok_or_else(|| WhatsAppError::Failed("the pairing attempt ended".into()))?;
        client.cancel_pair_code().await;
        let options = PairCodeOptions {
            phone_number: phone.to_owned(),
            show_push_notification: true,
            ..Default::default()
        };
        client.pair_with_code(options).await.map_err(|e| {
            warn!(error = %e, "pairing by code refused");
            if let PairError::PairCode(inner) = &e {
                return WhatsAppError::Rejected(inner.to_string());
            }
            match e.rejection() {
                Some(PairCodeRejection::RateOverlimit) => WhatsAppError::Rejected(
                    "WhatsApp refused: too many codes asked for; try again later".into(),
                ),
                Some(_) => WhatsAppError::Rejected(
                    "WhatsApp refused a code for this number (a wrong number, or too many \
                     codes asked for it: try again later)"
                        .into(),
                ),
                None => WhatsAppError::Failed(format!("pairing by code failed: {e}")),
            }
        })
    }

    /// `Some(Some(code))` once the attempt shows a valid code, `Some(None)` when the
    /// attempt ended, `None` on timeout.
    async fn wait_for_code(&self, generation: u64) -> Option<Option<PairingCode>> {
        self.wait_for(FIRST_QR_TIMEOUT, |m| {
            if m.generation() != generation {
                return Some(None);
            }
            match m.phase() {
                Phase::Pairing { .. } => m.qr(Instant::now()).cloned().map(Some),
                _ => Some(None),
            }
        })
        .await
    }

    /// `/app/reconnect`.
    pub async fn reconnect(&self) -> Result<(), WhatsAppError> {
        let generation = self.step(|m| match m.begin_reconnect() {
            Ok((generation, effects)) => (Ok(generation), effects),
            Err(refusal) => (Err(refusal), Effects::none()),
        });
        let generation = generation.map_err(refused)?;
        info!("reconnecting to WhatsApp");
        self.build(generation, false).await?;
        let outcome = self
            .wait_for(RECONNECT_TIMEOUT, |m| {
                if m.connected().is_some() {
                    Some(Ok(()))
                } else if !m.has_device() {
                    Some(Err(WhatsAppError::NotLoggedIn))
                } else {
                    None
                }
            })
            .await;
        outcome.unwrap_or(Err(WhatsAppError::Timeout(
            RECONNECT_TIMEOUT,
            "the connection to WhatsApp",
        )))
    }

    /// `/app/logout`: logged out here at once; waits for WhatsApp's answer (bounded)
    /// and the store's removal.
    pub async fn logout(&self) -> Result<(), WhatsAppError> {
        let (done, finished) = oneshot::channel();
        let outcome = self.step_finishing(
            |m| match m.logout() {
                Ok(effects) => (Ok(()), effects),
                Err(refusal) => (Err(refusal), Effects::none()),
            },
            true,
            Some(done),
        );
        outcome.map_err(refused)?;
        // Sent when the store is gone; dropped unsent when there was nothing to do.
        let _ = finished.await;
        Ok(())
    }

    /// Server shutdown: the client stops within its budget, not behind queued store
    /// work (a client the worker builds meanwhile is stopped by it); the store is
    /// kept.
    pub async fn shutdown(&self) {
        let client = self.step(|m| {
            let mut effects = m.shutdown();
            (effects.stop.take(), effects)
        });
        if let Some(live) = client {
            info!("disconnecting from WhatsApp");
            live.stop(STOP_BUDGET).await;
        }
    }
}

fn usable(client: &Client) -> bool {
    client.is_connected() && client.is_logged_in()
}

fn refused(refusal: Refusal) -> WhatsAppError {
    match refusal {
        Refusal::AlreadyLoggedIn => WhatsAppError::AlreadyLoggedIn,
        Refusal::NotLoggedIn => WhatsAppError::NotLoggedIn,
        Refusal::NoDevice => WhatsAppError::NoDevice,
        Refusal::ShuttingDown => WhatsAppError::ShuttingDown,
    }
}

/// The real WhatsApp session (see the module docs).
pub struct WhatsAppClient {
    pub(super) inner: Arc<Inner>,
}

impl WhatsAppClient {
    /// Opens the stored session, if any, and starts connecting it in the background.
    pub async fn start(settings: ClientSettings) -> Result<Self, WhatsAppError> {
        let span = settings.span.clone();
        Self::start_in_span(settings).instrument(span).await
    }

    async fn start_in_span(settings: ClientSettings) -> Result<Self, WhatsAppError> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let autoreply = settings
            .autoreply
            .clone()
            .map(|text| Arc::new(AutoReply::new(text, settings.autoreply_interval)));
        let inner = Arc::new(Inner {
            settings,
            machine: Mutex::new(Machine::default()),
            changes: watch::channel(0).0,
            jobs,
            acks: Arc::new(PendingAcks::default()),
            autoreply,
        });
        tokio::spawn(worker(Arc::downgrade(&inner), queue).instrument(inner.settings.span.clone()));
        if inner.settings.store.exists().await? {
            let generation = inner.step(|m| (m.begin_resume(), Effects::none()));
            let generation = generation.map_err(refused)?;
            inner.build(generation, false).await?;
            if inner.device_id().is_some() {
                info!("stored WhatsApp session found; connecting");
            }
        } else {
            info!("no stored WhatsApp session; use /app/login to pair a phone");
        }
        Ok(Self { inner })
    }
}

/// Does the store work of [`Job`]s one at a time.
async fn worker(inner: Weak<Inner>, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = queue.recv().await {
        // A panic inside the library must not take the worker (and with it every
        // later login, reconnect and logout) down.
        let run = AssertUnwindSafe(run_job(&inner, job)).catch_unwind();
        if run.await.is_err() {
            error!("a session task panicked; the session carries on");
        }
    }
}

async fn run_job(inner: &Weak<Inner>, job: Job) {
    match job {
        Job::Finish {
            client,
            logout,
            forget,
            budget,
            done,
        } => {
            match inner.upgrade() {
                Some(session) => finish(&session, client, logout, forget, budget).await,
                None => {
                    if let Some(client) = client {
                        client.stop(budget).await;
                    }
                }
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
        Job::Build {
            generation,
            fresh,
            done,
        } => {
            let outcome = match inner.upgrade() {
                Some(session) => build(&session, generation, fresh).await,
                None => Err(WhatsAppError::ShuttingDown),
            };
            let _ = done.send(outcome);
        }
    }
}

async fn finish(
    session: &Arc<Inner>,
    client: Option<Live>,
    logout: bool,
    forget: Forget,
    budget: Duration,
) {
    let store = &session.settings.store;
    let mut paired = false;
    if let Some(live) = client {
        if logout {
            if live.client.is_connected() {
                match tokio::time::timeout(LOGOUT_TIMEOUT, live.client.logout()).await {
                    Ok(()) => info!("device logged out at WhatsApp"),
                    Err(_) => warn!("WhatsApp did not confirm the logout in time"),
                }
            } else {
                warn!("not connected: the device is removed here but stays listed on the phone");
            }
        }
        // Asked after the stop: a scan at the last moment may still be flushing.
        let store = live.client.persistence_manager();
        live.stop(budget).await;
        paired = store.get_device_snapshot().pn.is_some();
    } else if logout {
        warn!("not connected: the device is removed here but stays listed on the phone");
    }
    match forget {
        Forget::Nothing => {}
        Forget::Always => {
            let _ = store.remove().await;
            if let Some(store) = session.messages().cloned() {
                match tokio::task::spawn_blocking(move || store.clear()).await {
                    Ok(Ok(())) => info!("stored messages deleted"),
                    Ok(Err(e)) => warn!(error = %e, "cannot delete the stored messages"),
                    Err(_) => warn!("deleting the stored messages stopped"),
                }
            }
        }
        Forget::IfUnpaired if !paired => {
            let _ = store.remove().await;
        }
        Forget::IfUnpaired => {
            // The phone scanned just as the attempt ended: keep the device.
            info!("the pairing attempt ended after the phone paired; connecting");
            if let Ok(generation) = session.step(|m| (m.begin_resume(), Effects::none()))
                && let Err(e) = build(session, generation, false).await
            {
                warn!(error = %e, "cannot connect the paired device");
            }
        }
    }
}

/// Builds the client of `generation` and hands it to the machine; stops it again if
/// the session moved on meanwhile.
async fn build(session: &Arc<Inner>, generation: u64, fresh: bool) -> Result<(), WhatsAppError> {
    if session.machine().generation() != generation {
        return Ok(());
    }
    // A pairing starts from nothing: what is stored must go first, or it would
    // be loaded again.
    if fresh {
        session.settings.store.remove().await?;
    }
    let weak = Arc::downgrade(session);
    let live = bot::start(&session.settings, |client| {
        SessionEvents::handler(weak, generation, client)
    })
    .await?;
    if !fresh && !live.is_paired() {
        info!("stored WhatsApp database holds no paired device; removing it");
        live.stop(STOP_BUDGET).await;
        let _ = session.settings.store.remove().await;
        session.step(|m| ((), m.abandon_resume(generation)));
        return Ok(());
    }
    let client = live.client.clone();
    if let Err(stale) = session.step(|m| (m.install(generation, live), Effects::none())) {
        stale.stop(STOP_BUDGET).await;
        return Ok(());
    }
    // The client runs from the moment it is built; a connection it made before it
    // was installed had no phase to land in.
    if usable(&client) {
        session.client_event(generation, ClientEvent::Connected);
    }
    Ok(())
}
