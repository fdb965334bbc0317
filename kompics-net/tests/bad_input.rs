//! Bad input on one connection closes that connection, with a warning naming the peer and the
//! reason, and nothing else: a well-behaved peer still exchanges messages with the node.
//!
//! Each case uses a raw `std::net::TcpStream`. Cases after a valid hello also check that the
//! node reports the raw peer's session ending.

mod common;

use std::net::Shutdown;
use std::time::Duration;

use common::{
    assert_exchange, hello, plaintext, reserve_addr, wait_for_warning, welcome, Node, RawPeer,
    ROUTE,
};
use kompics_net::frame::{FrameKind, WIRE_VERSION};
use kompics_net::{Frame, TransportEvent};

const FRAME_BYTES_MAX: usize = 4096;

fn node() -> Node {
    Node::start_with(|c| {
        plaintext(c);
        c.frame_bytes_max = FRAME_BYTES_MAX;
        c.handshake_timeout = Duration::from_millis(300);
    })
}

/// A raw peer that has completed the handshake with `node` under a fresh identity.
fn raw_session(node: &Node) -> (RawPeer, kompics_net::NodeAddr) {
    let (_reserved, me) = reserve_addr();
    let raw = RawPeer::handshake(node.addr(), me);
    node.wait_for("raw session up", |e| *e == TransportEvent::SessionUp(me));
    (raw, me)
}

/// The raw peer's session ends, and another peer is served as before.
fn assert_only_that_connection_closed(
    node: &Node,
    raw: &mut RawPeer,
    raw_id: kompics_net::NodeAddr,
    tag: &str,
) {
    raw.assert_closed_by_node();
    node.wait_for("raw session down", |e| *e == TransportEvent::SessionDown(raw_id));
    let good = Node::start_with(plaintext);
    assert_exchange(node, &good, tag);
}

fn header(len: u32, version: u8, kind: u8) -> Vec<u8> {
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[version, kind]);
    bytes
}

#[test]
fn an_oversized_length_closes_the_connection() {
    let n = node();
    let (mut raw, me) = raw_session(&n);
    raw.write(&header(FRAME_BYTES_MAX as u32 + 1, WIRE_VERSION, FrameKind::Message.as_byte()));
    let line = wait_for_warning(&[&me.to_string(), "exceeds frame_bytes_max"]);
    assert!(line.contains(&format!("{}", FRAME_BYTES_MAX + 1)), "{line}");
    assert_only_that_connection_closed(&n, &mut raw, me, "after oversized frame");
}

#[test]
fn a_non_kompics_client_before_any_hello_is_closed() {
    // "GET " read as a length is about 1.2 GB: rejected from the header alone.
    let n = node();
    let mut raw = RawPeer::connect(n.addr());
    let from = raw.stream.local_addr().unwrap().to_string();
    raw.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.assert_closed_by_node();
    wait_for_warning(&[&from, "exceeds frame_bytes_max"]);
    assert_exchange(&n, &Node::start_with(plaintext), "after http request");
}

#[test]
fn an_unknown_version_closes_the_connection() {
    let n = node();
    let (mut raw, me) = raw_session(&n);
    raw.write(&header(10, WIRE_VERSION + 1, FrameKind::Message.as_byte()));
    wait_for_warning(&[&me.to_string(), &format!("unknown wire version {}", WIRE_VERSION + 1)]);
    assert_only_that_connection_closed(&n, &mut raw, me, "after unknown version");
}

#[test]
fn an_unknown_kind_closes_the_connection() {
    let n = node();
    let (mut raw, me) = raw_session(&n);
    raw.write(&header(10, WIRE_VERSION, 0xee));
    wait_for_warning(&[&me.to_string(), "unknown frame kind 238"]);
    assert_only_that_connection_closed(&n, &mut raw, me, "after unknown kind");
}

#[test]
fn a_garbage_body_closes_the_connection() {
    let n = node();
    let (mut raw, me) = raw_session(&n);
    let mut bytes = header(2 + 5, WIRE_VERSION, FrameKind::Message.as_byte());
    bytes.extend_from_slice(&[0xc1, 0xff, 0x00, 0x13, 0x37]);
    raw.write(&bytes);
    wait_for_warning(&[&me.to_string(), "undecodable"]);
    assert_only_that_connection_closed(&n, &mut raw, me, "after garbage body");
}

#[test]
fn a_connection_closed_mid_frame_is_reported() {
    let n = node();
    let (mut raw, me) = raw_session(&n);
    let frame = Frame::Message { route: ROUTE, payload: vec![7; 100] }.to_bytes().unwrap();
    raw.write(&frame[..frame.len() / 2]);
    raw.stream.shutdown(Shutdown::Write).unwrap();
    wait_for_warning(&[&me.to_string(), "ended mid-frame"]);
    assert_only_that_connection_closed(&n, &mut raw, me, "after a cut-off frame");
}

#[test]
fn a_message_before_the_hello_closes_the_connection() {
    let n = node();
    let mut raw = RawPeer::connect(n.addr());
    let from = raw.stream.local_addr().unwrap().to_string();
    raw.write_frame(&Frame::Message { route: ROUTE, payload: b"sneaky".to_vec() });
    raw.assert_closed_by_node();
    wait_for_warning(&[&from, "expected a hello frame first"]);
    // Nothing was delivered and no session started.
    let good = Node::start_with(plaintext);
    assert_exchange(&n, &good, "after message without hello");
    assert!(n.drain_for(Duration::from_millis(50)).is_empty());
}

#[test]
fn a_connection_that_never_says_hello_is_closed_after_the_handshake_timeout() {
    let n = node();
    let mut raw = RawPeer::connect(n.addr());
    let from = raw.stream.local_addr().unwrap().to_string();
    raw.assert_closed_by_node();
    wait_for_warning(&[&from, "no hello within"]);
    assert_exchange(&n, &Node::start_with(plaintext), "after silent connection");
}

#[test]
fn a_hello_claiming_to_be_the_node_itself_is_rejected() {
    let n = node();
    let mut raw = RawPeer::connect(n.addr());
    let from = raw.stream.local_addr().unwrap().to_string();
    raw.write_frame(&hello(n.addr()));
    raw.assert_closed_by_node();
    wait_for_warning(&[&from, "claims to be this node"]);
    assert_exchange(&n, &Node::start_with(plaintext), "after invalid hello");
}

#[test]
fn a_second_hello_on_a_session_closes_it() {
    let n = node();
    let (mut raw, me) = raw_session(&n);
    raw.write_frame(&hello(me));
    wait_for_warning(&[&me.to_string(), "unexpected hello frame"]);
    assert_only_that_connection_closed(&n, &mut raw, me, "after second hello");
}

#[test]
fn a_welcome_naming_another_node_closes_the_connection() {
    // The node dials a raw listener that answers with someone else's address.
    let (listener, raw_addr) = reserve_addr();
    let n = node();
    n.send(raw_addr, &"hi");
    let (stream, _) = listener.accept().unwrap();
    let mut raw = RawPeer::from_stream(stream);
    assert_eq!(raw.read_frame(), Some(hello(n.addr())));
    let (_other, impostor) = reserve_addr();
    raw.write_frame(&welcome(impostor));
    raw.assert_closed_by_node();
    wait_for_warning(&[&raw_addr.to_string(), &format!("welcome names {impostor}")]);
    assert_exchange(&n, &Node::start_with(plaintext), "after bad welcome");
}
