//! TCP throughput over loopback: two `TcpTransport`s against a plain-socket baseline.
//!
//! For each payload size, one node sends N messages to another, pipelined (the sender only
//! pauses when more than `WINDOW_BYTES` of frames wait in its queue, well under the queue
//! bound), and
//! the clock stops when the receiver's sink has seen the last one. The handshake is done
//! before the clock starts.
//!
//! The baseline does the same work without the transport: a writer thread builds the same
//! `NetMessage`s, encodes the same frames (same bytes on the wire) into 64 KiB batches and
//! writes them to a blocking `std::net::TcpStream`; a reader thread decodes them with the same
//! `FrameDecoder` and builds the delivered `NetMessage`s. The ratio transport / baseline is
//! the figure to watch (goal: at least 0.7).
//!
//! Run: `cargo bench -p kompics-net --bench tcp_throughput`. Each figure is the best of
//! `ROUNDS` runs, baseline and transport rounds interleaved, since the machine is shared. Arguments narrow the run, for profiling: a
//! payload size (`100`, `4096`) selects that case, `transport` or `baseline` one side.

use std::hint::black_box;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kompics_net::frame::{encode_message, FRAME_BYTES_MAX_DEFAULT};
use kompics_net::{
    Frame, FrameDecoder, NetMessage, NodeAddr, Route, TcpConfig, TcpTransport, TransportEvent,
};

const ROUTE: Route = Route::new(1, 0);
/// Bytes of frames the sender lets pile up in its queue before pausing (at least
/// `WINDOW_FRAMES_MIN` frames). A window in bytes keeps the queue in cache for large payloads,
/// as the kernel's socket buffer does for the baseline writer.
const WINDOW_BYTES: usize = 256 * 1024;
const WINDOW_FRAMES_MIN: usize = 64;
/// How long the sender sleeps when its window is full (a fraction of the time to drain it).
const BACKOFF: Duration = Duration::from_micros(50);
/// How often (in messages) the sender checks its queue depth.
const CHECK_EVERY: usize = 64;
/// Bytes the baseline writer gathers before each write.
const BASELINE_BATCH_BYTES: usize = 64 * 1024;
const ROUNDS: usize = 7;

struct Case {
    payload_bytes: usize,
    messages: usize,
}

fn main() {
    let cases = [
        Case { payload_bytes: 100, messages: 200_000 },
        Case { payload_bytes: 4096, messages: 50_000 },
    ];
    // `cargo bench` passes `--bench`; other arguments are filters.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let only = |side: &str| args.iter().any(|a| a == side);
    let (run_base, run_transport_side) = match (only("baseline"), only("transport")) {
        (false, false) => (true, true),
        sides => sides,
    };
    println!("TCP throughput over loopback, best of {ROUNDS} runs each");
    println!(
        "{:>8} {:>9} | {:>12} {:>9} | {:>12} {:>9} | {:>6}",
        "payload", "messages", "baseline m/s", "MB/s", "transport m/s", "MB/s", "ratio"
    );
    for case in cases.iter().filter(|c| sizes.is_empty() || sizes.contains(&c.payload_bytes)) {
        // Rounds alternate between the two sides so that load from other processes on the
        // machine weighs on both alike; each side keeps its best round.
        let (mut baseline, mut transport) = (Duration::MAX, Duration::MAX);
        for _ in 0..ROUNDS {
            if run_base {
                baseline = baseline.min(run_baseline(case));
            }
            if run_transport_side {
                transport = transport.min(run_transport(case));
            }
        }
        let rate = |d: Duration| case.messages as f64 / d.as_secs_f64();
        let mbps =
            |d: Duration| (case.messages * case.payload_bytes) as f64 / d.as_secs_f64() / 1e6;
        println!(
            "{:>7}B {:>9} | {:>12.0} {:>9.1} | {:>12.0} {:>9.1} | {:>6.2}",
            case.payload_bytes,
            case.messages,
            rate(baseline),
            mbps(baseline),
            rate(transport),
            mbps(transport),
            baseline.as_secs_f64() / transport.as_secs_f64(),
        );
    }
    println!(
        "(MB/s counts payload bytes, 1 MB = 10^6 bytes; ratio = transport rate / baseline rate)"
    );
}

/// Shared-secret mode (TLS) unless `TCP_BENCH_INSECURE=1` asks for plaintext, to compare.
fn bench_security() -> kompics_net::PeerSecurity {
    if std::env::var("TCP_BENCH_INSECURE").as_deref() == Ok("1") {
        kompics_net::PeerSecurity::insecure("bench").unwrap()
    } else {
        kompics_net::PeerSecurity::shared_secret("bench", &[1; 32]).unwrap()
    }
}

fn run_transport(case: &Case) -> Duration {
    let expected = case.messages + 1; // + the warm-up message
    let (done_tx, done_rx) = mpsc::channel();
    let mut delivered = 0usize;
    let mut payload_bytes = 0usize;
    let receiver = TcpTransport::start(
        TcpConfig::new("127.0.0.1:0".parse().unwrap(), bench_security()),
        Box::new(move |event| {
            if let TransportEvent::Deliver(msg) = event {
                delivered += 1;
                payload_bytes += msg.payload.len();
                if delivered == expected {
                    let _ = done_tx.send(black_box(payload_bytes));
                }
            }
        }),
    )
    .expect("receiver starts");
    let (up_tx, up_rx) = mpsc::channel();
    let sender = TcpTransport::start(
        TcpConfig::new("127.0.0.1:0".parse().unwrap(), bench_security()),
        Box::new(move |event| {
            if let TransportEvent::SessionUp(_) = event {
                let _ = up_tx.send(());
            }
        }),
    )
    .expect("sender starts");
    let (src, dst) = (sender.local_addr(), receiver.local_addr());
    let payload = vec![0x5a; case.payload_bytes];

    // Establish the session first: the clock measures steady-state throughput.
    sender.send(NetMessage::new(src, dst, ROUTE, payload.clone())).unwrap();
    up_rx.recv_timeout(Duration::from_secs(10)).expect("session up");

    let window = (WINDOW_BYTES / case.payload_bytes).max(WINDOW_FRAMES_MIN);
    let start = Instant::now();
    for i in 0..case.messages {
        if i % CHECK_EVERY == 0 {
            // Sleep rather than spin: on a small machine a spinning sender takes the CPU
            // the event loops need to drain the queue.
            while sender.queued_frames(dst) >= window {
                thread::sleep(BACKOFF);
            }
        }
        sender.send(NetMessage::new(src, dst, ROUTE, payload.clone())).expect("send accepted");
    }
    done_rx.recv_timeout(Duration::from_secs(120)).expect("all delivered");
    let elapsed = start.elapsed();
    sender.shutdown();
    receiver.shutdown();
    elapsed
}

fn run_baseline(case: &Case) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = NodeAddr(listener.local_addr().unwrap());
    let messages = case.messages;
    let reader = thread::spawn(move || {
        let (mut stream, from) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        let src = NodeAddr(from);
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT);
        let mut delivered = 0usize;
        let mut payload_bytes = 0usize;
        while delivered < messages {
            assert!(decoder.read_from(&mut stream).unwrap() > 0, "baseline stream ended early");
            while let Some(frame) = decoder.next_frame().unwrap() {
                if let Frame::Message { route, payload } = frame {
                    let msg = NetMessage::new(src, dst, route, payload);
                    payload_bytes += msg.payload.len();
                    black_box(msg);
                    delivered += 1;
                }
            }
        }
        black_box(payload_bytes);
    });
    let mut stream = TcpStream::connect(dst.socket_addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    let src = NodeAddr(stream.local_addr().unwrap());
    let payload = vec![0x5a; case.payload_bytes];
    let mut batch = Vec::with_capacity(2 * BASELINE_BATCH_BYTES);

    let start = Instant::now();
    for _ in 0..messages {
        let msg = NetMessage::new(src, dst, ROUTE, payload.clone());
        encode_message(msg.route, &msg.payload, &mut batch, FRAME_BYTES_MAX_DEFAULT).unwrap();
        if batch.len() >= BASELINE_BATCH_BYTES {
            stream.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    stream.write_all(&batch).unwrap();
    reader.join().expect("baseline reader");
    start.elapsed()
}
