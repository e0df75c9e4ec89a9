//! Every text message any client sends goes to every client: a `broadcast` channel, one task
//! per connection (read and write halves joined with `select!`), whatever is waiting written
//! with one flush, and a listen backlog as deep as the kernel allows (as gatewire's), so a
//! connection storm does not overflow the accept queue. Usage: tokio-broadcast ADDR.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR is ip:port");
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind");
    // The kernel caps the backlog at net.core.somaxconn (tokio's bind would ask for 1024).
    let listener = socket.listen(65535).expect("listen");
    let (tx, _) = broadcast::channel::<Utf8Bytes>(4096);
    eprintln!("tokio-broadcast listening on {addr}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut sink, mut source) = ws.split();
            let mut rx = tx.subscribe();
            loop {
                tokio::select! {
                    incoming = source.next() => match incoming {
                        Some(Ok(Message::Text(text))) => { let _ = tx.send(text); }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    },
                    outgoing = rx.recv() => match outgoing {
                        Ok(text) => {
                            // Everything already waiting goes out in one flush.
                            if sink.feed(Message::Text(text)).await.is_err() {
                                return;
                            }
                            while let Ok(text) = rx.try_recv() {
                                if sink.feed(Message::Text(text)).await.is_err() {
                                    return;
                                }
                            }
                            if sink.flush().await.is_err() {
                                return;
                            }
                        }
                        // A client too slow for the channel misses messages, as in the original.
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }
}
