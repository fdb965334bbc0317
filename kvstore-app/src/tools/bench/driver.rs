//! The load generator's engine: one thread drives many client connections with non-blocking
//! sockets (mio), as redis-benchmark and memtier do, instead of a thread per client.
//!
//! A thread per client blocks in `read` after each batch, so every request costs the
//! generator two context switches besides its `send` and `recv`; on a small machine shared
//! with the servers, that is CPU the servers do not get. Here a thread sleeps in `poll` only
//! when none of its connections has a reply to read or a request to write.
//!
//! Each connection keeps the closed loop of the blocking client: it sends a batch of
//! `pipeline` requests, waits for all their replies, then sends the next. After an I/O error,
//! a malformed reply or a reply timeout it counts the batch's missing replies as I/O errors
//! and reconnects to the next endpoint at once; a failed connection attempt is one I/O error
//! and a pause of [`RECONNECT_BACKOFF`] before the next endpoint is tried.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{BenchConfig, ClientTally, ErrorKind, Shared};
use crate::resp::{encode_request, ReplyParser, RespValue};

/// The pause between failed connection attempts of one client.
pub(super) const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Bytes read from a socket per `read`.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The longest a thread sleeps in `poll`, so that it notices the end and its deadlines.
const POLL_MAX: Duration = Duration::from_millis(10);

/// Where a client connection stands.
enum State {
    /// No connection: try `endpoint` again at this instant.
    Down { retry_at: Instant },
    /// A non-blocking connect in progress, given up at `deadline`.
    Connecting { stream: TcpStream, deadline: Instant },
    /// Connected: a batch is written (from `out[written..]`), its replies read.
    Up { stream: TcpStream },
}

/// One client: its own request sequence, endpoint and connection.
struct Client {
    rng: SmallRng,
    value: Vec<u8>,
    endpoint: usize,
    state: State,
    parser: ReplyParser,
    /// The batch in flight: whether each request is a read, and how many were answered.
    is_read: Vec<bool>,
    answered: usize,
    /// When the batch was sent (latencies count from there), and its reply deadline.
    sent_at: Instant,
    deadline: Instant,
    /// The batch's encoded requests and how much of them is written.
    out: Vec<u8>,
    written: usize,
    /// Whether the batch starts with an `AUTH` (the first on a connection, when the run has a
    /// password) whose reply is not counted as an operation.
    auth_pending: bool,
}

impl Client {
    /// Client `index` of the run, down, to connect at once. Its value is drawn from its own
    /// generator, seeded from the run's seed and its index.
    fn new(config: &BenchConfig, index: usize, now: Instant) -> Client {
        let mut rng = SmallRng::seed_from_u64(
            config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let value = (0..config.value_size).map(|_| rng.random_range(b'a'..=b'z')).collect();
        Client {
            rng,
            value,
            endpoint: index % config.endpoints.len(),
            state: State::Down { retry_at: now },
            parser: ReplyParser::default(),
            is_read: Vec::with_capacity(config.pipeline),
            answered: 0,
            sent_at: now,
            deadline: now,
            out: Vec::new(),
            written: 0,
            auth_pending: false,
        }
    }
}

/// Runs the clients `indices` on this thread until `end`; returns their combined tally.
pub(super) fn drive(
    config: &BenchConfig,
    indices: &[usize],
    shared: &Shared,
    measure_from: Instant,
    end: Instant,
) -> io::Result<ClientTally> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut tally = ClientTally::default();
    let mut read_buf = vec![0u8; READ_CHUNK_BYTES];
    let mut key = Vec::new();
    let now = Instant::now();
    let mut clients: Vec<Client> =
        indices.iter().map(|&index| Client::new(config, index, now)).collect();
    let mut run = Run { config, shared, measure_from, end, tally: &mut tally };

    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wake = run.check_deadlines(&poll, &mut clients, now);
        match poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if let Some(client) = clients.get_mut(event.token().0) {
                run.on_event(client, event, &mut read_buf, &mut key);
            }
        }
    }
    Ok(tally)
}

/// What a thread's clients share while it runs.
struct Run<'a> {
    config: &'a BenchConfig,
    shared: &'a Shared,
    measure_from: Instant,
    end: Instant,
    tally: &'a mut ClientTally,
}

impl Run<'_> {
    /// Acts on the deadlines that passed (reconnections due, connects and replies overdue);
    /// returns when the next one is due, at the latest [`POLL_MAX`] from `now` or the end.
    fn check_deadlines(&mut self, poll: &Poll, clients: &mut [Client], now: Instant) -> Instant {
        let mut wake = self.end.min(now + POLL_MAX);
        for (i, client) in clients.iter_mut().enumerate() {
            match &client.state {
                State::Down { retry_at } if *retry_at <= now => {
                    self.connect(poll, i, client, now);
                }
                State::Connecting { deadline, .. } if *deadline <= now => {
                    self.fail_connect(client, now);
                }
                State::Up { .. }
                    if client.answered < client.is_read.len() && client.deadline <= now =>
                {
                    self.fail(client, now);
                }
                _ => {}
            }
            let due = match &client.state {
                State::Down { retry_at } => Some(*retry_at),
                State::Connecting { deadline, .. } => Some(*deadline),
                State::Up { .. } if client.answered < client.is_read.len() => Some(client.deadline),
                State::Up { .. } => None,
            };
            if let Some(due) = due {
                wake = wake.min(due.max(now));
            }
        }
        wake
    }

    /// A readiness event of `client`'s socket: a connect finishing, room to write, replies.
    fn on_event(
        &mut self,
        client: &mut Client,
        event: &mio::event::Event,
        read_buf: &mut [u8],
        key: &mut Vec<u8>,
    ) {
        if matches!(client.state, State::Connecting { .. })
            && (event.is_writable() || event.is_error() || event.is_write_closed())
        {
            self.finish_connect(client, key);
        }
        if matches!(client.state, State::Up { .. }) {
            if event.is_writable() {
                self.write(client);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                self.read(client, read_buf, key);
            }
        }
    }

    fn count_error(&mut self, kind: ErrorKind, n: u64, at: Instant) {
        if at >= self.measure_from && n > 0 {
            *self.tally.errors.entry(kind).or_default() += n;
            self.shared.measured_errors.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Starts connecting client `i` to its endpoint.
    fn connect(&mut self, poll: &Poll, i: usize, client: &mut Client, now: Instant) {
        let addr: SocketAddr = self.config.endpoints[client.endpoint];
        let started = TcpStream::connect(addr).and_then(|mut stream| {
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
                .map(|()| stream)
        });
        match started {
            Ok(stream) => {
                client.state = State::Connecting { stream, deadline: now + self.config.timeout }
            }
            Err(_) => self.fail_connect(client, now),
        }
    }

    /// A connection attempt failed: one I/O error, then the next endpoint after a pause.
    fn fail_connect(&mut self, client: &mut Client, now: Instant) {
        self.count_error(ErrorKind::Io, 1, now);
        client.endpoint = (client.endpoint + 1) % self.config.endpoints.len();
        client.state = State::Down { retry_at: now + RECONNECT_BACKOFF };
    }

    /// The connect may have completed (or failed): if so, start the first batch.
    fn finish_connect(&mut self, client: &mut Client, key: &mut Vec<u8>) {
        let State::Connecting { stream, .. } = &client.state else { return };
        let failed = match stream.take_error() {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => match stream.peer_addr() {
                Ok(_) => false,
                // Not yet: a later event finishes it.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => true,
            },
        };
        if failed || stream.set_nodelay(true).is_err() {
            return self.fail_connect(client, Instant::now());
        }
        let State::Connecting { stream, .. } =
            std::mem::replace(&mut client.state, State::Down { retry_at: Instant::now() })
        else {
            return;
        };
        client.state = State::Up { stream };
        client.parser = ReplyParser::default();
        client.auth_pending = self.config.password.is_some();
        self.send_batch(client, key);
    }

    /// Sends the next batch of `pipeline` requests, unless the run is over.
    fn send_batch(&mut self, client: &mut Client, key: &mut Vec<u8>) {
        let now = Instant::now();
        client.is_read.clear();
        client.answered = 0;
        if now >= self.end {
            return;
        }
        client.out.clear();
        client.written = 0;
        if let (true, Some(password)) = (client.auth_pending, &self.config.password) {
            // Pipelined ahead of the batch: the server handles it first.
            encode_request(&[&b"AUTH"[..], password.expose()], &mut client.out);
        }
        for _ in 0..self.config.pipeline {
            let read = client.rng.random_bool(self.config.read_ratio);
            self.config.write_key(client.rng.random_range(0..self.config.keys), key);
            if read {
                encode_request(&[&b"GET"[..], key], &mut client.out);
            } else {
                encode_request(&[&b"SET"[..], key, &client.value], &mut client.out);
            }
            client.is_read.push(read);
        }
        client.sent_at = now;
        client.deadline = now + self.config.timeout;
        self.write(client);
    }

    /// Writes what is left of the batch, as far as the socket takes it.
    fn write(&mut self, client: &mut Client) {
        let State::Up { stream } = &mut client.state else { return };
        while client.written < client.out.len() {
            match stream.write(&client.out[client.written..]) {
                Ok(0) => return self.fail(client, Instant::now()),
                Ok(n) => client.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.fail(client, Instant::now()),
            }
        }
    }

    /// Reads and handles every reply available; sends the next batch once all are in.
    fn read(&mut self, client: &mut Client, buf: &mut [u8], key: &mut Vec<u8>) {
        loop {
            let State::Up { stream } = &mut client.state else { return };
            match stream.read(buf) {
                Ok(0) => return self.fail(client, Instant::now()),
                Ok(n) => client.parser.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.fail(client, Instant::now()),
            }
            loop {
                let reply = match client.parser.next_value() {
                    Ok(Some(reply)) => reply,
                    Ok(None) => break,
                    Err(_) => return self.fail(client, Instant::now()),
                };
                if client.auth_pending {
                    client.auth_pending = false;
                    if let RespValue::Error(text) = &reply {
                        // The batch's requests fail too (-NOAUTH) and are counted as errors.
                        self.count_error(ErrorKind::of_error_reply(text), 1, client.sent_at);
                    }
                    continue;
                }
                let Some(&read) = client.is_read.get(client.answered) else {
                    // A reply nobody asked for: the stream is out of step.
                    return self.fail(client, Instant::now());
                };
                client.answered += 1;
                self.reply(client.sent_at, read, &reply);
                if client.answered == client.is_read.len() {
                    self.send_batch(client, key);
                }
            }
        }
    }

    /// Counts one reply to a request sent at `sent_at`.
    fn reply(&mut self, sent_at: Instant, read: bool, reply: &RespValue) {
        let now = Instant::now();
        let kind = match (reply, read) {
            (RespValue::Error(text), _) => Some(ErrorKind::of_error_reply(text)),
            (RespValue::BulkString(_), true) => None,
            (RespValue::SimpleString(text), false) if text == "OK" => None,
            _ => Some(ErrorKind::Unexpected),
        };
        match kind {
            Some(kind) => self.count_error(kind, 1, sent_at),
            None => {
                if sent_at >= self.measure_from && now <= self.end {
                    self.tally.histogram.record(now.duration_since(sent_at).as_nanos() as u64);
                    if read {
                        self.tally.reads += 1;
                    } else {
                        self.tally.writes += 1;
                    }
                    self.shared.measured_ops.fetch_add(1, Ordering::Relaxed);
                }
                self.shared.all_ops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The connection broke (I/O error, end of stream, malformed or unasked-for reply, or
    /// timeout): the batch's missing replies are I/O errors; reconnect to the next endpoint.
    fn fail(&mut self, client: &mut Client, now: Instant) {
        let lost = client.is_read.len().saturating_sub(client.answered) as u64;
        self.count_error(ErrorKind::Io, lost.max(1), client.sent_at);
        client.is_read.clear();
        client.answered = 0;
        client.endpoint = (client.endpoint + 1) % self.config.endpoints.len();
        // Dropping the stream closes it (and takes it out of the poll).
        client.state = State::Down { retry_at: now };
    }
}
