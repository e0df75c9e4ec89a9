//! Who already listens on a TCP address: read from `/proc/net/tcp{,6}` (this network namespace)
//! and, for the pid, from the socket links under `/proc/*/task/*/fd` (shards keep their own fd
//! tables). A gateway checks its public address before binding it with `SO_REUSEPORT`, which
//! would otherwise silently share the port with another deployment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A listening socket found on an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub local: SocketAddr,
    /// The process holding it, when it could be found.
    pub pid: Option<u32>,
}

/// A listener whose address overlaps `addr` (same port; same ip, or either is a wildcard).
pub fn listener_on(addr: SocketAddr) -> Option<Listener> {
    let (local, inode) = ["/proc/net/tcp", "/proc/net/tcp6"]
        .into_iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(listening)
                .collect::<Vec<_>>()
        })
        .find(|(local, _)| overlaps(*local, addr))?;
    Some(Listener {
        local,
        pid: owner_of(inode),
    })
}

/// How long a listener no process holds may linger: a glommio process that just exited still has
/// its io_uring torn down in the background, which keeps its listener for a moment (the own
/// reactors watch listeners without holding them).
const ORPHAN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// [`listener_on`], waiting out a listener that no process holds any more (our own previous
/// process, right after a restart).
pub fn other_listener_on(addr: SocketAddr) -> Option<Listener> {
    if bindable(addr) {
        // Nobody listens there: no need to read the (possibly huge) socket tables.
        return None;
    }
    let deadline = std::time::Instant::now() + ORPHAN_WAIT;
    loop {
        match listener_on(addr) {
            Some(l) if l.pid.is_none() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            found => return found,
        }
    }
}

/// Whether a socket without `SO_REUSEPORT` (but with `SO_REUSEADDR`, so lingering connections do
/// not count) can bind `addr`: false when something listens on it.
fn bindable(addr: SocketAddr) -> bool {
    let Ok(socket) = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    ) else {
        return false;
    };
    socket.set_reuse_address(true).is_ok() && socket.bind(&addr.into()).is_ok()
}

/// `(local address, inode)` of a `/proc/net/tcp` row in the LISTEN state (0A).
fn listening(row: &str) -> Option<(SocketAddr, u64)> {
    let fields: Vec<&str> = row.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.swap_bytes(),
        )),
        32 => {
            // Four 32-bit words, each in host (little-endian) order.
            let mut bytes = [0u8; 16];
            for (i, word) in bytes.chunks_mut(4).enumerate() {
                let w = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                word.copy_from_slice(&w.swap_bytes().to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((SocketAddr::new(ip, port), fields.get(9)?.parse().ok()?))
}

fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    let ip = |s: SocketAddr| s.ip().to_canonical();
    a.port() == b.port() && (ip(a) == ip(b) || ip(a).is_unspecified() || ip(b).is_unspecified())
}

/// The pid whose fd table holds socket `inode`.
fn owner_of(inode: u64) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = process.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(tasks) = std::fs::read_dir(process.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(fds) = std::fs::read_dir(task.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_listener_and_its_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let found = listener_on(addr).expect("listed in /proc/net/tcp");
        assert_eq!(found.local, addr);
        assert_eq!(found.pid, Some(std::process::id()));
        let wildcard = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert!(listener_on(wildcard).is_some(), "a wildcard bind overlaps");
        assert!(other_listener_on(addr).is_some());
        drop(l);
        assert_eq!(listener_on(addr), None);
        assert_eq!(other_listener_on(addr), None);
    }
}
