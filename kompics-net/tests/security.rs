//! Peer authentication over loopback: shared secrets, mutual TLS with certificates minted
//! here with rcgen, cluster identities, and hostile connections (garbage, cut handshakes,
//! replays, floods of half-open handshakes). Handshake deadlines are short so each test
//! takes at most a few seconds.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_exchange, reserve_addr, wait_for_warning, Node, CLUSTER, WAIT};
use kompics_net::tls::{identity_uri, MutualTlsCredentials};
use kompics_net::{NodeAddr, PeerSecurity, TcpConfig, TransportEvent};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const SHORT_HANDSHAKE: Duration = Duration::from_millis(400);

fn secret(byte: u8) -> PeerSecurity {
    PeerSecurity::shared_secret(CLUSTER, &[byte; 32]).unwrap()
}

/// A node with `security` and a short handshake deadline.
fn node_with(security: PeerSecurity) -> Node {
    Node::start_with(|c| {
        c.security = security;
        c.handshake_timeout = SHORT_HANDSHAKE;
    })
}

/// Asserts that neither node reports a session or a delivery for `quiet`.
fn assert_nothing_happens(a: &Node, b: &Node, quiet: Duration) {
    assert_eq!(a.drain_for(quiet), Vec::<TransportEvent>::new(), "{}", a.addr());
    assert_eq!(b.drain_for(Duration::ZERO), Vec::<TransportEvent>::new(), "{}", b.addr());
}

// ----- shared secret -----------------------------------------------------------------------

/// A TCP forwarder from a fresh port to `to` that records what the dialer sent.
fn recording_proxy(to: NodeAddr) -> (NodeAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = NodeAddr(listener.local_addr().unwrap());
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let rec = Arc::clone(&recorded);
    thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else { return };
        let server = TcpStream::connect(to.socket_addr()).unwrap();
        let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = c_read.read(&mut buf) {
                if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                rec.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = s_write.shutdown(Shutdown::Write);
        });
        let (mut s_read, mut c_write) = (server, client);
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    (addr, recorded)
}

#[test]
fn nodes_with_the_same_secret_exchange_messages_and_the_handshake_is_encrypted() {
    let b = node_with(secret(1));
    let a = node_with(secret(1));
    assert_exchange(&a, &b, "same secret");
    // What a dialer sends through a recording proxy: its hello (its address, the cluster
    // name) never appears in clear. (b accepts c, which proved the secret, but names itself
    // b, not the proxy address c dialled, so c then ends that attempt.)
    let (proxy, recorded) = recording_proxy(b.addr());
    let c = node_with(secret(1));
    c.send(proxy, &"through the proxy");
    b.wait_for("the session", |e| *e == TransportEvent::SessionUp(c.addr()));
    wait_for_warning(&[&c.addr().to_string(), "welcome names"]);
    let bytes = recorded.lock().unwrap().clone();
    assert!(bytes.len() > 100, "recorded {} bytes", bytes.len());
    for clear in [c.addr().to_string(), CLUSTER.to_string()] {
        assert!(!bytes.windows(clear.len()).any(|w| w == clear.as_bytes()), "{clear} in clear");
    }
}

#[test]
fn a_wrong_secret_completes_no_handshake_as_dialer_or_acceptor() {
    let right = node_with(secret(1));
    let wrong = node_with(secret(2));
    // The wrong node dials...
    wrong.send(right.addr(), &"from the wrong secret");
    wait_for_warning(&[&right.addr().to_string(), "authentication failed"]);
    wait_for_warning(&[&wrong.addr().to_string(), "refused this node's hello"]);
    // ...and accepts.
    right.send(wrong.addr(), &"to the wrong secret");
    wait_for_warning(&[&wrong.addr().to_string(), "closing", "authentication failed"]);
    assert_nothing_happens(&right, &wrong, Duration::from_millis(500));
}

#[test]
fn a_recorded_handshake_replayed_into_a_new_connection_fails() {
    let b = node_with(secret(1));
    let (proxy, recorded) = recording_proxy(b.addr());
    let a = node_with(secret(1));
    a.send(proxy, &"recorded");
    // b accepts a's (genuine) handshake through the proxy.
    b.wait_for("the session", |e| *e == TransportEvent::SessionUp(a.addr()));
    thread::sleep(Duration::from_millis(100));
    let replay = recorded.lock().unwrap().clone();
    // a rejects the welcome (b is not the proxy address a dialled): b's session ends.
    b.wait_for("the session's end", |e| *e == TransportEvent::SessionDown(a.addr()));

    let mut raw = TcpStream::connect(b.addr().socket_addr()).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let _ = raw.write_all(&replay);
    wait_for_warning(&[&b.addr().to_string(), "TLS"]);
    assert_eq!(b.drain_for(Duration::from_millis(300)), Vec::<TransportEvent>::new());
    assert_closed(&mut raw);
}

/// Reads until the node closes `raw` (end of stream or reset); panics after `WAIT`.
fn assert_closed(raw: &mut TcpStream) {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match raw.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("waiting for the close: {e}"),
        }
    }
    panic!("not closed within {WAIT:?}");
}

// ----- cluster identity --------------------------------------------------------------------

#[test]
fn a_node_of_another_cluster_is_refused_with_a_clear_log_on_both_sides() {
    for (mode, ours, theirs) in [
        (
            "secret",
            PeerSecurity::shared_secret("blue", &[1; 32]).unwrap(),
            PeerSecurity::shared_secret("green", &[1; 32]).unwrap(),
        ),
        (
            "insecure",
            PeerSecurity::insecure("blue").unwrap(),
            PeerSecurity::insecure("green").unwrap(),
        ),
    ] {
        let blue = node_with(ours);
        let green = node_with(theirs);
        green.send(blue.addr(), &mode);
        let acceptor = wait_for_warning(&[&blue.addr().to_string(), "cluster mismatch"]);
        assert!(acceptor.contains("\"green\""), "{mode}: {acceptor}");
        wait_for_warning(&[&green.addr().to_string(), "refused this node's hello", "cluster"]);
        assert_nothing_happens(&blue, &green, Duration::from_millis(300));
    }
}

#[test]
fn an_insecure_node_cannot_talk_to_a_secure_one_either_way() {
    let secure = node_with(secret(1));
    let plain = node_with(PeerSecurity::insecure(CLUSTER).unwrap());
    plain.send(secure.addr(), &"plaintext hello to a TLS port");
    secure.send(plain.addr(), &"TLS hello to a plaintext port");
    wait_for_warning(&[&secure.addr().to_string(), "TLS"]);
    wait_for_warning(&[&plain.addr().to_string(), "this node is in insecure mode"]);
    assert_nothing_happens(&secure, &plain, Duration::from_millis(300));
}

// ----- mutual TLS --------------------------------------------------------------------------

/// A test CA, minted here.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        Ca { issuer: CertifiedIssuer::self_signed(params, key).unwrap() }
    }

    /// A certificate for node `addr` of `cluster` (its identity URI, and `localhost` so a
    /// plain rustls client can check it too), with both key usages.
    fn leaf(
        &self,
        cluster: &str,
        addr: NodeAddr,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let uri = identity_uri(cluster, addr).try_into().unwrap();
        params.subject_alt_names.push(SanType::URI(uri));
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    fn cert(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Mutual-TLS settings for node `addr`, trusting `trust`.
    fn security(&self, trust: &Ca, cluster: &str, addr: NodeAddr) -> PeerSecurity {
        let (cert, key) = self.leaf(cluster, addr);
        let creds =
            MutualTlsCredentials { ca: vec![trust.cert()], chain: vec![cert], key: Arc::new(key) };
        PeerSecurity::mutual_tls(cluster, creds).unwrap()
    }
}

/// A node on a reserved address with a certificate from `ca` (trusting `trust`).
fn mtls_node(ca: &Ca, trust: &Ca) -> Node {
    let (listener, addr) = reserve_addr();
    drop(listener);
    let security = ca.security(trust, CLUSTER, addr);
    Node::start_on(addr.socket_addr(), |c| {
        c.security = security;
        c.handshake_timeout = SHORT_HANDSHAKE;
    })
}

#[test]
fn mutual_tls_with_the_cluster_ca_works_and_another_ca_fails_both_ways() {
    let ca = Ca::new("cluster ca");
    let a = mtls_node(&ca, &ca);
    let b = mtls_node(&ca, &ca);
    assert_exchange(&a, &b, "mutual TLS");

    let rogue_ca = Ca::new("rogue ca");
    let rogue = mtls_node(&rogue_ca, &ca); // trusts the cluster CA, but its own cert is not
    rogue.send(a.addr(), &"as dialer");
    wait_for_warning(&[&a.addr().to_string(), "TLS"]);
    a.send(rogue.addr(), &"as acceptor");
    wait_for_warning(&[&a.addr().to_string(), &rogue.addr().to_string(), "TLS"]);
    let others: Vec<_> = a
        .drain_for(Duration::from_millis(300))
        .into_iter()
        .filter(|e| !matches!(e, TransportEvent::Deliver(m) if m.src == b.addr()))
        .collect();
    assert_eq!(others, Vec::<TransportEvent>::new());
    assert_eq!(rogue.drain_for(Duration::ZERO), Vec::<TransportEvent>::new());
}

#[test]
fn a_node_must_start_with_a_certificate_naming_itself() {
    let ca = Ca::new("cluster ca");
    let (listener, addr) = reserve_addr();
    drop(listener);
    let (_, other) = reserve_addr();
    let config = TcpConfig::new(addr.socket_addr(), ca.security(&ca, CLUSTER, other));
    let err = kompics_net::TcpTransport::start(config, Box::new(|_| {})).unwrap_err();
    assert!(err.to_string().contains("certificate names node"), "{err}");
}

/// A client presenting member A's valid certificate while its hello claims member B.
#[test]
fn a_certificate_of_member_a_is_not_accepted_as_member_b() {
    let ca = Ca::new("cluster ca");
    let node = mtls_node(&ca, &ca);
    let (_la, member_a) = reserve_addr();
    let (_lb, member_b) = reserve_addr();
    let (cert, key) = ca.leaf(CLUSTER, member_a);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert()).unwrap();
    let config = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(node.addr().socket_addr()).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut hello = kompics_net::Handshake::insecure(member_b, CLUSTER);
    hello.mode = kompics_net::SecurityMode::MutualTls.as_byte();
    tls.write_all(&kompics_net::Frame::Hello(hello).to_bytes().unwrap()).unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("certificate names"), "the refusal: {reply}");
    wait_for_warning(&[&node.addr().to_string(), "claims node", &member_a.to_string()]);
    assert_eq!(node.drain_for(Duration::from_millis(200)), Vec::<TransportEvent>::new());
}

/// A server at the address a node dials, with a valid certificate of another member.
#[test]
fn a_dialer_refuses_a_server_whose_certificate_names_another_node() {
    let ca = Ca::new("cluster ca");
    let (impostor_listener, dialled) = reserve_addr();
    let (_l, other_member) = reserve_addr();
    let (cert, key) = ca.leaf(CLUSTER, other_member);
    let config = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    thread::spawn(move || {
        let Ok((sock, _)) = impostor_listener.accept() else { return };
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf);
    });
    let node = mtls_node(&ca, &ca);
    node.send(dialled, &"for the node at this address");
    wait_for_warning(&[&node.addr().to_string(), &other_member.to_string(), "not the node"]);
    assert_eq!(node.drain_for(Duration::from_millis(200)), Vec::<TransportEvent>::new());
}

// ----- hostile connections -----------------------------------------------------------------

#[test]
fn garbage_instead_of_a_client_hello_is_closed_and_the_node_serves_on() {
    let n = node_with(secret(1));
    let peer = node_with(secret(1));
    assert_exchange(&n, &peer, "before");
    let mut raw = TcpStream::connect(n.addr().socket_addr()).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(&[0xab; 4096]).unwrap();
    wait_for_warning(&[&n.addr().to_string(), "TLS"]);
    assert_closed(&mut raw);
    assert_exchange(&n, &peer, "after garbage");
}

#[test]
fn a_handshake_cut_in_the_middle_is_closed_at_the_deadline() {
    let n = node_with(secret(1));
    let peer = node_with(secret(1));
    // The first part of a real client's handshake (from a recording), then silence.
    let (proxy, recorded) = recording_proxy(n.addr());
    peer.send(proxy, &"recorded");
    n.wait_for("the recorded session", |e| matches!(e, TransportEvent::SessionUp(_)));
    let first_flight = recorded.lock().unwrap()[..40].to_vec();
    let mut raw = TcpStream::connect(n.addr().socket_addr()).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(&first_flight).unwrap();
    let started = Instant::now();
    assert_closed(&mut raw);
    assert!(started.elapsed() >= SHORT_HANDSHAKE / 2, "closed before the deadline");
    wait_for_warning(&[&n.addr().to_string(), "no hello within"]);
    assert_exchange(&n, &peer, "after a cut handshake");
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn hundreds_of_half_open_handshakes_neither_stop_a_session_nor_leak() {
    let n = node_with(secret(1));
    let peer = node_with(secret(1));
    assert_exchange(&n, &peer, "before the flood");
    let baseline = open_fds();
    let mut flood: Vec<TcpStream> = Vec::new();
    for i in 0..600 {
        let Ok(mut s) = TcpStream::connect(n.addr().socket_addr()) else { continue };
        if i % 2 == 0 {
            let _ = s.write_all(&[0x16, 0x03, 0x01]); // the start of a record, then nothing
        }
        flood.push(s);
        if i % 100 == 0 {
            assert_exchange(&n, &peer, &format!("during the flood ({i})"));
        }
    }
    assert!(flood.len() > 500, "only {} connections opened", flood.len());
    assert_exchange(&n, &peer, "after the flood");
    wait_for_warning(&[&n.addr().to_string(), "handshakes_max"]);
    // Every flood connection is closed by the node: at the deadline, or at once over the cap.
    let deadline = Instant::now() + WAIT;
    for s in &mut flood {
        s.set_read_timeout(Some(
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
        ))
        .unwrap();
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    drop(flood);
    // The node holds no descriptor for them any more (a little slack for the test harness).
    let after = open_fds();
    assert!(after <= baseline + 4, "fds: {baseline} before, {after} after the flood");
    // And a new peer can still connect and be served.
    let late = node_with(secret(1));
    assert_exchange(&n, &late, "a new peer after the flood");
}
