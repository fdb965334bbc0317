//! A closed-loop load generator for the store (or any Redis-protocol server): `clients`
//! connections, each sending `pipeline` requests, waiting for all their replies, then sending
//! the next batch, for `warmup + duration`.
//!
//! - The connections are driven by `threads` threads (default 1) with non-blocking sockets,
//!   as redis-benchmark does, rather than a thread per client (the private `driver` module
//!   says why).
//!
//! - Requests are `GET key` (with probability `read_ratio`) or `SET key value`, the key drawn
//!   uniformly from `keys` keys named `{key_prefix}{n}`, from a [`SmallRng`](rand::rngs::SmallRng) seeded by `seed` and
//!   the client's index, so a run's request sequence is reproducible.
//! - Client `i` connects to `endpoints[i % endpoints.len()]`; after an I/O error it reconnects to
//!   the next endpoint in turn (backing off while none accepts), so a run survives a node dying.
//! - Only batches sent after the warmup are counted, and of their successful requests only those
//!   answered before the end (the failures are counted whenever they come). Latency is from
//!   a batch's send to each reply's arrival; it is kept in a log-linear [`Histogram`] (exact
//!   below 256 ns, within 1/128 above), so memory does not grow with the run.
//! - Error replies and I/O errors are counted by [`ErrorKind`]; failed requests are not in the
//!   latency figures. `GET` of a missing key is a success (use [`populate`] first to read
//!   existing values).
//!
//! ```no_run
//! use std::time::Duration;
//! use kvstore_app::tools::bench::{self, BenchConfig};
//!
//! let config = BenchConfig {
//!     endpoints: vec!["127.0.0.1:6379".parse().unwrap()],
//!     duration: Duration::from_secs(5),
//!     ..BenchConfig::default()
//! };
//! bench::populate(&config)?;
//! let report = bench::run(&config, |progress| eprintln!("{progress}"))?;
//! println!("{report}");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::client::{is_outcome_unknown_text, is_tryagain_text, ClientError, RespClient};
use crate::auth::Password;
use crate::resp::RespValue;

mod driver;

/// What to run. [`Default`] gives 16 clients on `127.0.0.1:6379` for 10 s after 1 s of warmup,
/// 100-byte values, 10 000 keys, half reads, no pipelining.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchConfig {
    /// The nodes' client addresses; clients are spread over them round-robin.
    pub endpoints: Vec<SocketAddr>,
    /// The number of clients (connections).
    pub clients: usize,
    /// The threads driving them (at most `clients` are used).
    pub threads: usize,
    /// How long to measure, after the warmup.
    pub duration: Duration,
    /// How long to run before measuring (requests then are not counted).
    pub warmup: Duration,
    /// The size of each `SET` value, in bytes.
    pub value_size: usize,
    /// The number of distinct keys.
    pub keys: u64,
    /// The fraction of requests that are `GET`s: 0.0 is all `SET`, 1.0 all `GET`.
    pub read_ratio: f64,
    /// Requests each client sends before waiting for the replies (1: no pipelining).
    pub pipeline: usize,
    /// The seed of the request sequence.
    pub seed: u64,
    /// Keys are `{key_prefix}{n}` for `n` in `0..keys`.
    pub key_prefix: String,
    /// The connect, read and write timeout of each connection.
    pub timeout: Duration,
    /// The password each connection sends (`AUTH`) before its first request, for nodes run
    /// with `--requirepass`.
    pub password: Option<Password>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            endpoints: vec![SocketAddr::from(([127, 0, 0, 1], 6379))],
            clients: 16,
            threads: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            value_size: 100,
            keys: 10_000,
            read_ratio: 0.5,
            pipeline: 1,
            seed: 1,
            key_prefix: "key:".to_owned(),
            timeout: Duration::from_secs(5),
            password: None,
        }
    }
}

impl BenchConfig {
    /// Checks the configuration: at least one endpoint, client, key and pipelined request, a
    /// read ratio within `0.0..=1.0`, a non-zero timeout.
    pub fn validate(&self) -> io::Result<()> {
        let problem = if self.endpoints.is_empty() {
            "no endpoints"
        } else if self.clients == 0 {
            "clients must be at least 1"
        } else if self.threads == 0 {
            "threads must be at least 1"
        } else if self.keys == 0 {
            "keys must be at least 1"
        } else if self.pipeline == 0 {
            "pipeline must be at least 1"
        } else if !(0.0..=1.0).contains(&self.read_ratio) {
            "read_ratio must be within 0.0..=1.0"
        } else if self.timeout.is_zero() {
            "timeout must not be zero"
        } else {
            return Ok(());
        };
        Err(io::Error::new(io::ErrorKind::InvalidInput, problem))
    }

    /// The name of key `n`.
    pub fn key(&self, n: u64) -> Vec<u8> {
        let mut key = Vec::new();
        self.write_key(n, &mut key);
        key
    }

    fn write_key(&self, n: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.key_prefix.as_bytes());
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

/// The kinds of failed requests a run counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// `-TRYAGAIN …`: the partition had no leader (not executed).
    TryAgain,
    /// An error reply saying the outcome is unknown (e.g. the leader changed mid-request).
    OutcomeUnknown,
    /// Any other error reply (`-ERR …`).
    Server,
    /// A reply of the wrong shape (e.g. an integer to `GET`).
    Unexpected,
    /// A request lost to an I/O error or timeout, or a failed (re)connection attempt.
    Io,
}

impl ErrorKind {
    /// The kind of an error reply's text (without `-`).
    pub fn of_error_reply(text: &str) -> ErrorKind {
        if is_tryagain_text(text) {
            ErrorKind::TryAgain
        } else if is_outcome_unknown_text(text) {
            ErrorKind::OutcomeUnknown
        } else {
            ErrorKind::Server
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::TryAgain => "TRYAGAIN",
            ErrorKind::OutcomeUnknown => "outcome unknown",
            ErrorKind::Server => "other error replies",
            ErrorKind::Unexpected => "unexpected replies",
            ErrorKind::Io => "I/O",
        })
    }
}

/// A progress report, given to [`run`]'s callback about once a second.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Time since the run started (warmup included).
    pub elapsed: Duration,
    /// Whether the run is still warming up.
    pub warming_up: bool,
    /// Successful requests counted so far (after the warmup).
    pub ops: u64,
    /// Failed requests counted so far (after the warmup).
    pub errors: u64,
    /// Successful requests per second since the previous report (warmup included).
    pub current_ops_per_sec: f64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>6.1} s{}  {} ops  {} errors  {:.0} ops/s now",
            self.elapsed.as_secs_f64(),
            if self.warming_up { " (warmup)" } else { "" },
            self.ops,
            self.errors,
            self.current_ops_per_sec
        )
    }
}

/// The result of a [`run`]. `Display` prints one readable block.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Successful requests counted.
    pub ops: u64,
    /// Of which `GET`s.
    pub reads: u64,
    /// Of which `SET`s.
    pub writes: u64,
    /// Failed requests counted, by kind (kinds that did not occur are absent).
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    /// The measured time (the configured duration, or less if the run was cut short).
    pub elapsed: Duration,
    /// `ops` per second of `elapsed`.
    pub ops_per_sec: f64,
    /// The median latency (zero if no request succeeded).
    pub p50: Duration,
    /// The 99th percentile latency.
    pub p99: Duration,
    /// The 99.9th percentile latency.
    pub p999: Duration,
    /// The largest latency.
    pub max: Duration,
    /// The client threads.
    pub clients: usize,
    /// The pipeline depth.
    pub pipeline: usize,
}

impl BenchReport {
    /// All failed requests.
    pub fn errors(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "{} clients, pipeline {}, measured {:.1} s",
            self.clients,
            self.pipeline,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  throughput  {:.0} ops/s  ({} ops: {} GET, {} SET)",
            self.ops_per_sec, self.ops, self.reads, self.writes
        )?;
        writeln!(
            f,
            "  latency     p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )?;
        if self.errors_by_kind.is_empty() {
            write!(f, "  errors      none")
        } else {
            let kinds: Vec<String> =
                self.errors_by_kind.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
            write!(f, "  errors      {}  ({})", self.errors(), kinds.join(", "))
        }
    }
}

/// Values below `2^HISTOGRAM_PRECISION_BITS` get a bucket each; above, each power of two is split
/// into `2^(bits-1)` buckets, so a value is known within 1/128 of itself.
const HISTOGRAM_PRECISION_BITS: u32 = 8;
const HISTOGRAM_HALF: u64 = 1 << (HISTOGRAM_PRECISION_BITS - 1);
const HISTOGRAM_BUCKETS: usize =
    ((64 - HISTOGRAM_PRECISION_BITS as usize) + 2) * HISTOGRAM_HALF as usize;

/// A log-linear histogram of `u64` values (latencies in nanoseconds, here): fixed memory
/// (about 60 KiB), values exact below 256 and within 1/128 above. Quantiles report the highest
/// value of the bucket (capped by the largest value recorded), as HdrHistogram does.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; HISTOGRAM_BUCKETS], total: 0, max: 0 }
    }
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, value: u64) {
        self.counts[Self::index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (count, add) in self.counts.iter_mut().zip(&other.counts) {
            *count += add;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The number of values recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value recorded (0 if none).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0..=1.0): the smallest bucket bound with at least
    /// `ceil(q × len)` values at or below it. 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::highest_in(index).min(self.max);
            }
        }
        self.max
    }

    fn index(value: u64) -> usize {
        if value < 2 * HISTOGRAM_HALF {
            return value as usize;
        }
        let msb = 63 - value.leading_zeros();
        let shift = msb + 1 - HISTOGRAM_PRECISION_BITS;
        let mantissa = value >> shift; // in HALF..2 * HALF
        (u64::from(shift) * HISTOGRAM_HALF + mantissa) as usize
    }

    fn highest_in(index: usize) -> u64 {
        let index = index as u64;
        if index < 2 * HISTOGRAM_HALF {
            return index;
        }
        let shift = index / HISTOGRAM_HALF - 1;
        let mantissa = index - shift * HISTOGRAM_HALF;
        ((mantissa + 1) << shift).wrapping_sub(1)
    }
}

/// What one thread's clients counted.
#[derive(Default)]
struct ClientTally {
    histogram: Histogram,
    reads: u64,
    writes: u64,
    errors: BTreeMap<ErrorKind, u64>,
}

/// Counters the client threads share with the progress reporter.
#[derive(Default)]
struct Shared {
    /// Successful requests after the warmup.
    measured_ops: AtomicU64,
    /// Failed requests after the warmup.
    measured_errors: AtomicU64,
    /// Successful requests, warmup included.
    all_ops: AtomicU64,
}

/// Runs the benchmark: `warmup + duration` of closed-loop load, with `progress` called on the
/// calling thread about once a second. Fails if the configuration is invalid or if no endpoint
/// accepts a connection at the start; once running, errors are counted, not returned.
pub fn run(config: &BenchConfig, mut progress: impl FnMut(&Progress)) -> io::Result<BenchReport> {
    config.validate()?;
    check_reachable(config)?;
    let shared = Shared::default();
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;

    let tallies = thread::scope(|scope| {
        let threads = config.threads.min(config.clients);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let shared = &shared;
                let indices: Vec<usize> = (t..config.clients).step_by(threads).collect();
                scope.spawn(move || driver::drive(config, &indices, shared, measure_from, end))
            })
            .collect();

        // The threads measure; this one reports while they run.
        report_progress(&handles, &shared, start, measure_from, &mut progress);
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect::<io::Result<Vec<ClientTally>>>()
    })?;

    let elapsed = Instant::now().min(end).saturating_duration_since(measure_from);
    Ok(BenchReport::from_tallies(config, &tallies, elapsed))
}

/// Calls `progress` about once a second until every handle's thread has finished.
fn report_progress<T>(
    handles: &[thread::ScopedJoinHandle<'_, T>],
    shared: &Shared,
    start: Instant,
    measure_from: Instant,
    progress: &mut impl FnMut(&Progress),
) {
    let mut last = (start, 0u64);
    let mut next_report = start + Duration::from_secs(1);
    while !handles.iter().all(|handle| handle.is_finished()) {
        let now = Instant::now();
        if now >= next_report {
            let all = shared.all_ops.load(Ordering::Relaxed);
            let interval = now.duration_since(last.0).as_secs_f64();
            progress(&Progress {
                elapsed: now.duration_since(start),
                warming_up: now < measure_from,
                ops: shared.measured_ops.load(Ordering::Relaxed),
                errors: shared.measured_errors.load(Ordering::Relaxed),
                current_ops_per_sec: if interval > 0.0 {
                    (all - last.1) as f64 / interval
                } else {
                    0.0
                },
            });
            last = (now, all);
            next_report += Duration::from_secs(1);
            if next_report < now {
                next_report = now + Duration::from_secs(1);
            }
        }
        thread::sleep(Duration::from_millis(10).min(next_report.saturating_duration_since(now)));
    }
}

impl BenchReport {
    /// The report of a run from its threads' tallies; `elapsed` is the measured time.
    fn from_tallies(
        config: &BenchConfig,
        tallies: &[ClientTally],
        elapsed: Duration,
    ) -> BenchReport {
        let mut histogram = Histogram::default();
        let mut report = BenchReport {
            ops: 0,
            reads: 0,
            writes: 0,
            errors_by_kind: BTreeMap::new(),
            elapsed,
            ops_per_sec: 0.0,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            p999: Duration::ZERO,
            max: Duration::ZERO,
            clients: config.clients,
            pipeline: config.pipeline,
        };
        for tally in tallies {
            histogram.merge(&tally.histogram);
            report.reads += tally.reads;
            report.writes += tally.writes;
            for (&kind, &count) in &tally.errors {
                *report.errors_by_kind.entry(kind).or_default() += count;
            }
        }
        report.ops = histogram.len();
        let secs = report.elapsed.as_secs_f64();
        report.ops_per_sec = if secs > 0.0 { report.ops as f64 / secs } else { 0.0 };
        report.p50 = Duration::from_nanos(histogram.quantile(0.50));
        report.p99 = Duration::from_nanos(histogram.quantile(0.99));
        report.p999 = Duration::from_nanos(histogram.quantile(0.999));
        report.max = Duration::from_nanos(histogram.max());
        report
    }
}

/// Fails unless at least one endpoint accepts a connection.
fn check_reachable(config: &BenchConfig) -> io::Result<()> {
    let mut errors = Vec::new();
    for endpoint in &config.endpoints {
        match RespClient::connect_auth(endpoint, config.timeout, config.password.as_ref()) {
            Ok(_) => return Ok(()),
            Err(ClientError::Io(error)) => errors.push(format!("{endpoint}: {error}")),
            // Reachable, but refused our credentials: no point trying the others.
            Err(refused) => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{endpoint}: {refused}"),
                ))
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("no endpoint accepts connections ({})", errors.join("; ")),
    ))
}

/// How long [`populate`] keeps retrying one key answered `-TRYAGAIN` or outcome unknown.
pub const POPULATE_RETRY_WINDOW: Duration = Duration::from_secs(10);

/// The pause between [`populate`]'s retries of one key.
const POPULATE_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// `SET`s every key `0..keys` once (to `value_size` bytes of `x`), with `clients` connections
/// pipelining up to 64 requests each (or `pipeline`, if larger). A key answered `-TRYAGAIN` or
/// outcome unknown (e.g. while a group elects its leader) is set again, for up to
/// [`POPULATE_RETRY_WINDOW`]; `SET` is idempotent, so this is safe. Returns the number of keys
/// written; fails on the first I/O error or other error reply.
pub fn populate(config: &BenchConfig) -> io::Result<u64> {
    config.validate()?;
    const BATCH_MAX: usize = 64;
    let batch = config.pipeline.max(BATCH_MAX);
    let value = vec![b'x'; config.value_size];
    let results: Vec<io::Result<u64>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..config.clients)
            .map(|index| {
                let value = &value;
                scope.spawn(move || populate_share(config, index, batch, value))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    results.into_iter().sum()
}

/// One [`populate`] thread: the keys `index, index + clients, …`.
fn populate_share(
    config: &BenchConfig,
    index: usize,
    batch: usize,
    value: &[u8],
) -> io::Result<u64> {
    let endpoint = config.endpoints[index % config.endpoints.len()];
    let mut client = RespClient::connect_auth(endpoint, config.timeout, config.password.as_ref())
        .map_err(|error| match error {
        ClientError::Io(error) => error,
        other => io::Error::other(format!("AUTH to {endpoint} failed: {other}")),
    })?;
    let keys: Vec<u64> = (index as u64..config.keys).step_by(config.clients).collect();
    let failed = |reply: &RespValue| {
        io::Error::other(format!(
            "SET to {endpoint} failed: {}",
            String::from_utf8_lossy(&reply.to_bytes()).trim_end()
        ))
    };
    let retryable = |reply: &RespValue| {
        matches!(reply, RespValue::Error(text)
            if ErrorKind::of_error_reply(text) != ErrorKind::Server)
    };
    let is_ok = |reply: &RespValue| matches!(reply, RespValue::SimpleString(text) if text == "OK");
    let mut key = Vec::new();
    let mut retry = Vec::new();
    for chunk in keys.chunks(batch) {
        for &n in chunk {
            config.write_key(n, &mut key);
            client.send(&[b"SET", &key, value])?;
        }
        for &n in chunk {
            let reply = client.recv()?;
            if retryable(&reply) {
                retry.push(n);
            } else if !is_ok(&reply) {
                return Err(failed(&reply));
            }
        }
        for n in retry.drain(..) {
            config.write_key(n, &mut key);
            let give_up = Instant::now() + POPULATE_RETRY_WINDOW;
            loop {
                thread::sleep(POPULATE_RETRY_PAUSE);
                let reply = client.call(&[b"SET", &key, value])?;
                if is_ok(&reply) {
                    break;
                }
                if !retryable(&reply) || Instant::now() >= give_up {
                    return Err(failed(&reply));
                }
            }
        }
    }
    Ok(keys.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_continuous_and_tight() {
        let mut previous = None;
        for value in (0..5000u64).chain([1 << 20, (1 << 20) + 1, u64::MAX / 3, u64::MAX]) {
            let index = Histogram::index(value);
            assert!(index < HISTOGRAM_BUCKETS, "{value}");
            let highest = Histogram::highest_in(index);
            assert!(highest >= value, "{value}: {highest}");
            assert!(highest - value <= value / 128, "{value}: {highest}");
            if let Some((previous_value, previous_index)) = previous {
                if value == previous_value + 1 {
                    assert!(index == previous_index || index == previous_index + 1, "{value}");
                }
            }
            previous = Some((value, index));
        }
        assert_eq!(Histogram::index(u64::MAX), HISTOGRAM_BUCKETS - 1);
        assert_eq!(Histogram::highest_in(HISTOGRAM_BUCKETS - 1), u64::MAX);
        // Every bucket's highest value maps back to it.
        for index in 0..HISTOGRAM_BUCKETS {
            assert_eq!(Histogram::index(Histogram::highest_in(index)), index);
        }
    }

    #[test]
    fn quantiles_are_close_to_exact_ones() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), 0);
        let values: Vec<u64> = (1..=10_000u64).map(|n| n * 1_000).collect();
        for &value in values.iter().rev() {
            histogram.record(value);
        }
        assert_eq!(histogram.len(), 10_000);
        for (q, exact) in [(0.5, 5_000_000u64), (0.99, 9_900_000), (0.999, 9_990_000)] {
            let got = histogram.quantile(q);
            assert!(got >= exact && got - exact <= exact / 128, "q {q}: {got} vs {exact}");
        }
        assert_eq!(histogram.quantile(1.0), 10_000_000);
        assert!((1_000..=1_000 + 1_000 / 128).contains(&histogram.quantile(0.0)));
        let mut merged = Histogram::default();
        merged.merge(&histogram);
        merged.record(20_000_000);
        assert_eq!(merged.len(), 10_001);
        assert_eq!(merged.max(), 20_000_000);
        assert_eq!(merged.quantile(1.0), 20_000_000);
    }

    #[test]
    fn configs_are_validated() {
        assert!(BenchConfig::default().validate().is_ok());
        for bad in [
            BenchConfig { endpoints: vec![], ..BenchConfig::default() },
            BenchConfig { clients: 0, ..BenchConfig::default() },
            BenchConfig { keys: 0, ..BenchConfig::default() },
            BenchConfig { pipeline: 0, ..BenchConfig::default() },
            BenchConfig { read_ratio: 1.5, ..BenchConfig::default() },
            BenchConfig { read_ratio: f64::NAN, ..BenchConfig::default() },
            BenchConfig { timeout: Duration::ZERO, ..BenchConfig::default() },
        ] {
            assert_eq!(bad.validate().unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(BenchConfig::default().key(42), b"key:42");
    }

    #[test]
    fn error_replies_are_classified() {
        assert_eq!(ErrorKind::of_error_reply("TRYAGAIN no leader"), ErrorKind::TryAgain);
        assert_eq!(
            ErrorKind::of_error_reply("ERR outcome unknown: no answer in time"),
            ErrorKind::OutcomeUnknown
        );
        assert_eq!(ErrorKind::of_error_reply("ERR syntax error"), ErrorKind::Server);
    }

    #[test]
    fn the_report_prints_one_block() {
        let report = BenchReport {
            ops: 1000,
            reads: 600,
            writes: 400,
            errors_by_kind: BTreeMap::from([(ErrorKind::TryAgain, 3), (ErrorKind::Io, 1)]),
            elapsed: Duration::from_secs(2),
            ops_per_sec: 500.0,
            p50: Duration::from_micros(120),
            p99: Duration::from_micros(900),
            p999: Duration::from_micros(2500),
            max: Duration::from_millis(4),
            clients: 4,
            pipeline: 1,
        };
        assert_eq!(report.errors(), 4);
        assert_eq!(
            report.to_string(),
            "4 clients, pipeline 1, measured 2.0 s\n\
             \x20 throughput  500 ops/s  (1000 ops: 600 GET, 400 SET)\n\
             \x20 latency     p50 0.120 ms  p99 0.900 ms  p99.9 2.500 ms  max 4.000 ms\n\
             \x20 errors      4  (TRYAGAIN 3, I/O 1)"
        );
    }

    #[test]
    fn an_unreachable_cluster_fails_fast() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap();
        drop(listener);
        let config = BenchConfig { endpoints: vec![endpoint], ..BenchConfig::default() };
        let started = Instant::now();
        assert!(run(&config, |_| {}).is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
