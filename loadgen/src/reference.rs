//! The reference server of `loadgen --calibrate`: the least a WebSocket broadcast (or echo)
//! server can do, inside loadgen, so a run against it measures loadgen's own floor on this box. One executor
//! thread; each connection a task that does the upgrade, then decodes frames; every text message
//! is encoded once and queued to every connection, whose task writes its queue as the socket
//! takes it; a ping is answered. No worker, no routing, no limits: not a server to run, a yardstick.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use gatewire::rt::{self, TcpListener, TcpStream};
use gatewire_proto::websocket::{self, FrameDecoder, Message, OpCode};
use socket2::{Domain, Protocol, Socket, Type};

/// Largest message the broadcaster takes.
const MAX_MESSAGE: usize = 1 << 20;

/// One connection's output, shared with whoever broadcasts.
struct Outbox {
    fd: RawFd,
    queue: VecDeque<Bytes>,
    waker: Option<Waker>,
}

type Everyone = Rc<RefCell<Vec<Rc<RefCell<Outbox>>>>>;

/// Starts the reference server on a loopback port of its own; returns its address. With `echo`
/// every message goes back to its sender only (for the echo scenario), else to everyone.
pub fn start(echo: bool) -> Result<SocketAddr, String> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("reference broadcaster: {e}"))?;
    let _ = socket.set_reuse_address(true);
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    socket
        .bind(&any.into())
        .and_then(|()| socket.listen(65535))
        .map_err(|e| format!("reference broadcaster: {e}"))?;
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("reference broadcaster: no local address")?;
    let socket = OwnedFd::from(socket);
    let spec = rt::ExecutorSpec::new("reference", rt::Cpu::Any);
    rt::start(spec, move || async move {
        match rt::tcp_listener(socket) {
            Ok(listener) => serve(listener, echo).await,
            Err(e) => eprintln!("reference broadcaster: {e}"),
        }
    })
    .map_err(|e| format!("reference broadcaster: {e}"))?;
    Ok(addr)
}

async fn serve(listener: TcpListener, echo: bool) {
    let everyone: Everyone = Rc::default();
    while let Ok(stream) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        rt::spawn(connection(stream, everyone.clone(), echo));
    }
}

async fn connection(mut stream: TcpStream, everyone: Everyone, echo: bool) {
    let mut input = BytesMut::new();
    let mut chunk = vec![0u8; 16 * 1024];
    // The upgrade.
    let response = loop {
        match websocket::parse_request(&input, websocket::DEFAULT_MAX_HANDSHAKE_LEN) {
            Ok(Some((request, used))) => {
                input.advance(used);
                match request.accept_key() {
                    Ok(key) => break websocket::response_101(&key, ""),
                    Err(_) => return,
                }
            }
            Ok(None) => {}
            Err(_) => return,
        }
        match futures_lite::AsyncReadExt::read(&mut stream, &mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
        }
    };
    if futures_lite::AsyncWriteExt::write_all(&mut stream, &response)
        .await
        .is_err()
    {
        return;
    }
    let me = Rc::new(RefCell::new(Outbox {
        fd: stream.as_raw_fd(),
        queue: VecDeque::new(),
        waker: None,
    }));
    everyone.borrow_mut().push(me.clone());
    let mut decoder = FrameDecoder::server(MAX_MESSAGE);
    let mut written = 0usize;
    poll_fn(|cx| {
        loop {
            // Write what is queued, gathered, as far as the socket takes it.
            let blocked = match flush(&me, &mut written) {
                Ok(true) => false,
                Ok(false) => {
                    // Full: let the runtime wake this task when the socket drains.
                    let mut outbox = me.borrow_mut();
                    let front = outbox.queue.front().cloned().unwrap_or_default();
                    match Pin::new(&mut stream).poll_write(cx, &front[written..]) {
                        Poll::Ready(Ok(n)) => {
                            written += n;
                            if written == front.len() {
                                outbox.queue.pop_front();
                                written = 0;
                            }
                            continue;
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => true,
                    }
                }
                Err(_) => return Poll::Ready(()),
            };
            me.borrow_mut().waker = Some(cx.waker().clone());
            // Read, and broadcast every text message.
            match Pin::new(&mut stream).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => {
                    input.extend_from_slice(&chunk[..n]);
                    loop {
                        match decoder.decode(&mut input) {
                            Ok(Some(Message::Text(payload))) if echo => {
                                let mut outbox = me.borrow_mut();
                                outbox.queue.push_back(websocket::text_frame(&payload));
                            }
                            Ok(Some(Message::Text(payload))) => broadcast(&everyone, &payload),
                            Ok(Some(Message::Ping(payload))) => {
                                let mut pong = BytesMut::new();
                                websocket::encode_frame(OpCode::Pong, &payload, &mut pong);
                                me.borrow_mut().queue.push_back(pong.freeze());
                            }
                            Ok(Some(Message::Close(_))) | Err(_) => return Poll::Ready(()),
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                        }
                    }
                }
                Poll::Pending if blocked || me.borrow().queue.is_empty() => return Poll::Pending,
                // Something was queued meanwhile (this connection's own broadcast): write it.
                Poll::Pending => {}
            }
        }
    })
    .await;
    everyone.borrow_mut().retain(|o| !Rc::ptr_eq(o, &me));
}

/// Encodes one frame, queues it to every connection and wakes their tasks, which write
/// everything queued for them in one gathered `sendmsg`.
fn broadcast(everyone: &Everyone, payload: &[u8]) {
    let frame = websocket::text_frame(payload);
    for outbox in everyone.borrow().iter() {
        let mut outbox = outbox.borrow_mut();
        outbox.queue.push_back(frame.clone());
        if let Some(waker) = outbox.waker.take() {
            waker.wake();
        }
    }
}

/// Writes the queue with non-blocking gathered `sendmsg` calls (up to 64 frames each): `true`
/// once it is empty, `false` when the socket is full.
fn flush(outbox: &Rc<RefCell<Outbox>>, written: &mut usize) -> std::io::Result<bool> {
    let mut outbox = outbox.borrow_mut();
    while !outbox.queue.is_empty() {
        let iov: Vec<libc::iovec> = outbox
            .queue
            .iter()
            .take(64)
            .enumerate()
            .map(|(i, frame)| {
                let start = if i == 0 { *written } else { 0 };
                libc::iovec {
                    iov_base: frame[start..].as_ptr() as *mut libc::c_void,
                    iov_len: frame.len() - start,
                }
            })
            .collect();
        // SAFETY: a zeroed msghdr is valid; it points at `iov`, which outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        // SAFETY: `fd` is this connection's open socket; the buffers live in `queue`.
        let sent =
            unsafe { libc::sendmsg(outbox.fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(false),
                std::io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        let mut left = sent as usize;
        while left > 0 {
            let front_left = outbox.queue[0].len() - *written;
            if left >= front_left {
                left -= front_left;
                outbox.queue.pop_front();
                *written = 0;
            } else {
                *written += left;
                left = 0;
            }
        }
    }
    Ok(true)
}
