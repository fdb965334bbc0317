//! The client side against a small in-test RESP server: [`RespClient`] (pipelining, error
//! replies, a server closing mid-reply, a read timeout), [`bench::run`] and [`bench::populate`],
//! and [`status::collect`] with one reachable and one unreachable node. Loopback only; every
//! test is bounded by timeouts of a few seconds at most.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kvstore_app::command::info_reply;
use kvstore_app::info::{GroupInfo, InfoZxid, NodeInfo, NodeStats, Role};
use kvstore_app::resp::{RequestParser, RespValue};
use kvstore_app::tools::bench::{self, BenchConfig, ErrorKind};
use kvstore_app::tools::client::{is_timeout, ClientError, RespClient};
use kvstore_app::tools::status;

const TIMEOUT: Duration = Duration::from_secs(5);

/// How the fake server behaves, shared by its connection threads.
struct Fake {
    data: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    /// Answer every n-th `GET`/`SET` with `-TRYAGAIN` (0: never).
    tryagain_every: u64,
    data_ops: AtomicU64,
    info: NodeInfo,
}

/// Starts a fake server on 127.0.0.1:0. Besides `GET`, `SET`, `DEL`, `CAS`, `PING` and `INFO`
/// it knows `FAIL` (an `-ERR` reply), `HALFREPLY` (half a bulk string, then it closes) and
/// `STALL` (no reply for 3 s), and `LONGERROR` (an error reply of 60 characters).
fn fake_server(tryagain_every: u64) -> (SocketAddr, Arc<Fake>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        data: Mutex::new(HashMap::new()),
        tryagain_every,
        data_ops: AtomicU64::new(0),
        info: node_info(&addr),
    });
    let shared = Arc::clone(&fake);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let fake = Arc::clone(&shared);
            thread::spawn(move || serve(stream, &fake));
        }
    });
    (addr, fake)
}

fn serve(mut stream: TcpStream, fake: &Fake) {
    let mut parser = RequestParser::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        parser.feed(&buf[..n]);
        while let Ok(Some(request)) = parser.next_request() {
            let args = request.into_args();
            let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
            let tryagain = fake.tryagain_every > 0
                && matches!(name.as_str(), "GET" | "SET")
                && (fake.data_ops.fetch_add(1, Ordering::Relaxed) + 1) % fake.tryagain_every == 0;
            let mut data = fake.data.lock().unwrap();
            let reply = match (name.as_str(), &args[1..]) {
                _ if tryagain => RespValue::error("TRYAGAIN no leader"),
                ("GET", [key]) => RespValue::BulkString(data.get(key).cloned()),
                ("SET", [key, value]) => {
                    data.insert(key.clone(), value.clone());
                    RespValue::ok()
                }
                ("DEL", [key]) => RespValue::Integer(i64::from(data.remove(key).is_some())),
                ("CAS", [key, expected, new]) => {
                    let swap = data.get(key) == Some(expected);
                    if swap {
                        data.insert(key.clone(), new.clone());
                    }
                    RespValue::Integer(i64::from(swap))
                }
                ("PING", []) => RespValue::simple("PONG"),
                ("INFO", section) => {
                    let section =
                        section.first().map(|s| String::from_utf8_lossy(s).to_lowercase());
                    info_reply(&fake.info.to_sections(), section.as_deref())
                }
                ("LONGERROR", []) => RespValue::error(format!("ERR {}", "e".repeat(56))),
                ("FAIL", []) => RespValue::error("ERR always fails"),
                ("HALFREPLY", []) => {
                    out.extend_from_slice(b"$10\r\nabc");
                    let _ = stream.write_all(&out);
                    return;
                }
                ("STALL", []) => {
                    drop(data);
                    thread::sleep(Duration::from_secs(3));
                    return;
                }
                _ => RespValue::error(format!("ERR unknown command '{name}'")),
            };
            reply.encode(&mut out);
        }
        if stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn node_info(client_addr: &SocketAddr) -> NodeInfo {
    let members: Vec<String> = (1..=3).map(|n| format!("127.0.0.1:{}", 7000 + n)).collect();
    NodeInfo {
        node: "127.0.0.1:7001".to_owned(),
        client_addr: client_addr.to_string(),
        cluster: "fake".to_owned(),
        cluster_id: 42,
        partitions: 2,
        replication: 3,
        uptime_s: 7,
        groups: vec![
            GroupInfo {
                partition: 0,
                role: Role::Leader,
                leader: Some(members[0].clone()),
                last_zxid: Some(InfoZxid { epoch: 1, counter: 9 }),
                members: members.clone(),
            },
            GroupInfo { partition: 1, role: Role::Looking, leader: None, last_zxid: None, members },
        ],
        stats: NodeStats {
            ops_get: 1,
            ops_set: 2,
            ops_del: 3,
            ops_cas: 4,
            errors: 5,
            forwarded: 6,
        },
    }
}

/// An address nothing listens on (connections are refused at once on loopback).
fn dead_endpoint() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[test]
fn typed_commands_round_trip() {
    let (addr, _) = fake_server(0);
    let mut client = RespClient::connect(addr, TIMEOUT).unwrap();
    client.ping().unwrap();
    assert_eq!(client.get(b"k").unwrap(), None);
    client.set(b"k", b"v1").unwrap();
    assert_eq!(client.get(b"k").unwrap(), Some(b"v1".to_vec()));
    assert!(!client.cas(b"k", b"nope", b"v2").unwrap());
    assert!(client.cas(b"k", b"v1", b"v2").unwrap());
    assert_eq!(client.get(b"k").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(client.del(b"k").unwrap(), 1);
    assert_eq!(client.del(b"k").unwrap(), 0);
    let info = client.info(Some("groups")).unwrap();
    assert!(info.starts_with("# Groups\r\np0:role=leader,"), "{info}");
    assert_eq!(client.call(&[b"PING"]).unwrap(), RespValue::simple("PONG"));
}

#[test]
fn pipelined_requests_get_their_replies_in_order() {
    let (addr, _) = fake_server(0);
    let mut client = RespClient::connect(addr, TIMEOUT).unwrap();
    for n in 0..200 {
        let key = format!("k{n}");
        client.send(&[b"SET", key.as_bytes(), n.to_string().as_bytes()]).unwrap();
    }
    assert_eq!(client.pending(), 200);
    for _ in 0..200 {
        assert_eq!(client.recv().unwrap(), RespValue::ok());
    }
    for n in (0..200).rev() {
        client.send(&[b"GET", format!("k{n}").as_bytes()]).unwrap();
    }
    client.flush().unwrap();
    for n in (0..200).rev() {
        assert_eq!(client.recv().unwrap(), RespValue::bulk(n.to_string()));
    }
    assert_eq!(client.pending(), 0);
}

#[test]
fn error_replies_are_typed_and_keep_the_connection() {
    let (addr, _) = fake_server(1);
    let mut client = RespClient::connect(addr, TIMEOUT).unwrap();
    assert_eq!(client.call(&[b"FAIL"]).unwrap(), RespValue::error("ERR always fails"));
    let error = client.get(b"k").unwrap_err();
    assert!(error.is_tryagain() && !error.is_outcome_unknown(), "{error}");
    assert!(
        matches!(client.set(b"k", b"v"), Err(ClientError::Server(text)) if text.starts_with("TRYAGAIN"))
    );
    assert!(!client.is_broken());
    client.ping().unwrap();
}

/// Error replies as long as the server's real ones (`-ERR wrong number of arguments for 'get'
/// command` is 47 characters).
#[test]
fn long_error_replies_are_read() {
    let (addr, _) = fake_server(0);
    let mut client = RespClient::connect(addr, TIMEOUT).unwrap();
    let reply = client.call(&[b"LONGERROR"]).unwrap();
    assert!(matches!(reply, RespValue::Error(text) if text.len() == 60));
    client.ping().unwrap();
}

#[test]
fn a_server_closing_mid_reply_is_an_io_error() {
    let (addr, _) = fake_server(0);
    let mut client = RespClient::connect(addr, TIMEOUT).unwrap();
    let error = client.call(&[b"HALFREPLY"]).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
    assert!(client.is_broken());
    let error = client.ping().unwrap_err();
    assert!(error.is_io(), "{error}");
}

#[test]
fn a_silent_server_times_out() {
    let (addr, _) = fake_server(0);
    let mut client = RespClient::connect(addr, Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    let error = client.call(&[b"STALL"]).unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(client.is_broken());
    assert!(RespClient::connect(dead_endpoint(), TIMEOUT).is_err());
}

fn bench_config(endpoints: Vec<SocketAddr>) -> BenchConfig {
    BenchConfig {
        endpoints,
        clients: 4,
        threads: 2,
        duration: Duration::from_millis(1000),
        warmup: Duration::from_millis(200),
        value_size: 32,
        keys: 100,
        read_ratio: 0.8,
        pipeline: 1,
        seed: 7,
        key_prefix: "bench:".to_owned(),
        timeout: TIMEOUT,
        password: None,
    }
}

#[test]
fn a_bench_run_measures_throughput_and_latency() {
    let (addr, fake) = fake_server(0);
    let config = bench_config(vec![addr]);
    assert_eq!(bench::populate(&config).unwrap(), 100);
    assert_eq!(fake.data.lock().unwrap().len(), 100);
    assert_eq!(fake.data.lock().unwrap()[&config.key(99)], vec![b'x'; 32]);

    let mut progress = Vec::new();
    let started = Instant::now();
    let report = bench::run(&config, |p| progress.push(p.clone())).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    println!("{report}");
    assert!(report.ops > 0);
    assert_eq!(report.ops, report.reads + report.writes);
    assert!(report.errors_by_kind.is_empty(), "{report}");
    assert!(report.p50 > Duration::ZERO);
    assert!(report.p50 <= report.p99 && report.p99 <= report.p999 && report.p999 <= report.max);
    assert!(report.elapsed <= config.duration && report.elapsed >= config.duration / 2);
    let read_share = report.reads as f64 / report.ops as f64;
    assert!((read_share - 0.8).abs() < 0.1, "{read_share}");
    assert!(!progress.is_empty());
    assert!(progress.iter().all(|p| p.ops <= report.ops));

    // Pipelined and write-only.
    let config = BenchConfig { pipeline: 8, read_ratio: 0.0, ..config };
    let report = bench::run(&config, |_| {}).unwrap();
    assert!(report.ops > 0 && report.reads == 0 && report.writes == report.ops, "{report}");
    assert_eq!(report.pipeline, 8);
}

#[test]
fn a_bench_run_counts_tryagain_replies() {
    let (addr, _) = fake_server(10);
    let config = BenchConfig { warmup: Duration::ZERO, ..bench_config(vec![addr]) };
    let report = bench::run(&config, |_| {}).unwrap();
    let tryagain = report.errors_by_kind.get(&ErrorKind::TryAgain).copied().unwrap_or(0);
    assert!(tryagain > 0, "{report}");
    assert_eq!(report.errors(), tryagain, "{report}");
    // About one request in ten fails (a few at the end may fall outside the window).
    let share = tryagain as f64 / (tryagain + report.ops) as f64;
    assert!((0.05..0.15).contains(&share), "{share}: {report}");
    assert!(report.to_string().contains("TRYAGAIN"));

    // populate retries keys answered -TRYAGAIN.
    let (addr, fake) = fake_server(3);
    let config = BenchConfig { keys: 50, clients: 2, ..bench_config(vec![addr]) };
    assert_eq!(bench::populate(&config).unwrap(), 50);
    assert_eq!(fake.data.lock().unwrap().len(), 50);
}

#[test]
fn a_bench_run_survives_a_dead_endpoint() {
    let (addr, _) = fake_server(0);
    let config = BenchConfig {
        warmup: Duration::ZERO,
        duration: Duration::from_millis(500),
        ..bench_config(vec![dead_endpoint(), addr])
    };
    let report = bench::run(&config, |_| {}).unwrap();
    // Clients 0 and 2 start on the dead endpoint, fail to connect, and move on to the live one.
    assert!(report.errors_by_kind.get(&ErrorKind::Io).copied().unwrap_or(0) >= 2, "{report}");
    assert!(report.ops > 0, "{report}");

    let nothing_alive = BenchConfig { endpoints: vec![dead_endpoint()], ..config };
    assert!(bench::run(&nothing_alive, |_| {}).is_err());
}

/// A server that accepts and never answers: every batch times out (an I/O error), and the
/// clients reconnect and try again rather than hang; nothing is counted as done.
#[test]
fn a_bench_run_counts_timeouts_of_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&accepted);
    thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            kept.push(stream); // open, read by nobody
        }
    });
    let config = BenchConfig {
        warmup: Duration::ZERO,
        duration: Duration::from_millis(1000),
        timeout: Duration::from_millis(200),
        ..bench_config(vec![addr])
    };
    let started = Instant::now();
    let report = bench::run(&config, |_| {}).unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(report.ops, 0, "{report}");
    let io = report.errors_by_kind.get(&ErrorKind::Io).copied().unwrap_or(0);
    // Four clients, each timing out after 200 ms and reconnecting, for one second.
    assert!(io >= 8, "{report}");
    assert_eq!(report.errors(), io, "{report}");
    assert!(accepted.load(Ordering::SeqCst) >= 8, "the clients did not reconnect");
}

#[test]
fn status_shows_one_node_up_and_one_down() {
    let (addr, fake) = fake_server(0);
    let dead = dead_endpoint();
    let started = Instant::now();
    let cluster = status::collect(&[addr, dead], Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(cluster.nodes.len(), 2);
    assert_eq!(cluster.nodes[0].endpoint, addr);
    assert_eq!(cluster.nodes[0].info.as_ref().unwrap(), &fake.info);
    assert_eq!(cluster.nodes[1].endpoint, dead);
    assert!(cluster.nodes[1].info.is_err());

    let groups = cluster.groups();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].leader.as_deref(), Some("127.0.0.1:7001"));
    assert_eq!(groups[0].down(), ["127.0.0.1:7002", "127.0.0.1:7003"]);
    assert_eq!(groups[1].leader, None);

    let shown = cluster.to_string();
    println!("{shown}");
    assert!(shown.contains("1 of 2 nodes reachable"), "{shown}");
    assert!(shown.contains(&format!("{dead:<21}  DOWN  cannot connect")), "{shown}");
    assert!(shown.contains("p0    leader 127.0.0.1:7001"), "{shown}");
    assert!(shown.contains("last_zxid 1:9"), "{shown}");
}
