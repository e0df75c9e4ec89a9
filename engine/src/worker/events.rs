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
    /// The worker thread is stopping.
    fn on_worker_stop(&mut self, _worker: &WorkerInfo) {}
}
