//! The simulator's gateway steps, in seeds that run the gateway: its clients
//! send before the agents run, egress's events are published to it in the
//! same step, its clients then read and check what they were sent, and once
//! the system has converged the live gateway is compared with one rebuilt
//! from the whole journal.

use super::{Published, Simulation};
use crate::sim_gateway::{check_logs_equal, check_tokens_day_unique, start_gateway};
use lockstep_transport::event_inbox::PublishedEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

impl Simulation {
    /// The gateway's clients connect, send, and the gateway's timers run.
    pub(super) fn gateway_clients_send(&mut self, active: bool) {
        let running = self.system.as_mut().expect("the system runs between steps");
        let (Some(gateway), Some(clients)) =
            (running.gateway.as_mut(), self.gateway_clients.as_mut())
        else {
            return;
        };
        clients.send(gateway, self.step, self.time.now_ns(), active);
        let submitted = self.gateway_submitted.load(Ordering::Relaxed);
        self.report.commands_submitted += submitted - self.gateway_submitted_counted;
        self.gateway_submitted_counted = submitted;
        let stats = gateway.stats();
        self.mix(&[
            submitted,
            stats.connections_opened,
            stats.disconnects,
            stats.messages_received,
            stats.logins_accepted,
        ]);
    }

    /// The gateway's clients read and check what they were sent; every
    /// Accepted seen for the first time must name an order the journal
    /// accepted.
    pub(super) fn gateway_clients_receive(&mut self) -> Result<(), String> {
        let running = self.system.as_mut().expect("the system runs between steps");
        let (Some(gateway), Some(clients)) =
            (running.gateway.as_mut(), self.gateway_clients.as_mut())
        else {
            return Ok(());
        };
        let mut accepted = std::mem::take(&mut self.accepted_seen);
        accepted.clear();
        clients.receive(gateway, self.step, self.time.now_ns(), &mut accepted)?;
        // Commands submitted while the clients read (cancel-on-disconnect).
        let submitted = self.gateway_submitted.load(Ordering::Relaxed);
        self.report.commands_submitted += submitted - self.gateway_submitted_counted;
        self.gateway_submitted_counted = submitted;
        self.accepted_index.catch_up(self.model.events());
        for seen in &accepted {
            self.accepted_index.check(seen)?;
            self.report.gateway.accepted_checked += 1;
        }
        let received = clients.counts.messages_received;
        self.mix(&[received, accepted.len() as u64]);
        self.accepted_seen = accepted;
        Ok(())
    }

    /// Egress's sink feeds the gateway in the same step, as the gateway
    /// thread drains its inbox: each checked event is published to it, in
    /// order, and the connections' outputs are filled.
    pub(super) fn publish_to_gateway(&mut self, published: &[Published]) -> Result<(), String> {
        let running = self.system.as_mut().expect("running");
        let Some(gateway) = running.gateway.as_mut() else {
            return Ok(());
        };
        for event in published {
            gateway.publish(&PublishedEvent {
                seq: event.seq,
                timestamp_ns: event.timestamp_ns,
                event: event.event,
            });
        }
        gateway.fill_outputs();
        match gateway.fatal() {
            Some(fatal) => Err(format!("the gateway stopped: {fatal}")),
            None => Ok(()),
        }
    }

    /// Once converged, a gateway rebuilt from the whole journal holds what
    /// the live gateway holds, session by session and message by message
    /// (and counts the same open orders), and every message any client saw;
    /// and no session's token was accepted twice.
    pub(super) fn check_gateway_against_final_journal(&mut self) -> Result<(), String> {
        let (Some(plan), Some(clients)) = (&self.plan.gateway, &self.gateway_clients) else {
            return Ok(());
        };
        let running = self.system.as_ref().expect("running");
        let live = running
            .gateway
            .as_ref()
            .expect("a gateway seed runs a gateway");
        let rebuilt = start_gateway(
            &plan.config,
            &self.plan.engine,
            Arc::new(crossbeam_queue::ArrayQueue::new(1)),
            Arc::new(AtomicU64::new(0)),
            self.disk.read_from(0),
            self.model.last_seq(),
            self.time.now_ns(),
        )?;
        check_logs_equal(live, &rebuilt)?;
        self.report.gateway.tokens_checked += check_tokens_day_unique(&rebuilt)?;
        self.report.gateway.messages_checked_against_rebuild +=
            clients.check_seen_in(&rebuilt, "at the end")?;
        Ok(())
    }
}
