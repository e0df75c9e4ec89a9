//! The shard's core: its state machine without I/O (the quinn-proto idea). Inputs are events —
//! a client accepted, bytes or a message from a client, a packet from an inner link, a close, a
//! timer tick — and outputs are bytes queued on outboxes per client or link id, closes, and
//! park/wake requests by id. Nothing here owns a socket, calls the kernel or touches the
//! runtime: the I/O side (`gateway::shard`, `client`, `link`, `parking`) does (an outbox may
//! carry its writer's descriptor, recorded and written through by the I/O side only), and
//! `tests` drives the core directly.
//!
//! [`shard::Shard`] is defined in `shard.rs` with its fields and the events every connection
//! goes through (accept, message, handshake, close, snapshot); each other concern adds its
//! methods in a file of its own: `commands/` (worker packets, one file per family),
//! `token_auth.rs`, `presence.rs`, `direct_writes.rs` (which outboxes the link writes at the end
//! of its batch; the writing is the I/O side's), and the bounds driven by sweeps
//! (`handshake_deadline.rs`, `heartbeat.rs`, `idle.rs`, `input_bounds.rs`, `worker_stall.rs`).

pub mod client_table;
pub mod commands;
pub mod direct_writes;
pub mod encode;
pub mod handshake_deadline;
pub mod heartbeat;
pub mod idle;
pub mod input_bounds;
pub mod member_index;
pub mod parking_requests;
pub mod pending_input;
pub mod presence;
pub mod router;
pub mod shard;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod token_auth;
pub mod token_expiry;
pub mod worker_stall;
