//! Worker threads: start, and each thread's life — learn the gateway list from every register
//! ([`super::links`]), serve events until asked to stop or drain, then flush and end.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gatewire_proto::command::{Command, Control};
use tracing::{info, warn};

use super::control::WorkerControl;
use super::events::{Events, WorkerInfo};
use super::links::AddressBook;
use super::state::WorkerThread;
use crate::config::{StoreConfig, WorkerConfig};
use crate::net;
use crate::register::keep_registered;
use crate::rt;

/// How often a worker thread looks at the stop and drain requests.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How long a stopping thread lets its links flush what its callbacks queued.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Running worker threads and the handle to steer and watch them.
#[derive(Debug)]
pub struct Workers {
    pub threads: Vec<std::thread::JoinHandle<()>>,
    pub control: Arc<WorkerControl>,
}

/// Starts `config.count` worker threads running clones of `app`; with `store` on, their uid and
/// group commands go only to the gateways holding them.
pub fn start<A: Events>(
    config: &WorkerConfig,
    store: &StoreConfig,
    app: A,
) -> Result<Workers, rt::ExecutorError> {
    let count = config.thread_count();
    let control = Arc::new(WorkerControl::new(count));
    let mut threads = Vec::with_capacity(count);
    for index in 0..count {
        let (config, app, control) = (config.clone(), app.clone(), control.clone());
        let store = store.clone();
        let spec = rt::ExecutorSpec::new(
            format!("worker-{index}"),
            crate::placement::worker(&config.cpus, index),
        );
        let handle = rt::start(spec, move || async move {
            run_thread(config, store, index, app, control).await
        })?;
        threads.push(std::thread::spawn(move || {
            let _ = handle.join();
        }));
    }
    info!(count, name = %config.name, generation = config.generation, "business workers started");
    Ok(Workers { threads, control })
}

async fn run_thread<A: Events>(
    config: WorkerConfig,
    store: StoreConfig,
    index: usize,
    app: A,
    control: Arc<WorkerControl>,
) {
    let stats = control.threads[index].clone();
    let worker_key = config.worker_key(index);
    let _ = stats.worker_key.set(worker_key.clone());
    let worker = Rc::new(WorkerThread::new(&config, &store, app, stats, worker_key));
    let info = WorkerInfo {
        worker_key: worker.worker_key.clone(),
        index,
    };
    worker.app.borrow_mut().on_worker_start(&info);
    let book = Rc::new(RefCell::new(AddressBook {
        worker: worker.clone(),
    }));
    for register in &config.register_address {
        rt::spawn(keep_registered(
            *register,
            book.clone(),
            config.link_timeout,
        ));
    }
    while !control.stopping() && !control.draining() {
        rt::sleep(STOP_POLL).await;
    }
    worker.retiring.set(true);
    if control.draining() && !control.stopping() {
        let timeout = Duration::from_secs_f64(config.drain_timeout);
        drain(&worker, timeout, &control).await;
    }
    worker.app.borrow_mut().on_worker_stop(&info);
    flush_and_close(&worker).await;
    worker.stats.finished.store(true, Ordering::SeqCst);
    info!(worker = %worker.worker_key, "worker stopped");
}

/// Asks every linked gateway to route nothing new to this thread and handles events until each
/// has confirmed (its confirmation follows the last event it sent us), a link is lost, the
/// timeout passes, or a plain stop is requested.
async fn drain<A>(worker: &WorkerThread<A>, timeout: Duration, control: &WorkerControl) {
    let Ok(request) = Command::Control(Control::Drain).to_packet().to_bytes() else {
        return;
    };
    {
        let links = worker.links.borrow();
        let mut pending = worker.drain_pending.borrow_mut();
        for link in links.connected.values() {
            pending.insert(link.address.clone());
            link.outbox.borrow_mut().push(request.clone());
        }
    }
    let deadline = Instant::now() + timeout;
    while !worker.drain_pending.borrow().is_empty()
        && Instant::now() < deadline
        && !control.stopping()
    {
        rt::sleep(Duration::from_millis(5)).await;
    }
    let left = worker.drain_pending.borrow();
    if left.is_empty() {
        info!(worker = %worker.worker_key, "drained: every gateway confirmed");
    } else {
        warn!(
            worker = %worker.worker_key,
            gateways = ?left,
            "drain not confirmed (a PHP gateway does not answer it); stopping anyway"
        );
    }
}

/// What the callbacks queued goes out before the links close (for at most [`FLUSH_WAIT`]).
async fn flush_and_close<A>(worker: &WorkerThread<A>) {
    for link in worker.links.borrow().connected.values() {
        link.outbox.borrow_mut().close(net::Closing::AfterFlush);
    }
    let deadline = Instant::now() + FLUSH_WAIT;
    while !worker.links.borrow().connected.is_empty() && Instant::now() < deadline {
        rt::sleep(Duration::from_millis(10)).await;
    }
}
