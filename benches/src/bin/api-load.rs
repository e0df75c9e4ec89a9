//! Load for `benches/http_api.sh`: `sendToUid` calls at full speed from T threads, each through
//! one keep-alive HTTP connection to the HTTP API (`--mode http`, or `--mode batch` with B calls
//! per `POST /api/batch`), or through the Rust GatewayClient (`--mode client`). Prints one line:
//! mode, calls/s, and the p50/p99 of one request (a batch is one request).
//!
//! Usage: api-load --mode http|batch|client --api ADDR --register ADDR [--threads T]
//!        [--seconds S] [--batch B]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// One keep-alive connection: POSTs `body` to `path` and waits for the whole answer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn post(&mut self, path: &str, body: &str) -> u16 {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).expect("write");
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "the API closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(head_end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= head_end + 4 + length {
                    return head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = arg(&args, "--mode").unwrap_or_else(|| "http".into());
    let api: SocketAddr = arg(&args, "--api")
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .expect("--api ADDR");
    let register: SocketAddr = arg(&args, "--register")
        .unwrap_or_else(|| "127.0.0.1:1236".into())
        .parse()
        .expect("--register ADDR");
    let threads: usize = arg(&args, "--threads").map_or(4, |v| v.parse().expect("--threads"));
    let seconds: f64 = arg(&args, "--seconds").map_or(5.0, |v| v.parse().expect("--seconds"));
    let batch: usize = arg(&args, "--batch").map_or(100, |v| v.parse().expect("--batch"));
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let mode = mode.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut calls = 0u64;
                let mut k = 0u64;
                match mode.as_str() {
                    "client" => {
                        let client = gatewire::client::GatewayClient::new(vec![register], "");
                        while Instant::now() < end {
                            let t0 = Instant::now();
                            client.send_to_uid(&[format!("u{t}-{k}").as_str()], "x");
                            latencies.push(t0.elapsed());
                            calls += 1;
                            k += 1;
                        }
                    }
                    _ => {
                        let stream = TcpStream::connect(api).expect("connect to the API");
                        stream.set_nodelay(true).ok();
                        let mut conn = Conn {
                            stream,
                            buf: Vec::new(),
                        };
                        let per = if mode == "batch" { batch } else { 1 };
                        while Instant::now() < end {
                            let call = |k: u64| {
                                format!(r#"{{"method":"sendToUid","args":{{"uid":"u{t}-{k}","message":"x"}}}}"#)
                            };
                            let (path, body) = if mode == "batch" {
                                let list: Vec<String> = (0..per as u64).map(|i| call(k + i)).collect();
                                ("/api/batch", format!(r#"{{"calls":[{}]}}"#, list.join(",")))
                            } else {
                                ("/api/sendToUid", format!(r#"{{"uid":"u{t}-{k}","message":"x"}}"#))
                            };
                            let t0 = Instant::now();
                            let status = conn.post(path, &body);
                            latencies.push(t0.elapsed());
                            assert_eq!(status, 200, "the API answered {status}");
                            calls += per as u64;
                            k += per as u64;
                        }
                    }
                }
                (calls, latencies)
            })
        })
        .collect();
    let mut calls = 0;
    let mut latencies = Vec::new();
    for w in workers {
        let (c, l) = w.join().expect("a load thread");
        calls += c;
        latencies.extend(l);
    }
    let took = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{mode:<7} threads {threads:>3}  calls/s {:>9.0}  request p50 {:>7.3} ms  p99 {:>7.3} ms",
        calls as f64 / took,
        at(0.50),
        at(0.99)
    );
}
