//! One client connection: the handshake, then either pairing (a new companion shows QR
//! codes until the phone scans one, or asks for a pairing code and waits for the phone's
//! user to type it) or a logged-in session answering the client's requests.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::extract::ws::WebSocket;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore::messages::MessageUtils;
use whatsapp_rust::wacore::pair_code::PairCodeUtils;
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::link_code::{self, PrimaryHello};
use crate::node::{SERVER, attr, bytes, child, iq_error, iq_result};
use crate::noise::{self, Secure};
use crate::phone::Companion;
use crate::{Account, Command, Device, LinkRequest, Login, PendingCode, Shared, show, unix_now};
use crate::{flood, inbox, iq};

/// How many QR refs a pairing connection gets (the first lasts 60 s, the others 20 s),
/// unless [`crate::Faults::qr_refs`] says otherwise.
const PAIRING_REFS: u32 = 6;

/// How long a connection told to end waits for the client to close its side.
const END_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the phone waits for `companion_finish` after `primary_hello`.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Counts a connection as handshaking until it logs in or ends.
pub(crate) struct Handshaking {
    shared: Arc<Shared>,
    done: bool,
}

impl Handshaking {
    fn start(shared: &Arc<Shared>) -> Self {
        let mut world = shared.world();
        world.handshaking += 1;
        world.max_handshaking = world.max_handshaking.max(world.handshaking);
        Handshaking {
            shared: shared.clone(),
            done: false,
        }
    }

    fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.shared.world().handshaking -= 1;
        }
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.finish();
    }
}

pub async fn serve(shared: Arc<Shared>, ws: WebSocket) {
    {
        let mut world = shared.world();
        if world.faults.refuse_connections > 0 {
            world.faults.refuse_connections -= 1;
            info!("refusing a connection (fault injected)");
            return;
        }
    }
    let handshaking = Handshaking::start(&shared);
    let accepted = match noise::accept(ws, &shared.server_key).await {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "handshake failed");
            return;
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let id = {
        let mut world = shared.world();
        world.next_conn += 1;
        let id = world.next_conn;
        world.conns.insert(id, tx);
        id
    };
    let conn = Conn {
        shared: shared.clone(),
        id,
        secure: accepted.secure,
        rx,
        client_static: accepted.client_static,
        ledger: flood::Ledger::default(),
        held_acks: Vec::new(),
        device_name: String::new(),
    };
    let pattern = format!("{:?}", accepted.pattern);
    let result = if accepted.payload.device_pairing_data.is_set() {
        shared.world().logins.push(Login {
            pattern,
            device: None,
        });
        let name = accepted
            .payload
            .device_pairing_data
            .device_props
            .as_deref()
            .and_then(|props| wa::DeviceProps::decode_from_slice(props).ok())
            .and_then(|props| props.os)
            .unwrap_or_default();
        conn.pair(name).await
    } else if let (Some(user), Some(device)) = (accepted.payload.username, accepted.payload.device)
    {
        conn.session(user.to_string(), device, pattern, handshaking)
            .await
    } else {
        Err(anyhow::anyhow!(
            "the client payload is neither a login nor a registration"
        ))
    };
    if let Err(e) = result {
        warn!(conn = id, error = %e, "connection ended with an error");
    }
    let mut world = shared.world();
    world.conns.remove(&id);
    world.sessions.remove(&id);
    world.pairing.retain(|_, c| *c != id);
    world.link_codes.remove(&id);
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    secure: Secure,
    rx: mpsc::UnboundedReceiver<Command>,
    client_static: [u8; 32],
    /// The acks the client owes for flood stanzas.
    ledger: flood::Ledger,
    /// Message acks held back by the `ack_batch` fault.
    held_acks: Vec<Node>,
    /// The `os` of the device properties a registering companion sent.
    device_name: String,
}

/// What one step of a connection's loop brought.
enum Event {
    Node(Node),
    Command(Command),
    Closed,
}

impl Conn {
    async fn next(&mut self) -> Result<Event> {
        let event = tokio::select! {
            node = self.secure.recv() => node?.map_or(Event::Closed, Event::Node),
            cmd = self.rx.recv() => cmd.map_or(Event::Closed, Event::Command),
        };
        if let Event::Node(node) = &event {
            debug!(conn = self.id, "<- {}", show(node));
        }
        Ok(event)
    }

    async fn send(&mut self, node: Node) -> Result<()> {
        debug!(conn = self.id, "-> {}", show(&node));
        self.secure.send(&node).await
    }

    /// Sends `stanza` (a `<stream:error>`), then closes the connection once the client
    /// has closed its side, or after [`END_GRACE`].
    async fn end(mut self, stanza: Node) -> Result<()> {
        info!(conn = self.id, "ending the connection: {}", show(&stanza));
        self.send(stanza).await?;
        let (id, owed) = (self.id, self.ledger.owed());
        let ignored = self.secure.close(END_GRACE).await;
        debug!(conn = id, ignored, owed, "connection ended");
        Ok(())
    }

    /// A new companion: hand out QR refs, wait for the phone to scan one (or for its
    /// user to type the pairing code the companion asked for), sign the companion in,
    /// and restart its stream (515) so that it logs in.
    async fn pair(mut self, name: String) -> Result<()> {
        self.device_name = name;
        let count = match self.shared.world().faults.qr_refs {
            0 => PAIRING_REFS,
            n => n,
        };
        let refs: Vec<String> = (0..count)
            .map(|_| format!("2@{}", STANDARD.encode(rand::random::<[u8; 18]>())))
            .collect();
        {
            let mut world = self.shared.world();
            for r in &refs {
                world.pairing.insert(r.clone(), self.id);
            }
        }
        let pair_device = NodeBuilder::new("iq")
            .attr("from", SERVER)
            .attr("type", "set")
            .attr("id", format!("pair-device-{}", self.id))
            .attr("xmlns", "md")
            .children([NodeBuilder::new("pair-device")
                .children(
                    refs.iter()
                        .map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build()),
                )
                .build()])
            .build();
        self.send(pair_device).await?;

        loop {
            match self.next().await? {
                Event::Closed => return Ok(()),
                Event::Command(Command::Drop) => return Ok(()),
                Event::Command(Command::End(stanza)) => return self.end(stanza).await,
                Event::Command(Command::Deliver { reply, .. }) => {
                    let _ = reply.send(Err(anyhow::anyhow!("the companion is still pairing")));
                }
                Event::Command(Command::Push { reply, .. }) => {
                    let _ = reply.send(Err(anyhow::anyhow!("the companion is still pairing")));
                }
                Event::Command(Command::Scan(qr, account, reply)) => {
                    let outcome = self.pair_with(&qr.companion(), &account).await;
                    if self.paired(outcome, reply).await? {
                        return Ok(());
                    }
                }
                Event::Command(Command::EnterCode(code, reply)) => {
                    let outcome = self.pair_by_code(code).await;
                    if self.paired(outcome, reply).await? {
                        return Ok(());
                    }
                }
                Event::Node(node) => self.answer_pairing(&node).await?,
            }
        }
    }

    /// Hands the outcome of a pairing to whoever asked for it. Once paired, restarts the
    /// stream (515): the client reconnects and logs in as the new device. `true` then.
    async fn paired(
        &mut self,
        outcome: Result<Device>,
        reply: oneshot::Sender<Result<Device>>,
    ) -> Result<bool> {
        let failed = outcome.is_err();
        let _ = reply.send(outcome);
        if failed {
            return Ok(false);
        }
        self.send(NodeBuilder::new("stream:error").attr("code", "515").build())
            .await?;
        Ok(true)
    }

    /// The companion's next stanza while the phone links it. Orders for the connection
    /// are refused meanwhile, and the companion going away is an error.
    async fn next_while_pairing(&mut self) -> Result<Node> {
        loop {
            match self.next().await? {
                Event::Node(node) => return Ok(node),
                Event::Closed | Event::Command(Command::Drop | Command::End(_)) => {
                    bail!("the companion went away during pairing")
                }
                Event::Command(Command::Scan(_, _, reply) | Command::EnterCode(_, reply)) => {
                    let _ = reply.send(Err(anyhow!("pairing is already under way")));
                }
                Event::Command(Command::Deliver { reply, .. }) => {
                    let _ = reply.send(Err(anyhow!("the companion is still pairing")));
                }
                Event::Command(Command::Push { reply, .. }) => {
                    let _ = reply.send(Err(anyhow!("the companion is still pairing")));
                }
            }
        }
    }

    /// Requests of a companion that is not linked yet: a request for a pairing code, and
    /// what any connection may ask.
    async fn answer_pairing(&mut self, node: &Node) -> Result<()> {
        if !is_request(node) {
            return Ok(());
        }
        match link_code::stage(node).as_deref() {
            Some("companion_hello") => {
                if !self.answered_with_fault(node).await? {
                    self.companion_hello(node).await?;
                }
                Ok(())
            }
            Some(stage) => {
                let problem = format!("a {stage} that the phone does not wait for");
                warn!(conn = self.id, "{problem}");
                self.shared.world().problems.push(problem);
                self.send(iq_error(node, 400, "bad-request")).await
            }
            None => self.answer_basic(node).await,
        }
    }

    /// `companion_hello`: the companion asks for a pairing code for a phone number. Only
    /// the number of one of the fake's phones gets one (a pairing ref); anything else
    /// is a `bad-request`, and a malformed request is also a problem.
    async fn companion_hello(&mut self, node: &Node) -> Result<()> {
        let is_phone = |user: &str| self.shared.world().account(user).is_some();
        let hello = match link_code::companion_hello(node, is_phone, &self.client_static) {
            Ok(hello) => hello,
            Err(refusal) => {
                info!(conn = self.id, reason = %refusal.reason, "pairing code refused");
                if refusal.malformed {
                    let problem = format!("companion_hello: {}", refusal.reason);
                    self.shared.world().problems.push(problem);
                }
                return self.send(iq_error(node, refusal.code, refusal.text)).await;
            }
        };
        let reference = format!("2@{}", STANDARD.encode(rand::random::<[u8; 18]>())).into_bytes();
        info!(conn = self.id, platform = %hello.platform, phone = %hello.phone, "a companion asked for a pairing code");
        let request = LinkRequest {
            pending: PendingCode {
                phone: hello.phone,
                platform: hello.platform,
                platform_id: hello.platform_id,
                push_notification: hello.push_notification,
                requested_at: unix_now(),
                attempts: 0,
            },
            wrapped: hello.wrapped,
            reference: reference.clone(),
            since: std::time::Instant::now(),
        };
        // A new request replaces the connection's earlier one.
        self.shared.world().link_codes.insert(self.id, request);
        self.send(link_code::companion_hello_result(node, &reference))
            .await
    }

    /// The phone's user typed `code`: send the companion `primary_hello`, open the key
    /// bundle of its `companion_finish`, then sign it in with the ADV secret agreed.
    async fn pair_by_code(&mut self, code: String) -> Result<Device> {
        let (request, attempt) = {
            let mut world = self.shared.world();
            let request = world
                .link_codes
                .get_mut(&self.id)
                .context("this companion asked for no pairing code")?;
            ensure!(
                request.since.elapsed() <= PairCodeUtils::code_validity(),
                "the companion's pairing code has expired"
            );
            let tries = PairCodeUtils::max_primary_hello_attempts();
            ensure!(
                request.pending.attempts < tries,
                "the companion takes a code only {tries} times"
            );
            request.pending.attempts += 1;
            (request.clone(), request.pending.attempts)
        };
        let wrapped = request.wrapped;
        let hello = tokio::task::spawn_blocking(move || PrimaryHello::new(&code, &wrapped))
            .await
            .context("unwrapping the companion's key")??;
        // The phone the companion asked the code for links it.
        let account = self.shared.account(&request.pending.phone)?;
        let phone = &account.phone;
        let id = format!("link-code-{}-{attempt}", self.id);
        self.send(link_code::primary_hello(
            &id,
            &request.reference,
            &hello,
            phone.identity_public(),
        ))
        .await?;

        let deadline = tokio::time::Instant::now() + FINISH_WAIT;
        let node = loop {
            let node = tokio::time::timeout_at(deadline, self.next_while_pairing())
                .await
                .map_err(|_| {
                    anyhow!("the companion did not answer primary_hello within {FINISH_WAIT:?}")
                })??;
            if is_request(&node) && link_code::stage(&node).as_deref() == Some("companion_finish") {
                break node;
            }
            self.answer_pairing(&node).await?;
        };
        let checked = link_code::companion_finish(&node).and_then(|finish| {
            ensure!(
                finish.phone == phone.user,
                "companion_finish is for {}, not the number it asked a code for",
                finish.phone
            );
            ensure!(
                finish.reference == request.reference,
                "companion_finish names another pairing ref"
            );
            Ok(finish)
        });
        let finish = match checked {
            Ok(finish) => finish,
            Err(e) => {
                let problem = format!("companion_finish: {e:#}");
                warn!(conn = self.id, "{problem}");
                self.shared.world().problems.push(problem);
                self.send(iq_error(&node, 400, "bad-request")).await?;
                return Err(e.context("the companion's companion_finish"));
            }
        };
        // The server takes the bundle; only the phone can open it.
        self.send(iq_result(&node, vec![])).await?;
        let adv_secret =
            hello.open_key_bundle(phone.identity(), &finish.identity_key, &finish.key_bundle)?;
        let companion = Companion {
            noise_key: self.client_static,
            identity_key: finish.identity_key,
            adv_secret,
        };
        self.pair_with(&companion, &account).await
    }

    /// Links `companion` as a new device of `account`: sends `pair-success` and waits
    /// for the companion's countersignature. The device id is reserved meanwhile, and
    /// the device is recorded in the same step as the id is released.
    async fn pair_with(&mut self, companion: &Companion, account: &Account) -> Result<Device> {
        if companion.noise_key != self.client_static {
            bail!("the companion's noise key is not this connection's");
        }
        let phone = account.phone.user.clone();
        let device_id = self.shared.world().reserve_device_id(&phone);
        let outcome = self.sign_in(companion, account, device_id).await;
        let mut world = self.shared.world();
        world.reserved_ids.remove(&(phone, device_id));
        let device = outcome?;
        world.pairing.retain(|_, c| *c != self.id);
        world.link_codes.remove(&self.id);
        world.devices.push(device.clone());
        info!(device = %device.jid, "companion paired");
        Ok(device)
    }

    /// The exchange of [`Self::pair_with`] for the device `device_id`.
    async fn sign_in(
        &mut self,
        companion: &Companion,
        account: &Account,
        device_id: u32,
    ) -> Result<Device> {
        let phone = &account.phone;
        let request_id = format!("pair-success-{}", self.id);
        let success = pair_success(phone, companion, device_id, &request_id)?;
        self.send(success).await?;

        loop {
            let node = self
                .next_while_pairing()
                .await
                .context("before countersigning")?;
            if node.tag != "iq" || attr(&node, "id").as_deref() != Some(&request_id) {
                self.answer_pairing(&node).await?;
                continue;
            }
            if attr(&node, "type").as_deref() != Some("result") {
                bail!("the companion refused pair-success: {}", show(&node));
            }
            let signed = node
                .get_optional_child_by_tag(&["pair-device-sign", "device-identity"])
                .and_then(bytes)
                .context("no pair-device-sign in the companion's answer")?;
            phone.check_countersigned(companion, signed)?;
            return Ok(Device {
                id: device_id,
                phone: phone.user.clone(),
                jid: format!("{}:{device_id}@s.whatsapp.net", phone.user),
                noise_key: self.client_static,
                identity_key: companion.identity_key,
                removed: false,
                name: self.device_name.clone(),
            });
        }
    }

    /// A returning companion: log it in if its phone still links it.
    async fn session(
        mut self,
        user: String,
        device_id: u32,
        pattern: String,
        mut handshaking: Handshaking,
    ) -> Result<()> {
        let known = {
            let world = self.shared.world();
            world
                .devices
                .iter()
                .find(|d| {
                    d.phone == user
                        && d.id == device_id
                        && !d.removed
                        && d.noise_key == self.client_static
                })
                .cloned()
                .and_then(|d| Some((world.account(&user)?.clone(), d)))
        };
        let Some((account, device)) = known else {
            info!(%user, device_id, "login of an unknown or removed device refused");
            self.send(NodeBuilder::new("failure").attr("reason", "401").build())
                .await?;
            return Ok(());
        };
        {
            let mut world = self.shared.world();
            world.logins.push(Login {
                pattern,
                device: Some(device.jid.clone()),
            });
            world.session_conns.insert(device.phone.clone(), self.id);
            crate::replace_older_logins(&mut world, &device.jid, self.id);
            world.sessions.insert(self.id, device.jid.clone());
        }
        info!(device = %device.jid, "companion logged in");
        let delay = self.shared.world().faults.login_delay_ms;
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let lid = format!("{}:{}@lid", account.phone.lid, device.id);
        self.send(
            NodeBuilder::new("success")
                .attr("t", unix_now().to_string())
                .attr("lid", lid)
                .build(),
        )
        .await?;
        handshaking.finish();

        loop {
            match self.next().await? {
                Event::Closed => return Ok(()),
                Event::Command(Command::Drop) => {
                    info!(device = %device.jid, "dropping the connection (fault injected)");
                    self.secure.abort().await;
                    return Ok(());
                }
                Event::Command(Command::End(stanza)) => return self.end(stanza).await,
                Event::Command(Command::Scan(_, _, reply) | Command::EnterCode(_, reply)) => {
                    let _ = reply.send(Err(anyhow::anyhow!("this device is already paired")));
                }
                Event::Command(Command::Push { node, owed, reply }) => {
                    if let Some(owed) = owed {
                        self.ledger.expect(owed);
                    }
                    let _ = reply.send(self.send(node).await);
                }
                Event::Command(Command::Deliver {
                    from,
                    message,
                    reply,
                }) => {
                    let outcome = self.deliver(&device, &from, &message).await;
                    let _ = reply.send(outcome);
                }
                Event::Node(node) => {
                    if self.answer_session(&node, &device).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Bundles for every asked device the fake knows; 406 for the others.
    async fn prekey_bundles(shared: Arc<Shared>, node: &Node) -> Node {
        let jids: Vec<String> = child(node, "key")
            .map(|k| {
                k.get_children_by_tag("user")
                    .filter_map(|u| attr(u, "jid"))
                    .collect()
            })
            .unwrap_or_default();
        let mut users = Vec::new();
        for jid in jids {
            users.push(match shared.keys_of(&jid) {
                Some((_, keys)) => keys.lock().await.bundle(&jid),
                None => NodeBuilder::new("user")
                    .attr("jid", jid)
                    .children([NodeBuilder::new("error").attr("code", "406").build()])
                    .build(),
            });
        }
        iq_result(node, vec![NodeBuilder::new("list").children(users).build()])
    }

    /// A message from the client: the recipients decrypt it; then it is acknowledged
    /// with the server time, or refused with an error if anything did not check out.
    async fn receive_message(&mut self, node: &Node, device: &Device) -> Result<()> {
        let id = attr(node, "id").unwrap_or_default();
        let chat = attr(node, "to").unwrap_or_default();
        let outcome = inbox::receive(&self.shared, node, &device.jid).await;
        let (delay, withhold, flood, batch) = {
            let mut world = self.shared.world();
            let withhold = world.faults.withhold_acks > 0;
            if withhold {
                world.faults.withhold_acks -= 1;
            }
            (
                world.faults.ack_delay_ms,
                withhold,
                world.faults.flood_per_message,
                world.faults.ack_batch as usize,
            )
        };
        if flood > 0 {
            self.flood(flood, &id, &chat, &device.phone).await?;
        }
        let t = unix_now();
        let mut ack = NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", id.clone())
            .attr("from", chat)
            .attr("t", t.to_string());
        match outcome {
            Ok(mut received) => {
                info!(%id, copies = received.len(), "message decrypted");
                for r in &mut received {
                    r.ack_t = (!withhold).then_some(t);
                }
                self.shared.world().received.extend(received);
            }
            Err(e) => {
                warn!(%id, error = %format!("{e:#}"), "message refused");
                self.shared
                    .world()
                    .problems
                    .push(format!("message {id}: {e:#}"));
                ack = ack.attr("error", "479");
            }
        }
        if withhold {
            info!(%id, "withholding the acknowledgement (fault injected)");
            return Ok(());
        }
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        if batch > 1 {
            self.held_acks.push(ack.build());
            if self.held_acks.len() < batch {
                return Ok(());
            }
            info!(acks = self.held_acks.len(), "sending a burst of held acks");
            for ack in std::mem::take(&mut self.held_acks) {
                self.send(ack).await?;
            }
            return Ok(());
        }
        self.send(ack.build()).await
    }

    /// The flood fault: `count` receipts for the message `id` to `chat` and
    /// notifications from its recipient, before the message's ack.
    async fn flood(&mut self, count: u32, id: &str, chat: &str, phone: &str) -> Result<()> {
        let source = self.flood_source(chat, phone);
        let stanzas = flood::stanzas(count, id, &source, unix_now());
        for (_, owed) in &stanzas {
            self.ledger.expect(owed.clone());
        }
        info!(%id, count, "flooding the client (fault injected)");
        self.shared.world().flood.sent += u64::from(count);
        for (node, _) in stanzas {
            self.send(node).await?;
        }
        Ok(())
    }

    /// Who "answers" a message to `chat` from a companion of the phone `phone`: in a
    /// group, its first member other than that phone (or the phone when there is
    /// none); else the addressee.
    fn flood_source(&self, chat: &str, phone: &str) -> flood::Source {
        let Some(gid) = chat.strip_suffix("@g.us") else {
            return flood::Source {
                from: chat.to_owned(),
                participant: None,
                notifier: chat.to_owned(),
            };
        };
        let world = self.shared.world();
        let member = world
            .groups
            .get(gid)
            .and_then(|g| g.members.iter().find(|m| *m != phone).cloned())
            .unwrap_or_else(|| phone.to_owned());
        let member = format!("{member}@s.whatsapp.net");
        flood::Source {
            from: chat.to_owned(),
            participant: Some(member.clone()),
            notifier: member,
        }
    }

    /// A `<call>` from the client: only a `<reject>` of a call the fake offered,
    /// sent to its caller and naming it as the call's creator, is taken.
    fn take_call(&mut self, node: &Node) {
        let reject = child(node, "reject");
        let call_id = reject.and_then(|r| attr(r, "call-id")).unwrap_or_default();
        let mut world = self.shared.world();
        let problem = match (reject, world.offered_calls.get(&call_id)) {
            (None, _) => Some(format!(
                "a call stanza other than a reject: {}",
                crate::show(node)
            )),
            (Some(_), None) => Some(format!(
                "a reject of a call never offered: {}",
                crate::show(node)
            )),
            (Some(r), Some(caller)) => {
                // The caller's JID without a device part.
                let to = attr(node, "to").and_then(|j| {
                    let (user, server) = j.split_once('@')?;
                    Some(format!("{}@{server}", user.split([':', '.']).next()?))
                });
                (to.as_deref() != Some(caller.as_str())
                    || attr(r, "call-creator").as_deref() != Some(caller.as_str()))
                .then(|| {
                    format!(
                        "a reject not addressed to the caller {caller}: {}",
                        crate::show(node)
                    )
                })
            }
        };
        match problem {
            Some(problem) => {
                warn!("{problem}");
                world.problems.push(problem);
            }
            None => world.rejected_calls.push(call_id),
        }
    }

    /// An `<ack>` from the client: those of flood stanzas must match what was sent.
    fn take_ack(&mut self, node: &Node) {
        match self.ledger.check(node) {
            flood::Verdict::NotOurs => {}
            flood::Verdict::Expected => self.shared.world().flood.acked += 1,
            flood::Verdict::Problem(problem) => {
                warn!("{problem}");
                self.shared.world().problems.push(problem);
            }
        }
    }

    /// Sends the companion a message from the contact `from`, end-to-end encrypted.
    /// It stays queued for the device until the device acknowledges it.
    async fn deliver(
        &mut self,
        device: &Device,
        from: &str,
        message: &wa::Message,
    ) -> Result<String> {
        let (bundle, keys) = {
            let world = self.shared.world();
            let bundle = world
                .bundles
                .get(&device.jid)
                .cloned()
                .context("the companion has not uploaded its prekeys")?;
            let keys = world
                .contacts
                .get(from)
                .context("unknown contact")?
                .keys
                .clone();
            (bundle, keys)
        };
        let padded = MessageUtils::pad_message_v2(message.encode_to_vec());
        let mut keys = keys.lock().await;
        // A new session takes a one-time prekey of its own.
        let bundle = match keys.needs_session(&device.jid).await? {
            true => self
                .shared
                .world()
                .bundles
                .get_mut(&device.jid)
                .map_or(bundle, |b| b.take()),
            false => bundle,
        };
        let (kind, data) = keys.encrypt_for(&device.jid, &bundle, &padded).await?;
        drop(keys);
        let id = format!("FAKE{:016X}", rand::random::<u64>());
        let node = NodeBuilder::new("message")
            .attr("from", format!("{from}@s.whatsapp.net"))
            .attr("id", id.clone())
            .attr("type", "text")
            .attr("t", unix_now().to_string())
            .attr("notify", "Fake Contact")
            .children([NodeBuilder::new("enc")
                .attr("v", "2")
                .attr("type", kind)
                .bytes(data)
                .build()])
            .build();
        self.shared
            .world()
            .unacked
            .entry(device.jid.clone())
            .or_default()
            .push((id.clone(), node.clone()));
        self.send(node).await?;
        let chat = format!("{from}@s.whatsapp.net");
        crate::actions::note_delivered(&self.shared, &chat, &chat, &id, message);
        info!(%id, %from, "delivered a message to the companion");
        Ok(id)
    }

    /// Requests any connection may make. Unknown IQs get an immediate error.
    async fn answer_basic(&mut self, node: &Node) -> Result<()> {
        if !is_request(node) || self.answered_with_fault(node).await? {
            return Ok(());
        }
        self.send(basic_reply(node)).await
    }

    /// Answers `node` with an error if a fault is injected for its `xmlns`.
    async fn answered_with_fault(&mut self, node: &Node) -> Result<bool> {
        let xmlns = attr(node, "xmlns").unwrap_or_default();
        let fault = self.shared.world().faults.iq_errors.remove(&xmlns);
        let Some(code) = fault else {
            return Ok(false);
        };
        info!(%xmlns, code, "answering with an error (fault injected)");
        self.send(iq_error(node, code, "fault injected")).await?;
        Ok(true)
    }

    /// A logged-in session's requests. `true` when the session is over.
    async fn answer_session(&mut self, node: &Node, device: &Device) -> Result<bool> {
        if node.tag == "message" {
            if attr(node, "category").as_deref() == Some("peer") {
                let replies =
                    crate::app_state::peer_message(&self.shared, node, device, self.id).await;
                for reply in replies {
                    self.send(reply).await?;
                }
                return Ok(false);
            }
            self.receive_message(node, device).await?;
            return Ok(false);
        }
        // A received message is acknowledged by a delivery receipt, or by a bare
        // `<ack class="message">`: WhatsApp then drops it from the offline queue.
        let message_ack = node.tag == "ack" && attr(node, "class").as_deref() == Some("message");
        let delivery_receipt = node.tag == "receipt"
            && matches!(attr(node, "type").as_deref(), None | Some("inactive"));
        if message_ack || delivery_receipt {
            let mut ids: Vec<String> = attr(node, "id").into_iter().collect();
            if let Some(list) = child(node, "list") {
                ids.extend(
                    list.get_children_by_tag("item")
                        .filter_map(|i| attr(i, "id")),
                );
            }
            if let Some(queue) = self.shared.world().unacked.get_mut(&device.jid) {
                queue.retain(|(queued, _)| !ids.contains(queued));
            }
            return Ok(false);
        }
        if node.tag == "receipt" {
            if let Some(ack) = crate::actions::receipt(&self.shared, node, &device.jid) {
                self.send(ack).await?;
            }
            return Ok(false);
        }
        if node.tag == "ack" {
            self.take_ack(node);
            return Ok(false);
        }
        if node.tag == "presence" {
            if let Some(name) = attr(node, "name") {
                self.shared.world().push_names.push(name);
            }
            let kind = attr(node, "type").unwrap_or_else(|| "available".to_owned());
            if !matches!(kind.as_str(), "available" | "unavailable") {
                let problem = format!("a presence of unknown type: {}", crate::show(node));
                self.shared.world().problems.push(problem);
            }
            self.shared.world().presences.push(kind);
            return Ok(false);
        }
        if node.tag == "call" {
            self.take_call(node);
            return Ok(false);
        }
        if node.tag == "chatstate" {
            let to = attr(node, "to").unwrap_or_default();
            let state = node
                .children()
                .and_then(|c| c.first())
                .map(|c| c.tag.to_string())
                .unwrap_or_default();
            if to.is_empty() || !matches!(state.as_str(), "composing" | "paused") {
                let problem = format!("a malformed chat state: {}", crate::show(node));
                self.shared.world().problems.push(problem);
            }
            self.shared.world().chatstates.push((to, state));
            return Ok(false);
        }
        if !is_request(node) || self.answered_with_fault(node).await? {
            return Ok(false);
        }
        let xmlns = attr(node, "xmlns").unwrap_or_default();
        match xmlns.as_str() {
            "passive" => {
                self.send(iq_result(node, vec![])).await?;
                // What the device has not acknowledged comes again, then the count.
                let queued = self
                    .shared
                    .world()
                    .unacked
                    .get(&device.jid)
                    .cloned()
                    .unwrap_or_default();
                for (id, stanza) in &queued {
                    info!(%id, device = %device.jid, "delivering an unacknowledged message again");
                    let mut again = stanza.clone();
                    again.attrs.insert("offline", "1");
                    self.send(again).await?;
                }
                // The phone's app-state key, if the device has not acknowledged it.
                let share = crate::app_state::key_share_for(&self.shared, device, self.id).await;
                if let Some(share) = share {
                    self.send(share).await?;
                }
                // History notices the device has not acknowledged.
                for notice in crate::history::notices_for(&self.shared, device, self.id).await {
                    self.send(notice).await?;
                }
                self.send(
                    NodeBuilder::new("ib")
                        .children([NodeBuilder::new("offline")
                            .attr("count", queued.len().to_string())
                            .build()])
                        .build(),
                )
                .await?;
            }
            "w:sync:app:state" => {
                let reply = crate::app_state::answer(&self.shared, node, device);
                self.send(reply).await?;
            }
            "md" if child(node, "remove-companion-device").is_some() => {
                if let Some(d) = self
                    .shared
                    .world()
                    .devices
                    .iter_mut()
                    .find(|d| d.jid == device.jid)
                {
                    d.removed = true;
                }
                info!(device = %device.jid, "companion removed itself (logout)");
                self.send(iq_result(node, vec![])).await?;
                return Ok(true);
            }
            "encrypt" if child(node, "registration").is_some() => {
                match crate::signal::CompanionBundle::from_upload(node) {
                    Ok(bundle) => {
                        self.shared
                            .world()
                            .bundles
                            .insert(device.jid.clone(), bundle);
                        self.send(iq_result(node, vec![])).await?;
                        // The phone shares its app-state key with a new companion.
                        let share =
                            crate::app_state::key_share_for(&self.shared, device, self.id).await;
                        if let Some(share) = share {
                            self.send(share).await?;
                        }
                        // History pushed before the device could be written to.
                        let notices =
                            crate::history::notices_for(&self.shared, device, self.id).await;
                        for notice in notices {
                            self.send(notice).await?;
                        }
                    }
                    Err(e) => {
                        let problem = format!("prekey upload from {}: {e:#}", device.jid);
                        warn!("{problem}");
                        self.shared.world().problems.push(problem);
                        self.send(iq_error(node, 400, "bad-request")).await?;
                    }
                }
            }
            "encrypt" if child(node, "key").is_some() => {
                let reply = Self::prekey_bundles(self.shared.clone(), node).await;
                self.send(reply).await?;
            }
            _ => {
                let reply =
                    iq::answer(&self.shared, node, &xmlns).unwrap_or_else(|| basic_reply(node));
                self.send(reply).await?;
            }
        }
        Ok(false)
    }
}

/// The `pair-success` with which `phone` links `companion` as its device `device_id`:
/// the ADV identity signed with the phone's identity key, and the device's JIDs with
/// the phone's number and LID.
fn pair_success(
    phone: &crate::Phone,
    companion: &Companion,
    device_id: u32,
    request_id: &str,
) -> Result<Node> {
    let identity = phone.sign_companion(companion, device_id, unix_now())?;
    Ok(NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("id", request_id.to_owned())
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(identity).build(),
                NodeBuilder::new("device")
                    .attr("jid", format!("{}:{device_id}@s.whatsapp.net", phone.user))
                    .attr("lid", format!("{}:{device_id}@lid", phone.lid))
                    .build(),
                NodeBuilder::new("platform").attr("name", "android").build(),
                NodeBuilder::new("biz")
                    .attr("name", phone.push_name.clone())
                    .build(),
            ])
            .build()])
        .build())
}

/// An IQ the client asks (`get` or `set`), not its answer to one of ours.
fn is_request(node: &Node) -> bool {
    node.tag == "iq" && matches!(attr(node, "type").as_deref(), Some("get" | "set"))
}

/// Pings, and a 501 for every request the fake does not model.
fn basic_reply(node: &Node) -> Node {
    match attr(node, "xmlns").as_deref() {
        Some("w:p") => iq_result(node, vec![]),
        other => {
            debug!(xmlns = ?other, "not modelled: 501");
            iq_error(node, 501, "feature-not-implemented")
        }
    }
}
