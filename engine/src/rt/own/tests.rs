//! The own executor on both reactors: tasks, timers, foreign wakes, sockets, and that its I/O is
//! looked at between batches of tasks (what glommio needed pacing for).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{Read as _, Write as _};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::rt::{self, Backend, Cpu, ExecutorSpec};

const BACKENDS: [Backend; 2] = [Backend::IoUring, Backend::Epoll];

fn on<T: Send + 'static, Fut: std::future::Future<Output = T> + 'static>(
    backend: Backend,
    main: impl FnOnce() -> Fut + Send + 'static,
) -> T {
    let _alone = rt::exclusive_test();
    let spec = ExecutorSpec::new(format!("own-test-{backend}"), Cpu::Any).backend(backend);
    rt::start(spec, main).unwrap().join().unwrap()
}

#[test]
fn tasks_run_timers_fire_in_order_and_cancelled_tasks_stop() {
    for backend in BACKENDS {
        let (order, cancelled_ran) = on(backend, || async {
            let order = Rc::new(RefCell::new(Vec::new()));
            for (i, ms) in [(2, 30u64), (0, 10), (1, 20)] {
                let order = order.clone();
                rt::spawn(async move {
                    rt::sleep(Duration::from_millis(ms)).await;
                    order.borrow_mut().push(i);
                });
            }
            let ran = Rc::new(Cell::new(false));
            let flag = ran.clone();
            let task = rt::spawn_cancellable(async move {
                rt::sleep(Duration::from_millis(20)).await;
                flag.set(true);
            });
            task.cancel();
            let joined = rt::spawn_cancellable(async { 7 }).await;
            assert_eq!(joined, 7);
            rt::sleep(Duration::from_millis(60)).await;
            (order.take(), ran.get())
        });
        assert_eq!(order, [0, 1, 2], "{backend}");
        assert!(!cancelled_ran, "{backend}");
    }
}

#[test]
fn a_waker_used_from_another_thread_wakes_the_task() {
    for backend in BACKENDS {
        let woke = on(backend, || async {
            let started = Instant::now();
            let mut sent = false;
            poll_fn(|cx| {
                if sent {
                    return Poll::Ready(());
                }
                sent = true;
                let waker = cx.waker().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    waker.wake();
                });
                Poll::Pending
            })
            .await;
            started.elapsed()
        });
        // Parked with no timer: only the foreign wake can have ended the wait.
        assert!(woke >= Duration::from_millis(20), "{backend}");
    }
}

#[test]
fn sockets_connect_accept_echo_and_refuse() {
    for backend in BACKENDS {
        let (echoed, refused) = on(backend, || async {
            let listener = rt::listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
            let addr = listener.local_addr().unwrap();
            rt::spawn(async move {
                let mut stream = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).await.unwrap();
                }
            });
            let mut client = rt::connect(addr, Duration::from_secs(2)).await.unwrap();
            // More than a socket buffer holds: the writes and reads wait for readiness.
            let sent: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
            let mut back = vec![0u8; sent.len()];
            let writing = {
                let sent = sent.clone();
                let mut writer = rt::tcp_stream(dup(&client)).unwrap();
                rt::spawn_cancellable(async move { writer.write_all(&sent).await })
            };
            client.read_exact(&mut back).await.unwrap();
            writing.await.unwrap();
            // A closed port refuses.
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let gone = closed.local_addr().unwrap();
            drop(closed);
            let refused = rt::connect(gone, Duration::from_secs(2)).await.is_err();
            (back == sent, refused)
        });
        assert!(echoed, "{backend}");
        assert!(refused, "{backend}");
    }
}

/// A process that dies closes its descriptors without deregistering them. A listener the
/// reactor watches must then stop listening at once: one held by an io_uring poll request went
/// on taking connections until the ring was torn down, and they were reset.
#[test]
fn a_listener_closed_behind_the_reactors_back_stops_listening_at_once() {
    for backend in BACKENDS {
        let (accepted, rebound) = on(backend, || async {
            let listener = rt::listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
            let addr = listener.local_addr().unwrap();
            // Watched and accepting, as a shard's listener is.
            let client = std::net::TcpStream::connect(addr).unwrap();
            let accepted = listener.accept().await.is_ok();
            drop(client);
            let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
            let accepting = rt::spawn_cancellable(async move {
                let _ = listener.accept().await;
            });
            rt::sleep(Duration::from_millis(10)).await;
            // Close the socket's descriptor the way exit does, without deregistering it: put
            // /dev/null in its place, so that its owner later closes that instead.
            let null = std::fs::File::open("/dev/null").unwrap();
            // SAFETY: both descriptors are open; `fd` now names /dev/null until its owner
            // closes it.
            assert!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) } >= 0);
            rt::sleep(Duration::from_millis(1)).await;
            let rebound = std::net::TcpListener::bind(addr).is_ok();
            accepting.cancel();
            (accepted, rebound)
        });
        assert!(accepted, "{backend}");
        assert!(
            rebound,
            "{backend}: the port is free once the descriptor is closed"
        );
    }
}

fn dup(stream: &rt::TcpStream) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: dup of an open descriptor; the copy is owned by the result.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(libc::dup(stream.as_raw_fd())) }
}

#[test]
fn a_dropped_socket_is_closed_and_a_handed_over_one_keeps_its_bytes() {
    for backend in BACKENDS {
        let (closed, handed_over) = on(backend, || async {
            // Dropping the runtime's stream closes it: the other end reads its end at once.
            let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            drop(rt::unix_stream(theirs.into()).unwrap());
            ours.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let closed = ours.read(&mut [0u8; 8]).map_err(|e| e.kind());
            // A TCP stream handed over (as to the parking lot) stays open, out of the reactor,
            // with its unread bytes.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = rt::connect(listener.local_addr().unwrap(), Duration::from_secs(2))
                .await
                .unwrap();
            let (mut peer, _) = listener.accept().unwrap();
            peer.write_all(b"kept").unwrap();
            let mut plain = std::net::TcpStream::from(stream.into_fd().unwrap());
            plain.set_nonblocking(false).unwrap();
            plain
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut kept = [0u8; 4];
            plain.read_exact(&mut kept).unwrap();
            (closed, kept)
        });
        assert_eq!(closed, Ok(0), "{backend}: the other end saw the close");
        assert_eq!(&handed_over, b"kept", "{backend}");
    }
}

/// A task waiting on a socket pair for one byte: returns our end (write to it to wake the
/// reader) and what `count` said when the reader had its byte. Call on an executor thread.
fn waiting_reader(
    count: Rc<Cell<usize>>,
) -> (std::os::unix::net::UnixStream, Rc<Cell<Option<usize>>>) {
    let (theirs, ours) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut reader = rt::unix_stream(theirs.into()).unwrap();
    let seen = Rc::new(Cell::new(None));
    let seen_by_reader = seen.clone();
    rt::spawn(async move {
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte).await.unwrap();
        seen_by_reader.set(Some(count.get()));
    });
    (ours, seen)
}

/// Runs `steps` of a task that wakes itself after each, while a reader waits for a byte that
/// the first step writes; returns how many steps ran before the reader had its byte.
fn self_waking_steps_before_the_reader_ran(backend: Backend) -> usize {
    on(backend, || async {
        let steps = Rc::new(Cell::new(0usize));
        let (mut ours, seen) = waiting_reader(steps.clone());
        rt::sleep(Duration::from_millis(10)).await;
        poll_fn(|cx| {
            if steps.get() == 0 {
                ours.write_all(b"x").unwrap();
            }
            if seen.get().is_some() || steps.get() == 1000 {
                return Poll::Ready(());
            }
            steps.set(steps.get() + 1);
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
        steps.get()
    })
}

#[test]
fn a_task_that_wakes_itself_does_not_keep_the_loop_from_its_io() {
    for backend in BACKENDS {
        assert!(
            self_waking_steps_before_the_reader_ran(backend) <= 2,
            "{backend}: the reader runs at the next turn"
        );
    }
}

/// A broadcast's wave: 5,000 writers all ready at once, each counted in `wrote`; the first
/// one's write to `ours` is the news a waiting reader gets.
fn spawn_wave(ours: std::os::unix::net::UnixStream, wrote: &Rc<Cell<usize>>) {
    let ours = Rc::new(RefCell::new(ours));
    for i in 0..5000 {
        let (wrote, ours) = (wrote.clone(), ours.clone());
        rt::spawn(async move {
            if i == 0 {
                ours.borrow_mut().write_all(b"x").unwrap();
            }
            wrote.set(wrote.get() + 1);
        });
    }
}

/// Waits until the whole wave wrote and the reader had its byte; what `wrote` said then.
async fn until_wave_and_reader(wrote: &Cell<usize>, seen: &Cell<Option<usize>>) -> usize {
    while wrote.get() < 5000 || seen.get().is_none() {
        rt::sleep(Duration::from_millis(1)).await;
    }
    seen.get().unwrap()
}

#[test]
fn a_reader_woken_during_a_wave_of_writers_runs_after_one_batch_not_the_wave() {
    for backend in BACKENDS {
        let (written_before_read, total) = on(backend, || async {
            let wrote = Rc::new(Cell::new(0usize));
            let (ours, seen) = waiting_reader(wrote.clone());
            rt::sleep(Duration::from_millis(10)).await;
            spawn_wave(ours, &wrote);
            (until_wave_and_reader(&wrote, &seen).await, wrote.get())
        });
        assert_eq!(total, 5000);
        assert!(
            written_before_read <= super::executor::BATCH + 1,
            "{backend}: the reader waited for {written_before_read} writers"
        );
    }
}

#[test]
fn a_queued_connection_that_turns_readable_is_read_before_the_rest_of_the_wave() {
    // A client that both sends and receives (a chat's publisher): a broadcast queued its task
    // behind thousands of writers, then its request arrives. Its read runs after the batch
    // that was running, not when its place in the wave comes.
    for backend in BACKENDS {
        let (read_after, total) = on(backend, || async {
            let wrote = Rc::new(Cell::new(0usize));
            let seen = Rc::new(Cell::new(None));
            let waker: Rc<RefCell<Option<std::task::Waker>>> = Rc::new(RefCell::new(None));
            let (theirs, ours) = std::os::unix::net::UnixStream::pair().unwrap();
            let mut reader = rt::unix_stream(theirs.into()).unwrap();
            let (counted, seen_by_reader, own_waker) = (wrote.clone(), seen.clone(), waker.clone());
            rt::spawn(async move {
                let mut byte = [0u8; 1];
                let mut read = std::pin::pin!(reader.read_exact(&mut byte));
                poll_fn(|cx| {
                    *own_waker.borrow_mut() = Some(cx.waker().clone());
                    read.as_mut().poll(cx)
                })
                .await
                .unwrap();
                seen_by_reader.set(Some(counted.get()));
            });
            rt::sleep(Duration::from_millis(10)).await;
            spawn_wave(ours, &wrote);
            // The broadcast reaches the connection too: its task queues behind the writers.
            waker.borrow_mut().take().unwrap().wake();
            (until_wave_and_reader(&wrote, &seen).await, wrote.get())
        });
        assert_eq!(total, 5000);
        assert!(
            read_after <= super::executor::BATCH + 1,
            "{backend}: the connection read its request after {read_after} writers"
        );
    }
}

#[test]
fn an_urgent_task_woken_by_a_writer_runs_before_the_rest_of_the_wave() {
    for backend in BACKENDS {
        let ran_after = on(backend, || async {
            let wrote = Rc::new(Cell::new(0usize));
            let seen = Rc::new(Cell::new(None));
            let waker: Rc<RefCell<Option<std::task::Waker>>> = Rc::new(RefCell::new(None));
            // The link: urgent, waits until the first writer wakes it (queues events for it).
            let (counted, seen_by_link, parked) = (wrote.clone(), seen.clone(), waker.clone());
            rt::spawn(async move {
                rt::task::prefer_current();
                let mut waited = false;
                poll_fn(|cx| {
                    if waited {
                        return Poll::Ready(());
                    }
                    waited = true;
                    *parked.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                seen_by_link.set(Some(counted.get()));
            });
            rt::sleep(Duration::from_millis(10)).await;
            for i in 0..5000 {
                let (wrote, waker) = (wrote.clone(), waker.clone());
                rt::spawn(async move {
                    if i == 0 {
                        waker.borrow_mut().take().unwrap().wake();
                    }
                    wrote.set(wrote.get() + 1);
                });
            }
            while wrote.get() < 5000 || seen.get().is_none() {
                rt::sleep(Duration::from_millis(1)).await;
            }
            seen.get().unwrap()
        });
        assert!(
            ran_after <= super::executor::BATCH,
            "{backend}: the urgent task waited for {ran_after} writers"
        );
    }
}

#[test]
fn a_batch_writer_steps_aside_every_few_dozen_writes() {
    for backend in BACKENDS {
        let writes_before_the_reader = on(backend, || async {
            let wrote = Rc::new(Cell::new(0usize));
            let (mut ours, seen) = waiting_reader(wrote.clone());
            rt::sleep(Duration::from_millis(10)).await;
            // A parking lot's round: 5,000 writes in one task, the first one the link's news.
            let mut turn = rt::Turn::batch();
            poll_fn(|cx| {
                while wrote.get() < 5000 {
                    if rt::poll_turn(cx, &mut turn).is_pending() {
                        return Poll::Pending;
                    }
                    if wrote.get() == 0 {
                        ours.write_all(b"x").unwrap();
                    }
                    wrote.set(wrote.get() + 1);
                }
                Poll::Ready(())
            })
            .await;
            while seen.get().is_none() {
                rt::sleep(Duration::from_millis(1)).await;
            }
            seen.get().unwrap()
        });
        assert!(
            writes_before_the_reader <= 65,
            "{backend}: the reader waited for {writes_before_the_reader} writes"
        );
    }
}

#[test]
fn slots_and_sources_of_ended_connections_are_given_back() {
    // A crowd of clients connects, then parks or leaves: each had a task and a source, and the
    // executor keeps neither slab at that high-water mark.
    for backend in BACKENDS {
        let (crowd, after) = on(backend, || async {
            let before = super::executor::slab_lengths();
            let ended = Rc::new(Cell::new(0usize));
            for _ in 0..4500 {
                let ended = ended.clone();
                rt::spawn(async move {
                    let (theirs, ours) = std::os::unix::net::UnixStream::pair().unwrap();
                    drop(ours);
                    let socket = rt::unix_stream(theirs.into()).unwrap();
                    rt::sleep(Duration::from_millis(5)).await;
                    drop(socket);
                    ended.set(ended.get() + 1);
                });
            }
            rt::sleep(Duration::from_millis(1)).await;
            let crowd = super::executor::slab_lengths();
            while ended.get() < 4500 {
                rt::sleep(Duration::from_millis(5)).await;
            }
            // Parked once at least (the sleep), where the slabs give back.
            rt::sleep(Duration::from_millis(5)).await;
            let after = super::executor::slab_lengths();
            (
                crowd,
                (
                    after.0 - before.0.min(after.0),
                    after.1 - before.1.min(after.1),
                ),
            )
        });
        assert!(crowd.0 >= 4500 && crowd.1 >= 4500, "{backend}: {crowd:?}");
        assert!(
            after.0 <= 8 && after.1 <= 8,
            "{backend}: left {after:?} of {crowd:?}"
        );
    }
}
