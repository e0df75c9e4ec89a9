//! The Prometheus text endpoint (`[metrics] listen`, off by default). Each process renders its
//! own roles from what they publish (shard snapshots and answers, worker and register atomics);
//! the supervisor merges its children's texts family by family and serves `GET /metrics`.
//! Nothing here touches a shard's state.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use indexmap::IndexMap;
use tracing::{info, warn};

mod gateway;
mod roles;

pub use gateway::gateway;
pub use roles::{api, http_hook, register, routing, store, worker};

/// Exposition text under construction, one family at a time.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// A family: `samples` are `(labels, value)` with labels already formatted (`a="b",c="d"`).
    pub fn family<V: std::fmt::Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, V)>,
    ) {
        let _ = writeln!(self.out, "# HELP gatewire_{name} {help}");
        let _ = writeln!(self.out, "# TYPE gatewire_{name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.out, "gatewire_{name} {value}");
            } else {
                let _ = writeln!(self.out, "gatewire_{name}{{{labels}}} {value}");
            }
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Merges the expositions of several processes: one HELP/TYPE per family, every sample kept.
pub fn merge<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut families: IndexMap<String, (Vec<&str>, Vec<&str>)> = IndexMap::new();
    for text in texts {
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let family = families.entry(name.clone()).or_default();
                if family.0.is_empty() {
                    family.0.push(line);
                }
                current = Some(name);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                let family = families.entry(name.to_owned()).or_default();
                if family.0.len() == 1 {
                    family.0.push(line);
                }
            } else if !line.is_empty()
                && let Some(name) = &current
            {
                families.entry(name.clone()).or_default().1.push(line);
            }
        }
    }
    let mut out = String::new();
    for (_, (head, samples)) in families {
        for line in head.into_iter().chain(samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Serves `GET /metrics` on `listen` from a thread of its own, rendering with `render`.
pub fn serve(
    listen: SocketAddr,
    render: impl Fn() -> String + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, String> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen} (metrics.listen): {e}"))?;
    info!(%listen, "metrics endpoint listening");
    Ok(std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match stream.read(&mut chunk) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let response = if request.starts_with(b"GET /metrics ") {
                let body = render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            if let Err(e) = stream.write_all(response.as_bytes()) {
                warn!(error = %e, "metrics response not written");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_one_header_per_family_and_every_sample() {
        let a = "# HELP gatewire_x X.\n# TYPE gatewire_x gauge\ngatewire_x{worker=\"a\"} 1\n";
        let b = "# HELP gatewire_x X.\n# TYPE gatewire_x gauge\ngatewire_x{worker=\"b\"} 2\n# HELP gatewire_y Y.\n# TYPE gatewire_y counter\ngatewire_y 3\n";
        assert_eq!(
            merge([a, b]),
            "# HELP gatewire_x X.\n# TYPE gatewire_x gauge\ngatewire_x{worker=\"a\"} 1\ngatewire_x{worker=\"b\"} 2\n# HELP gatewire_y Y.\n# TYPE gatewire_y counter\ngatewire_y 3\n"
        );
    }
}
