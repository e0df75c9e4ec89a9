//! What business logic implements: GatewayWorker's `Events` class as a trait.

use gatewire_proto::php::Value;

use super::context::Context;

/// Which worker thread a lifecycle callback runs on.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// `"<name>:<index>"`, as GatewayWorker's worker_key.
    pub worker_key: String,
    pub index: usize,
}

/// Business logic: every callback but `on_message` is optional. Each worker thread owns its own
/// clone of the app, and calls it for one event at a time, in each client's order.
pub trait Events: Clone + Send + 'static {
    /// The worker thread started (before any event).
    fn on_worker_start(&mut self, _worker: &WorkerInfo) {}
    /// A client connected (TCP accept, before any WebSocket handshake).
    fn on_connect(&mut self, _ctx: &mut Context<'_>) {}
    /// A WebSocket client's handshake: `data` is `['get' => …, 'server' => …, 'cookie' => …]`.
    fn on_websocket_connect(&mut self, _ctx: &mut Context<'_>, _data: &Value) {}
    /// A message from the client.
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]);
    /// The client is gone; its session is the last one, and changes to it are not saved.
    fn on_close(&mut self, _ctx: &mut Context<'_>) {}
    /// Whether this app wants group presence: [`Events::on_group_join`] and
    /// [`Events::on_group_leave`]. Said to every gateway when the worker links; gatewire gateways
    /// then send one event per member change (PHP gateways send none). Default: no.
    fn presence(&self) -> bool {
        false
    }
    /// The client joined `group` (with [`Events::presence`]): once per member change, in the
    /// client's order of events, by the gateway that holds it.
    fn on_group_join(&mut self, _ctx: &mut Context<'_>, _group: &str) {}
    /// The client left `group` (with [`Events::presence`]): it left, the group was dissolved, or
    /// the client closed (then before [`Events::on_close`]).
    fn on_group_leave(&mut self, _ctx: &mut Context<'_>, _group: &str) {}
    /// The worker thread is stopping.
    fn on_worker_stop(&mut self, _worker: &WorkerInfo) {}
}
