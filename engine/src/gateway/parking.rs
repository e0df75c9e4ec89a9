//! Parking idle clients, the I/O side: a client that has sent nothing for a while costs only its
//! client record in the core and its socket. Its task and stream are dropped, and the socket waits
//! in the shard's [`ReadinessSet`](crate::rt::ReadinessSet), owned by the [`ParkingLot`]; the set's
//! helper thread reports readable sockets and the shard gives each a new task. Output for a
//! parked client is written straight from the lot, a round of clients at a time, each write
//! taking its turn with the shard's I/O as a batch writer ([`rt::poll_turn`], [`rt::Turn::batch`]),
//! so the shard reads its links meanwhile (docs/architecture.md, scheduling within a shard); only a full
//! socket or a close request wakes a parked client up.
//! What to park, flush and wake the core decides (`core::idle`), as ids.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tracing::warn;

use crate::gateway::core::shard::Shard;
use crate::rt::{self, ReadinessSet, ReadyIds};

/// Parks since the last heap collection that make the next one worth its cost.
const COLLECT_AFTER_PARKS: u64 = 1024;

/// A shard's parked sockets, watched for readiness.
#[derive(Debug)]
pub struct ParkingLot {
    sockets: ReadinessSet,
}

impl ParkingLot {
    /// Takes over the socket of client `id`, whose task just ended idle.
    pub fn park(&mut self, shard: &mut Shard, id: u32, socket: OwnedFd) {
        if !shard.parked(id) {
            return; // gone meanwhile: the socket closes here
        }
        if let Err(e) = self.sockets.add(id, socket) {
            warn!(error = %e, "epoll_ctl: cannot park a client");
            shard.unpark_soon(id);
        }
    }

    /// Writes what parked client `id` has queued; asks for a task when its socket is full.
    fn flush(&mut self, shard: &mut Shard, id: u32) {
        let Some(fd) = self.sockets.fd(id) else {
            return;
        };
        let Some(outbox) = shard.parked_output_to_write(id) else {
            return;
        };
        match rt::send_parked(fd, outbox) {
            Ok(true) => outbox.shrink_if_empty(),
            // Full, or failed: a task takes over (and finds the error itself).
            Ok(false) | Err(_) => shard.unpark_soon(id),
        }
    }
}

/// Sets up parking for a shard: the readiness set with its helper thread, and the sweep of idle
/// clients every `every`. Call on the shard's thread, after its fd table is its own; then run
/// [`serve`] with the returned ids.
pub fn start(
    shard: &Rc<RefCell<Shard>>,
    every: Duration,
) -> std::io::Result<(Rc<RefCell<ParkingLot>>, ReadyIds)> {
    let name = format!("park-{}", shard.borrow().settings().index);
    let (sockets, ready) = ReadinessSet::new(name)?;
    shard.borrow_mut().enable_parking();
    let lot = Rc::new(RefCell::new(ParkingLot { sockets }));
    let sweeping = shard.clone();
    rt::spawn(async move {
        let mut parked_before = 0;
        loop {
            rt::sleep(every).await;
            let parked = {
                let mut s = sweeping.borrow_mut();
                s.sweep_idle();
                s.stats().parked
            };
            if parked >= parked_before + COLLECT_AFTER_PARKS {
                // The tasks and streams of the clients parked since the last sweep are freed:
                // give their pages back to the OS instead of keeping them in this thread's heap.
                crate::system::give_back_freed_memory();
                parked_before = parked;
            }
        }
    });
    Ok((lot, ready))
}

/// The lot's task: writes parked clients' output, and gives a new task (through `resume`) to
/// those the helper found readable and those the core woke; the socket of a client that is gone
/// is closed.
pub async fn serve(
    shard: Rc<RefCell<Shard>>,
    lot: Rc<RefCell<ParkingLot>>,
    mut ready: ReadyIds,
    resume: impl Fn(u32, OwnedFd),
) {
    let mut readable = Vec::new();
    // The round being written: the ids that had output when it began, written from `next` on.
    let mut round: Vec<u32> = Vec::new();
    let mut next = 0;
    let mut turn = rt::Turn::batch();
    let wake_one = |id: u32| {
        let Some(socket) = lot.borrow_mut().sockets.take(id) else {
            return;
        };
        if shard.borrow_mut().unparked(id) {
            resume(id, socket);
        }
    };
    std::future::poll_fn(|cx| {
        loop {
            let mut idle = true;
            if next == round.len() {
                let Some(work) = shard.borrow_mut().take_parking_work(cx.waker()) else {
                    return Poll::Ready(());
                };
                idle = work.dirty.is_empty() && work.wake.is_empty();
                (round, next) = (work.dirty, 0);
                for id in work.wake {
                    wake_one(id);
                }
            }
            // A round to many clients takes a while (a broadcast to 5,000 parked clients, tens of
            // milliseconds; to 15,000 with both ends on two cores, over 100 ms): each write takes
            // its turn with the executor's I/O (as a batch writer: it waits only through pauses).
            // Messages read during a pause join the writes of the clients not reached yet.
            while next < round.len() {
                idle = false;
                if rt::poll_turn(cx, &mut turn).is_pending() {
                    return Poll::Pending;
                }
                lot.borrow_mut().flush(&mut shard.borrow_mut(), round[next]);
                next += 1;
            }
            match ready.poll_ids(cx, &mut readable) {
                Poll::Ready(false) => return Poll::Ready(()),
                Poll::Ready(true) => {
                    for id in readable.drain(..) {
                        wake_one(id);
                    }
                }
                Poll::Pending if idle => return Poll::Pending,
                // Flushing may have asked for more work (a full socket): go round again.
                Poll::Pending => {}
            }
        }
    })
    .await;
    warn!("parking helper ended; parked clients are no longer watched");
}
