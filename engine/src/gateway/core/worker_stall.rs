//! Stalled workers (`gateway.worker_stall_timeout`, off by default). A worker that stops reading
//! (stopped, swapping, stuck in a callback) keeps its link open, so GatewayWorker keeps routing
//! its clients to it and they wait as long as it does. With a timeout set, every quarter of it
//! the shard asks each gatewire worker `CMD_WORKER_ALIVE`; a worker answers after handling what
//! was sent before the question. One that has not answered within the timeout stops being a
//! routing target: its sticky clients go to a live worker on their next event (the router
//! re-binds them, least-connections), counted. When it answers again it is a target again, for
//! new clients.
//!
//! What is not moved: events already queued to the stalled worker stay there and are handled if
//! it resumes (late). A client moved meanwhile may thus see a late answer from the old worker
//! after newer ones from the new worker — why this is off by default. PHP workers are never
//! asked (they would not answer): only workers that stated `max_packet_size` in their hello.

use std::time::Duration;

use gatewire_proto::command::{Command, Control};

use crate::gateway::core::shard::Shard;
use crate::log_limit::warn_limited;

/// Sweeps a question may go unanswered; the next one declares the worker stalled.
const SWEEPS_PER_TIMEOUT: u64 = 4;

impl Shard {
    /// How often the stall sweep runs, or `None` when workers are never declared stalled.
    pub fn stall_check_period(&self) -> Option<Duration> {
        let timeout = self.settings.worker_stall_timeout;
        (timeout > 0.0).then(|| Duration::from_secs_f64(timeout / SWEEPS_PER_TIMEOUT as f64))
    }

    /// One sweep: asks every gatewire worker with no question outstanding, and takes out of
    /// routing those that left one unanswered for more than [`SWEEPS_PER_TIMEOUT`] sweeps.
    pub fn sweep_worker_stalls(&mut self) {
        self.stall_sweeps += 1;
        let now = self.stall_sweeps;
        let Ok(question) = Command::Control(Control::Alive).to_packet().to_bytes() else {
            return;
        };
        let mut stalled = Vec::new();
        for (&link_id, link) in self.links.iter_mut() {
            if !link.answers_probes || link.worker_key.is_none() || link.outbox.closing().is_some()
            {
                continue;
            }
            match link.asked_at {
                None => {
                    link.outbox.push(question.clone());
                    link.asked_at = Some(now);
                }
                Some(asked) if now - asked > SWEEPS_PER_TIMEOUT && !link.stalled => {
                    link.stalled = true;
                    stalled.push(link_id);
                }
                Some(_) => {}
            }
        }
        for link_id in stalled {
            self.take_out_of_routing(link_id);
        }
    }

    fn take_out_of_routing(&mut self, link_id: u64) {
        let Some(key) = self.links.get(&link_id).and_then(|l| l.worker_key.clone()) else {
            return;
        };
        if self.workers.get(&key) != Some(&link_id) {
            return;
        }
        let moving = self.router.bound_to(&key);
        self.workers.shift_remove(&key);
        self.router.worker_left(&key);
        self.stats.worker_stalls += 1;
        self.stats.clients_moved_from_stalled += moving;
        warn_limited(
            "worker stalled",
            &format!(
                "worker {key} has not read its link for {} s (gateway.worker_stall_timeout): no \
                 new events go to it; its {moving} clients move to live workers on their next \
                 event",
                self.settings.worker_stall_timeout
            ),
        );
    }

    /// A worker answered `CMD_WORKER_ALIVE`: it reads again.
    pub(in crate::gateway::core) fn worker_alive(&mut self, link_id: u64) {
        let Some(link) = self.links.get_mut(&link_id) else {
            return;
        };
        link.asked_at = None;
        if !std::mem::take(&mut link.stalled) {
            return;
        }
        let Some(key) = link.worker_key.clone() else {
            return;
        };
        if !self.workers.contains_key(&key) {
            self.workers.insert(key.clone(), link_id);
            self.router.worker_joined(&key);
            tracing::info!(worker = %key, "worker reads its link again: routing to it resumes");
        }
    }
}
