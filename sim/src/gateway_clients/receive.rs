//! The clients' receiving half and the checks on what they receive: each
//! reads what `output_pending` shows (sometimes only part of it, cutting a
//! frame), decodes it with the real SoupBinTCP and OUCH decoders, checks
//! Login Accepted's number against the protocol's rule, numbers Sequenced
//! Data from it without a gap, keeps every message by number and compares
//! one received again with the first receipt, and closes a connection when
//! the gateway does, checking that the client earned the close. It also
//! compares everything the clients saw with a gateway rebuilt from the
//! journal.

use super::{
    hex, AcceptedSeen, ClientCounts, GatewayClients, SimClient, CLIENT_DECODER, READS_PER_STEP_MAX,
};
use crate::sim_gateway::SESSION_NAME;
use lockstep_transport::gateway_core::{CloseReason, GatewayCore};
use lockstep_transport::ouch::Outbound;
use lockstep_transport::soupbintcp::{LoginRejectReason, Packet};

impl SimClient {
    /// Keeps message `number`, or checks it against the first receipt.
    fn record(
        &mut self,
        number: u64,
        payload: &[u8],
        counts: &mut ClientCounts,
    ) -> Result<bool, String> {
        assert!(number >= 1, "SoupBinTCP numbers messages from 1");
        let index = (number - 1) as usize;
        counts.messages_received += 1;
        if let Some(Some(first)) = self.seen.get(index) {
            counts.messages_received_again += 1;
            if **first != *payload {
                return Err(format!(
                    "session {} message {number}: received again, it differs from the first time: first {}, now {}",
                    self.session,
                    hex(first),
                    hex(payload)
                ));
            }
            return Ok(false);
        }
        if index >= self.seen.len() {
            self.seen.resize(index + 1, None);
        }
        self.seen[index] = Some(payload.into());
        Ok(true)
    }
}

impl GatewayClients {
    /// Every message any client has seen is message `n` of its session in
    /// `gateway` (a gateway rebuilt from the journal). Returns how many
    /// were compared.
    pub fn check_seen_in(&self, gateway: &GatewayCore, when: &str) -> Result<u64, String> {
        let mut compared = 0;
        for client in &self.clients {
            for (index, seen) in client.seen.iter().enumerate() {
                let Some(seen) = seen else { continue };
                let number = index as u64 + 1;
                let held = gateway.session_message(client.session, number);
                if held != Some(&**seen) {
                    return Err(format!(
                        "session {} message {number}: a client saw {} but the gateway rebuilt from the journal {when} has {}",
                        client.session,
                        hex(seen),
                        held.map_or_else(|| format!("only {} messages", gateway.session_messages(client.session)), hex)
                    ));
                }
                compared += 1;
            }
        }
        Ok(compared)
    }

    /// Reads what the gateway sent, checks it, and closes what the gateway
    /// closes: the clients' half of a step after events were published.
    pub fn receive(
        &mut self,
        gateway: &mut GatewayCore,
        step: u64,
        now_ns: u64,
        accepted: &mut Vec<AcceptedSeen>,
    ) -> Result<(), String> {
        for index in 0..self.clients.len() {
            let client = &mut self.clients[index];
            if let Some(old) = client.half_open {
                if let Some(reason) = gateway.close_due(old) {
                    // Nobody reads a half-open connection: only the
                    // gateway's timeouts may close it.
                    if !matches!(reason, CloseReason::IdleTimeout | CloseReason::SlowConsumer) {
                        return Err(format!(
                            "session {}: the gateway closed a half-open connection for '{reason}'",
                            client.session
                        ));
                    }
                    gateway.on_disconnected(old, None);
                    client.half_open = None;
                }
            }
            let Some(id) = client.connection else {
                continue;
            };
            if step >= client.deaf_until_step {
                for _ in 0..READS_PER_STEP_MAX {
                    let pending = gateway.output_pending(id);
                    if pending.is_empty() {
                        break;
                    }
                    let take = if pending.len() > 1 && client.rng.below(8) == 0 {
                        client.rng.range_usize(1, pending.len() - 1)
                    } else {
                        pending.len()
                    };
                    client.inbound.extend_from_slice(&pending[..take]);
                    gateway.output_consumed(id, take);
                    gateway.note_sent(id, now_ns);
                }
                self.decode(index, gateway, accepted)?;
            }
            let client = &mut self.clients[index];
            if let Some(reason) = gateway.close_due(id) {
                // Timeouts and a full output buffer may close any client;
                // the other reasons only a client that asked for them.
                let expected = match reason {
                    // protocol.md: closed when no whole packet has arrived
                    // for the idle timeout; a client whose frames the
                    // gateway took (even if it has not read them yet,
                    // while the sequencer holds it back) was not silent.
                    CloseReason::IdleTimeout => {
                        now_ns.saturating_sub(client.last_drained_ns) >= self.idle_timeout_ns
                    }
                    CloseReason::LoginTimeout => true,
                    // protocol.md: a client that stops reading is closed once
                    // a heartbeat interval passes without a byte taken; one
                    // that reads every step is not, however big a burst. The close
                    // is decided at the start of a step, so the last step of
                    // a deaf spell still counts.
                    CloseReason::SlowConsumer => step <= client.deaf_until_step,
                    CloseReason::Malformed(_) | CloseReason::Protocol(_) => client.sent_garbage,
                    CloseReason::Logout => client.sent_logout,
                    CloseReason::LoginRejected(_) => {
                        client.expect_reject || client.session_taken_at_login == Some(true)
                    }
                    _ => false,
                };
                if !expected {
                    return Err(format!(
                        "session {}: the gateway closed the connection for '{reason}', which the client did nothing to earn",
                        client.session
                    ));
                }
                gateway.on_disconnected(id, None);
                client.go_offline(step);
                continue;
            }
            // Packets ahead of the garbage or the logout may still be
            // waiting for the sequencer, so the wait counts from the last
            // time the gateway's input buffer for the connection drained
            // further, or was held back by the sequencer.
            let room = gateway.input_room(id);
            if client.doomed_since_ns.is_some()
                && (client.doomed_room != Some(room) || gateway.is_held_back(id))
            {
                client.doomed_room = Some(room);
                client.doomed_since_ns = Some(now_ns);
            }
            if let Some(since_ns) = client.doomed_since_ns {
                if now_ns.saturating_sub(since_ns) > 2 * (self.idle_timeout_ns + self.heartbeat_ns)
                {
                    return Err(format!(
                        "session {}: the gateway kept the connection open {} ns after it took a malformed frame or a Logout Request and stopped draining the connection's input",
                        client.session,
                        now_ns - since_ns
                    ));
                }
            }
        }
        Ok(())
    }

    /// Decodes every whole frame a client has read.
    fn decode(
        &mut self,
        index: usize,
        gateway: &GatewayCore,
        accepted: &mut Vec<AcceptedSeen>,
    ) -> Result<(), String> {
        let client = &mut self.clients[index];
        let session = client.session;
        let mut consumed = 0;
        // Taken out so that frames can borrow it while the client changes.
        let inbound = std::mem::take(&mut client.inbound);
        // Each pass consumes one frame or stops: bounded by the bytes read.
        while consumed < inbound.len() {
            let (packet, len) = match CLIENT_DECODER.decode(&inbound[consumed..]) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(error) => {
                    return Err(format!(
                        "session {session}: the gateway sent a frame the decoder refuses: {error}"
                    ))
                }
            };
            consumed += len;
            match packet {
                Packet::LoginAccepted {
                    session: name,
                    sequence_number,
                } => {
                    if client.logged_in || client.expect_reject {
                        return Err(format!("session {session}: an unexpected Login Accepted"));
                    }
                    if client.session_taken_at_login == Some(true) {
                        return Err(format!(
                            "session {session}: a login was accepted while an earlier connection of the session was still open"
                        ));
                    }
                    let log_len = client.login_log_len.ok_or_else(|| {
                        format!("session {session}: Login Accepted before the gateway was seen to accept the login")
                    })?;
                    let requested = client.requested;
                    let expected = if requested == 0 || requested > log_len + 1 {
                        log_len + 1
                    } else {
                        requested
                    };
                    if sequence_number != expected || name.trimmed() != SESSION_NAME.as_bytes() {
                        return Err(format!(
                            "session {session}: Login Accepted names session {name:?} and next message {sequence_number}; asked for {requested} with {log_len} messages logged, it must be {SESSION_NAME} and {expected}"
                        ));
                    }
                    client.logged_in = true;
                    client.next_number = sequence_number;
                    self.counts.logins += 1;
                }
                Packet::LoginRejected(reason) => {
                    let taken = client.session_taken_at_login == Some(true)
                        && reason == LoginRejectReason::SessionNotAvailable;
                    if !client.expect_reject && !taken {
                        return Err(format!(
                            "session {session}: Login Rejected '{}' for a good login",
                            char::from(reason.as_byte())
                        ));
                    }
                }
                Packet::SequencedData(payload) => {
                    if !client.logged_in {
                        return Err(format!(
                            "session {session}: Sequenced Data before Login Accepted"
                        ));
                    }
                    let number = client.next_number;
                    if number == 0 || number > gateway.session_messages(session) {
                        return Err(format!(
                            "session {session} message {number}: numbered past the session's log of {} messages",
                            gateway.session_messages(session)
                        ));
                    }
                    client.next_number += 1;
                    let first_time = client.record(number, payload, &mut self.counts)?;
                    let message = Outbound::decode(payload).map_err(|error| {
                        format!("session {session} message {number}: OUCH message does not decode: {error}: {}", hex(payload))
                    })?;
                    if let (true, Outbound::Accepted(order)) = (first_time, message) {
                        accepted.push(AcceptedSeen {
                            session,
                            number,
                            order_reference_number: order.order_reference_number,
                            token: order.token.0,
                        });
                    }
                }
                Packet::ServerHeartbeat | Packet::Debug(_) => {}
                other => {
                    return Err(format!(
                    "session {session}: the gateway sent packet '{}', which it never should here",
                    char::from(other.packet_type())
                ))
                }
            }
        }
        client.inbound = inbound;
        client.inbound.drain(..consumed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::SimPlan;
    use crate::rng::SimRng;
    use crate::sim_gateway::{start_gateway, AcceptedIndex};
    use crossbeam_queue::ArrayQueue;
    use lockstep_engine::{CommandKind, Event, RejectReason, SessionId, Token};
    use lockstep_transport::event_inbox::PublishedEvent;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    /// A gateway seed's plan, its clients, and a gateway with one message
    /// (a Rejected) in session 0's log.
    fn setup() -> (GatewayClients, GatewayCore) {
        let plan = (0..100)
            .map(|seed| SimPlan::from_seed(seed, 10))
            .find(|plan| plan.gateway.is_some())
            .expect("most seeds have a gateway");
        let gateway_plan = plan.gateway.as_ref().expect("found above");
        let clients = GatewayClients::new(SimRng::new(1), gateway_plan, 500_000, 4);
        let mut gateway = start_gateway(
            &gateway_plan.config,
            &plan.engine,
            Arc::new(ArrayQueue::new(4)),
            Arc::new(AtomicU64::new(0)),
            Vec::new(),
            0,
            0,
        )
        .expect("a valid gateway");
        gateway.publish(&PublishedEvent {
            seq: 1,
            timestamp_ns: 5,
            event: Event::Rejected {
                session: SessionId(0),
                token: Token::from_u64(7),
                command: CommandKind::New,
                reason: RejectReason::QtyZero,
            },
        });
        assert_eq!(gateway.session_messages(0), 1);
        (clients, gateway)
    }

    #[test]
    fn a_message_received_again_must_be_the_bytes_received_the_first_time() {
        let (mut clients, _) = setup();
        let mut counts = ClientCounts::default();
        let client = &mut clients.clients[0];
        assert_eq!(client.record(2, b"first", &mut counts), Ok(true));
        assert_eq!(client.record(2, b"first", &mut counts), Ok(false));
        let error = client.record(2, b"other", &mut counts).unwrap_err();
        assert!(error.contains("session 0 message 2"), "{error}");
        assert_eq!(counts.messages_received_again, 2);
        // Message 1 was never seen: a gap a login from 0 leaves.
        assert!(client.seen[0].is_none());
    }

    #[test]
    fn what_a_client_saw_must_be_in_the_rebuilt_logs() {
        let (mut clients, gateway) = setup();
        let logged = gateway.session_message(0, 1).expect("one message").to_vec();
        let mut counts = ClientCounts::default();
        clients.clients[0].record(1, &logged, &mut counts).unwrap();
        assert_eq!(clients.check_seen_in(&gateway, "now"), Ok(1));
        // A message the log does not hold, and one it holds otherwise.
        clients.clients[0].record(2, b"lost", &mut counts).unwrap();
        let error = clients.check_seen_in(&gateway, "now").unwrap_err();
        assert!(
            error.contains("session 0 message 2") && error.contains("only 1 messages"),
            "{error}"
        );
        let (mut clients, gateway) = setup();
        let mut changed = logged.clone();
        changed[1] ^= 1;
        clients.clients[0].record(1, &changed, &mut counts).unwrap();
        let error = clients.check_seen_in(&gateway, "now").unwrap_err();
        assert!(error.contains("session 0 message 1"), "{error}");
    }

    #[test]
    fn an_accepted_order_must_be_in_the_journal() {
        let index = AcceptedIndex::default();
        let seen = AcceptedSeen {
            session: 1,
            number: 3,
            order_reference_number: 9,
            token: *b"s1t1          ",
        };
        let error = index.check(&seen).unwrap_err();
        assert!(error.contains("session 1 message 3"), "{error}");
    }
}
