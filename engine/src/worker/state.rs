//! One worker thread's state: the app, the Gateway API its callbacks use, which gateways are
//! listed and linked, the session versions, and what the thread publishes for status and metrics.
//! Only the thread itself touches it (`Rc`, `RefCell`); it is shared by its tasks.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::control::{LinkState, ThreadStats};
use super::session::Versions;
use crate::api::{Gateway, Links};
use crate::config::{StoreConfig, WorkerConfig};

pub(super) struct WorkerThread<A> {
    pub app: RefCell<A>,
    pub gateway: Gateway,
    /// The links' outboxes (shared with [`Gateway`]) and the listed addresses.
    pub links: Rc<RefCell<Links>>,
    /// Addresses with a link task (connected, connecting or waiting to retry).
    pub linking: RefCell<HashSet<String>>,
    /// Links whose gateway confirmed our WORKER_CONNECT (or that outlived the confirmation wait).
    pub confirmed: RefCell<HashSet<String>>,
    /// Links whose gateway has not yet confirmed our drain request.
    pub drain_pending: RefCell<HashSet<String>>,
    /// Retiring: no new links, no reconnects.
    pub retiring: Cell<bool>,
    pub versions: RefCell<Versions>,
    pub worker_key: String,
    pub secret: String,
    pub max_packet_size: usize,
    /// The app wants group presence events ([`Events::presence`](super::Events::presence)):
    /// said in the hello.
    pub presence: bool,
    /// `worker.max_gateways`: the most gateway shards this thread links to.
    pub max_gateways: usize,
    /// `worker.link_timeout`: a gateway silent for this long counts as gone.
    pub link_timeout: f64,
    pub stats: Arc<ThreadStats>,
}

impl<A: super::Events> WorkerThread<A> {
    pub fn new(
        config: &WorkerConfig,
        store: &StoreConfig,
        app: A,
        stats: Arc<ThreadStats>,
        worker_key: String,
    ) -> WorkerThread<A> {
        let links = Rc::new(RefCell::new(Links {
            output_cap: config.send_to_gateway_buffer_size,
            ..Links::default()
        }));
        WorkerThread {
            presence: app.presence(),
            app: RefCell::new(app),
            gateway: Gateway::new(links.clone(), &config.secret_key)
                .with_store(crate::store::Resolver::new(store)),
            links,
            linking: RefCell::default(),
            confirmed: RefCell::default(),
            drain_pending: RefCell::default(),
            retiring: Cell::new(false),
            versions: RefCell::default(),
            worker_key,
            secret: config.secret_key.clone(),
            max_packet_size: config.max_packet_size,
            max_gateways: config.max_gateways,
            link_timeout: config.link_timeout,
            stats,
        }
    }
}

impl<A> WorkerThread<A> {
    /// Whether `address` is in the newest list (within `max_gateways`).
    pub fn listed(&self, address: &str) -> bool {
        self.links.borrow().known.contains(address)
    }

    /// Publishes the listed gateways and which of them are linked: O(listed).
    pub fn publish_links(&self) {
        let links = self.links.borrow();
        let confirmed = self.confirmed.borrow();
        self.stats
            .listed
            .store(links.known.len() as u64, Ordering::SeqCst);
        self.stats
            .linked
            .store(confirmed.len() as u64, Ordering::SeqCst);
        self.stats
            .link_overflows
            .store(links.overflows, Ordering::SeqCst);
        let Ok(mut published) = self.stats.links.lock() else {
            return;
        };
        let since: HashMap<(&str, bool), std::time::SystemTime> = published
            .iter()
            .map(|l| ((l.gateway.as_str(), l.up), l.since))
            .collect();
        let now = std::time::SystemTime::now();
        let states: Vec<LinkState> = links
            .known
            .iter()
            .map(|gateway| {
                let up = confirmed.contains(gateway);
                LinkState {
                    gateway: gateway.clone(),
                    up,
                    since: since.get(&(gateway.as_str(), up)).copied().unwrap_or(now),
                }
            })
            .collect();
        drop(since);
        *published = states;
    }

    /// The gateway at `address` confirmed our link (or it outlived the confirmation wait).
    pub fn confirm(&self, address: &str) {
        let linked = self
            .links
            .borrow()
            .connected
            .values()
            .any(|link| link.address == address);
        if linked && self.confirmed.borrow_mut().insert(address.to_owned()) {
            self.publish_links();
        }
    }

    /// The link to `address` ended.
    pub fn link_lost(&self, address: &str) {
        self.links
            .borrow_mut()
            .connected
            .retain(|_, link| link.address != address);
        self.confirmed.borrow_mut().remove(address);
        self.drain_pending.borrow_mut().remove(address);
        self.publish_links();
    }
}
