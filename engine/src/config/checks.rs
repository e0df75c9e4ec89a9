//! What a loaded configuration is checked for: values the schema's types cannot refuse
//! ([`Config::validate`], run by every load), and what starting some roles here would make
//! unreachable or insecure.

use super::Config;
use super::schema::*;

impl Config {
    /// Why a gateway started here could not be reached by the workers the registers send to it:
    /// `lan_ip` is not an address of this host, or is loopback while a register is remote.
    pub fn unreachable_gateway(&self, roles: &[Role]) -> Option<String> {
        if !roles.contains(&Role::Gateway) {
            return None;
        }
        let g = &self.gateway;
        if g.lan_ip.is_loopback() {
            let remote = g.register_address.iter().find(|a| !a.ip().is_loopback())?;
            return Some(format!(
                "gateway.lan_ip is {} but the register at {remote} (gateway.register_address) is \
                 on another host: workers there would dial {}. Set gateway.lan_ip to this \
                 host's address on the cluster network",
                g.lan_ip, g.lan_ip
            ));
        }
        match std::net::TcpListener::bind((g.lan_ip, 0)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Some(format!(
                "gateway.lan_ip is {}, which is not an address of this host: workers dial it to \
                 reach this gateway. Set it to this host's address on the cluster network (see \
                 `ip -4 addr`)",
                g.lan_ip
            )),
            _ => None,
        }
    }

    /// Why starting `roles` would expose an unauthenticated cluster port to other hosts: a
    /// register or a gateway's inner ports on a non-loopback address with an empty secret, unless
    /// `run.allow_insecure` is set.
    pub fn insecure_exposure(&self, roles: &[Role]) -> Option<String> {
        if self.run.allow_insecure {
            return None;
        }
        let register = roles.contains(&Role::Register)
            && !self.register.listen.ip().is_loopback()
            && self.register.secret_key.is_empty();
        let gateway = roles.contains(&Role::Gateway)
            && !self.gateway.lan_ip.is_loopback()
            && self.gateway.secret_key.is_empty();
        let (what, key) = match (register, gateway) {
            (true, _) => (
                format!("register.listen is {}", self.register.listen),
                "register.secret_key",
            ),
            (_, true) => (
                format!(
                    "the gateway's inner ports listen on gateway.lan_ip {}",
                    self.gateway.lan_ip
                ),
                "gateway.secret_key",
            ),
            _ => return None,
        };
        Some(format!(
            "{what}, reachable from other hosts, and {key} is empty: anyone who reaches it could \
             announce gateways to your workers or take over a worker's clients. Set the same \
             secret_key in [register], [gateway] and [worker] on every host (see \
             docs/operations.md, Security), or set run.allow_insecure = true to run without one"
        ))
    }

    /// Values the schema's types cannot refuse, section by section; the first problem found
    /// is the error, naming its key.
    pub(super) fn validate(&self) -> Result<(), String> {
        self.check_durations()?;
        self.check_gateway()?;
        self.check_api()?;
        self.check_http_hook()?;
        self.check_store()?;
        crate::placement::check("gateway.cpus", &self.gateway.cpus)?;
        crate::placement::check("worker.cpus", &self.worker.cpus)?;
        if self.register.max_members == 0 {
            return Err("register.max_members must be at least 1".into());
        }
        if self.worker.max_gateways == 0 {
            return Err("worker.max_gateways must be at least 1".into());
        }
        self.check_log_levels()
    }

    /// Every duration key: a finite, non-negative number of seconds.
    fn check_durations(&self) -> Result<(), String> {
        let (g, w) = (&self.gateway, &self.worker);
        for (key, seconds) in [
            ("gateway.ping_interval", g.ping_interval),
            ("gateway.worker_ping_interval", g.worker_ping_interval),
            ("gateway.park_after", g.park_after),
            ("gateway.handshake_timeout", g.handshake_timeout),
            ("gateway.message_timeout", g.message_timeout),
            ("gateway.worker_stall_timeout", g.worker_stall_timeout),
            ("gateway.link_timeout", g.link_timeout),
            ("register.link_timeout", self.register.link_timeout),
            ("worker.link_timeout", w.link_timeout),
            ("worker.drain_timeout", w.drain_timeout),
            ("worker.ready_timeout", w.ready_timeout),
            ("store.ttl", self.store.ttl),
            ("store.timeout", self.store.timeout),
        ] {
            if !(seconds >= 0.0 && seconds.is_finite()) {
                return Err(format!("{key} must be a non-negative number of seconds"));
            }
        }
        Ok(())
    }

    /// `[gateway]` keys that depend on each other.
    fn check_gateway(&self) -> Result<(), String> {
        let (g, w) = (&self.gateway, &self.worker);
        if g.chat_page == Some(true) && g.static_dir.is_some() {
            return Err(
                "gateway.chat_page = true and gateway.static_dir are both set: the page at / is \
                 either the built-in chat page or index.html from the directory; unset one"
                    .into(),
            );
        }
        // A client message travels to a worker in one inner packet (header, session, message):
        // a gateway that accepts messages the packets cannot carry would lose them.
        for (key, max_packet) in [
            ("gateway.max_packet_size", g.max_packet_size),
            ("worker.max_packet_size", w.max_packet_size),
        ] {
            if g.max_message_size + MESSAGE_PACKET_OVERHEAD > max_packet {
                return Err(format!(
                    "gateway.max_message_size ({}) does not fit in {key} ({max_packet}): a \
                     client message travels to its worker in one inner packet with a header \
                     and the session, so {key} must be at least max_message_size + {} \
                     (set {key} = {} or lower gateway.max_message_size)",
                    g.max_message_size,
                    MESSAGE_PACKET_OVERHEAD,
                    g.max_message_size + MESSAGE_PACKET_OVERHEAD,
                ));
            }
        }
        let shards = g.shard_count();
        if usize::from(g.start_port) + shards > usize::from(u16::MAX) + 1 {
            return Err(format!(
                "gateway.start_port {} + {shards} shards runs past port 65535",
                g.start_port
            ));
        }
        if g.listen.protocol == ClientProtocol::SecureWebSocket
            && (g.tls_cert.is_none() || g.tls_key.is_none())
        {
            return Err(
                "gateway.listen is wss:// but gateway.tls_cert or gateway.tls_key is not set"
                    .into(),
            );
        }
        if g.register_address.is_empty() {
            return Err("gateway.register_address is empty".into());
        }
        if g.max_pending_input_bytes < g.max_message_size.min(1 << 20) {
            return Err(format!(
                "gateway.max_pending_input_bytes ({}) must hold at least one message of 1 MiB \
                 (or max_message_size, if smaller)",
                g.max_pending_input_bytes
            ));
        }
        if g.auth.enabled() {
            check_auth(g)?;
        }
        if g.compression
            && !matches!(
                g.listen.protocol,
                ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket
            )
        {
            return Err(
                "gateway.compression is permessage-deflate, a WebSocket extension: it needs a \
                 websocket:// or wss:// gateway.listen"
                    .into(),
            );
        }
        if g.max_pending_output_bytes < g.send_to_client_buffer_size {
            return Err(format!(
                "gateway.max_pending_output_bytes ({}) must be at least \
                 gateway.send_to_client_buffer_size ({}): one client's queue must fit",
                g.max_pending_output_bytes, g.send_to_client_buffer_size
            ));
        }
        Ok(())
    }

    /// `[api]`: an address when the role runs, a key when it is reachable from other hosts.
    fn check_api(&self) -> Result<(), String> {
        let api = &self.api;
        match api.listen {
            None if self.run.roles.contains(&Role::Api) => {
                return Err(
                    "run.roles has \"api\" but api.listen is unset: give the HTTP API \
                            an address, e.g. api.listen = \"127.0.0.1:8080\""
                        .into(),
                );
            }
            Some(listen) if !listen.ip().is_loopback() && api.api_key.is_empty() => {
                return Err(format!(
                    "api.listen = \"{listen}\" is not a loopback address and api.api_key is \
                     empty: anyone reaching it could push to every client; set api.api_key"
                ));
            }
            _ => {}
        }
        if api.max_connections == 0 || api.max_body_size == 0 || api.max_batch == 0 {
            return Err(
                "api.max_connections, api.max_body_size and api.max_batch must be at least 1"
                    .into(),
            );
        }
        if !(api.idle_timeout > 0.0 && api.idle_timeout.is_finite()) {
            return Err("api.idle_timeout must be a positive number of seconds".into());
        }
        Ok(())
    }

    /// `[worker.http]`, when `worker.app = "http"`.
    fn check_http_hook(&self) -> Result<(), String> {
        let w = &self.worker;
        if w.app == AppName::Http {
            let h = &w.http;
            if let Err(why) = crate::net::HttpUrl::parse(&h.url) {
                return Err(format!(
                    "worker.app = \"http\" posts events to worker.http.url: {why}"
                ));
            }
            if !(h.timeout > 0.0 && h.timeout.is_finite()) {
                return Err("worker.http.timeout must be a positive number of seconds".into());
            }
            if let Some(unknown) = h.events.iter().find(|e| !HOOK_EVENTS.contains(&e.as_str())) {
                return Err(format!(
                    "worker.http.events has {unknown:?}; the events are {}",
                    HOOK_EVENTS.join(", ")
                ));
            }
            if h.max_in_flight == 0 || h.max_queued_per_client == 0 {
                return Err(
                    "worker.http.max_in_flight and max_queued_per_client must be at least 1".into(),
                );
            }
        }
        Ok(())
    }

    /// `[store]`, when it is on.
    fn check_store(&self) -> Result<(), String> {
        if self.store.enabled() {
            if self.store.ttl < 3.0 {
                return Err(format!(
                    "store.ttl must be at least 3 seconds (it is refreshed every third of it), \
                     got {}",
                    self.store.ttl
                ));
            }
            if self.store.timeout <= 0.0 {
                return Err("store.timeout must be more than 0 seconds".into());
            }
            if let Err(e) =
                redis::IntoConnectionInfo::into_connection_info(self.store.redis_url.as_str())
            {
                return Err(format!(
                    "store.redis_url {:?} is not a Redis URL ({e}); use redis://host:port/db, \
                     rediss://… or redis+unix:///path",
                    self.store.redis_url
                ));
            }
        }
        Ok(())
    }

    /// Every log filter parses.
    fn check_log_levels(&self) -> Result<(), String> {
        for (key, level) in [
            ("run.log", Some(&self.run.log)),
            ("register.log", self.register.log.as_ref()),
            ("gateway.log", self.gateway.log.as_ref()),
            ("worker.log", self.worker.log.as_ref()),
        ] {
            if let Some(level) = level {
                tracing_subscriber::EnvFilter::try_new(level)
                    .map_err(|e| format!("{key} = {level:?}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// `[gateway.auth]` that can work: an algorithm gatewire verifies, the key it needs, a WebSocket
/// listener (tokens are read from the upgrade request), a close code applications may use.
fn check_auth(g: &GatewayConfig) -> Result<(), String> {
    let a = &g.auth;
    if !matches!(
        g.listen.protocol,
        ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket
    ) {
        return Err(
            "gateway.auth needs a websocket:// or wss:// gateway.listen (tokens come with the \
             WebSocket upgrade request)"
                .into(),
        );
    }
    match (a.algorithm.as_deref(), a.secret.is_empty(), &a.public_key) {
        (_, false, Some(_)) => {
            return Err(
                "gateway.auth.secret and gateway.auth.public_key are both set; set the one the \
                 algorithm uses (secret: HS256, public_key: RS256 or ES256)"
                    .into(),
            );
        }
        (None | Some("HS256"), false, None) => {}
        (Some(alg @ ("RS256" | "ES256")), false, None) => {
            return Err(format!(
                "gateway.auth.algorithm = \"{alg}\" verifies with gateway.auth.public_key (a PEM \
                 file), not gateway.auth.secret"
            ));
        }
        (Some("HS256"), true, Some(_)) => {
            return Err(
                "gateway.auth.algorithm = \"HS256\" verifies with gateway.auth.secret, not \
                 gateway.auth.public_key"
                    .into(),
            );
        }
        (None | Some("RS256" | "ES256"), true, Some(_)) => {}
        (Some(other), _, _) => {
            return Err(format!(
                "gateway.auth.algorithm = {other:?}: use \"HS256\", \"RS256\" or \"ES256\""
            ));
        }
        (_, true, None) => unreachable!("auth is enabled"),
    }
    if !(4000..=4999).contains(&a.close_code()) {
        return Err(format!(
            "gateway.auth.expired_close_code = {}: use a code from 4000 to 4999 (RFC 6455 leaves \
             them to applications)",
            a.close_code()
        ));
    }
    a.verifier().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_lan_ip_with_a_remote_register_is_unreachable() {
        let mut config = Config::default();
        config.gateway.register_address = vec!["10.1.2.4:1236".parse().unwrap()];
        let why = config.unreachable_gateway(&[Role::Gateway]).unwrap();
        assert!(why.contains("gateway.lan_ip is 127.0.0.1 but the register at 10.1.2.4:1236"));
        assert!(config.unreachable_gateway(&[Role::Worker]).is_none());
        config.gateway.register_address = vec!["127.0.0.1:1236".parse().unwrap()];
        assert!(config.unreachable_gateway(&[Role::Gateway]).is_none());
    }
}
