//! [`StreamServer`]: the component that provides [`ByteStream`] over an [`EventLoop`] thread.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;

use kompics_core::{
    Component, ComponentDefinition, Context, Mailbox, Provide, ProvidedPort, Receive, System,
};
use parking_lot::Mutex;

use super::config::StreamConfig;
use super::event_loop::{EventBatch, EventLoop, Shared};
use super::{ByteStream, StreamRequest};

/// A running event loop: what it shares with the component, and its thread.
struct LoopHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LoopHandle {
    /// Binds and starts a loop on `config.listen`, reporting to `sink`.
    fn start(
        config: StreamConfig,
        sink: Mailbox<EventBatch>,
        next_id: Arc<AtomicU64>,
    ) -> io::Result<LoopHandle> {
        let (event_loop, shared) = EventLoop::bind(config, sink, next_id)?;
        let local = shared.local;
        let thread = std::thread::Builder::new()
            .name(format!("kstream:{}", local.port()))
            .spawn(move || event_loop.run())?;
        log::info!("kstream {local}: listening");
        Ok(LoopHandle { shared, thread: Some(thread) })
    }

    /// Stops the loop and waits for its thread (unless called on that thread itself).
    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.request_stop();
        if thread.thread().id() == std::thread::current().id() {
            return; // the loop ends after this round; joining itself would deadlock
        }
        if thread.join().is_err() {
            log::error!("kstream {}: the event loop panicked", self.shared.local);
        }
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What outlives one instance of the component (a restart after a fault calls the factory
/// again): the running loop, the configuration to start a new one with, and the id counter.
struct Slot {
    running: Option<LoopHandle>,
    /// `listen` is the bound address, so a restarted loop binds the same port.
    config: StreamConfig,
    next_id: Arc<AtomicU64>,
}

/// The byte-stream server component: provides [`ByteStream`] for the client connections of
/// one listening socket. See the [module docs](super) for the contract.
pub struct StreamServer {
    port: ProvidedPort<ByteStream>,
    events: Mailbox<EventBatch>,
    slot: Arc<Mutex<Slot>>,
    /// The running loop's shared state (`None` while stopped): requests go there.
    shared: Option<Arc<Shared>>,
    local: SocketAddr,
}

impl StreamServer {
    /// Binds `config.listen` (port 0 picks a free port), starts the event-loop thread and
    /// creates the component, passive: connect its users, then start it. Connections are
    /// accepted from now on; their events wait for the start.
    ///
    /// Fails with `InvalidInput` for an invalid configuration, or with the OS error (such as
    /// `AddrInUse`) if the address cannot be bound.
    pub fn create(system: &System, config: StreamConfig) -> io::Result<Component<StreamServer>> {
        config.validate()?;
        let slot = Arc::new(Mutex::new(Slot {
            running: None,
            config: config.clone(),
            next_id: Arc::new(AtomicU64::new(0)),
        }));
        let shared_slot = Arc::clone(&slot);
        let component = system.create(move |s| {
            let slot = shared_slot.lock();
            let shared = slot.running.as_ref().map(|h| Arc::clone(&h.shared));
            StreamServer {
                port: s.provided(),
                events: s.mailbox(),
                slot: Arc::clone(&shared_slot),
                local: shared.as_ref().map_or(slot.config.listen, |s| s.local),
                shared,
            }
        });
        let next_id = Arc::clone(&slot.lock().next_id);
        let handle = match LoopHandle::start(config, component.mailbox::<EventBatch>(), next_id) {
            Ok(handle) => handle,
            Err(e) => {
                component.kill();
                return Err(e);
            }
        };
        let shared = Arc::clone(&handle.shared);
        let local = shared.local;
        {
            let mut slot = slot.lock();
            slot.config.listen = local;
            slot.running = Some(handle);
        }
        component.on_definition(|s| {
            s.local = local;
            s.shared = Some(shared);
        });
        Ok(component)
    }

    /// The address the server listens on (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the event loop, if running, and joins its thread.
    fn stop_loop(&mut self) {
        self.shared = None;
        // Taken out of the slot first: joining while holding the lock is not needed.
        let handle = self.slot.lock().running.take();
        if let Some(mut handle) = handle {
            handle.stop();
        }
    }
}

impl ComponentDefinition for StreamServer {
    /// Starts a new event loop on the same address if a stop ended the previous one.
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        let mut slot = self.slot.lock();
        if let Some(handle) = &slot.running {
            self.shared = Some(Arc::clone(&handle.shared));
            return;
        }
        let config = slot.config.clone();
        match LoopHandle::start(config, self.events.clone(), Arc::clone(&slot.next_id)) {
            Ok(handle) => {
                self.shared = Some(Arc::clone(&handle.shared));
                slot.running = Some(handle);
            }
            Err(e) => log::error!("kstream {}: cannot listen again: {e}", self.local),
        }
    }

    fn on_stop(&mut self, _ctx: &mut Context<Self>) {
        self.stop_loop();
    }

    fn on_kill(&mut self, _ctx: &mut Context<Self>) {
        self.stop_loop();
    }
}

impl Provide<ByteStream> for StreamServer {
    fn handle(&mut self, _ctx: &mut Context<Self>, request: StreamRequest) {
        // While stopped every connection is closed (its `Closed` is queued): nothing to do.
        if let Some(shared) = &self.shared {
            shared.request(request);
        }
    }
}

impl Receive<EventBatch> for StreamServer {
    fn receive(&mut self, _ctx: &mut Context<Self>, batch: EventBatch) {
        for event in batch.0 {
            self.port.trigger(event);
        }
    }
}
