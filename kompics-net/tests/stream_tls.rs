//! The stream server with TLS ([`StreamConfig::tls`]): a rustls client's bytes reach the
//! component as plaintext and its writes come back, record boundaries anywhere; a close
//! request ends with close_notify; a client that never finishes its handshake is closed at the
//! deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use kompics_core::*;
use kompics_net::stream::{
    ByteStream, ConnId, StreamConfig, StreamEvent, StreamRequest, StreamServer,
};
use kompics_net::tls::{ClientAuth, ServerTls};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const WAIT: Duration = Duration::from_secs(10);

/// Echoes data back and forwards every event to a channel; triggers requests it is told.
struct Echo {
    stream: RequiredPort<ByteStream>,
    out: Sender<StreamEvent>,
}

impl ComponentDefinition for Echo {}

impl Require<ByteStream> for Echo {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: StreamEvent) {
        if let StreamEvent::Data { conn, data } = &event {
            self.stream.trigger(StreamRequest::Write { conn: *conn, data: data.clone() });
        }
        let _ = self.out.send(event);
    }
}

impl Receive<StreamRequest> for Echo {
    fn receive(&mut self, _ctx: &mut Context<Self>, request: StreamRequest) {
        self.stream.trigger(request);
    }
}

struct Server {
    _runtime: Runtime,
    addr: SocketAddr,
    requests: Mailbox<StreamRequest>,
    events: Receiver<StreamEvent>,
    cert: CertificateDer<'static>,
}

impl Server {
    fn start(handshake_timeout: Duration) -> Server {
        let minted = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = minted.cert.der().clone();
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(minted.signing_key.serialize_der()));
        let tls = ServerTls::new(vec![cert.clone()], key, None, ClientAuth::No).unwrap();
        let runtime = Runtime::new(RuntimeConfig::default().workers(1));
        let mut config = StreamConfig::new("127.0.0.1:0".parse().unwrap());
        config.tls = Some(tls);
        config.tls_handshake_timeout = handshake_timeout;
        let server = StreamServer::create(&runtime.system(), config).expect("bind loopback");
        let addr = server.on_definition(|s| s.local_addr()).unwrap();
        let (tx, events) = crossbeam_channel::unbounded();
        let echo = runtime.create(move |s| {
            let _ = s.mailbox::<StreamRequest>();
            Echo { stream: s.required(), out: tx.clone() }
        });
        connect(&server.provided::<ByteStream>(), &echo.required::<ByteStream>());
        server.start();
        echo.start();
        let requests = echo.mailbox::<StreamRequest>();
        Server { _runtime: runtime, addr, requests, events, cert }
    }

    fn next(&self) -> StreamEvent {
        self.events.recv_timeout(WAIT).expect("a stream event in time")
    }

    /// A blocking rustls client that trusts the server's self-signed certificate.
    fn client(&self) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let config =
            rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
                .with_root_certificates(roots)
                .with_no_client_auth();
        let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
        let sock = TcpStream::connect(self.addr).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        rustls::StreamOwned::new(conn, sock)
    }
}

#[test]
fn a_tls_client_is_echoed_exactly_through_many_records() {
    let s = Server::start(Duration::from_secs(5));
    let mut c = s.client();
    // Uneven pieces, so records and reads fall at arbitrary places; 1 MiB in all.
    let sent: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut echoed = Vec::with_capacity(sent.len());
    for piece in sent.chunks(10_007) {
        c.write_all(piece).unwrap();
        let mut back = vec![0; piece.len()];
        c.read_exact(&mut back).unwrap();
        echoed.extend_from_slice(&back);
    }
    assert!(echoed == sent, "the echo differs from what was sent");
    let mut received = 0;
    let conn = match s.next() {
        StreamEvent::Opened { conn, .. } => conn,
        other => panic!("expected Opened, got {other:?}"),
    };
    while received < sent.len() {
        match s.next() {
            StreamEvent::Data { conn: c, data } if c == conn => received += data.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, sent.len(), "the component saw plaintext, exactly");
    // A close request ends with close_notify: the client reads a clean end, not a truncation.
    assert!(s.requests.tell(StreamRequest::Close { conn }));
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("a clean TLS end of stream");
    assert!(rest.is_empty());
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_closed_at_the_deadline() {
    let s = Server::start(Duration::from_millis(300));
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(&[0x16, 0x03, 0x01]).unwrap(); // the start of a ClientHello, then silence
    let conn: ConnId = match s.next() {
        StreamEvent::Opened { conn, .. } => conn,
        other => panic!("expected Opened, got {other:?}"),
    };
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let closed = loop {
        match raw.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "not closed within {WAIT:?}");
    assert!(started.elapsed() >= Duration::from_millis(150), "closed before the deadline");
    match s.next() {
        StreamEvent::Closed { conn: c, .. } => assert_eq!(c, conn),
        other => panic!("expected Closed, got {other:?}"),
    }
}

/// Waits until `raw` is closed by the server (end of stream or reset); false on a timeout.
fn closed_by_server(raw: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match raw.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Bad input on a TLS client port: garbage instead of a ClientHello is closed, and a thousand
/// half-open handshakes neither stop a real client from being served nor leave a descriptor
/// behind once their deadline passed.
#[test]
fn garbage_and_a_thousand_half_open_tls_clients_neither_stop_service_nor_leak() {
    let s = Server::start(Duration::from_millis(500));
    let echo = |what: &str| {
        let mut c = s.client();
        c.write_all(what.as_bytes()).unwrap();
        let mut back = vec![0; what.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, what.as_bytes(), "{what}");
    };
    echo("before");
    let baseline = open_fds();

    let mut garbage = TcpStream::connect(s.addr).unwrap();
    garbage.set_read_timeout(Some(WAIT)).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_by_server(&mut garbage), "garbage instead of a ClientHello is closed");

    let mut flood = Vec::new();
    for i in 0..1000 {
        let Ok(mut raw) = TcpStream::connect(s.addr) else { continue };
        if i % 2 == 0 {
            let _ = raw.write_all(&[0x16, 0x03, 0x01]); // the start of a record, then nothing
        }
        flood.push(raw);
        if i % 100 == 0 {
            echo(&format!("during the flood ({i})"));
        }
    }
    assert!(flood.len() > 900, "only {} connections opened", flood.len());
    echo("after the flood");
    for raw in &mut flood {
        raw.set_read_timeout(Some(WAIT)).unwrap();
        assert!(closed_by_server(raw), "a half-open handshake outlived its deadline");
    }
    drop(flood);
    drop(garbage);
    // The server's descriptors are back (a little slack for the harness and echo clients).
    let deadline = Instant::now() + WAIT;
    while open_fds() > baseline + 4 {
        assert!(Instant::now() < deadline, "fds: {baseline} before, {} after", open_fds());
        std::thread::sleep(Duration::from_millis(20));
    }
    echo("a new client after the flood");
}
