//! The epoll reactor (for where io_uring is blocked: default container seccomp profiles,
//! `kernel.io_uring_disabled`): mio's edge-triggered registration, one `epoll_wait` per park.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::edge::Readiness;

/// An epoll set and the buffer its events are read into.
#[allow(missing_debug_implementations)]
pub struct Epoll {
    poll: Poll,
    events: Events,
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
        })
    }

    pub fn register(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(token as usize),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    pub fn deregister(&mut self, fd: RawFd) {
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<(u64, Readiness)>,
    ) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            let failed = event.is_error();
            out.push((
                event.token().0 as u64,
                Readiness {
                    readable: event.is_readable() || event.is_read_closed() || failed,
                    writable: event.is_writable() || event.is_write_closed() || failed,
                },
            ));
        }
        Ok(())
    }
}
