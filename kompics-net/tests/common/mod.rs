//! Helpers shared by the integration tests: nodes whose events go to a channel, a raw peer
//! speaking the wire format over a plain `std::net::TcpStream`, and a logger that records
//! warnings so tests can check that bad input is reported.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use kompics_net::frame::FRAME_BYTES_MAX_DEFAULT;
use kompics_net::{
    Frame, FrameDecoder, Handshake, NetMessage, NodeAddr, PeerSecurity, Route, TcpConfig,
    TcpTransport, TransportEvent,
};

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// The route every test message uses.
pub const ROUTE: Route = Route::new(1, 0);

/// The cluster identity of test nodes.
pub const CLUSTER: &str = "kompics-net-tests";

/// The shared secret test nodes use by default (so the session tests run over TLS).
pub const SECRET: [u8; 32] = [0x5e; 32];

/// Shared-secret mode for `CLUSTER` with `SECRET`: the test nodes' default.
pub fn secret_security() -> PeerSecurity {
    PeerSecurity::shared_secret(CLUSTER, &SECRET).unwrap()
}

/// For `Node::start_with`: plaintext, so a `RawPeer` can speak the wire format by hand.
pub fn plaintext(c: &mut TcpConfig) {
    c.security = PeerSecurity::insecure(CLUSTER).unwrap();
}

/// A transport whose sink forwards events to a channel.
pub struct Node {
    pub transport: TcpTransport,
    pub events: Receiver<TransportEvent>,
}

impl Node {
    /// A node on 127.0.0.1 with a free port, test-friendly timings and shared-secret mode.
    pub fn start() -> Node {
        Node::start_with(|_| {})
    }

    /// Like `start`, after `adjust` has changed the configuration.
    pub fn start_with(adjust: impl FnOnce(&mut TcpConfig)) -> Node {
        Node::start_on("127.0.0.1:0".parse().unwrap(), adjust)
    }

    /// A node listening on `listen`.
    pub fn start_on(listen: SocketAddr, adjust: impl FnOnce(&mut TcpConfig)) -> Node {
        init_logger();
        let mut config = TcpConfig::new(listen, secret_security());
        config.reconnect_backoff_min = Duration::from_millis(10);
        config.reconnect_backoff_max = Duration::from_millis(200);
        config.handshake_timeout = Duration::from_secs(2);
        adjust(&mut config);
        let (tx, events) = crossbeam_channel::unbounded();
        let transport = TcpTransport::start(
            config,
            Box::new(move |event| {
                let _ = tx.send(event);
            }),
        )
        .expect("transport starts");
        Node { transport, events }
    }

    pub fn addr(&self) -> NodeAddr {
        self.transport.local_addr()
    }

    /// Sends `value` to `dst`, panicking on a send error.
    pub fn send<T: serde::Serialize>(&self, dst: NodeAddr, value: &T) {
        let msg = NetMessage::encode(self.addr(), dst, ROUTE, value).unwrap();
        self.transport.send(msg).expect("send accepted");
    }

    /// The next event, or a panic after `WAIT`.
    pub fn next_event(&self) -> TransportEvent {
        match self.events.recv_timeout(WAIT) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => panic!("{}: no event within {WAIT:?}", self.addr()),
            Err(RecvTimeoutError::Disconnected) => panic!("{}: transport stopped", self.addr()),
        }
    }

    /// Waits for an event matching `pred`, returning it and every event before it.
    pub fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&TransportEvent) -> bool,
    ) -> Vec<TransportEvent> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    let done = pred(&event);
                    seen.push(event);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("{}: no {what} within {WAIT:?}; saw {seen:?}", self.addr()),
            }
        }
    }

    /// Waits for a message from `src` and decodes it.
    pub fn recv_from<T: serde::de::DeserializeOwned>(&self, src: NodeAddr) -> T {
        let events =
            self.wait_for("delivery", |e| matches!(e, TransportEvent::Deliver(m) if m.src == src));
        match events.last() {
            Some(TransportEvent::Deliver(m)) => m.decode().unwrap(),
            _ => unreachable!(),
        }
    }

    /// Events that arrive within `quiet` (used to check that nothing more happens).
    pub fn drain_for(&self, quiet: Duration) -> Vec<TransportEvent> {
        let mut seen = Vec::new();
        while let Ok(event) = self.events.recv_timeout(quiet) {
            seen.push(event);
        }
        seen
    }
}

/// Checks that `a` and `b` can still exchange messages both ways.
pub fn assert_exchange(a: &Node, b: &Node, tag: &str) {
    a.send(b.addr(), &format!("{tag}: ping"));
    assert_eq!(b.recv_from::<String>(a.addr()), format!("{tag}: ping"));
    b.send(a.addr(), &format!("{tag}: pong"));
    assert_eq!(a.recv_from::<String>(b.addr()), format!("{tag}: pong"));
}

/// A peer that speaks the wire format by hand over a blocking std socket.
pub struct RawPeer {
    pub stream: TcpStream,
    decoder: FrameDecoder,
}

impl RawPeer {
    /// Connects to `node` without saying anything.
    pub fn connect(node: NodeAddr) -> RawPeer {
        let stream = TcpStream::connect(node.socket_addr()).expect("raw connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        RawPeer::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> RawPeer {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        RawPeer { stream, decoder: FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT) }
    }

    /// Connects to `node` (a plaintext one) as `me` and completes the handshake.
    pub fn handshake(node: NodeAddr, me: NodeAddr) -> RawPeer {
        let mut raw = RawPeer::connect(node);
        raw.write_frame(&hello(me));
        assert_eq!(raw.read_frame(), Some(welcome(node)));
        raw
    }

    pub fn write_frame(&mut self, frame: &Frame) {
        self.write(&frame.to_bytes().unwrap());
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("raw write");
    }

    /// The next frame, or `None` at end of stream.
    pub fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid frames from the node") {
                return Some(frame);
            }
            match self.decoder.read_from(&mut self.stream) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => panic!("raw read failed: {e}"),
            }
        }
    }

    /// Asserts that the node closes this connection within `WAIT` (reading and discarding
    /// anything it still sends).
    pub fn assert_closed_by_node(&mut self) {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    return
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("unexpected error while waiting for close: {e}"),
            }
        }
        panic!("the node did not close the connection within {WAIT:?}");
    }
}

/// The hello a plaintext node `node` of `CLUSTER` sends.
pub fn hello(node: NodeAddr) -> Frame {
    Frame::Hello(Handshake::insecure(node, CLUSTER))
}

/// The welcome a plaintext node `node` of `CLUSTER` sends.
pub fn welcome(node: NodeAddr) -> Frame {
    Frame::Welcome(Handshake::insecure(node, CLUSTER))
}

/// A fresh routable address nobody else in this process uses, for a raw peer's identity.
/// The listener is returned so the port stays reserved (and can take connections).
pub fn reserve_addr() -> (TcpListener, NodeAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = NodeAddr(listener.local_addr().unwrap());
    (listener, addr)
}

// ----- captured log --------------------------------------------------------------------------

static LOG_LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());
static LOGGER_INIT: Once = Once::new();

struct CapturingLogger;

impl log::Log for CapturingLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = record.args().to_string();
            // Shown by the test harness when a test fails.
            eprintln!("[{}] {line}", record.level());
            LOG_LINES.lock().unwrap().push((record.level(), line));
        }
    }

    fn flush(&self) {}
}

pub fn init_logger() {
    LOGGER_INIT.call_once(|| {
        log::set_logger(&CapturingLogger).expect("no other logger");
        // KOMPICS_NET_TEST_LOG=debug shows the transport's debug lines too.
        let level = match std::env::var("KOMPICS_NET_TEST_LOG").as_deref() {
            Ok("debug") => log::LevelFilter::Debug,
            _ => log::LevelFilter::Info,
        };
        log::set_max_level(level);
    });
}

/// Waits until a warning containing every one of `needles` has been logged.
pub fn wait_for_warning(needles: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        {
            let lines = LOG_LINES.lock().unwrap();
            if let Some((_, line)) = lines.iter().find(|(level, line)| {
                *level == log::Level::Warn && needles.iter().all(|n| line.contains(n))
            }) {
                return line.clone();
            }
        }
        assert!(Instant::now() < deadline, "no warning containing {needles:?} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
