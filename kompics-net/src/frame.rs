//! The wire format: how frames are laid out on a TCP stream, and [`FrameDecoder`], which cuts
//! a byte stream back into frames.
//!
//! Every frame is
//!
//! ```text
//! +----------------+---------+------+------------------------+
//! | len: u32 (BE)  | version | kind | body (len - 2 bytes)   |
//! +----------------+---------+------+------------------------+
//!      4 bytes       1 byte   1 byte   rmp-serde, compact form
//! ```
//!
//! `len` counts the bytes after the length field (version, kind and body), so a reader knows
//! how much to wait for before it has read anything else. The version byte is
//! [`WIRE_VERSION`]; a reader rejects any other, so an incompatible change of format is a clean
//! error rather than a misread. The kinds are:
//!
//! - [`FrameKind::Hello`]: the first frame a connecting node sends (inside TLS, in the secure
//!   modes), a [`Handshake`]: its listening address (its [`NodeAddr`]), its cluster identity,
//!   its security mode, a random nonce and, in shared-secret mode, its proof (see
//!   [`crate::tls`]).
//! - [`FrameKind::Welcome`]: the accepting node's answer, a [`Handshake`] naming itself; the
//!   session exists from here on. Waiting for it is what lets the connecting side keep its
//!   messages queued until the other side has accepted the connection (see [`crate::tcp`] on
//!   simultaneous connects).
//! - [`FrameKind::Refuse`]: the accepting node's answer to a hello it refuses (another cluster,
//!   another mode, a failed proof or identity check), with the reason, so the dialer can log
//!   why; the connection is closed after it.
//! - [`FrameKind::Message`]: a [`Route`] and a payload (a MessagePack `bin`).
//!
//! A frame longer than `frame_bytes_max` is rejected as soon as its length field has been read,
//! before any room is made for its body, so a peer cannot make a node allocate more than that
//! bound.

use std::fmt;
use std::io::{self, Cursor, Read};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::address::NodeAddr;
use crate::bytes::Bytes;
use crate::message::Route;

/// The version byte of every frame this crate writes and the only one it accepts.
pub const WIRE_VERSION: u8 = 2;

/// Bytes in the length field at the start of a frame.
pub const FRAME_LENGTH_BYTES: usize = 4;

/// Bytes before the body: the length field, the version and the kind.
pub const FRAME_HEADER_BYTES: usize = FRAME_LENGTH_BYTES + 2;

/// Default bound on a frame's length field (16 MiB).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// The largest `frame_bytes_max` that can be configured: what the 4-byte length field can say.
pub const FRAME_BYTES_MAX_LIMIT: usize = u32::MAX as usize;

/// Free space the decoder wants before it asks a reader for more bytes.
const READ_ROOM_MIN: usize = 16 * 1024;
/// How much the decoder grows its buffer by when it needs room (and no larger frame is pending).
const READ_CHUNK: usize = 64 * 1024;
/// An empty buffer larger than this is released rather than kept, so one large frame does not
/// pin its memory for the life of the connection.
const BUF_RETAIN_MAX: usize = 1024 * 1024;

/// What a frame is: the byte after the version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// The connecting node introduces itself.
    Hello = 1,
    /// The accepting node accepts the connection and introduces itself.
    Welcome = 2,
    /// A message for a component on the receiving node.
    Message = 3,
    /// The accepting node refuses the hello; the connection closes.
    Refuse = 4,
}

impl FrameKind {
    /// The kind a byte on the wire stands for, if any.
    pub const fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Hello),
            2 => Some(FrameKind::Welcome),
            3 => Some(FrameKind::Message),
            4 => Some(FrameKind::Refuse),
            _ => None,
        }
    }

    /// The byte written on the wire for this kind.
    pub const fn as_byte(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameKind::Hello => "hello",
            FrameKind::Welcome => "welcome",
            FrameKind::Message => "message",
            FrameKind::Refuse => "refuse",
        })
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The connecting node introduces itself (and, with a shared secret, proves it).
    Hello(Handshake),
    /// The accepting node accepts the connection and introduces itself.
    Welcome(Handshake),
    /// The accepting node refuses the connection, saying why.
    Refuse {
        /// Why, for the dialer's log.
        reason: String,
    },
    /// A message; the source and destination are the two ends of the session.
    Message {
        /// The component instance the message is for.
        route: Route,
        /// The message's bytes.
        payload: Vec<u8>,
    },
}

impl Frame {
    /// The kind byte this frame is written with.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Hello(_) => FrameKind::Hello,
            Frame::Welcome(_) => FrameKind::Welcome,
            Frame::Refuse { .. } => FrameKind::Refuse,
            Frame::Message { .. } => FrameKind::Message,
        }
    }

    /// Appends this frame to `out`; see [`encode_message`] for the bound and the result.
    pub fn encode_into(
        &self,
        out: &mut Vec<u8>,
        frame_bytes_max: usize,
    ) -> Result<usize, FrameError> {
        match self {
            Frame::Hello(h) => encode_body(FrameKind::Hello, h, out, frame_bytes_max),
            Frame::Welcome(h) => encode_body(FrameKind::Welcome, h, out, frame_bytes_max),
            Frame::Refuse { reason } => {
                encode_body(FrameKind::Refuse, &RefuseBody { reason }, out, frame_bytes_max)
            }
            Frame::Message { route, payload } => {
                encode_message(*route, payload, out, frame_bytes_max)
            }
        }
    }

    /// This frame as a fresh byte vector (bounded by [`FRAME_BYTES_MAX_LIMIT`] only).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.encode_into(&mut out, FRAME_BYTES_MAX_LIMIT)?;
        Ok(out)
    }
}

/// Body of a hello or welcome frame: who the sender is and, in shared-secret mode, its proof.
/// The receiver checks every field (see [`crate::tcp`]); nothing here is trusted as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// The sender's listening address, its node identity.
    pub node: NodeAddr,
    /// The sender's cluster identity; a receiver of another cluster refuses it.
    pub cluster: String,
    /// The sender's security mode ([`crate::tls::SecurityMode`] as a byte); must equal the
    /// receiver's.
    pub mode: u8,
    /// Random bytes from the sender, fresh per connection (MACed in shared-secret mode).
    #[serde(with = "crate::bytes::vec")]
    pub nonce: Vec<u8>,
    /// Shared-secret mode: the sender's HMAC proof; empty otherwise.
    #[serde(with = "crate::bytes::vec")]
    pub proof: Vec<u8>,
}

impl Handshake {
    /// An insecure-mode handshake for `node` of `cluster`, with no nonce or proof (what a
    /// plaintext peer sends; also handy for tests that speak the protocol by hand).
    pub fn insecure(node: NodeAddr, cluster: &str) -> Handshake {
        Handshake {
            node,
            cluster: cluster.to_string(),
            mode: crate::tls::SecurityMode::Insecure.as_byte(),
            nonce: Vec::new(),
            proof: Vec::new(),
        }
    }
}

/// Body of a refuse frame.
#[derive(Serialize, Deserialize)]
struct RefuseBody<S> {
    reason: S,
}

/// Body of a message frame, borrowing its payload both ways (no copy to encode, one to decode).
#[derive(Serialize, Deserialize)]
struct MessageBody<'a> {
    route: Route,
    #[serde(borrow)]
    payload: Bytes<'a>,
}

/// Appends a message frame for `route` and `payload` to `out`, without building a [`Frame`].
///
/// Returns the number of bytes appended. If the frame's length field would exceed
/// `frame_bytes_max`, returns [`FrameError::Oversized`] and leaves `out` as it was.
pub fn encode_message(
    route: Route,
    payload: &[u8],
    out: &mut Vec<u8>,
    frame_bytes_max: usize,
) -> Result<usize, FrameError> {
    encode_body(
        FrameKind::Message,
        &MessageBody { route, payload: Bytes(payload) },
        out,
        frame_bytes_max,
    )
}

fn encode_body<B: Serialize>(
    kind: FrameKind,
    body: &B,
    out: &mut Vec<u8>,
    frame_bytes_max: usize,
) -> Result<usize, FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LENGTH_BYTES]);
    out.push(WIRE_VERSION);
    out.push(kind.as_byte());
    // Writing into a Vec cannot fail for I/O reasons, and our bodies hold only integers,
    // addresses and byte strings, which rmp-serde always encodes.
    if let Err(e) = rmp_serde::encode::write(out, body) {
        out.truncate(start);
        return Err(FrameError::Undecodable(format!("cannot encode {kind} body: {e}")));
    }
    let len = out.len() - start - FRAME_LENGTH_BYTES;
    let max = frame_bytes_max.min(FRAME_BYTES_MAX_LIMIT);
    if len > max {
        out.truncate(start);
        return Err(FrameError::Oversized { len, max });
    }
    // `len <= FRAME_BYTES_MAX_LIMIT`, which is `u32::MAX`.
    out[start..start + FRAME_LENGTH_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out.len() - start)
}

/// The largest number of bytes a message frame's length field counts besides the payload:
/// version and kind (2), the body's array marker (1), the largest [`Route`] (an array marker
/// and two `u32`s of 5 bytes each: 11) and a `bin32` header (5).
///
/// A message frame carries no node address (the session names both ends), so this bound holds
/// whatever the addresses, IPv4 or IPv6.
pub const MESSAGE_FRAME_OVERHEAD_MAX: usize = 2 + 1 + 11 + 5;

/// Bytes of an rmp-serde `u32` (MessagePack picks the smallest form).
const fn uint_bytes(value: u32) -> usize {
    match value {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

/// Bytes of the MessagePack header of a `bin` value of `len` bytes.
const fn bin_header_bytes(len: usize) -> usize {
    if len <= 0xff {
        2
    } else if len <= 0xffff {
        3
    } else {
        5
    }
}

/// The value the length field of the message frame for `route` and a payload of `payload_len`
/// bytes would hold: what [`encode_message`] compares with `frame_bytes_max`, computed without
/// encoding. (The whole frame is [`FRAME_LENGTH_BYTES`] more.)
///
/// The simulated network uses it so that its frame limit refuses exactly what TCP refuses.
pub const fn message_frame_len(route: Route, payload_len: usize) -> usize {
    2 + 1
        + 1
        + uint_bytes(route.service)
        + uint_bytes(route.instance)
        + bin_header_bytes(payload_len)
        + payload_len
}

/// The largest payload (bytes of [`crate::NetMessage::payload`]) that always fits a message frame
/// bounded by `frame_bytes_max`, whatever its route and addresses: a payload of this size is
/// never refused as too large, and with the largest route one byte more is.
///
/// Layers that size their own messages in bytes (proposal batches, sync and snapshot chunks)
/// should check their bounds against this at start:
/// `kompics_net::payload_bytes_max(config.frame_bytes_max)`. Returns 0 if `frame_bytes_max` is
/// too small for even an empty payload (no valid transport configuration is).
pub const fn payload_bytes_max(frame_bytes_max: usize) -> usize {
    let max = if frame_bytes_max < FRAME_BYTES_MAX_LIMIT {
        frame_bytes_max
    } else {
        FRAME_BYTES_MAX_LIMIT
    };
    // Everything but the bin header, for the largest route.
    let fixed = MESSAGE_FRAME_OVERHEAD_MAX - 5;
    // Try the bin header sizes from the largest payloads down: the first that fits is the
    // largest payload (a larger payload never needs a smaller header).
    let with_bin32 = max.saturating_sub(fixed + 5);
    if with_bin32 > 0xffff {
        return with_bin32;
    }
    let with_bin16 = min(max.saturating_sub(fixed + 3), 0xffff);
    if with_bin16 > 0xff {
        return with_bin16;
    }
    min(max.saturating_sub(fixed + 2), 0xff)
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

/// Why a byte stream is not a valid sequence of frames (or a frame could not be written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length field says `len` bytes, more than the bound `max`.
    Oversized {
        /// The length the frame declared (or would have had, when encoding).
        len: usize,
        /// The configured `frame_bytes_max`.
        max: usize,
    },
    /// The length field is too small to hold even the version and kind bytes.
    Undersized {
        /// The length the frame declared.
        len: usize,
    },
    /// The version byte is not [`WIRE_VERSION`].
    UnknownVersion(u8),
    /// The kind byte is not a [`FrameKind`].
    UnknownKind(u8),
    /// The body is not a valid encoding for its kind (or has bytes left over after it).
    Undecodable(String),
    /// The stream ended in the middle of a frame, with this many bytes of it buffered.
    Truncated {
        /// Bytes of the incomplete frame that had arrived.
        buffered: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Oversized { len, max } => {
                write!(f, "frame of {len} bytes exceeds frame_bytes_max ({max})")
            }
            FrameError::Undersized { len } => {
                write!(f, "frame length {len} is too short for the version and kind bytes")
            }
            FrameError::UnknownVersion(v) => {
                write!(f, "unknown wire version {v} (expected {WIRE_VERSION})")
            }
            FrameError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::Undecodable(reason) => write!(f, "undecodable frame body: {reason}"),
            FrameError::Truncated { buffered } => {
                write!(f, "stream ended mid-frame ({buffered} bytes of an incomplete frame)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Cuts a byte stream into [`Frame`]s, fed incrementally.
///
/// Feed bytes with [`FrameDecoder::feed`] or [`FrameDecoder::read_from`], then call
/// [`FrameDecoder::next_frame`] until it returns `Ok(None)` before feeding more: the length
/// bound is checked there, so draining between reads is what keeps the buffer within
/// `frame_bytes_max` plus one read. The first error is final: the stream cannot be resynchronised
/// (there is no frame marker to look for), so every later call returns the same error.
#[derive(Debug)]
pub struct FrameDecoder {
    /// `buf[start..end]` holds bytes received and not yet consumed; `buf[end..]` is free room
    /// (kept initialised so reads need no unsafe code).
    buf: Vec<u8>,
    start: usize,
    end: usize,
    frame_bytes_max: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that rejects frames whose length field exceeds `frame_bytes_max` (capped at
    /// [`FRAME_BYTES_MAX_LIMIT`]).
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            frame_bytes_max: frame_bytes_max.min(FRAME_BYTES_MAX_LIMIT),
            failed: None,
        }
    }

    /// The bound on a frame's length field.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    /// Appends bytes received from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.buf.len() - self.end < bytes.len() {
            self.compact();
            if self.buf.len() - self.end < bytes.len() {
                self.buf.resize(self.end + bytes.len(), 0);
            }
        }
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Reads once from `reader` straight into the decoder's buffer (no intermediate copy) and
    /// returns what `read` returned: `Ok(0)` means end of stream.
    pub fn read_from<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<usize> {
        self.read_some(reader).map(|(n, _)| n)
    }

    /// Like [`FrameDecoder::read_from`], and also tells whether the read filled all the room
    /// it was given: if not (and it read something), a socket's receive queue was empty when
    /// the read returned.
    pub fn read_some<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<(usize, bool)> {
        self.reserve_for_read();
        let room = self.buf.len() - self.end;
        let n = reader.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok((n, n == room))
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the error that makes the
    /// stream unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.parse() {
            Ok(frame) => Ok(frame),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Checks that the stream may end here: `Err` if a frame was cut off (or an earlier error
    /// occurred), `Ok` at a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.buffered_len() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }

    fn parse(&mut self) -> Result<Option<Frame>, FrameError> {
        let avail = &self.buf[self.start..self.end];
        let Some(len) = self.declared_len(avail)? else {
            return Ok(None);
        };
        // Check version and kind as soon as they arrive, so a bad stream fails without waiting
        // for a body that may never come.
        if let Some(&version) = avail.get(FRAME_LENGTH_BYTES) {
            if version != WIRE_VERSION {
                return Err(FrameError::UnknownVersion(version));
            }
        }
        let Some(&kind_byte) = avail.get(FRAME_LENGTH_BYTES + 1) else {
            return Ok(None);
        };
        let kind = FrameKind::from_byte(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
        let frame_end = FRAME_LENGTH_BYTES + len;
        if avail.len() < frame_end {
            return Ok(None);
        }
        let frame = decode_body(kind, &avail[FRAME_HEADER_BYTES..frame_end])?;
        self.start += frame_end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > BUF_RETAIN_MAX {
                self.buf = Vec::new();
            }
        }
        Ok(Some(frame))
    }

    /// The validated length field of the frame at the front of `avail`, once it has arrived.
    fn declared_len(&self, avail: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(field) = avail.get(..FRAME_LENGTH_BYTES) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([field[0], field[1], field[2], field[3]]) as usize;
        if len > self.frame_bytes_max {
            return Err(FrameError::Oversized { len, max: self.frame_bytes_max });
        }
        if len < FRAME_HEADER_BYTES - FRAME_LENGTH_BYTES {
            return Err(FrameError::Undersized { len });
        }
        Ok(Some(len))
    }

    /// Makes at least `READ_ROOM_MIN` bytes of room after `end`, or room for the whole pending
    /// frame if its (already validated) length is known and larger.
    fn reserve_for_read(&mut self) {
        if self.buf.len() - self.end >= READ_ROOM_MIN {
            return;
        }
        self.compact();
        if self.buf.len() - self.end >= READ_ROOM_MIN {
            return;
        }
        let avail = &self.buf[self.start..self.end];
        let pending_end = match self.declared_len(avail) {
            Ok(Some(len)) => FRAME_LENGTH_BYTES + len,
            // Unknown or invalid length: `next_frame` reports an invalid one; grow by one chunk.
            _ => 0,
        };
        let new_len = (self.end + READ_CHUNK).max(pending_end);
        self.buf.resize(new_len, 0);
    }

    /// Moves the unconsumed bytes to the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

fn decode_body(kind: FrameKind, body: &[u8]) -> Result<Frame, FrameError> {
    match kind {
        FrameKind::Hello => decode_exact::<Handshake>(kind, body).map(Frame::Hello),
        FrameKind::Welcome => decode_exact::<Handshake>(kind, body).map(Frame::Welcome),
        FrameKind::Refuse => decode_exact::<RefuseBody<String>>(kind, body)
            .map(|b| Frame::Refuse { reason: b.reason }),
        FrameKind::Message => {
            let mut de = rmp_serde::Deserializer::from_read_ref(body);
            let decoded = MessageBody::deserialize(&mut de)
                .map_err(|e| FrameError::Undecodable(format!("{kind} body: {e}")))?;
            // The payload is the last field and is borrowed from `body`, so it must end exactly
            // where the body ends; anything after it is corruption, not padding.
            if decoded.payload.0.as_ptr_range().end != body.as_ptr_range().end {
                return Err(FrameError::Undecodable(format!("{kind} body has trailing bytes")));
            }
            Ok(Frame::Message { route: decoded.route, payload: decoded.payload.0.to_vec() })
        }
    }
}

/// Decodes a small body and checks that it used every byte.
fn decode_exact<T: DeserializeOwned>(kind: FrameKind, body: &[u8]) -> Result<T, FrameError> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(body));
    let value = T::deserialize(&mut de)
        .map_err(|e| FrameError::Undecodable(format!("{kind} body: {e}")))?;
    let used = de.position() as usize;
    if used != body.len() {
        return Err(FrameError::Undecodable(format!(
            "{kind} body has {} trailing bytes",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LARGEST_ROUTE: Route = Route::new(u32::MAX, u32::MAX);

    fn encoded_len(route: Route, payload_len: usize) -> usize {
        let mut out = Vec::new();
        encode_message(route, &vec![7; payload_len], &mut out, FRAME_BYTES_MAX_LIMIT).unwrap();
        out.len() - FRAME_LENGTH_BYTES
    }

    #[test]
    fn message_frame_len_is_what_encoding_produces() {
        let routes = [0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, u32::MAX];
        let lens = [0, 1, 0xff, 0x100, 0xffff, 0x1_0000, 70_000];
        for &service in &routes {
            for &instance in &[0, u32::MAX] {
                for &len in &lens {
                    let route = Route::new(service, instance);
                    assert_eq!(
                        message_frame_len(route, len),
                        encoded_len(route, len),
                        "{route} {len}"
                    );
                }
            }
        }
        assert_eq!(
            message_frame_len(LARGEST_ROUTE, 0x1_0000) - 0x1_0000,
            MESSAGE_FRAME_OVERHEAD_MAX
        );
    }

    /// A payload of exactly `payload_bytes_max` fits with the largest route; one byte more does
    /// not, across the boundaries of the bin header sizes.
    #[test]
    fn payload_bytes_max_fits_and_one_byte_more_does_not() {
        let bounds = [
            30,
            MESSAGE_FRAME_OVERHEAD_MAX + 0xff,
            MESSAGE_FRAME_OVERHEAD_MAX + 0x100,
            MESSAGE_FRAME_OVERHEAD_MAX + 0xffff,
            MESSAGE_FRAME_OVERHEAD_MAX + 0xffff + 2,
            MESSAGE_FRAME_OVERHEAD_MAX + 0x1_0000,
            FRAME_BYTES_MAX_DEFAULT,
        ];
        for frame_bytes_max in bounds {
            let max = payload_bytes_max(frame_bytes_max);
            let mut out = Vec::new();
            encode_message(LARGEST_ROUTE, &vec![1; max], &mut out, frame_bytes_max)
                .unwrap_or_else(|e| panic!("{max} bytes within {frame_bytes_max}: {e}"));
            out.clear();
            let err = encode_message(LARGEST_ROUTE, &vec![1; max + 1], &mut out, frame_bytes_max)
                .unwrap_err();
            assert!(matches!(err, FrameError::Oversized { .. }), "{err}");
            // Any other route needs no more room.
            encode_message(Route::new(3, 0), &vec![1; max], &mut out, frame_bytes_max).unwrap();
        }
        assert_eq!(payload_bytes_max(10), 0, "too small for any payload");
    }

    fn node(port: u16) -> NodeAddr {
        NodeAddr(([127, 0, 0, 1], port).into())
    }

    fn message(payload: &[u8]) -> Frame {
        Frame::Message { route: Route::new(3, 9), payload: payload.to_vec() }
    }

    fn decode_all(bytes: &[u8], max: usize) -> Result<Vec<Frame>, FrameError> {
        let mut decoder = FrameDecoder::new(max);
        decoder.feed(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
        }
        decoder.finish()?;
        Ok(frames)
    }

    /// Header for a frame of `len` bytes after the length field.
    fn header(len: u32, version: u8, kind: u8) -> Vec<u8> {
        let mut h = len.to_be_bytes().to_vec();
        h.push(version);
        h.push(kind);
        h
    }

    #[test]
    fn layout_is_length_version_kind_body() {
        let bytes = message(b"abc").to_bytes().unwrap();
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - FRAME_LENGTH_BYTES);
        assert_eq!(bytes[4], WIRE_VERSION);
        assert_eq!(bytes[5], FrameKind::Message.as_byte());
        // Body: a 2-array of (route as a 2-array, payload as bin 8).
        assert_eq!(&bytes[6..], &[0x92, 0x92, 3, 9, 0xc4, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn every_kind_roundtrips() {
        let frames = vec![
            Frame::Hello(Handshake::insecure(node(1000), "c")),
            Frame::Welcome(Handshake::insecure(NodeAddr("[::1]:2000".parse().unwrap()), "c")),
            Frame::Refuse { reason: "no".into() },
            message(b""),
            message(&[0xff; 1000]),
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            f.encode_into(&mut bytes, FRAME_BYTES_MAX_DEFAULT).unwrap();
        }
        assert_eq!(decode_all(&bytes, FRAME_BYTES_MAX_DEFAULT).unwrap(), frames);
    }

    #[test]
    fn encode_message_matches_frame_encoding() {
        let mut a = Vec::new();
        encode_message(Route::new(3, 9), b"xyz", &mut a, 64).unwrap();
        assert_eq!(a, message(b"xyz").to_bytes().unwrap());
    }

    #[test]
    fn encoding_over_the_bound_fails_and_leaves_output_unchanged() {
        let mut out = vec![7];
        let err = encode_message(Route::new(0, 0), &[0; 100], &mut out, 50).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { max: 50, .. }), "{err:?}");
        assert_eq!(out, vec![7]);
    }

    #[test]
    fn oversized_length_is_rejected_from_the_header_alone() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.feed(&1025u32.to_be_bytes());
        assert_eq!(decoder.next_frame(), Err(FrameError::Oversized { len: 1025, max: 1024 }));
        // The body was never waited for, and the error is final.
        assert_eq!(decoder.buffered_len(), 4);
        assert!(decoder.next_frame().is_err());
        assert!(decoder.finish().is_err());
    }

    #[test]
    fn oversized_length_does_not_grow_the_read_buffer() {
        let mut decoder = FrameDecoder::new(1024);
        let mut stream: &[u8] = &u32::MAX.to_be_bytes();
        decoder.read_from(&mut stream).unwrap();
        assert!(decoder.next_frame().is_err());
        decoder.read_from(&mut &[0u8; 8][..]).unwrap();
        assert!(decoder.buf.len() <= 2 * READ_CHUNK, "buffer grew to {}", decoder.buf.len());
    }

    #[test]
    fn undersized_length_is_rejected() {
        assert_eq!(decode_all(&[0, 0, 0, 1, 1], 64), Err(FrameError::Undersized { len: 1 }));
    }

    #[test]
    fn unknown_version_is_rejected_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.feed(&header(100, WIRE_VERSION + 1, 3)[..5]);
        assert_eq!(decoder.next_frame(), Err(FrameError::UnknownVersion(WIRE_VERSION + 1)));
    }

    #[test]
    fn unknown_kind_is_rejected_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.feed(&header(100, WIRE_VERSION, 42));
        assert_eq!(decoder.next_frame(), Err(FrameError::UnknownKind(42)));
    }

    #[test]
    fn garbage_body_is_undecodable() {
        let mut bytes = header(5, WIRE_VERSION, FrameKind::Message.as_byte());
        bytes.extend_from_slice(&[0xc1, 0xc1, 0xc1]);
        assert!(matches!(decode_all(&bytes, 64), Err(FrameError::Undecodable(_))));
    }

    #[test]
    fn trailing_bytes_in_a_body_are_undecodable() {
        for frame in [message(b"abc"), Frame::Hello(Handshake::insecure(node(5), "c"))] {
            let mut bytes = frame.to_bytes().unwrap();
            bytes.push(0);
            let len = (bytes.len() - FRAME_LENGTH_BYTES) as u32;
            bytes[..4].copy_from_slice(&len.to_be_bytes());
            let err = decode_all(&bytes, 1024).unwrap_err();
            assert!(
                matches!(&err, FrameError::Undecodable(r) if r.contains("trailing")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_stream_cut_mid_frame_is_truncated() {
        let bytes = message(b"hello").to_bytes().unwrap();
        let mut decoder = FrameDecoder::new(1024);
        decoder.feed(&bytes[..bytes.len() - 1]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: bytes.len() - 1 }));
    }

    #[test]
    fn large_frames_read_in_pieces_grow_the_buffer_to_fit() {
        let payload = vec![5u8; 3 * READ_CHUNK + 17];
        let mut bytes = message(&payload).to_bytes().unwrap();
        message(b"next").encode_into(&mut bytes, usize::MAX).unwrap();
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT);
        let mut reader = &bytes[..];
        let mut frames = Vec::new();
        while decoder.read_from(&mut reader).unwrap() > 0 {
            while let Some(f) = decoder.next_frame().unwrap() {
                frames.push(f);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(frames, vec![message(&payload), message(b"next")]);
    }

    fn arb_node() -> impl Strategy<Value = NodeAddr> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| NodeAddr((ip, port).into()))
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            arb_node().prop_map(|node| Frame::Hello(Handshake::insecure(node, "c"))),
            arb_node().prop_map(|node| Frame::Welcome(Handshake::insecure(node, "c"))),
            (any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(s, i, payload)| Frame::Message { route: Route::new(s, i), payload }),
        ]
    }

    /// Feeds `bytes` in pieces whose sizes cycle through `chunks`, collecting frames as they
    /// complete; stops at the first error.
    fn decode_chunked(
        bytes: &[u8],
        chunks: &[usize],
        max: usize,
    ) -> (Vec<Frame>, Result<(), FrameError>) {
        let mut decoder = FrameDecoder::new(max);
        let mut frames = Vec::new();
        let mut rest = bytes;
        let mut sizes = chunks.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).clamp(1, rest.len());
            decoder.feed(&rest[..n]);
            rest = &rest[n..];
            loop {
                match decoder.next_frame() {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => break,
                    Err(e) => return (frames, Err(e)),
                }
            }
        }
        let end = decoder.finish();
        (frames, end)
    }

    proptest! {
        #[test]
        fn roundtrip_under_arbitrary_chunking(
            frames in proptest::collection::vec(arb_frame(), 0..20),
            chunks in proptest::collection::vec(1usize..200, 1..10),
        ) {
            let mut bytes = Vec::new();
            for f in &frames {
                f.encode_into(&mut bytes, FRAME_BYTES_MAX_DEFAULT).unwrap();
            }
            let (decoded, end) = decode_chunked(&bytes, &chunks, FRAME_BYTES_MAX_DEFAULT);
            prop_assert_eq!(end, Ok(()));
            prop_assert_eq!(decoded, frames);
        }

        #[test]
        fn arbitrary_garbage_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            chunks in proptest::collection::vec(1usize..300, 1..10),
            max in 0usize..4096,
        ) {
            let (_, _) = decode_chunked(&bytes, &chunks, max);
        }

        #[test]
        fn garbage_after_valid_frames_keeps_the_valid_prefix(
            frames in proptest::collection::vec(arb_frame(), 1..5),
            garbage in proptest::collection::vec(any::<u8>(), 1..100),
        ) {
            let mut bytes = Vec::new();
            for f in &frames {
                f.encode_into(&mut bytes, FRAME_BYTES_MAX_DEFAULT).unwrap();
            }
            bytes.extend_from_slice(&garbage);
            let (decoded, _) = decode_chunked(&bytes, &[7], FRAME_BYTES_MAX_DEFAULT);
            prop_assert!(decoded.len() >= frames.len());
            prop_assert_eq!(&decoded[..frames.len()], &frames[..]);
        }
    }
}
