//! The session's lifecycle as one state machine, with no I/O: every request and every
//! client event is a plain function from the current state to the next one plus the
//! [`Effects`] the caller must carry out (stop a client, fail the pending sends, delete
//! the store). The caller holds the lock only while calling these, never across a
//! network wait.
//!
//! Every client the session starts gets a new generation number; events carry the
//! generation of the client that raised them, and events of an older client are
//! ignored, so a late `PairSuccess` or `LoggedOut` of a stopped client changes nothing.
//!
//! `C` is the running client (generic so the transitions are tested without one).

use std::time::Instant;

use super::{PairingCode, SessionStatus};

/// Where the session stands.
#[derive(Debug)]
pub enum Phase<C> {
    /// No device is stored and no pairing runs.
    LoggedOut,
    /// A pairing attempt shows QR codes (its client is `None` while it is built).
    Pairing {
        client: Option<C>,
        qr: Option<PairingCode>,
    },
    /// A stored device is connecting (its client is `None` while it is built).
    Connecting { client: Option<C> },
    /// Logged in and connected.
    Connected { client: C },
    /// The connection dropped; the client reconnects by itself.
    Reconnecting { client: C },
    /// Another client took the session over; the client stopped reconnecting and
    /// only `/app/reconnect` takes it back.
    Replaced { client: C },
    /// The server is shutting down.
    Stopping,
}

/// Something a client reported, tagged by the caller with the client's generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Qr(PairingCode),
    QrExhausted,
    PairSuccess,
    Connected,
    Disconnected,
    Replaced,
    /// The phone removed the device (or WhatsApp refused it).
    LoggedOut,
}

/// Why pending sends fail: the caller turns it into the error each send reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    ConnectionLost,
    Replaced,
    Reconnecting,
    LoggedOut,
    ShuttingDown,
}

/// What to delete after a client stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    Nothing,
    /// Delete the store only if it holds no paired device (a pairing that ended).
    IfUnpaired,
    /// Delete the store (logged out).
    Always,
}

/// Work a transition leaves for the caller, to do outside the lock.
#[derive(Debug)]
pub struct Effects<C> {
    pub stop: Option<C>,
    pub fail_pending: Option<Interruption>,
    pub forget: Forget,
}

impl<C> Effects<C> {
    pub fn none() -> Self {
        Effects {
            stop: None,
            fail_pending: None,
            forget: Forget::Nothing,
        }
    }

    pub fn is_none(&self) -> bool {
        self.stop.is_none() && self.fail_pending.is_none() && self.forget == Forget::Nothing
    }
}

/// Why a request cannot change the session now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AlreadyLoggedIn,
    NotLoggedIn,
    NoDevice,
    ShuttingDown,
}

/// What `/app/login` should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingStep {
    /// A code of the running attempt is still valid.
    Show(PairingCode),
    /// The running attempt will publish a code (its first, or the next one).
    Wait(u64),
    /// A new attempt of this generation was registered: build its client.
    Start(u64),
}

#[derive(Debug)]
pub struct Machine<C> {
    generation: u64,
    phase: Phase<C>,
}

impl<C> Default for Machine<C> {
    fn default() -> Self {
        Machine {
            generation: 0,
            phase: Phase::LoggedOut,
        }
    }
}

impl<C> Machine<C> {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn phase(&self) -> &Phase<C> {
        &self.phase
    }

    /// The client that serves requests: only a connected one.
    pub fn connected(&self) -> Option<&C> {
        match &self.phase {
            Phase::Connected { client } => Some(client),
            _ => None,
        }
    }

    /// The client of the current phase, whatever its state.
    pub fn client(&self) -> Option<&C> {
        match &self.phase {
            Phase::Pairing { client, .. } | Phase::Connecting { client } => client.as_ref(),
            Phase::Connected { client }
            | Phase::Reconnecting { client }
            | Phase::Replaced { client } => Some(client),
            Phase::LoggedOut | Phase::Stopping => None,
        }
    }

    /// A paired device is stored (connected or not).
    pub fn has_device(&self) -> bool {
        matches!(
            self.phase,
            Phase::Connecting { .. }
                | Phase::Connected { .. }
                | Phase::Reconnecting { .. }
                | Phase::Replaced { .. }
        )
    }

    pub fn status(&self) -> SessionStatus {
        match self.phase {
            Phase::Connected { .. } => SessionStatus::Connected,
            Phase::LoggedOut | Phase::Pairing { .. } => SessionStatus::LoggedOut,
            _ => SessionStatus::Disconnected,
        }
    }

    /// The valid QR code of the running pairing attempt, if any.
    pub fn qr(&self, now: Instant) -> Option<&PairingCode> {
        match &self.phase {
            Phase::Pairing { qr: Some(code), .. } if code.expires_at > now => Some(code),
            _ => None,
        }
    }

    fn advance(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Replaces the phase, returning the client the old phase ran.
    fn enter(&mut self, phase: Phase<C>) -> Option<C> {
        match std::mem::replace(&mut self.phase, phase) {
            Phase::Pairing { client, .. } | Phase::Connecting { client } => client,
            Phase::Connected { client }
            | Phase::Reconnecting { client }
            | Phase::Replaced { client } => Some(client),
            Phase::LoggedOut | Phase::Stopping => None,
        }
    }

    /// A stored device is to be connected (at startup, or when a pairing that ended
    /// turns out to have paired after all): build its client for the returned
    /// generation and [`install`](Self::install) it. A pairing attempt whose client
    /// is not built yet gives way (its build, of an older generation, is skipped).
    pub fn begin_resume(&mut self) -> Result<u64, Refusal> {
        match self.phase {
            Phase::LoggedOut | Phase::Pairing { client: None, .. } => {
                let generation = self.advance();
                self.phase = Phase::Connecting { client: None };
                Ok(generation)
            }
            Phase::Stopping => Err(Refusal::ShuttingDown),
            _ => Err(Refusal::AlreadyLoggedIn),
        }
    }

    /// `/app/login`: show the running attempt's code, wait for it, or start one.
    pub fn begin_pairing(&mut self, now: Instant) -> Result<PairingStep, Refusal> {
        match &self.phase {
            Phase::Stopping => Err(Refusal::ShuttingDown),
            _ if self.has_device() => Err(Refusal::AlreadyLoggedIn),
            Phase::Pairing { qr: Some(code), .. } if code.expires_at > now => {
                Ok(PairingStep::Show(code.clone()))
            }
            // No code yet, or it expired and the client is about to publish the next
            // one (or report that the codes ran out, which ends the attempt).
            Phase::Pairing { .. } => Ok(PairingStep::Wait(self.generation)),
            _ => {
                let generation = self.advance();
                self.phase = Phase::Pairing {
                    client: None,
                    qr: None,
                };
                Ok(PairingStep::Start(generation))
            }
        }
    }

    /// `/app/reconnect`: a new client of the returned generation replaces the old one.
    pub fn begin_reconnect(&mut self) -> Result<(u64, Effects<C>), Refusal> {
        if matches!(self.phase, Phase::Stopping) {
            return Err(Refusal::ShuttingDown);
        }
        if !self.has_device() {
            return Err(Refusal::NotLoggedIn);
        }
        let generation = self.advance();
        let old = self.enter(Phase::Connecting { client: None });
        Ok((
            generation,
            Effects {
                stop: old,
                fail_pending: Some(Interruption::Reconnecting),
                forget: Forget::Nothing,
            },
        ))
    }

    /// Hands a freshly built client to the phase that asked for it. If the session
    /// has moved on meanwhile, the client comes back to be stopped.
    pub fn install(&mut self, generation: u64, new: C) -> Result<(), C> {
        if generation != self.generation {
            return Err(new);
        }
        match &mut self.phase {
            Phase::Pairing { client, .. } | Phase::Connecting { client } if client.is_none() => {
                *client = Some(new);
                Ok(())
            }
            _ => Err(new),
        }
    }

    /// A pairing attempt that got no code in time (or whose client could not be
    /// built) ends; the store goes unless the phone paired at the last moment.
    pub fn abandon_pairing(&mut self, generation: u64) -> Effects<C> {
        if generation != self.generation || !matches!(self.phase, Phase::Pairing { .. }) {
            return Effects::none();
        }
        self.leave_to_logged_out()
    }

    /// The store of a resumed device turned out to hold no device after all.
    pub fn abandon_resume(&mut self, generation: u64) -> Effects<C> {
        if generation != self.generation || !matches!(self.phase, Phase::Connecting { .. }) {
            return Effects::none();
        }
        self.leave_to_logged_out()
    }

    fn leave_to_logged_out(&mut self) -> Effects<C> {
        self.advance();
        Effects {
            stop: self.enter(Phase::LoggedOut),
            fail_pending: None,
            forget: Forget::IfUnpaired,
        }
    }

    /// `/app/logout`: the client is returned (to log out at WhatsApp, then stop) and
    /// the store is to be deleted.
    pub fn logout(&mut self) -> Result<Effects<C>, Refusal> {
        if matches!(self.phase, Phase::Stopping) {
            return Err(Refusal::ShuttingDown);
        }
        if !self.has_device() {
            return Err(Refusal::NoDevice);
        }
        self.advance();
        Ok(Effects {
            stop: self.enter(Phase::LoggedOut),
            fail_pending: Some(Interruption::LoggedOut),
            forget: Forget::Always,
        })
    }

    /// Server shutdown: nothing starts any more; the client stops with its store kept.
    pub fn shutdown(&mut self) -> Effects<C> {
        self.advance();
        Effects {
            stop: self.enter(Phase::Stopping),
            fail_pending: Some(Interruption::ShuttingDown),
            forget: Forget::Nothing,
        }
    }

    /// An event of the client of `generation`; events of older clients are ignored.
    pub fn on_event(&mut self, generation: u64, event: ClientEvent) -> Effects<C> {
        if generation != self.generation {
            return Effects::none();
        }
        match (event, &mut self.phase) {
            (ClientEvent::Qr(code), Phase::Pairing { qr, .. }) => {
                *qr = Some(code);
                Effects::none()
            }
            (ClientEvent::QrExhausted, Phase::Pairing { .. }) => {
                self.advance();
                Effects {
                    stop: self.enter(Phase::LoggedOut),
                    fail_pending: None,
                    forget: Forget::IfUnpaired,
                }
            }
            (ClientEvent::PairSuccess, Phase::Pairing { client, .. }) => {
                // The same client reconnects as the new device.
                let client = client.take();
                self.phase = Phase::Connecting { client };
                Effects::none()
            }
            (
                ClientEvent::Connected,
                Phase::Pairing { client, .. } | Phase::Connecting { client },
            ) => match client.take() {
                Some(client) => {
                    self.phase = Phase::Connected { client };
                    Effects::none()
                }
                None => Effects::none(),
            },
            (ClientEvent::Connected, Phase::Reconnecting { .. }) => {
                self.replace_with(|client| Phase::Connected { client });
                Effects::none()
            }
            // A new connection without a reported drop (WhatsApp closed the stream
            // on purpose, e.g. a 515): acks owed on the old socket will never come.
            (ClientEvent::Connected, Phase::Connected { .. }) => Effects {
                stop: None,
                fail_pending: Some(Interruption::ConnectionLost),
                forget: Forget::Nothing,
            },
            (ClientEvent::Disconnected, Phase::Connected { .. }) => {
                self.replace_with(|client| Phase::Reconnecting { client });
                Effects {
                    stop: None,
                    fail_pending: Some(Interruption::ConnectionLost),
                    forget: Forget::Nothing,
                }
            }
            (
                ClientEvent::Replaced,
                Phase::Connecting { .. } | Phase::Connected { .. } | Phase::Reconnecting { .. },
            ) => {
                let client = self.enter(Phase::Connecting { client: None });
                self.phase = match client {
                    Some(client) => Phase::Replaced { client },
                    None => Phase::Connecting { client: None },
                };
                Effects {
                    stop: None,
                    fail_pending: Some(Interruption::Replaced),
                    forget: Forget::Nothing,
                }
            }
            (ClientEvent::LoggedOut, phase)
                if !matches!(phase, Phase::LoggedOut | Phase::Stopping) =>
            {
                self.advance();
                let pairing = matches!(self.phase, Phase::Pairing { .. });
                Effects {
                    stop: self.enter(Phase::LoggedOut),
                    fail_pending: Some(Interruption::LoggedOut),
                    forget: if pairing {
                        Forget::IfUnpaired
                    } else {
                        Forget::Always
                    },
                }
            }
            _ => Effects::none(),
        }
    }

    /// Moves the client of a phase that holds one into another such phase.
    fn replace_with(&mut self, next: impl FnOnce(C) -> Phase<C>) {
        if let Some(client) = self.enter(Phase::Connecting { client: None }) {
            self.phase = next(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Clients are named by numbers in these tests.
    type M = Machine<u32>;

    fn code(text: &str, valid_for: Duration) -> PairingCode {
        PairingCode {
            code: text.to_owned(),
            expires_at: Instant::now() + valid_for,
        }
    }

    fn resumed(m: &mut M, client: u32) -> u64 {
        let g = m.begin_resume().unwrap();
        m.install(g, client).unwrap();
        g
    }

    fn connected(client: u32) -> (M, u64) {
        let mut m = M::default();
        let g = resumed(&mut m, client);
        assert!(m.on_event(g, ClientEvent::Connected).is_none());
        assert_eq!(m.status(), SessionStatus::Connected);
        (m, g)
    }

    /// A pairing attempt whose client `client` shows code `qr`.
    fn pairing(client: u32) -> (M, u64) {
        let mut m = M::default();
        let Ok(PairingStep::Start(g)) = m.begin_pairing(Instant::now()) else {
            panic!("a logged-out session starts pairing");
        };
        m.install(g, client).unwrap();
        (m, g)
    }

    #[test]
    fn a_fresh_session_is_logged_out_and_refuses_reconnect_and_logout() {
        let mut m = M::default();
        assert_eq!(m.status(), SessionStatus::LoggedOut);
        assert!(m.connected().is_none());
        assert_eq!(m.begin_reconnect().unwrap_err(), Refusal::NotLoggedIn);
        assert_eq!(m.logout().unwrap_err(), Refusal::NoDevice);
    }

    #[test]
    fn resume_connects_then_serves() {
        let mut m = M::default();
        let g = resumed(&mut m, 7);
        assert_eq!(m.status(), SessionStatus::Disconnected);
        assert!(m.connected().is_none());
        assert_eq!(m.client(), Some(&7));
        m.on_event(g, ClientEvent::Connected);
        assert_eq!(m.connected(), Some(&7));
    }

    #[test]
    fn pairing_shows_codes_in_turn_and_waits_between_them() {
        let (mut m, g) = pairing(1);
        assert_eq!(m.status(), SessionStatus::LoggedOut);
        // Before the first code: wait for it, do not start another attempt.
        assert_eq!(m.begin_pairing(Instant::now()), Ok(PairingStep::Wait(g)));
        let first = code("first", Duration::from_secs(60));
        m.on_event(g, ClientEvent::Qr(first.clone()));
        assert_eq!(
            m.begin_pairing(Instant::now()),
            Ok(PairingStep::Show(first))
        );
        let next = code("next", Duration::from_secs(20));
        m.on_event(g, ClientEvent::Qr(next.clone()));
        assert_eq!(m.begin_pairing(Instant::now()), Ok(PairingStep::Show(next)));
        assert_eq!(m.generation(), g, "rotation keeps the attempt");
    }

    #[test]
    fn an_expired_code_waits_for_its_successor_rather_than_restarting() {
        let (mut m, g) = pairing(1);
        m.on_event(g, ClientEvent::Qr(code("old", Duration::ZERO)));
        assert_eq!(m.qr(Instant::now()), None);
        assert_eq!(m.begin_pairing(Instant::now()), Ok(PairingStep::Wait(g)));
    }

    #[test]
    fn codes_running_out_end_the_attempt_and_delete_only_an_unpaired_store() {
        let (mut m, g) = pairing(1);
        m.on_event(g, ClientEvent::Qr(code("only", Duration::from_secs(60))));
        let effects = m.on_event(g, ClientEvent::QrExhausted);
        assert_eq!(effects.stop, Some(1));
        assert_eq!(effects.forget, Forget::IfUnpaired);
        assert_eq!(m.status(), SessionStatus::LoggedOut);
        // The next login starts a new attempt.
        assert!(matches!(
            m.begin_pairing(Instant::now()),
            Ok(PairingStep::Start(n)) if n > g
        ));
    }

    #[test]
    fn a_scan_at_the_last_moment_wins_over_running_out() {
        let (mut m, g) = pairing(1);
        m.on_event(g, ClientEvent::Qr(code("last", Duration::from_millis(1))));
        m.on_event(g, ClientEvent::PairSuccess);
        assert_eq!(
            m.status(),
            SessionStatus::Disconnected,
            "paired, connecting"
        );
        // The rotation task's last word comes after the scan: ignored.
        let effects = m.on_event(g, ClientEvent::QrExhausted);
        assert!(effects.is_none());
        m.on_event(g, ClientEvent::Connected);
        assert_eq!(m.connected(), Some(&1));
        assert_eq!(
            m.begin_pairing(Instant::now()),
            Err(Refusal::AlreadyLoggedIn)
        );
    }

    #[test]
    fn a_late_pair_success_from_a_stopped_attempt_is_ignored() {
        let (mut m, old) = pairing(1);
        m.on_event(old, ClientEvent::Qr(code("a", Duration::from_secs(60))));
        let effects = m.abandon_pairing(old);
        assert_eq!(effects.stop, Some(1));
        let Ok(PairingStep::Start(new)) = m.begin_pairing(Instant::now()) else {
            panic!("a new attempt starts");
        };
        m.install(new, 2).unwrap();
        for event in [
            ClientEvent::PairSuccess,
            ClientEvent::Connected,
            ClientEvent::LoggedOut,
            ClientEvent::QrExhausted,
        ] {
            assert!(m.on_event(old, event).is_none());
        }
        assert!(matches!(
            m.phase(),
            Phase::Pairing {
                client: Some(2),
                ..
            }
        ));
        assert_eq!(m.begin_pairing(Instant::now()), Ok(PairingStep::Wait(new)));
    }

    #[test]
    fn a_client_built_for_a_superseded_generation_is_handed_back() {
        let (mut m, g) = pairing(1);
        assert_eq!(m.install(g, 9), Err(9), "the slot is taken");
        let (mut m, g) = connected(1);
        let (next, _) = m.begin_reconnect().unwrap();
        m.logout().unwrap();
        assert_eq!(m.install(next, 2), Err(2));
        assert_eq!(m.install(g, 3), Err(3));
    }

    #[test]
    fn abandoning_pairing_only_touches_the_current_attempt() {
        let (mut m, g) = pairing(1);
        assert!(m.abandon_pairing(g + 1).is_none());
        assert!(m.abandon_resume(g).is_none(), "not a resume");
        let effects = m.abandon_pairing(g);
        assert_eq!(effects.forget, Forget::IfUnpaired);
        assert!(m.abandon_pairing(g).is_none(), "only once");
        let (mut m, g) = connected(1);
        assert!(
            m.abandon_pairing(g).is_none(),
            "a connected session is kept"
        );
        assert!(m.abandon_resume(g).is_none(), "a connected session is kept");
        assert_eq!(m.connected(), Some(&1));
        // A scan that lands as the first code's wait gives up: the paired client stays.
        let (mut m, g) = pairing(1);
        m.on_event(g, ClientEvent::PairSuccess);
        assert!(m.abandon_pairing(g).is_none());
        assert!(matches!(m.phase(), Phase::Connecting { client: Some(1) }));
    }

    #[test]
    fn a_dropped_connection_fails_pending_sends_and_recovers() {
        let (mut m, g) = connected(1);
        let effects = m.on_event(g, ClientEvent::Disconnected);
        assert_eq!(effects.fail_pending, Some(Interruption::ConnectionLost));
        assert!(effects.stop.is_none(), "the client reconnects by itself");
        assert_eq!(m.status(), SessionStatus::Disconnected);
        assert!(m.connected().is_none());
        assert!(m.on_event(g, ClientEvent::Connected).is_none());
        assert_eq!(m.connected(), Some(&1));
    }

    #[test]
    fn a_new_connection_without_a_reported_drop_fails_pending_sends() {
        let (mut m, g) = connected(1);
        let effects = m.on_event(g, ClientEvent::Connected);
        assert_eq!(effects.fail_pending, Some(Interruption::ConnectionLost));
        assert!(effects.stop.is_none());
        assert_eq!(m.connected(), Some(&1));
    }

    #[test]
    fn a_replaced_session_stays_down_until_reconnect() {
        let (mut m, g) = connected(1);
        let effects = m.on_event(g, ClientEvent::Replaced);
        assert_eq!(effects.fail_pending, Some(Interruption::Replaced));
        assert!(matches!(m.phase(), Phase::Replaced { client: 1 }));
        assert_eq!(m.status(), SessionStatus::Disconnected);
        // The old client does not come back by itself.
        assert!(m.on_event(g, ClientEvent::Connected).is_none());
        assert!(m.connected().is_none());
        let (next, effects) = m.begin_reconnect().unwrap();
        assert_eq!(effects.stop, Some(1));
        m.install(next, 2).unwrap();
        m.on_event(next, ClientEvent::Connected);
        assert_eq!(m.connected(), Some(&2));
    }

    #[test]
    fn reconnect_stops_the_old_client_and_ignores_its_events() {
        let (mut m, old) = connected(1);
        let (next, effects) = m.begin_reconnect().unwrap();
        assert_eq!(effects.stop, Some(1));
        assert_eq!(effects.fail_pending, Some(Interruption::Reconnecting));
        assert_eq!(effects.forget, Forget::Nothing);
        // The old client reports its own disconnect: ignored.
        assert!(m.on_event(old, ClientEvent::Disconnected).is_none());
        assert!(m.on_event(old, ClientEvent::LoggedOut).is_none());
        m.install(next, 2).unwrap();
        assert!(m.connected().is_none());
        m.on_event(next, ClientEvent::Connected);
        assert_eq!(m.connected(), Some(&2));
    }

    #[test]
    fn reconnect_while_connecting_retries_without_a_client() {
        let (mut m, _) = connected(1);
        let (first, _) = m.begin_reconnect().unwrap();
        // The first client was never built (its store failed to open): a second
        // reconnect still works.
        let (second, effects) = m.begin_reconnect().unwrap();
        assert!(second > first);
        assert!(effects.stop.is_none());
        m.install(second, 3).unwrap();
        m.on_event(second, ClientEvent::Connected);
        assert_eq!(m.connected(), Some(&3));
    }

    #[test]
    fn logout_returns_the_client_and_deletes_the_store() {
        let (mut m, g) = connected(1);
        let effects = m.logout().unwrap();
        assert_eq!(effects.stop, Some(1));
        assert_eq!(effects.forget, Forget::Always);
        assert_eq!(effects.fail_pending, Some(Interruption::LoggedOut));
        assert_eq!(m.status(), SessionStatus::LoggedOut);
        // The old client's own LoggedOut report changes nothing.
        assert!(m.on_event(g, ClientEvent::LoggedOut).is_none());
        assert_eq!(m.logout().unwrap_err(), Refusal::NoDevice);
        assert!(matches!(
            m.begin_pairing(Instant::now()),
            Ok(PairingStep::Start(_))
        ));
    }

    #[test]
    fn the_phone_unlinking_the_device_logs_out_from_every_device_phase() {
        for setup in [
            |m: &mut M, g: u64| {
                m.on_event(g, ClientEvent::Connected);
            },
            |m: &mut M, g: u64| {
                m.on_event(g, ClientEvent::Connected);
                m.on_event(g, ClientEvent::Disconnected);
            },
            |_: &mut M, _: u64| {},
        ] {
            let mut m = M::default();
            let g = resumed(&mut m, 1);
            setup(&mut m, g);
            let effects = m.on_event(g, ClientEvent::LoggedOut);
            assert_eq!(effects.stop, Some(1));
            assert_eq!(effects.forget, Forget::Always);
            assert_eq!(effects.fail_pending, Some(Interruption::LoggedOut));
            assert_eq!(m.status(), SessionStatus::LoggedOut);
            assert!(matches!(
                m.begin_pairing(Instant::now()),
                Ok(PairingStep::Start(_))
            ));
        }
    }

    #[test]
    fn a_refused_pairing_connection_never_deletes_a_paired_store() {
        let (mut m, g) = pairing(1);
        let effects = m.on_event(g, ClientEvent::LoggedOut);
        assert_eq!(effects.forget, Forget::IfUnpaired);
        assert_eq!(effects.stop, Some(1));
    }

    #[test]
    fn shutdown_stops_the_client_keeps_the_store_and_refuses_everything_after() {
        let (mut m, g) = connected(1);
        let effects = m.shutdown();
        assert_eq!(effects.stop, Some(1));
        assert_eq!(effects.forget, Forget::Nothing);
        assert_eq!(effects.fail_pending, Some(Interruption::ShuttingDown));
        assert_eq!(m.begin_reconnect().unwrap_err(), Refusal::ShuttingDown);
        assert_eq!(m.logout().unwrap_err(), Refusal::ShuttingDown);
        assert_eq!(m.begin_pairing(Instant::now()), Err(Refusal::ShuttingDown));
        assert!(m.on_event(g, ClientEvent::Connected).is_none());
        assert!(m.on_event(g + 1, ClientEvent::LoggedOut).is_none());
        assert!(matches!(m.phase(), Phase::Stopping));
    }

    #[test]
    fn events_that_do_not_fit_the_phase_change_nothing() {
        let (mut m, g) = connected(1);
        for event in [
            ClientEvent::Qr(code("x", Duration::from_secs(5))),
            ClientEvent::QrExhausted,
            ClientEvent::PairSuccess,
        ] {
            assert!(m.on_event(g, event).is_none());
            assert_eq!(m.connected(), Some(&1));
        }
        let mut m = M::default();
        assert!(m.on_event(0, ClientEvent::Disconnected).is_none());
        assert!(m.on_event(0, ClientEvent::LoggedOut).is_none());
        assert_eq!(m.status(), SessionStatus::LoggedOut);
    }

    #[test]
    fn a_stored_device_is_resumed_only_from_logged_out() {
        let mut m = M::default();
        let g = m.begin_resume().unwrap();
        assert_eq!(m.status(), SessionStatus::Disconnected);
        assert_eq!(m.begin_resume(), Err(Refusal::AlreadyLoggedIn));
        // The store held no device after all: back to logged out.
        let effects = m.abandon_resume(g);
        assert_eq!(effects.forget, Forget::IfUnpaired);
        assert!(effects.stop.is_none());
        assert_eq!(m.status(), SessionStatus::LoggedOut);
        let (mut m, _) = pairing(1);
        assert_eq!(m.begin_resume(), Err(Refusal::AlreadyLoggedIn));
        // An attempt not built yet gives way to a device found paired.
        let mut m = M::default();
        let Ok(PairingStep::Start(attempt)) = m.begin_pairing(Instant::now()) else {
            panic!("pairing starts");
        };
        let resumed = m.begin_resume().unwrap();
        assert!(resumed > attempt);
        assert_eq!(
            m.install(attempt, 1),
            Err(1),
            "the attempt's build is skipped"
        );
        m.install(resumed, 2).unwrap();
        assert_eq!(m.status(), SessionStatus::Disconnected);
        m.shutdown();
        assert_eq!(m.begin_resume(), Err(Refusal::ShuttingDown));
    }
}
