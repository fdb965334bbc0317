//! Channels: the connections between a provided port and a required port of the same type.
//!
//! An event triggered on a port goes down every channel connected to it, one clone per channel
//! (Kompics' publish semantics). Events on one channel arrive in the order they were triggered.
//! A [`Selector`] on a channel lets only matching events through, so a provider can serve many
//! instances of a component over one port (the network routes messages to component instances
//! this way).
//!
//! Internally each port side has an inbox (a lock-free queue of the events arriving at it) and a
//! list of outlets (the inboxes its triggers go to). The list is copied into the triggering port
//! and refreshed only when a channel is connected or disconnected, so the hot path takes no lock.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_queue::SegQueue;
use parking_lot::Mutex;

use crate::component::core::{enqueue, Schedulable};
use crate::event::Event;
use crate::port::{Port, ProvidedRef, RequiredRef};

static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(1);

/// Work waiting for a port's owner to exist: the owner is built by `Arc::new_cyclic`, so while
/// its factory runs (and connects its ports) it cannot be reached yet.
type WhenBorn = Box<dyn FnOnce(Arc<dyn Schedulable>) + Send>;

thread_local! {
    /// Whether a restart is running a component's factory or `on_init` again (see [`rewiring`]).
    static REWIRING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as rebuilding a restarted component until the guard is dropped:
/// the factory and `on_init` run again on the same ports, which keep their channels, so a
/// `connect` between two ports already connected returns the existing channel instead of
/// doubling it.
pub(crate) fn rewiring() -> RewiringGuard {
    RewiringGuard { previous: REWIRING.with(|r| r.replace(true)) }
}

/// Ends a [`rewiring`] scope when dropped.
pub(crate) struct RewiringGuard {
    previous: bool,
}

impl Drop for RewiringGuard {
    fn drop(&mut self) {
        REWIRING.with(|r| r.set(self.previous));
    }
}

/// A filter deciding which events may go down a channel.
pub type Filter<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// The events of one port side that its component has not handled yet.
pub(crate) struct Inbox<E> {
    pub(crate) queue: SegQueue<E>,
    /// Events taken from `queue` while the component was not running, to handle once it starts.
    /// Only the component's runner touches it, so the lock is never contended.
    pub(crate) held: Mutex<VecDeque<E>>,
}

/// One destination of a port's triggers.
pub(crate) struct Outlet<E> {
    channel: u64,
    inbox: Arc<Inbox<E>>,
    target: Arc<dyn Schedulable>,
    filter: Option<Filter<E>>,
}

impl<E> Clone for Outlet<E> {
    fn clone(&self) -> Self {
        Outlet {
            channel: self.channel,
            inbox: self.inbox.clone(),
            target: self.target.clone(),
            filter: self.filter.clone(),
        }
    }
}

impl<E: Event> Outlet<E> {
    #[inline]
    fn accepts(&self, event: &E) -> bool {
        self.filter.as_ref().is_none_or(|f| f(event))
    }

    #[inline]
    fn deliver(&self, event: E) {
        enqueue(&self.target, || self.inbox.queue.push(event));
    }
}

/// The shared part of one side of a port: events come `In`, triggers send `Out`.
pub(crate) struct PortCore<In, Out> {
    pub(crate) inbox: Arc<Inbox<In>>,
    outlets: Mutex<Vec<Outlet<Out>>>,
    /// Bumped on every change of `outlets`, so triggering ports know to refresh their copy.
    version: AtomicU64,
    /// The component that owns this port; weak, so that channels do not keep it alive alone.
    pub(crate) owner: Weak<dyn Schedulable>,
    /// The channels attached to this port, to disconnect them when the owner is killed.
    links: Mutex<Vec<Arc<dyn Link>>>,
    /// The events the owner's handler subscribed to (`None`: all of them). Channels into this
    /// port check it before queueing, so an event nobody handles does not wake the owner.
    pub(crate) accepts: Option<fn(&In) -> bool>,
    /// `Some` until the owner exists (its factory is running): channels connected meanwhile
    /// wait here to deliver to it. `None` once it is born.
    unborn: Mutex<Option<Vec<WhenBorn>>>,
}

impl<In: Event, Out: Event> PortCore<In, Out> {
    pub(crate) fn new(owner: Weak<dyn Schedulable>) -> Self {
        Self::subscribed(owner, None)
    }

    /// A port whose owner handles only the events `accepts` returns true for.
    pub(crate) fn subscribed(
        owner: Weak<dyn Schedulable>,
        accepts: Option<fn(&In) -> bool>,
    ) -> Self {
        PortCore {
            inbox: Arc::new(Inbox { queue: SegQueue::new(), held: Mutex::new(VecDeque::new()) }),
            outlets: Mutex::new(Vec::new()),
            version: AtomicU64::new(0),
            owner,
            links: Mutex::new(Vec::new()),
            accepts,
            unborn: Mutex::new(Some(Vec::new())),
        }
    }

    /// Whether channels may connect to this port: its owner exists or is being built.
    fn connectable(&self) -> bool {
        self.owner.strong_count() > 0 || self.unborn.lock().is_some()
    }

    /// Runs `f` with the owner: now, or once it is born if its factory is still running.
    fn when_born(&self, f: WhenBorn) {
        let mut unborn = self.unborn.lock();
        if let Some(waiting) = unborn.as_mut() {
            waiting.push(f);
            return;
        }
        drop(unborn);
        if let Some(owner) = self.owner.upgrade() {
            f(owner);
        }
    }

    /// Adds `outlet` if `connected` still holds, under the lock `remove_outlet` takes, so that
    /// a channel disconnected meanwhile gets no outlet back.
    fn add_outlet_while(&self, connected: &AtomicBool, outlet: Outlet<Out>) {
        let mut outlets = self.outlets.lock();
        if connected.load(Ordering::Acquire) {
            outlets.push(outlet);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    fn remove_outlet(&self, channel: u64) {
        let mut outlets = self.outlets.lock();
        outlets.retain(|o| o.channel != channel);
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// Something attached to a port that can be disconnected (a channel), seen without its type.
pub(crate) trait Link: Send + Sync {
    fn id(&self) -> u64;
    fn disconnect(&self);
    /// The channel with its type, to find it again (see [`rewiring`]).
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// A port seen without its type: disconnected when its component is killed, told when its
/// component is born.
pub(crate) trait Detach: Send + Sync {
    fn detach_all(&self);
    /// The port's owner exists now: complete the channels connected while it was built.
    fn born(&self);
}

impl<In: Event, Out: Event> Detach for PortCore<In, Out> {
    fn detach_all(&self) {
        let links: Vec<_> = std::mem::take(&mut *self.links.lock());
        for l in links {
            l.disconnect();
        }
    }

    fn born(&self) {
        let Some(waiting) = self.unborn.lock().take() else { return };
        if let Some(owner) = self.owner.upgrade() {
            for f in waiting {
                f(owner.clone());
            }
        }
    }
}

/// The triggering side of a port, owned by the component: a private copy of the outlets.
pub(crate) struct Trigger<In, Out> {
    core: Arc<PortCore<In, Out>>,
    outlets: Vec<Outlet<Out>>,
    version: u64,
}

impl<In: Event, Out: Event> Trigger<In, Out> {
    pub(crate) fn new(core: Arc<PortCore<In, Out>>) -> Self {
        let mut t = Trigger { core, outlets: Vec::new(), version: u64::MAX };
        t.refresh();
        t
    }

    pub(crate) fn core(&self) -> &Arc<PortCore<In, Out>> {
        &self.core
    }

    #[cold]
    fn refresh(&mut self) {
        let outlets = self.core.outlets.lock();
        self.version = self.core.version.load(Ordering::Acquire);
        self.outlets = outlets.clone();
    }

    #[inline]
    pub(crate) fn trigger(&mut self, event: Out) {
        if self.core.version.load(Ordering::Acquire) != self.version {
            self.refresh();
        }
        match self.outlets.split_last() {
            None => {}
            Some((last, rest)) => {
                for o in rest {
                    if o.accepts(&event) {
                        o.deliver(event.clone());
                    }
                }
                if last.accepts(&event) {
                    last.deliver(event);
                }
            }
        }
    }
}

/// Filters on the events a channel lets through, one per direction.
///
/// ```
/// # use kompics_core::{Port, Selector};
/// # struct Net;
/// # #[derive(Clone, Debug)] struct Send;
/// # #[derive(Clone, Debug)] struct Deliver { route: u32 }
/// # impl Port for Net { type Request = Send; type Indication = Deliver; }
/// // Only deliveries for instance 3 go down this channel.
/// let selector = Selector::<Net>::new().indications(|d: &Deliver| d.route == 3);
/// ```
pub struct Selector<P: Port> {
    requests: Option<Filter<P::Request>>,
    indications: Option<Filter<P::Indication>>,
}

impl<P: Port> Selector<P> {
    /// A selector that lets everything through.
    pub fn new() -> Self {
        Selector { requests: None, indications: None }
    }

    /// Lets only the requests for which `filter` returns true go down the channel.
    pub fn requests(
        mut self,
        filter: impl Fn(&P::Request) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.requests = Some(Arc::new(filter));
        self
    }

    /// Lets only the indications for which `filter` returns true go down the channel.
    pub fn indications(
        mut self,
        filter: impl Fn(&P::Indication) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.indications = Some(Arc::new(filter));
        self
    }
}

impl<P: Port> Default for Selector<P> {
    fn default() -> Self {
        Selector::new()
    }
}

struct ChannelInner<P: Port> {
    id: u64,
    provided: Weak<PortCore<P::Request, P::Indication>>,
    required: Weak<PortCore<P::Indication, P::Request>>,
    connected: AtomicBool,
}

impl<P: Port> Link for ChannelInner<P> {
    fn id(&self) -> u64 {
        self.id
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn disconnect(&self) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(p) = self.provided.upgrade() {
            p.remove_outlet(self.id);
            p.links.lock().retain(|l| l.id() != self.id);
        }
        if let Some(r) = self.required.upgrade() {
            r.remove_outlet(self.id);
            r.links.lock().retain(|l| l.id() != self.id);
        }
    }
}

/// A connection between a provided and a required port of type `P`.
///
/// Dropping the handle leaves the channel connected; call [`disconnect`](Channel::disconnect)
/// to remove it. Killing either component disconnects it too.
pub struct Channel<P: Port> {
    inner: Arc<ChannelInner<P>>,
}

impl<P: Port> Channel<P> {
    /// Removes the channel: events triggered afterwards no longer go down it. Events already
    /// queued at the receiving component are still handled. Disconnecting twice is harmless.
    pub fn disconnect(&self) {
        self.inner.disconnect()
    }

    /// Whether the channel is still connected.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }
}

impl<P: Port> fmt::Debug for Channel<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel<{}>#{}", std::any::type_name::<P>(), self.inner.id)
    }
}

/// Connects a provided port to a required port of the same type: requests triggered on the
/// required side reach the provider, indications triggered on the provided side reach the
/// requirer.
///
/// A component's factory may connect the component's own ports (to its children's, say): the
/// channel is connected when `connect` returns and carries events once the component exists,
/// when `create` returns. When a [restart](crate::FaultAction::Restart) runs the factory and
/// [`on_init`](crate::ComponentDefinition::on_init) again, the ports and their channels are
/// still there: connecting two ports that are already connected then returns the existing
/// channel instead of making a second one (which would deliver every event twice).
///
/// If either component has already been dropped entirely, the channel is returned disconnected.
pub fn connect<P: Port>(provided: &ProvidedRef<P>, required: &RequiredRef<P>) -> Channel<P> {
    connect_with(provided, required, Selector::new())
}

/// Like [`connect`], with a [`Selector`] that filters the events allowed down the channel.
pub fn connect_with<P: Port>(
    provided: &ProvidedRef<P>,
    required: &RequiredRef<P>,
    selector: Selector<P>,
) -> Channel<P> {
    if REWIRING.with(Cell::get) {
        if let Some(inner) = existing_channel(provided, required) {
            return Channel { inner };
        }
    }
    let id = NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed);
    let inner = Arc::new(ChannelInner::<P> {
        id,
        provided: Arc::downgrade(&provided.core),
        required: Arc::downgrade(&required.core),
        connected: AtomicBool::new(false),
    });
    if !provided.core.connectable() || !required.core.connectable() {
        return Channel { inner };
    }
    inner.connected.store(true, Ordering::Release);
    let link: Arc<dyn Link> = inner.clone();
    provided.core.links.lock().push(link.clone());
    required.core.links.lock().push(link);
    // Indications flow provided -> required, once the requirer exists; requests flow
    // required -> provided, once the provider exists. Both usually exist already; a side whose
    // factory is still running gets its outlet when it is born.
    let (from, inbox, channel) =
        (Arc::downgrade(&provided.core), required.core.inbox.clone(), inner.clone());
    let filter = subscribed(selector.indications, required.core.accepts);
    required.core.when_born(Box::new(move |requirer| {
        if let Some(from) = from.upgrade() {
            let outlet = Outlet { channel: id, inbox, target: requirer, filter };
            from.add_outlet_while(&channel.connected, outlet);
        }
    }));
    let (from, inbox, channel) =
        (Arc::downgrade(&required.core), provided.core.inbox.clone(), inner.clone());
    let filter = subscribed(selector.requests, provided.core.accepts);
    provided.core.when_born(Box::new(move |provider| {
        if let Some(from) = from.upgrade() {
            let outlet = Outlet { channel: id, inbox, target: provider, filter };
            from.add_outlet_while(&channel.connected, outlet);
        }
    }));
    Channel { inner }
}

/// The connected channel between `provided` and `required`, if there is one.
fn existing_channel<P: Port>(
    provided: &ProvidedRef<P>,
    required: &RequiredRef<P>,
) -> Option<Arc<ChannelInner<P>>> {
    let links = provided.core.links.lock().clone();
    links.into_iter().find_map(|link| {
        let inner = link.as_any().downcast::<ChannelInner<P>>().ok()?;
        let same = inner.required.as_ptr() == Arc::as_ptr(&required.core)
            && inner.connected.load(Ordering::Acquire);
        same.then_some(inner)
    })
}

/// A channel's filter narrowed to what the receiving handler subscribed to. Ports that take
/// every event keep the selector as it is, so the common case costs nothing more.
fn subscribed<E: Event>(
    selector: Option<Filter<E>>,
    accepts: Option<fn(&E) -> bool>,
) -> Option<Filter<E>> {
    match (selector, accepts) {
        (selector, None) => selector,
        (None, Some(accepts)) => Some(Arc::new(accepts)),
        (Some(selector), Some(accepts)) => Some(Arc::new(move |e: &E| accepts(e) && selector(e))),
    }
}
