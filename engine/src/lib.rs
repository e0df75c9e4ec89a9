//! gatewire: a GatewayWorker-compatible long-connection gateway.
//!
//! The roles (Register, Gateway, BusinessWorker, GatewayClient) are built on the sans-IO codecs of
//! [`gatewire_proto`], re-exported here as [`proto`].

pub use gatewire_proto as proto;
