//! A descriptor registered with this thread's reactor, and its I/O: try the system call; on
//! `EAGAIN` remember the task and wait for the descriptor's next readiness edge.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::executor::with_local;
use super::reactor::Direction;

/// A non-blocking descriptor watched by the current thread's reactor.
#[derive(Debug)]
pub struct Registered {
    fd: Option<OwnedFd>,
    token: u64,
}

fn cvt(result: isize) -> io::Result<usize> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result as usize)
    }
}

impl Registered {
    /// Makes `fd` non-blocking and watches it (on the current executor thread).
    pub fn new(fd: OwnedFd) -> io::Result<Registered> {
        Registered::watch(fd, false)
    }

    /// [`Registered::new`] for a listening socket, which the reactor must not keep open
    /// ([`super::reactor::Reactor::register_listener`]).
    pub fn listener(fd: OwnedFd) -> io::Result<Registered> {
        Registered::watch(fd, true)
    }

    fn watch(fd: OwnedFd, listener: bool) -> io::Result<Registered> {
        socket2::SockRef::from(&fd).set_nonblocking(true)?;
        with_local(|local| {
            let token = local.sources.borrow_mut().insert();
            let mut reactor = local.reactor.borrow_mut();
            let registered = match listener {
                true => reactor.register_listener(fd.as_raw_fd(), token),
                false => reactor.register(fd.as_raw_fd(), token),
            };
            match registered {
                Ok(()) => Ok(Registered {
                    fd: Some(fd),
                    token,
                }),
                Err(e) => {
                    local.sources.borrow_mut().remove(token);
                    Err(e)
                }
            }
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Runs `call` when the descriptor may be ready for `direction`; `Pending` (the task woken
    /// at the next edge) when it is not.
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut call: impl FnMut(RawFd) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let fd = self.raw();
        with_local(|local| {
            loop {
                if !local.sources.borrow_mut().is_ready(self.token, direction) {
                    local
                        .sources
                        .borrow_mut()
                        .wait_for(self.token, direction, cx.waker());
                    return Poll::Pending;
                }
                match call(fd) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        local
                            .sources
                            .borrow_mut()
                            .wait_for(self.token, direction, cx.waker());
                        return Poll::Pending;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    result => return Poll::Ready(result),
                }
            }
        })
    }

    /// A read that got less than it asked for emptied the socket: the next read waits for
    /// the next edge instead of making a system call to hear `EAGAIN` (an edge comes for every
    /// arrival after this read). That is one system call less per message on every socket.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let want = buf.len();
        let read = self.poll_io(cx, Direction::Read, |fd| {
            // SAFETY: `buf` is a live, writable buffer of its length. `recv` rather than `read`:
            // every registered descriptor is a socket, and `recv` skips the file layer's checks.
            cvt(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
        });
        if matches!(read, Poll::Ready(Ok(n)) if n > 0 && n < want) {
            with_local(|local| {
                local
                    .sources
                    .borrow_mut()
                    .drained(self.token, Direction::Read)
            });
        }
        read
    }

    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Direction::Write, |fd| {
            // SAFETY: `buf` is a live buffer of its length.
            cvt(unsafe {
                libc::send(
                    fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            })
        })
    }

    /// Accepts a connection: its descriptor (non-blocking, close-on-exec).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        self.poll_io(cx, Direction::Read, |fd| {
            // SAFETY: accept4 without an address buffer.
            let accepted = unsafe {
                libc::accept4(
                    fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if accepted < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor that we own.
            Ok(unsafe { OwnedFd::from_raw_fd(accepted) })
        })
    }

    /// Waits until the descriptor's next write-readiness edge (a connect in progress).
    async fn writable_edge(&self) {
        let mut armed = false;
        poll_fn(|cx| {
            with_local(|local| {
                let mut sources = local.sources.borrow_mut();
                if !armed {
                    armed = true;
                    sources.wait_for(self.token, Direction::Write, cx.waker());
                    return Poll::Pending;
                }
                if sources.is_ready(self.token, Direction::Write) {
                    Poll::Ready(())
                } else {
                    sources.wait_for(self.token, Direction::Write, cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// Stops watching the descriptor and hands it over.
    pub fn into_fd(mut self) -> OwnedFd {
        self.deregister();
        self.fd.take().expect("a registered descriptor")
    }

    fn deregister(&mut self) {
        let fd = self.raw();
        let token = self.token;
        if fd >= 0 {
            with_local(|local| {
                local.reactor.borrow_mut().deregister(fd, token);
                local.sources.borrow_mut().remove(token);
            });
        }
    }
}

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.fd.is_some() && super::executor::on_executor() {
            self.deregister();
        }
    }
}

/// Connects a TCP socket to `addr`, giving up after `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Registered> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    let in_progress = match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) => return Err(e),
    };
    let registered = Registered::new(OwnedFd::from(socket))?;
    if in_progress {
        let connected = async {
            registered.writable_edge().await;
            Ok(())
        };
        let expired = async {
            super::executor::sleep(timeout).await;
            Err(io::Error::from(io::ErrorKind::TimedOut))
        };
        futures_lite::future::or(connected, expired).await?;
        // SAFETY: the descriptor stays open while borrowed.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(registered.raw()) };
        if let Some(e) = socket2::SockRef::from(&fd).take_error()? {
            return Err(e);
        }
    }
    Ok(registered)
}
