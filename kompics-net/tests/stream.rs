//! The byte-stream server ([`StreamServer`]) on loopback: a test component on the
//! [`ByteStream`] port, driven through a mailbox, with plain `std::net` clients. Every wait is
//! bounded by [`WAIT`].

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use kompics_core::*;
use kompics_net::stream::{
    ByteStream, CloseReason, ConnId, StreamConfig, StreamEvent, StreamRequest, StreamServer,
};

/// How long a test waits for anything before failing.
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing more happens" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// Forwards the port's events to a channel (and echoes data back when asked); triggers the
/// requests told to its mailbox.
struct Harness {
    stream: RequiredPort<ByteStream>,
    out: Sender<StreamEvent>,
    echo: bool,
}

impl ComponentDefinition for Harness {}

impl Require<ByteStream> for Harness {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: StreamEvent) {
        if let (true, StreamEvent::Data { conn, data }) = (self.echo, &event) {
            self.stream.trigger(StreamRequest::Write { conn: *conn, data: data.clone() });
        }
        let _ = self.out.send(event);
    }
}

impl Receive<StreamRequest> for Harness {
    fn receive(&mut self, _ctx: &mut Context<Self>, request: StreamRequest) {
        self.stream.trigger(request);
    }
}

struct Server {
    runtime: Runtime,
    server: Component<StreamServer>,
    addr: SocketAddr,
    requests: Mailbox<StreamRequest>,
    events: Receiver<StreamEvent>,
}

impl Server {
    fn start(echo: bool, adjust: impl FnOnce(&mut StreamConfig)) -> Server {
        let runtime = Runtime::new(RuntimeConfig::default().workers(1));
        let mut config = StreamConfig::new("127.0.0.1:0".parse().unwrap());
        adjust(&mut config);
        let server = StreamServer::create(&runtime.system(), config).expect("bind loopback");
        let addr = server.on_definition(|s| s.local_addr()).unwrap();
        assert_ne!(addr.port(), 0);
        let (tx, events) = crossbeam_channel::unbounded();
        let harness = runtime.create(move |s| {
            let _ = s.mailbox::<StreamRequest>();
            Harness { stream: s.required(), out: tx.clone(), echo }
        });
        connect(&server.provided::<ByteStream>(), &harness.required::<ByteStream>());
        server.start();
        harness.start();
        let requests = harness.mailbox::<StreamRequest>();
        Server { runtime, server, addr, requests, events }
    }

    fn request(&self, request: StreamRequest) {
        assert!(self.requests.tell(request));
    }

    fn next(&self) -> StreamEvent {
        self.events.recv_timeout(WAIT).expect("a stream event in time")
    }

    fn opened(&self) -> ConnId {
        match self.next() {
            StreamEvent::Opened { conn, .. } => conn,
            other => panic!("expected Opened, got {other:?}"),
        }
    }

    /// Events that arrive within `QUIET` of each other.
    fn drain(&self) -> Vec<StreamEvent> {
        let mut seen = Vec::new();
        while let Ok(event) = self.events.recv_timeout(QUIET) {
            seen.push(event);
        }
        seen
    }

    /// Data of `conn` until `len` bytes arrived (any other event is a failure).
    fn data(&self, conn: ConnId, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < len {
            match self.next() {
                StreamEvent::Data { conn: c, data } if c == conn => {
                    assert!(!data.is_empty());
                    got.extend_from_slice(&data);
                }
                other => panic!("expected data of {conn}, got {other:?} after {} bytes", got.len()),
            }
        }
        assert_eq!(got.len(), len, "no more than was sent");
        got
    }
}

fn client(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.set_write_timeout(Some(WAIT)).unwrap();
    c
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads until end of stream (or a reset, which counts as the end here).
fn read_to_end(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no end of stream within {WAIT:?}")
            }
            Err(_) => return got,
        }
    }
}

/// Whether a thread with this name exists in this process (Linux: /proc).
#[cfg(target_os = "linux")]
fn thread_exists(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task").unwrap().flatten().any(|task| {
        std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
    })
}

#[test]
fn echo_through_a_component() {
    let s = Server::start(true, |_| {});
    let mut c = client(s.addr);
    let conn = match s.next() {
        StreamEvent::Opened { conn, peer } => {
            assert_eq!(peer, c.local_addr().unwrap());
            conn
        }
        other => panic!("expected Opened, got {other:?}"),
    };
    c.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut reply = [0u8; 14];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(s.data(conn, 14), b"*1\r\n$4\r\nPING\r\n");
    s.runtime.shutdown();
}

#[test]
fn many_concurrent_connections_each_get_their_own_bytes() {
    const CLIENTS: usize = 200;
    let s = Server::start(true, |_| {});
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| client(s.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("client {i:04}\n").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut reply = [0u8; 12];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(reply, *format!("client {i:04}\n").as_bytes());
    }
    let mut opened = std::collections::HashSet::new();
    while opened.len() < CLIENTS {
        if let StreamEvent::Opened { conn, .. } = s.next() {
            assert!(opened.insert(conn), "{conn} opened twice");
        }
    }
    drop(clients);
    let mut closed = std::collections::HashSet::new();
    while closed.len() < CLIENTS {
        if let StreamEvent::Closed { conn, reason } = s.next() {
            assert_eq!(reason, CloseReason::PeerClosed);
            assert!(opened.contains(&conn) && closed.insert(conn), "{conn} closed twice");
        }
    }
    s.runtime.shutdown();
}

#[test]
fn pipelined_large_data_arrives_in_order() {
    const LEN: usize = 8 * 1024 * 1024;
    let s = Server::start(true, |c| c.read_chunk = 16 * 1024);
    let mut c = client(s.addr);
    let conn = s.opened();
    let sent = pattern(LEN);
    let mut writer = c.try_clone().unwrap();
    let to_send = sent.clone();
    let writer = std::thread::spawn(move || {
        // Uneven writes, so reads and writes fall at arbitrary places.
        for piece in to_send.chunks(10_007) {
            writer.write_all(piece).unwrap();
        }
    });
    let mut echoed = vec![0; LEN];
    c.read_exact(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(echoed == sent, "the echo differs from what was sent");
    let mut got = Vec::with_capacity(LEN);
    while got.len() < LEN {
        match s.next() {
            StreamEvent::Data { conn: c, data } if c == conn => {
                assert!(data.len() <= 16 * 1024, "a Data event larger than read_chunk");
                got.extend_from_slice(&data);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got == sent, "the Data events differ from what was sent");
    s.runtime.shutdown();
}

/// Bytes and the end of stream often arrive together, before the loop looks: the loop must
/// not stop at the short read of the bytes (no new edge would announce the queued end).
#[test]
fn bytes_and_end_of_stream_arriving_together_are_both_indicated() {
    const CLIENTS: usize = 100;
    let s = Server::start(false, |_| {});
    for i in 0..CLIENTS {
        let mut c = client(s.addr);
        c.write_all(format!("bye {i:03}").as_bytes()).unwrap();
        drop(c);
    }
    let mut data: std::collections::HashMap<ConnId, Vec<u8>> = Default::default();
    let mut closed = 0;
    while closed < CLIENTS {
        match s.next() {
            StreamEvent::Opened { .. } => {}
            StreamEvent::Data { conn, data: d } => data.entry(conn).or_default().extend(d),
            StreamEvent::Closed { conn, reason } => {
                assert_eq!(reason, CloseReason::PeerClosed);
                let got = data.remove(&conn).unwrap_or_default();
                assert!(got.starts_with(b"bye ") && got.len() == 7, "{conn} sent {got:?}");
                closed += 1;
            }
        }
    }
    s.runtime.shutdown();
}

#[test]
fn a_peer_close_is_indicated_exactly_once_after_its_data() {
    let s = Server::start(false, |_| {});
    let mut c = client(s.addr);
    let conn = s.opened();
    c.write_all(b"last words").unwrap();
    drop(c);
    assert_eq!(s.data(conn, 10), b"last words");
    assert_eq!(s.next(), StreamEvent::Closed { conn, reason: CloseReason::PeerClosed });
    // Requests for the closed connection are ignored.
    s.request(StreamRequest::Write { conn, data: b"too late".to_vec() });
    s.request(StreamRequest::Close { conn });
    s.request(StreamRequest::Write { conn: ConnId(u64::MAX), data: b"nobody".to_vec() });
    assert_eq!(s.drain(), vec![], "nothing after Closed");
    s.runtime.shutdown();
}

#[test]
fn a_close_request_flushes_pending_output_first() {
    const LEN: usize = 16 * 1024 * 1024; // far more than the socket buffers hold
    let s = Server::start(false, |_| {});
    let mut c = client(s.addr);
    let conn = s.opened();
    let sent = pattern(LEN);
    for piece in sent.chunks(1 << 20) {
        s.request(StreamRequest::Write { conn, data: piece.to_vec() });
    }
    s.request(StreamRequest::Close { conn });
    s.request(StreamRequest::Write { conn, data: b"after close: ignored".to_vec() });
    // The client sends something the server may not read: the close must not turn into a
    // reset that destroys the output in flight.
    c.write_all(b"QUIT\r\n").unwrap();
    let got = read_to_end(&mut c);
    assert_eq!(got.len(), LEN);
    assert!(got == sent, "the output differs from what was written");
    // The QUIT is indicated if it was read before the close request reached the loop.
    let mut event = s.next();
    if let StreamEvent::Data { data, .. } = &event {
        assert_eq!(data, b"QUIT\r\n");
        event = s.next();
    }
    assert_eq!(event, StreamEvent::Closed { conn, reason: CloseReason::Requested });
    drop(c);
    assert_eq!(s.drain(), vec![]);
    s.runtime.shutdown();
}

#[test]
fn pausing_stops_data_and_resuming_restarts_it() {
    const LEN: usize = 64 * 1024 * 1024; // more than the kernel buffers on both sides hold
    let s = Server::start(false, |_| {});
    let c = client(s.addr);
    let conn = s.opened();
    s.request(StreamRequest::PauseReading { conn });
    let written = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&written);
    let mut w = c.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let writer = std::thread::spawn(move || {
        for piece in pattern(LEN).chunks(64 * 1024) {
            w.write_all(piece).unwrap();
            progress.fetch_add(piece.len(), Ordering::SeqCst);
        }
    });
    // Wait until the writer is stuck (the kernel buffers are full), collecting whatever was
    // read before the pause took effect.
    let mut got = Vec::new();
    let take_data = |s: &Server, got: &mut Vec<u8>| {
        while let Ok(event) = s.events.try_recv() {
            match event {
                StreamEvent::Data { data, .. } => got.extend_from_slice(&data),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let deadline = Instant::now() + WAIT;
    let mut stable = 0;
    let mut last = 0;
    while stable < 3 {
        assert!(Instant::now() < deadline, "the client never blocked");
        std::thread::sleep(Duration::from_millis(100));
        take_data(&s, &mut got);
        let now = written.load(Ordering::SeqCst);
        stable = if now == last && now > 0 { stable + 1 } else { 0 };
        last = now;
    }
    // Now nothing arrives and the client stays stuck.
    take_data(&s, &mut got);
    assert!(s.events.recv_timeout(QUIET).is_err(), "Data while paused");
    assert_eq!(written.load(Ordering::SeqCst), last, "the client can still write");
    assert!(last < LEN, "the client wrote everything while the server was paused");
    assert!(got.len() <= last);
    // Pausing twice changes nothing; resuming delivers the rest, in order.
    s.request(StreamRequest::PauseReading { conn });
    s.request(StreamRequest::ResumeReading { conn });
    s.request(StreamRequest::ResumeReading { conn });
    let rest = s.data(conn, LEN - got.len());
    got.extend_from_slice(&rest);
    writer.join().unwrap();
    assert!(got == pattern(LEN), "the data differs from what was sent");
    s.runtime.shutdown();
}

#[test]
fn a_client_that_does_not_read_overflows_its_output_and_is_closed() {
    let s = Server::start(false, |c| c.output_buffer_max = 1024 * 1024);
    let c = client(s.addr);
    let conn = s.opened();
    // The client never reads: the kernel buffers fill, then the output buffer.
    for _ in 0..256 {
        s.request(StreamRequest::Write { conn, data: vec![b'x'; 256 * 1024] });
    }
    assert_eq!(s.next(), StreamEvent::Closed { conn, reason: CloseReason::OutputOverflow });
    assert_eq!(s.drain(), vec![], "closed once; later writes ignored");
    drop(c);
    s.runtime.shutdown();
}

#[test]
fn connections_beyond_max_connections_are_closed_at_once() {
    let s = Server::start(false, |c| c.max_connections = 2);
    let a = client(s.addr);
    let _b = client(s.addr);
    let conn_a = s.opened();
    let _conn_b = s.opened();
    // The third is accepted by the kernel, then closed by the server without an event.
    let mut third = client(s.addr);
    assert_eq!(read_to_end(&mut third), b"");
    assert_eq!(s.drain(), vec![], "no events for a refused connection");
    // Once one closes, there is room again.
    drop(a);
    assert_eq!(s.next(), StreamEvent::Closed { conn: conn_a, reason: CloseReason::PeerClosed });
    let mut fourth = client(s.addr);
    let conn = s.opened();
    s.request(StreamRequest::Write { conn, data: b"welcome".to_vec() });
    let mut reply = [0u8; 7];
    fourth.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"welcome");
    s.runtime.shutdown();
}

#[test]
fn binding_an_address_in_use_is_an_error() {
    let s = Server::start(false, |_| {});
    let rt = Runtime::new(RuntimeConfig::default().workers(1));
    let err = match StreamServer::create(&rt.system(), StreamConfig::new(s.addr)) {
        Ok(_) => panic!("bound an address in use"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let mut bad = StreamConfig::new("127.0.0.1:0".parse().unwrap());
    bad.read_chunk = 0;
    let err = StreamServer::create(&rt.system(), bad).expect_err("an invalid config");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    rt.shutdown();
    s.runtime.shutdown();
}

#[test]
fn killing_the_server_closes_its_sockets_and_ends_its_thread() {
    let s = Server::start(false, |_| {});
    let thread = format!("kstream:{}", s.addr.port());
    let mut c = client(s.addr);
    let _conn = s.opened();
    // The thread names itself as it starts: it has, since it accepted the connection.
    #[cfg(target_os = "linux")]
    assert!(thread_exists(&thread), "the event loop thread is named {thread}");
    s.server.kill();
    assert_eq!(read_to_end(&mut c), b"", "the client sees its connection end");
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(s.addr).is_ok() {
        assert!(Instant::now() < deadline, "the listener is still open");
        std::thread::sleep(Duration::from_millis(10));
    }
    #[cfg(target_os = "linux")]
    while thread_exists(&thread) {
        assert!(Instant::now() < deadline, "the event loop thread {thread} is still running");
        std::thread::sleep(Duration::from_millis(10));
    }
    s.runtime.shutdown();
}

#[test]
fn a_runtime_shutdown_ends_the_thread() {
    let s = Server::start(false, |_| {});
    let thread = format!("kstream:{}", s.addr.port());
    let mut c = client(s.addr);
    let _conn = s.opened();
    // Shutdown joins the loop (on_kill), so the thread is gone when it returns, bar the
    // moment the kernel takes to reap it.
    s.runtime.shutdown();
    assert_eq!(read_to_end(&mut c), b"");
    #[cfg(target_os = "linux")]
    {
        let deadline = Instant::now() + Duration::from_secs(2);
        while thread_exists(&thread) {
            assert!(Instant::now() < deadline, "the event loop thread {thread} is still running");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let _ = thread;
}

#[test]
fn a_stopped_server_closes_everything_and_listens_again_when_started() {
    let s = Server::start(true, |_| {});
    let mut old = client(s.addr);
    let old_conn = s.opened();
    s.server.stop();
    assert_eq!(read_to_end(&mut old), b"", "stopping closes the connections");
    assert!(s.events.recv_timeout(QUIET).is_err(), "a stopped component indicates nothing");
    s.server.start();
    assert_eq!(
        s.next(),
        StreamEvent::Closed { conn: old_conn, reason: CloseReason::ServerStopped }
    );
    // Same address, a new connection with a new id.
    let deadline = Instant::now() + WAIT;
    let mut c = loop {
        match TcpStream::connect(s.addr) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("not listening again: {e}"),
        }
    };
    c.set_read_timeout(Some(WAIT)).unwrap();
    let conn = s.opened();
    assert!(conn > old_conn, "ids are never reused");
    c.write_all(b"again").unwrap();
    let mut reply = [0u8; 5];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"again");
    s.runtime.shutdown();
}

/// Not a test: a rough figure for pipelined small requests through an echo component. Run with
/// `cargo test --release -p kompics-net --test stream -- --ignored --nocapture`.
#[test]
#[ignore]
fn pipelined_echo_throughput() {
    const CLIENTS: usize = 8;
    const COMMANDS: usize = 200_000;
    const BATCH: usize = 64;
    let s = Server::start(true, |_| {});
    let command = b"*1\r\n$4\r\nPING\r\n";
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let c = client(s.addr);
            let mut w = c.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                let batch: Vec<u8> = command.repeat(BATCH);
                for _ in 0..COMMANDS / BATCH {
                    w.write_all(&batch).unwrap();
                }
            });
            let mut r = c;
            std::thread::spawn(move || {
                let mut left = COMMANDS / BATCH * BATCH * command.len();
                let mut buf = vec![0; 64 * 1024];
                while left > 0 {
                    let n = r.read(&mut buf).unwrap();
                    assert!(n > 0);
                    left -= n;
                }
                writer.join().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let total = CLIENTS * (COMMANDS / BATCH * BATCH);
    println!(
        "{total} pipelined 14-byte echoes over {CLIENTS} connections in {elapsed:?}: {:.0} per second",
        total as f64 / elapsed.as_secs_f64()
    );
    s.runtime.shutdown();
}

/// Not a test: a rough figure for one request in flight per connection (redis-benchmark's
/// default), which costs a loop wake-up and a component turn per request.
#[test]
#[ignore]
fn ping_pong_echo_throughput() {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 5_000;
    let s = Server::start(true, |_| {});
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = client(s.addr);
            std::thread::spawn(move || {
                let mut reply = [0u8; 14];
                for _ in 0..ROUNDS {
                    c.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
                    c.read_exact(&mut reply).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let total = CLIENTS * ROUNDS;
    println!(
        "{total} request/response echoes over {CLIENTS} connections in {elapsed:?}: {:.0} per second",
        total as f64 / elapsed.as_secs_f64()
    );
    s.runtime.shutdown();
}
