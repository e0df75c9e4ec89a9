//! The connection driver: one task per connection, no separate reader and writer. Each wake-up it
//! writes what the [`Outbox`] holds (gathered with `sendmsg`, up to 64 frames per call), then reads
//! into a stack buffer and hands the bytes to the [`Peer`]. An idle connection therefore holds no
//! read buffer at all: only its task and its poll registration.

use std::future::poll_fn;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};

use super::pacing;
use super::sockets::TcpStream;
use crate::net::{Closing, Outbox};

/// Reads done in one wake-up before yielding to other connections.
const READS_PER_WAKE: usize = 16;
/// Size of the on-stack read chunk.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The read buffer of every connection on this executor thread, zeroed once rather than per
    /// read attempt (docs/benchmarks.md, "Measurements behind constants").
    static READ_BUFFER: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}
thread_local! {
    /// Capacity of large input buffers (a big message's) freed on this thread since the last
    /// [`take_freed_input`]: the owner may then give the pages back to the OS.
    static FREED_INPUT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An input buffer at least this large counts as freed memory worth returning.
const LARGE_INPUT: usize = 1 << 20;

/// Notes that `buffer` is about to be freed.
fn note_freed(buffer: &BytesMut) {
    if buffer.capacity() >= LARGE_INPUT {
        FREED_INPUT.set(FREED_INPUT.get() + buffer.capacity());
    }
}

/// Makes room for `n` more bytes in `input`. Small buffers double (as `BytesMut` does); a large
/// one (a big message arriving) grows by a quarter, so a half-received message holds at most a
/// quarter more than its bytes, not up to twice as much.
fn grow(input: &mut BytesMut, n: usize) {
    let len = input.len();
    if len < LARGE_INPUT {
        input.reserve(n);
        return;
    }
    let mut bigger = BytesMut::with_capacity(len + (len / 4).max(n));
    bigger.extend_from_slice(input);
    note_freed(input);
    *input = bigger;
}

/// Bytes of large input buffers freed on this thread since the last call.
pub fn take_freed_input() -> usize {
    FREED_INPUT.replace(0)
}

/// Frames gathered into one `sendmsg`.
const MAX_IOV: usize = 64;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side.
    PeerClosed,
    /// Closed on request after its output was written (a kick, a protocol error reply).
    Flushed,
    /// Closed on request at once (a destroy).
    Destroyed,
    /// The owner no longer knows this connection.
    Gone,
    /// A socket error.
    Error(io::ErrorKind),
}

impl CloseReason {
    /// A few words for a log line.
    pub fn describe(&self) -> std::borrow::Cow<'static, str> {
        match self {
            CloseReason::PeerClosed => "closed by the other end".into(),
            CloseReason::Flushed => "closed on request after its output was written".into(),
            CloseReason::Destroyed => "closed on request".into(),
            CloseReason::Gone => "no longer known".into(),
            CloseReason::Error(std::io::ErrorKind::TimedOut) => {
                "timed out (the peer answered no keepalive probe)".into()
            }
            CloseReason::Error(kind) => format!("socket error: {kind}").into(),
        }
    }
}

/// The protocol side of a connection.
pub trait Peer {
    /// Runs `f` on this connection's outbox; `None` when the owner has dropped the connection.
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R>;
    /// New bytes were appended to `input`: take every complete unit off its front. To refuse the
    /// input, queue any last words and close the outbox.
    fn on_input(&mut self, input: &mut BytesMut);
    /// The connection is over; called exactly once (unless it was parked: then [`drive`]
    /// returns the socket instead).
    fn on_closed(&mut self, reason: CloseReason);
    /// The output cap: while the socket is full and half of this is queued, the connection is
    /// not read from (backpressure: a peer that sends faster than it reads stops being read).
    fn output_cap(&self) -> usize {
        usize::MAX
    }
    /// Whether the connection holds no protocol state beyond what its owner keeps, so its task
    /// may end and hand the socket back (the return value of [`drive`]). Asked only after the
    /// owner requested it ([`Outbox::request_park`]), with no input pending and nothing queued.
    fn parkable(&self) -> bool {
        false
    }
    /// Whether this connection's output is fanout that takes turns with the executor's I/O
    /// ([`super::pacing`]): a client's yes, an inner link's no (the link is what the turns are
    /// for).
    fn paced(&self) -> bool {
        false
    }
}

/// How a connection's task ended.
enum Ending {
    Closed(CloseReason),
    Parked,
}

/// TLS state of a `wss://` connection: rustls plus ciphertext not yet written.
struct Tls {
    conn: rustls::ServerConnection,
    pending: Vec<u8>,
    written: usize,
}

/// Runs the connection until it ends, then tells the peer why; or, when the peer let it park,
/// returns its socket (to watch for readiness and give to a new task later).
pub async fn drive<P: Peer>(stream: TcpStream, peer: P) -> Option<OwnedFd> {
    drive_with(stream, peer, None).await
}

/// [`drive`] for a TLS connection: plaintext between the peer and rustls, ciphertext on the wire.
pub async fn drive_tls<P: Peer>(stream: TcpStream, peer: P, tls: rustls::ServerConnection) {
    let tls = Tls {
        conn: tls,
        pending: Vec::new(),
        written: 0,
    };
    // TLS connections never park (rustls keeps state).
    drop(drive_with(stream, peer, Some(Box::new(tls))).await);
}

/// The peer for the length of its connection's drive. However the drive ends — returned, or its
/// task dropped — the outbox forgets the writer's socket before the socket is closed or handed
/// on, so no direct write ([`write_direct`]) can reach a closed or reused descriptor.
struct Driven<P: Peer>(P);

impl<P: Peer> Drop for Driven<P> {
    fn drop(&mut self) {
        self.0.with_outbox(|outbox| outbox.forget_writer());
    }
}

async fn drive_with<P: Peer>(
    mut stream: TcpStream,
    peer: P,
    mut tls: Option<Box<Tls>>,
) -> Option<OwnedFd> {
    // Declared after `stream`, so dropped before it.
    let mut driven = Driven(peer);
    let peer = &mut driven.0;
    let mut input = BytesMut::new();
    let mut turn = peer.paced().then(pacing::Turn::default);
    if turn.is_none() {
        // An inner link (not a fanout writer): it goes before a broadcast's wave.
        super::task::prefer_current();
    }
    let ending = poll_fn(|cx| {
        let io = Io {
            stream: &mut stream,
            input: &mut input,
            tls: tls.as_deref_mut(),
            turn: turn.as_mut(),
        };
        poll_connection(io, peer, cx)
    })
    .await;
    note_freed(&input);
    drop(input);
    match ending {
        Ending::Closed(reason) => {
            peer.on_closed(reason);
            None
        }
        Ending::Parked => match stream.into_fd() {
            Ok(socket) => Some(socket),
            Err(e) => {
                peer.on_closed(CloseReason::Error(e.kind()));
                None
            }
        },
    }
}

/// A connection's side of the driver between polls.
struct Io<'a> {
    stream: &'a mut TcpStream,
    input: &'a mut BytesMut,
    tls: Option<&'a mut Tls>,
    /// A paced connection's place in the turns of fanout writers ([`Peer::paced`]).
    turn: Option<&'a mut pacing::Turn>,
}

/// One wake-up of a connection: write what is queued, then read until the socket is empty (or
/// [`READS_PER_WAKE`] reads, to let the other connections of the thread run).
fn poll_connection<P: Peer>(mut io: Io<'_>, peer: &mut P, cx: &mut Context<'_>) -> Poll<Ending> {
    let cap = peer.output_cap();
    let mut reads = 0;
    loop {
        if let Some(done) = write_step(&mut io, peer, cx, cap) {
            return done;
        }
        if reads == READS_PER_WAKE {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(done) = read_step(&mut io, peer, cx) {
            return done;
        }
        reads += 1;
    }
}

/// Writes what the connection's outbox holds (when a paced connection's turn has come).
/// `Some` ends this wake-up: closed, parked, or waiting for writability; `None` goes on to read.
#[inline]
fn write_step<P: Peer>(
    io: &mut Io<'_>,
    peer: &mut P,
    cx: &mut Context<'_>,
    cap: usize,
) -> Option<Poll<Ending>> {
    let closed = |reason| Some(Poll::Ready(Ending::Closed(reason)));
    let fd = io.stream.as_raw_fd();
    let plain = io.tls.is_none();
    let flushed = peer.with_outbox(|outbox| {
        outbox.set_waker(cx.waker());
        if plain {
            outbox.set_socket(fd);
        }
        // A paced connection writes when its turn comes (it is woken then); it reads
        // meanwhile.
        let my_turn = match io.turn.as_deref_mut() {
            Some(turn) if !outbox.is_empty() && !outbox.is_held() => {
                pacing::poll_turn(cx, turn).is_ready()
            }
            _ => true,
        };
        outbox.set_awaiting_turn(!my_turn);
        let result = match io.tls.as_deref_mut() {
            _ if !my_turn => Ok(false),
            Some(tls) => flush_tls(fd, io.stream, outbox, tls, cx),
            None => flush(fd, io.stream, outbox, cx),
        };
        let drained = outbox.is_empty()
            && io
                .tls
                .as_deref()
                .is_none_or(|t| t.written == t.pending.len() && !t.conn.wants_write());
        // A park request waits until the output is written (a paced client's output may
        // wait for its turn when the request comes).
        let park = drained && outbox.take_park_request();
        // The socket is full (a writability wake-up is armed) and half the cap is queued:
        // the peer has stopped reading.
        let backed_up = matches!(result, Ok(true)) && outbox.queued_bytes() >= cap / 2;
        (result, outbox.closing(), drained, (park, backed_up))
    });
    match flushed {
        None => closed(CloseReason::Gone),
        Some((Err(e), ..)) => closed(CloseReason::Error(e.kind())),
        Some((Ok(_), Some(Closing::Now), ..)) => closed(CloseReason::Destroyed),
        Some((Ok(_), Some(Closing::AfterFlush), true, _)) => closed(CloseReason::Flushed),
        // Closing after a flush that is still blocked: stop reading, wait for writability.
        Some((Ok(_), Some(Closing::AfterFlush), false, _)) => Some(Poll::Pending),
        // Backpressure: no reading until the peer has taken some of its output.
        Some((Ok(_), None, _, (_, true))) => Some(Poll::Pending),
        Some((Ok(_), None, drained, (park, false))) => {
            let parkable =
                park && drained && io.tls.is_none() && io.input.is_empty() && peer.parkable();
            parkable.then_some(Poll::Ready(Ending::Parked))
        }
    }
}

/// One read into the connection's input (decrypted with TLS), handed to the peer. `Some` ends
/// this wake-up: nothing to read, or the connection closed; `None` read something.
#[inline]
fn read_step<P: Peer>(io: &mut Io<'_>, peer: &mut P, cx: &mut Context<'_>) -> Option<Poll<Ending>> {
    let closed = |reason| Some(Poll::Ready(Ending::Closed(reason)));
    let Io {
        stream, input, tls, ..
    } = io;
    // The buffer is borrowed only for the read and the copy out of it (never across a
    // callback), so every connection of the thread can share it.
    let read = READ_BUFFER.with_borrow_mut(|chunk| {
        let read = Pin::new(&mut **stream).poll_read(cx, chunk);
        if let Poll::Ready(Ok(n)) = read
            && n > 0
        {
            match tls.as_deref_mut() {
                None => {
                    if input.capacity() - input.len() < n {
                        grow(input, n);
                    }
                    input.extend_from_slice(&chunk[..n]);
                }
                Some(tls) => return (read, Some(decrypt(tls, &chunk[..n], input))),
            }
        }
        (read, None)
    });
    match read {
        (Poll::Pending, _) => Some(Poll::Pending),
        (Poll::Ready(Ok(0)), _) => closed(CloseReason::PeerClosed),
        (Poll::Ready(Err(e)), _) => closed(CloseReason::Error(e.kind())),
        (Poll::Ready(Ok(_)), decrypted) => {
            match decrypted {
                None | Some(Ok(true)) => {}
                Some(Ok(false)) => return closed(CloseReason::PeerClosed),
                Some(Err(e)) => {
                    // Try to tell the peer (rustls queued an alert), then give up.
                    if let Some(tls) = tls.as_deref_mut() {
                        let _ = tls.conn.write_tls(&mut tls.pending);
                        let _ = send_now(stream.as_raw_fd(), &tls.pending[tls.written..]);
                    }
                    return closed(CloseReason::Error(e.kind()));
                }
            }
            peer.on_input(input);
            if input.is_empty() && input.capacity() > 0 {
                // Idle connections keep no read buffer: the next burst allocates afresh.
                note_freed(input);
                **input = BytesMut::new();
            }
            None
        }
    }
}

/// What one gathered write did.
enum Sent {
    /// The outbox had nothing to write (or is held).
    Nothing,
    /// Some bytes went out (and were consumed from the outbox).
    Some,
}

/// One non-blocking `sendmsg` of up to `MAX_IOV` of the outbox's frames (hot: every client write
/// passes here; no allocation).
fn send_gathered(fd: RawFd, outbox: &mut Outbox) -> io::Result<Sent> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV];
    let mut count = 0;
    for slice in outbox.pending_slices(MAX_IOV) {
        iov[count] = libc::iovec {
            iov_base: slice.as_ptr() as *mut libc::c_void,
            iov_len: slice.len(),
        };
        count += 1;
    }
    if count == 0 {
        return Ok(Sent::Nothing);
    }
    // SAFETY: a zeroed msghdr is valid; we set only the iovec array, which points at `count`
    // initialised iovecs over live slices borrowed from `outbox` for the duration of the call.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = count;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    outbox.consume(sent as usize);
    Ok(Sent::Some)
}

/// The direct write of an outbox (see [`Outbox::push_direct`]): as much as its writer's socket
/// takes, without blocking. A full socket or an error leaves frames queued, for the writer's
/// task to finish or to find the error in ([`Outbox::end_direct`] wakes it).
pub fn write_direct(outbox: &mut Outbox) {
    if let Some(fd) = outbox.socket() {
        let _ = send_parked(fd, outbox);
    }
}

/// Writes as much of a parked connection's outbox as its socket takes, without blocking.
/// `Ok(true)` when everything went out, `Ok(false)` when the socket is full.
pub fn send_parked(fd: RawFd, outbox: &mut Outbox) -> io::Result<bool> {
    loop {
        match send_gathered(fd, outbox) {
            Ok(Sent::Nothing) => return Ok(outbox.is_empty()),
            Ok(Sent::Some) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Writes as much of the outbox as the socket takes. `Ok(true)` when the socket is full (a
/// writability wake-up is registered), `Ok(false)` when nothing is left to write.
fn flush(
    fd: RawFd,
    stream: &mut TcpStream,
    outbox: &mut Outbox,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    loop {
        let err = match send_gathered(fd, outbox) {
            Ok(Sent::Nothing) => return Ok(false),
            Ok(Sent::Some) => continue,
            Err(err) => err,
        };
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                // Let the runtime arm a writability wake-up (it may also manage to write a little).
                let polled = {
                    let first = outbox.pending_slices(1).next().unwrap_or_default();
                    Pin::new(&mut *stream).poll_write(cx, first)
                };
                match polled {
                    Poll::Ready(Ok(n)) => outbox.consume(n),
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => return Ok(true),
                }
            }
            _ => return Err(err),
        }
    }
}

/// Feeds ciphertext to rustls and appends the plaintext it yields to `input`. `Ok(false)` when the
/// peer sent close_notify.
fn decrypt(tls: &mut Tls, mut ciphertext: &[u8], input: &mut BytesMut) -> io::Result<bool> {
    while !ciphertext.is_empty() {
        tls.conn.read_tls(&mut ciphertext)?;
        let state = tls
            .conn
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut left = state.plaintext_bytes_to_read();
        while left > 0 {
            let mut plain = [0u8; 4096];
            let n = tls.conn.reader().read(&mut plain)?;
            if n == 0 {
                break;
            }
            input.extend_from_slice(&plain[..n]);
            left -= n.min(left);
        }
        if state.peer_has_closed() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Moves the outbox's plaintext into rustls and writes the resulting ciphertext; same contract as
/// [`flush`].
fn flush_tls(
    fd: RawFd,
    stream: &mut TcpStream,
    outbox: &mut Outbox,
    tls: &mut Tls,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    loop {
        let mut moved = 0;
        loop {
            let written = match outbox.pending_slices(1).next() {
                Some(slice) => tls.conn.writer().write(slice)?,
                None => break,
            };
            let n = written;
            if n == 0 {
                break;
            }
            moved += n;
            outbox.consume(n);
        }
        if tls.written == tls.pending.len() {
            tls.pending.clear();
            tls.written = 0;
            while tls.conn.wants_write() {
                tls.conn.write_tls(&mut tls.pending)?;
            }
        }
        if tls.written == tls.pending.len() {
            if moved == 0 {
                return Ok(false);
            }
            continue;
        }
        match send_now(fd, &tls.pending[tls.written..]) {
            Ok(n) => tls.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match Pin::new(&mut *stream).poll_write(cx, &tls.pending[tls.written..]) {
                    Poll::Ready(Ok(n)) => tls.written += n,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => return Ok(true),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes everything `outbox` holds to `fd` now, waiting (up to `timeout`) for the socket to take
/// it. For a caller that is about to block on something that must see these bytes first (a worker
/// querying a gateway right after queueing a session write to it).
pub fn write_now(fd: RawFd, outbox: &mut Outbox, timeout: std::time::Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let err = match send_gathered(fd, outbox) {
            Ok(Sent::Nothing) => return Ok(()),
            Ok(Sent::Some) => continue,
            Err(err) => err,
        };
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            }
            _ => return Err(err),
        }
    }
}

/// One non-blocking `send`.
fn send_now(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is a live slice for the duration of the call.
        let sent = unsafe {
            libc::send(
                fd,
                data.as_ptr() as *const libc::c_void,
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::time::Duration;

    use bytes::BytesMut;

    use super::{CloseReason, Peer};
    use crate::net::Outbox;
    use crate::rt::{self, Backend, Cpu, ExecutorSpec};

    /// A peer whose outbox outlives its task (as a shard's client table does).
    struct Shared(Rc<RefCell<Outbox>>);

    impl Peer for Shared {
        fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
            Some(f(&mut self.0.borrow_mut()))
        }
        fn on_input(&mut self, input: &mut BytesMut) {
            input.clear();
        }
        fn on_closed(&mut self, _: CloseReason) {}
    }

    #[test]
    fn a_dropped_drive_forgets_its_socket_before_closing_it() {
        for backend in [Backend::IoUring, Backend::Epoll] {
            let _alone = rt::exclusive_test();
            let spec =
                ExecutorSpec::new(format!("driver-test-{backend}"), Cpu::Any).backend(backend);
            let (recorded, after_drop) = rt::start(spec, || async {
                let listener = rt::listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
                let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let stream = listener.accept().await.unwrap();
                let fd = stream.as_raw_fd();
                let outbox = Rc::new(RefCell::new(Outbox::default()));
                let task = rt::spawn_cancellable(rt::drive(stream, Shared(outbox.clone())));
                rt::sleep(Duration::from_millis(10)).await;
                let recorded = outbox.borrow().socket() == Some(fd);
                // The task is dropped mid-drive (its socket closes with it).
                task.cancel();
                rt::sleep(Duration::from_millis(10)).await;
                drop(client);
                (recorded, outbox.borrow().socket())
            })
            .unwrap()
            .join()
            .unwrap();
            assert!(recorded, "{backend}: a running task records its socket");
            assert_eq!(
                after_drop, None,
                "{backend}: no direct write after the drop"
            );
        }
    }
}
