//! The RESP front end of a real cluster (3 nodes in this process, TCP on loopback, file logs):
//! pipelining, malformed input, size limits, `-TRYAGAIN` without a leader, and the Redis tools
//! (`redis-cli`, `redis-benchmark`). `.ci/run` installs the tools; elsewhere, without them, the
//! tool test says so and checks nothing else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kompics_core::{Runtime, RuntimeConfig};
use kvstore_app::auth::{self, ClientAuth, Password};
use kvstore_app::bootstrap::BootstrapRole;
use kvstore_app::info::Role;
use kvstore_app::launch::{start_node, NodeOptions, RunningNode};
use kvstore_app::resp::{ReplyParser, RespValue};
use kvstore_app::tools::bench::{self, BenchConfig};
use kvstore_app::tools::client::RespClient;
use kvstore_app::tools::status;

struct TestCluster {
    _rt: Runtime,
    nodes: Vec<RunningNode>,
    dir: PathBuf,
    /// The nodes' client password, if they have one.
    password: Option<Password>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestCluster {
    fn start(name: &str) -> TestCluster {
        TestCluster::start_with(name, |_| {})
    }

    fn start_with(name: &str, tune: fn(&mut NodeOptions)) -> TestCluster {
        let _ = env_logger::builder().is_test(true).try_init();
        let rt = Runtime::new(RuntimeConfig::default().workers(2));
        let dir = std::env::temp_dir().join(format!("kvstore-resp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut nodes: Vec<RunningNode> = Vec::new();
        let mut password = None;
        for i in 0..3 {
            let role = match nodes.first() {
                None => BootstrapRole::Server { expected_nodes: 3 },
                Some(first) => BootstrapRole::Join { server: first.peer },
            };
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let auth = kvstore_app::peer_auth::PeerAuth::secret(&[8; 32]);
            let mut options = NodeOptions::new(any, any, dir.join(format!("n{i}")), role, auth);
            options.segment_bytes = 1 << 20;
            tune(&mut options);
            password = options.client_auth.password().cloned();
            nodes.push(start_node(&rt.system(), &options).expect("start node"));
        }
        let cluster = TestCluster { _rt: rt, nodes, dir, password };
        for n in &cluster.nodes {
            n.wait_ready(Duration::from_secs(30)).expect("node ready");
        }
        cluster.wait_led();
        cluster
    }

    fn endpoints(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.client).collect()
    }

    fn wait_led(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let timeout = Duration::from_secs(1);
            let s = status::collect_auth(&self.endpoints(), timeout, self.password.as_ref());
            let groups = s.groups();
            if groups.len() == 3 && groups.iter().all(|g| g.leader.is_some()) {
                return;
            }
            assert!(Instant::now() < deadline, "no leaders:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends raw bytes, reads until `n` replies are parsed or the connection closes.
fn raw_exchange(addr: SocketAddr, bytes: &[u8], n: usize) -> (Vec<RespValue>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut parser = ReplyParser::default();
    let mut replies = Vec::new();
    let mut buf = [0u8; 65536];
    let mut closed = false;
    while replies.len() < n {
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(k) => {
                parser.feed(&buf[..k]);
                while let Some(v) = parser.next_value().expect("well-formed replies") {
                    replies.push(v);
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    if !closed && replies.len() >= n {
        // Is it closed now? A short wait tells.
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        closed = matches!(s.read(&mut buf), Ok(0));
    }
    (replies, closed)
}

/// Sends raw bytes, reads until the bytes received end with `suffix` for the `count`-th time.
fn raw_bytes_until(addr: SocketAddr, bytes: &[u8], suffix: &[u8], count: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 65536];
    let mut seen = 0;
    while seen < count {
        let k = s.read(&mut buf).expect("read");
        assert!(k > 0, "closed after {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..k]);
        seen = received.windows(suffix.len()).filter(|w| *w == suffix).count();
    }
    received
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn front_end_serves_pipelines_and_refuses_bad_input() {
    let c = TestCluster::start("pipe");
    let [a, b, _] = c.endpoints()[..] else { unreachable!() };

    // A pipeline of 200 SETs and GETs over all partitions, in one write: replies in order.
    let mut req = Vec::new();
    for i in 0..100 {
        kvstore_app::resp::encode_request(
            &[b"SET".to_vec(), format!("k{i}").into(), format!("v{i}").into()],
            &mut req,
        );
        kvstore_app::resp::encode_request(
            &[b"GET".to_vec(), format!("k{i}").into_bytes()],
            &mut req,
        );
    }
    let (replies, closed) = raw_exchange(a, &req, 200);
    assert!(!closed);
    for i in 0..100 {
        assert_eq!(replies[2 * i], RespValue::ok(), "reply {}", 2 * i);
        assert_eq!(replies[2 * i + 1], RespValue::bulk(format!("v{i}")), "reply {}", 2 * i + 1);
    }

    // Another node sees every write (linearizable reads).
    let mut client = RespClient::connect(b, Duration::from_secs(10)).unwrap();
    for i in 0..100 {
        assert_eq!(
            client.get(format!("k{i}").as_bytes()).unwrap(),
            Some(format!("v{i}").into_bytes())
        );
    }

    // Inline commands work (redis-cli in telnet style).
    let (replies, _) = raw_exchange(a, b"PING\r\nGET k7\r\n", 2);
    assert_eq!(replies, vec![RespValue::simple("PONG"), RespValue::bulk("v7")]);

    // AUTH on a node without a password: Redis' exact text (redis-py matches it).
    let (replies, _) = raw_exchange(a, &request(&["AUTH", "pw"]), 1);
    assert_eq!(replies, [RespValue::error(auth::NO_PASSWORD_CONFIGURED)]);
    assert!(auth::NO_PASSWORD_CONFIGURED.starts_with(
        "ERR AUTH <password> called without any password configured for the default user."
    ));

    check_persistence_reported(a, "always");

    // Unknown command: an error, the connection stays usable.
    let (replies, closed) = raw_exchange(a, b"*1\r\n$5\r\nNOPE!\r\n*1\r\n$4\r\nPING\r\n", 2);
    assert!(matches!(&replies[0], RespValue::Error(e) if e.starts_with("ERR unknown command")));
    assert_eq!(replies[1], RespValue::simple("PONG"));
    assert!(!closed);

    // A protocol error: an error reply, then the connection is closed; nothing was stored.
    let (replies, closed) = raw_exchange(a, b"*2\r\n$3\r\nGET\r\n$-7\r\nxx\r\n", 1);
    assert!(
        matches!(&replies[0], RespValue::Error(e) if e.starts_with("ERR Protocol error")),
        "{replies:?}"
    );
    assert!(closed, "a malformed stream closes the connection");

    // An oversized value (over the 1 MiB default) is refused and changes nothing.
    let big = vec![b'x'; 1024 * 1024 + 1];
    let mut req = Vec::new();
    kvstore_app::resp::encode_request(&[b"SET".as_slice(), b"k1", &big], &mut req);
    kvstore_app::resp::encode_request(&[b"GET".as_slice(), b"k1"], &mut req);
    let (replies, _) = raw_exchange(a, &req, 2);
    assert!(replies[0].is_error(), "{:?}", replies[0]);
    assert_eq!(replies[1], RespValue::bulk("v1"));

    // HELLO 3 switches the connection to RESP3 from its own reply on, HELLO 2 back; in a
    // pipeline, each reply is in the protocol in force when its request was read.
    let bytes = raw_bytes_until(
        a,
        b"GET nosuch\r\nHELLO 3\r\nGET nosuch\r\nGET k3\r\nHELLO 2\r\nGET nosuch\r\n",
        b"$-1\r\n",
        2,
    );
    assert!(
        bytes.starts_with(b"$-1\r\n%7\r\n$6\r\nserver\r\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(contains(&bytes, b"$5\r\nproto\r\n:3\r\n"), "{}", String::from_utf8_lossy(&bytes));
    assert!(
        contains(&bytes, b"*0\r\n_\r\n$2\r\nv3\r\n*14\r\n"),
        "RESP3 null, then HELLO 2's flat array: {}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(contains(&bytes, b"$5\r\nproto\r\n:2\r\n"), "{}", String::from_utf8_lossy(&bytes));

    // CAS: 1 if swapped, 0 if not.
    assert!(client.cas(b"k2", b"v2", b"w2").unwrap());
    assert!(!client.cas(b"k2", b"v2", b"w3").unwrap());
    assert_eq!(client.get(b"k2").unwrap(), Some(b"w2".to_vec()));
    assert_eq!(client.del(b"k2").unwrap(), 1);
    assert_eq!(client.get(b"k2").unwrap(), None);
}

fn request(words: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    kvstore_app::resp::encode_request(&words, &mut out);
    out
}

#[test]
fn maxmemory_refuses_growing_writes_with_redis_oom_and_del_still_works() {
    // Without fsync too: the persistence fields must say so.
    let c = TestCluster::start_with("oom", |o| {
        o.maxmemory = 1000;
        o.fsync = false;
    });
    let [a, b, _] = c.endpoints()[..] else { unreachable!() };
    let big = "x".repeat(600);
    let oom = RespValue::Error("OOM command not allowed when used memory > 'maxmemory'.".into());
    let one = |addr, words: &[&str]| raw_exchange(addr, &request(words), 1).0.remove(0);

    assert_eq!(one(a, &["SET", "k1", &big]), RespValue::ok());
    assert_eq!(one(a, &["SET", "k2", &big]), oom, "1204 bytes > 1000");
    // (Through the node that served the SET: the check uses the proposing node's applied state.)
    assert_eq!(one(a, &["CAS", "k1", &big, &format!("{big}{big}")]), oom, "a growing CAS");
    assert_eq!(one(b, &["GET", "k2"]), RespValue::null_bulk(), "the refused write changed nothing");
    assert_eq!(one(b, &["GET", "k1"]), RespValue::bulk(big.clone()));
    // Writes that free memory, and DEL, always work.
    assert_eq!(one(a, &["SET", "k1", "small"]), RespValue::ok());
    assert_eq!(one(a, &["DEL", "k1"]), RespValue::Integer(1));
    assert_eq!(one(a, &["SET", "k2", &big]), RespValue::ok(), "room again");

    let info = one(a, &["INFO", "memory"]);
    let RespValue::BulkString(Some(text)) = info else { panic!("INFO: {info:?}") };
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("maxmemory:1000\r\n"), "{text}");
    assert!(text.contains("used_memory:602\r\n"), "{text}");
    assert_eq!(
        one(a, &["CONFIG", "GET", "maxmem*"]),
        RespValue::array(vec![RespValue::bulk("maxmemory"), RespValue::bulk("1000")])
    );
    check_persistence_reported(a, "no");
}

/// `INFO persistence` and `CONFIG GET append*` tell the node's fsync mode as it is.
fn check_persistence_reported(addr: SocketAddr, appendfsync: &str) {
    let (replies, _) = raw_exchange(addr, &request(&["INFO", "persistence"]), 1);
    let RespValue::BulkString(Some(text)) = &replies[0] else { panic!("INFO: {replies:?}") };
    let expected = format!(
        "# Persistence\r\naof_enabled:1\r\nappendfsync:{appendfsync}\r\nepoch_fsync:always\r\n"
    );
    assert_eq!(String::from_utf8_lossy(text), expected);
    let (replies, _) = raw_exchange(addr, &request(&["CONFIG", "GET", "append*"]), 1);
    let pairs = ["appendonly", "yes", "appendfsync", appendfsync];
    assert_eq!(replies[0], RespValue::array(pairs.iter().map(|p| RespValue::bulk(*p)).collect()));
}

/// Issue 12's outage: one connection pipelining 40 `SET bigkey <1 MiB>` (the documented value
/// limit) to one node. Before proposal batches were bounded in bytes, the 40 MiB batch exceeded
/// the transport's frame, every SET ended `-OUTCOME_UNKNOWN`, and the partition never had a
/// leader again (the durable batch won every election and was resent whole). Now every SET is
/// acknowledged, the last value reads back exactly from every node, and every partition serves.
#[test]
fn forty_pipelined_one_mib_sets_leave_every_partition_serving() {
    let c = TestCluster::start("bigvalues");
    let endpoints = c.endpoints();
    let value = |i: usize| vec![b'a' + (i % 26) as u8; 1 << 20];
    let mut pipeline = Vec::new();
    for i in 0..40 {
        let words = [b"SET".to_vec(), b"bigkey".to_vec(), value(i)];
        kvstore_app::resp::encode_request(&words, &mut pipeline);
    }
    let (replies, closed) = raw_exchange(endpoints[0], &pipeline, 40);
    assert!(!closed, "the connection stays open");
    assert_eq!(replies, vec![RespValue::ok(); 40]);
    for &node in &endpoints {
        let (mut got, _) = raw_exchange(node, &request(&["GET", "bigkey"]), 1);
        assert!(got.pop() == Some(RespValue::bulk(value(39))), "{node}: not the last value");
    }
    // Every partition still has a leader and serves writes and reads through every node.
    c.wait_led();
    for (i, &node) in endpoints.iter().enumerate() {
        for k in 0..12 {
            let key = format!("after-{i}-{k}");
            assert_eq!(raw_exchange(node, &request(&["SET", &key, "v"]), 1).0, [RespValue::ok()]);
            let (got, _) = raw_exchange(endpoints[(i + 1) % 3], &request(&["GET", &key]), 1);
            assert_eq!(got, [RespValue::bulk("v")], "{key}");
        }
    }
}

#[test]
fn a_partition_without_a_leader_answers_tryagain() {
    let c = TestCluster::start("tryagain");
    let survivor = c.nodes[0].client;
    c.nodes[1].kill();
    c.nodes[2].kill();
    // Once the survivor knows its groups have lost their quorum (it is looking in every one),
    // a request waits for a leader, then gets -TRYAGAIN naming the partition.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status::collect(&[survivor], Duration::from_secs(1));
        let looking = s.reachable().flat_map(|n| n.groups.iter()).all(|g| g.role == Role::Looking);
        if looking && s.reachable().count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the survivor still sees a leader:\n{s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut client = RespClient::connect(survivor, Duration::from_secs(20)).unwrap();
    let started = Instant::now();
    let error = client.set(b"lonely", b"1").expect_err("no quorum: the SET cannot succeed");
    assert!(error.is_tryagain(), "{error}");
    let text = error.server_message().unwrap_or_default().to_string();
    assert!(text.contains("partition p"), "the partition is named: {text}");
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited for a leader first");
    // A read has no effect, so it is never "unknown": it did not happen.
    let error = client.get(b"lonely").expect_err("no quorum: no linearizable read");
    assert!(error.is_tryagain(), "{error}");
}

/// redis-cli's output (trimmed) for `args` against `addr`; it must exit with success.
fn redis_cli(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether `command` runs and succeeds.
fn runs(command: &mut Command) -> bool {
    command.output().is_ok_and(|o| o.status.success())
}

/// Whether a tool a test drives is installed. `.ci/run` installs them, so in CI a missing tool
/// fails the test; elsewhere the test says so and checks nothing else.
fn installed(available: bool, what: &str) -> bool {
    assert!(
        available || std::env::var("CI").is_err(),
        "{what} must be installed in CI (.ci/run installs it)"
    );
    if !available {
        eprintln!("{what} is not installed: skipping (CI installs it)");
    }
    available
}

#[test]
fn redis_tools_work() {
    let have = |tool: &str| runs(Command::new(tool).arg("--version"));
    if !installed(have("redis-cli") && have("redis-benchmark"), "redis-tools") {
        return;
    }
    let c = TestCluster::start("tools");
    let [a, b, _] = c.endpoints()[..] else { unreachable!() };
    let cli = redis_cli;
    assert_eq!(cli(a, &["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(b, &["GET", "greeting"]), "hello");
    assert_eq!(cli(b, &["CAS", "greeting", "hello", "world"]), "1");
    assert_eq!(cli(a, &["CAS", "greeting", "hello", "again"]), "0");
    assert_eq!(cli(a, &["DEL", "greeting"]), "1");
    assert_eq!(cli(a, &["GET", "greeting"]), "");
    assert_eq!(cli(a, &["PING"]), "PONG");
    // Some node leads some group (which one depends on the addresses the test got).
    assert!(c.endpoints().iter().any(|&e| cli(e, &["INFO"]).contains("role=leader")));
    assert!(cli(a, &["NOSUCH"]).starts_with("ERR unknown command"));

    let out = Command::new("redis-benchmark")
        .args(["-h", &a.ip().to_string(), "-p", &a.port().to_string()])
        .args(["-t", "set,get,incr,mset", "-n", "2000", "-c", "16", "-r", "1000", "-q"])
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "redis-benchmark failed: {out:?}");
    // One line per test, none of them an error (redis-benchmark prints errors and goes on).
    assert_eq!(text.matches("requests per second").count(), 4, "{text}");
    assert!(
        !text.contains("ERR") && !String::from_utf8_lossy(&out.stderr).contains("ERR"),
        "{out:?}"
    );
    eprintln!(
        "{}",
        text.lines().filter(|l| l.contains("per second")).collect::<Vec<_>>().join("\n")
    );
}

/// What redis-py does against the cluster: its default connection (RESP3 since redis-py 8:
/// `HELLO 3`, then `CLIENT SETNAME`/`SETINFO`), and RESP2; commands, `CAS` through
/// `execute_command`, a pipeline, `INFO`, an unknown command. Prints `ok` at the end.
const REDIS_PY_SCRIPT: &str = r#"
import sys, redis
ports = [int(p) for p in sys.argv[1:]]
for protocol in (3, 2):
    r = redis.Redis(host="127.0.0.1", port=ports[0], protocol=protocol, client_name="kv-test")
    other = redis.Redis(host="127.0.0.1", port=ports[1], protocol=protocol)
    key = f"py{protocol}:k"
    assert r.ping() is True
    assert r.set(key, "v1") is True
    assert other.get(key) == b"v1"
    assert other.execute_command("CAS", key, "v1", "v2") == 1
    assert r.execute_command("CAS", key, "v1", "v3") == 0
    assert r.get(key) == b"v2"
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"{key}{i}", str(i))
    for i in range(50):
        pipe.get(f"{key}{i}")
    out = pipe.execute()
    assert out[:50] == [True] * 50, out[:50]
    assert out[50:] == [str(i).encode() for i in range(50)], out[50:]
    assert r.delete(key) == 1
    assert r.get(key) is None
    assert other.get(key) is None
    assert "ops_set" in r.info(), r.info()
    assert r.config_get("save") == {"save": ""} or r.config_get("save") == {b"save": b""}
    try:
        r.execute_command("NOSUCH")
        raise AssertionError("an unknown command was accepted")
    except redis.ResponseError as e:
        assert str(e).startswith("unknown command"), e
print("ok")
"#;

#[test]
fn redis_py_works() {
    if !installed(runs(Command::new("python3").args(["-c", "import redis"])), "redis-py") {
        return;
    }
    let c = TestCluster::start("redis-py");
    let [a, b, _] = c.endpoints()[..] else { unreachable!() };
    let out = Command::new("python3")
        .args(["-c", REDIS_PY_SCRIPT, &a.port().to_string(), &b.port().to_string()])
        .output()
        .expect("run python3");
    let version = Command::new("python3")
        .args(["-c", "import redis; print(redis.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "redis-py {version}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("redis-py {version}: ok");
}

/// The password of [`TestCluster`]s started with [`with_password`].
const PASSWORD: &str = "correct horse";

fn with_password(options: &mut NodeOptions) {
    let password = Password::new(PASSWORD.as_bytes().to_vec());
    options.client_auth = ClientAuth::with_password(password);
}

/// The exact replies of the authentication gate, byte for byte on the wire: what a connection
/// may do before `AUTH`, Redis' error texts, pre-auth bounds, `HELLO 3 AUTH`, `RESET`.
fn check_auth_replies(a: SocketAddr) {
    // Before AUTH: NOAUTH for known commands (PING too); unknown commands and wrong arities
    // keep their own errors; nothing is written.
    let mut req = request(&["SET", "locked", "v"]);
    req.extend(request(&["PING"]));
    req.extend(request(&["NOSUCH", "x"]));
    req.extend(request(&["GET"]));
    req.extend(request(&["HELLO", "3"]));
    req.extend(request(&["AUTH", "wrong"]));
    req.extend(request(&["AUTH", "alice", PASSWORD]));
    req.extend(request(&["AUTH", "a", "b", "c"]));
    req.extend(request(&["AUTH", PASSWORD]));
    req.extend(request(&["GET", "locked"]));
    req.extend(request(&["AUTH", "wrong-again"]));
    req.extend(request(&["PING"]));
    let (replies, closed) = raw_exchange(a, &req, 12);
    let expected = [
        RespValue::error(auth::NOAUTH),
        RespValue::error("NOAUTH Authentication required."),
        RespValue::error("ERR unknown command 'NOSUCH', with args beginning with: 'x' "),
        RespValue::error("ERR wrong number of arguments for 'get' command"),
        RespValue::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        ),
        RespValue::error("WRONGPASS invalid username-password pair or user is disabled."),
        RespValue::error(auth::WRONGPASS),
        RespValue::error("ERR syntax error"),
        RespValue::ok(),
        RespValue::null_bulk(),
        // A failed AUTH leaves an authenticated connection authenticated.
        RespValue::error(auth::WRONGPASS),
        RespValue::simple("PONG"),
    ];
    assert_eq!(replies, expected);
    assert!(!closed);

    // HELLO 3 AUTH authenticates and switches to RESP3 in one step; RESET goes back to RESP2
    // and unauthenticated.
    let bytes = raw_bytes_until(
        a,
        format!(
            "HELLO 3 AUTH default \"{PASSWORD}\" SETNAME me\r\nGET nosuch\r\nRESET\r\nGET x\r\n"
        )
        .as_bytes(),
        b"\r\n-NOAUTH Authentication required.\r\n",
        1,
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("%7\r\n$6\r\nserver\r\n"), "{text}");
    assert!(text.ends_with("_\r\n+RESET\r\n-NOAUTH Authentication required.\r\n"), "{text}");

    // Pre-auth bounds: Redis' protocol errors, and the connection is closed.
    let eleven: Vec<&str> = std::iter::repeat_n("x", 11).collect();
    let (replies, closed) = raw_exchange(a, &request(&eleven), 1);
    assert_eq!(replies, [RespValue::error("ERR Protocol error: unauthenticated multibulk length")]);
    assert!(closed);
    let long = "p".repeat(16 * 1024 + 1);
    let (replies, closed) = raw_exchange(a, &request(&["AUTH", &long]), 1);
    assert_eq!(replies, [RespValue::error("ERR Protocol error: unauthenticated bulk length")]);
    assert!(closed);

    // The request right behind AUTH, in the same write, already gets the normal bounds.
    let value = "v".repeat(20_000);
    let mut req = request(&["AUTH", PASSWORD]);
    req.extend(request(&["SET", "after-auth", &value]));
    req.extend(request(&["GET", "after-auth"]));
    let (replies, closed) = raw_exchange(a, &req, 3);
    assert_eq!(replies, [RespValue::ok(), RespValue::ok(), RespValue::bulk(value)]);
    assert!(!closed);

    // kvstore's own client authenticates; nothing was written before AUTH.
    let password = Password::new(PASSWORD.as_bytes().to_vec());
    let mut client = RespClient::connect_auth(a, Duration::from_secs(10), Some(&password)).unwrap();
    assert_eq!(client.get(b"locked").unwrap(), None);
    let wrong = Password::new(b"nope".to_vec());
    let error = RespClient::connect_auth(a, Duration::from_secs(10), Some(&wrong)).unwrap_err();
    assert!(error.to_string().contains("WRONGPASS"), "{error}");
}

/// redis-cli with and without `-a`, and redis-benchmark `-a`.
fn check_redis_tools_with_password(a: SocketAddr, b: SocketAddr) {
    let cli =
        |addr: SocketAddr, auth: &[&str], args: &[&str]| redis_cli(addr, &[auth, args].concat());
    let with = ["--no-auth-warning", "-a", PASSWORD];
    assert_eq!(cli(a, &with, &["SET", "tool-key", "hello"]), "OK");
    assert_eq!(cli(b, &with, &["GET", "tool-key"]), "hello");
    assert_eq!(cli(b, &[], &["GET", "tool-key"]), "NOAUTH Authentication required.");
    // redis-cli reports the failed AUTH on stderr, then the refused command.
    let out = Command::new("redis-cli")
        .args(["-h", &a.ip().to_string(), "-p", &a.port().to_string()])
        .args(["--no-auth-warning", "-a", "wrong", "PING"])
        .output()
        .expect("run redis-cli");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AUTH failed: WRONGPASS"), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "NOAUTH Authentication required.");

    let out = Command::new("redis-benchmark")
        .args(["-h", &a.ip().to_string(), "-p", &a.port().to_string(), "-a", PASSWORD])
        .args(["-t", "set,get", "-n", "2000", "-c", "16", "-r", "1000", "-q"])
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "redis-benchmark failed: {out:?}");
    assert_eq!(text.matches("requests per second").count(), 2, "{text}");
    assert!(!text.contains("NOAUTH") && !text.contains("ERR"), "{text}");
}

/// redis-py with `password=` in RESP3 (its default: `HELLO 3 AUTH default pw`) and RESP2
/// (`AUTH pw`), and without a password (`AuthenticationError`). Prints `ok` at the end.
const REDIS_PY_AUTH_SCRIPT: &str = r#"
import sys, redis
port, password = int(sys.argv[1]), sys.argv[2]
for protocol in (3, 2):
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, password=password)
    assert r.set(f"py-auth{protocol}", "v") is True
    assert r.get(f"py-auth{protocol}") == b"v"
    anonymous = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)
    try:
        anonymous.get(f"py-auth{protocol}")
        raise AssertionError("read without a password")
    except redis.AuthenticationError:
        pass
    wrong = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, password="wrong")
    try:
        wrong.ping()
        raise AssertionError("wrong password accepted")
    except redis.AuthenticationError:
        pass
print("ok")
"#;

#[test]
fn requirepass_is_enforced_with_redis_semantics() {
    let c = TestCluster::start_with("auth", with_password);
    let [a, b, _] = c.endpoints()[..] else { unreachable!() };
    check_auth_replies(a);

    // `kvstore bench` with the password: every request is served (none gets -NOAUTH);
    // without it, the run is refused up front.
    let config = BenchConfig {
        endpoints: vec![a, b],
        clients: 4,
        duration: Duration::from_millis(600),
        warmup: Duration::from_millis(100),
        keys: 50,
        password: Some(Password::new(PASSWORD.as_bytes().to_vec())),
        ..BenchConfig::default()
    };
    assert_eq!(bench::populate(&config).expect("populate with the password"), 50);
    let report = bench::run(&config, |_| {}).expect("bench with the password");
    assert!(report.ops > 0 && report.errors() == 0, "{report}");
    let anonymous = BenchConfig { password: None, ..config };
    assert!(bench::populate(&anonymous).unwrap_err().to_string().contains("NOAUTH"));
    let have = |tool: &str| runs(Command::new(tool).arg("--version"));
    if installed(have("redis-cli") && have("redis-benchmark"), "redis-tools") {
        check_redis_tools_with_password(a, b);
    }
    if installed(runs(Command::new("python3").args(["-c", "import redis"])), "redis-py") {
        let out = Command::new("python3")
            .args(["-c", REDIS_PY_AUTH_SCRIPT, &a.port().to_string(), PASSWORD])
            .output()
            .expect("run python3");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
            "redis-py:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The string and key commands through redis-cli, as a user types them: counters, appends,
/// `SET NX`, `GETDEL`, `MGET`/`MSET`, `DBSIZE`, `KEYS`, `redis-cli --scan`, `CLIENT LIST/KILL`,
/// `TIME`, with Redis' error texts; then the same through redis-py's methods.
#[test]
fn string_and_key_commands_work_through_redis_cli_and_redis_py() {
    if !installed(runs(Command::new("redis-cli").arg("--version")), "redis-cli") {
        return;
    }
    let c = TestCluster::start("strings");
    let [a, b, _] = c.endpoints()[..] else { unreachable!() };
    let cli = redis_cli;
    assert_eq!(cli(a, &["FLUSHALL"]), "OK");
    assert_eq!(cli(b, &["DBSIZE"]), "0");
    // Counters.
    assert_eq!(cli(a, &["INCR", "counter"]), "1");
    assert_eq!(cli(b, &["INCRBY", "counter", "10"]), "11");
    assert_eq!(cli(a, &["DECR", "counter"]), "10");
    assert_eq!(cli(a, &["DECRBY", "counter", "20"]), "-10");
    assert_eq!(cli(a, &["INCRBYFLOAT", "float", "10.5"]), "10.5");
    assert_eq!(cli(b, &["INCRBYFLOAT", "float", "0.1"]), "10.6");
    assert_eq!(cli(a, &["SET", "max", "9223372036854775807"]), "OK");
    assert_eq!(cli(a, &["INCR", "max"]), "ERR increment or decrement would overflow");
    assert_eq!(cli(a, &["INCRBY", "counter", "x"]), "ERR value is not an integer or out of range");
    // Strings.
    assert_eq!(cli(a, &["SET", "s", "abc"]), "OK");
    assert_eq!(cli(a, &["INCR", "s"]), "ERR value is not an integer or out of range");
    assert_eq!(cli(b, &["APPEND", "s", "def"]), "6");
    assert_eq!(cli(a, &["STRLEN", "s"]), "6");
    assert_eq!(cli(a, &["GETRANGE", "s", "1", "-2"]), "bcde");
    assert_eq!(cli(a, &["SETRANGE", "s", "1", "X"]), "6");
    assert_eq!(cli(b, &["GET", "s"]), "aXcdef");
    assert_eq!(cli(a, &["TYPE", "s"]), "string");
    assert_eq!(cli(a, &["TYPE", "nosuch"]), "none");
    let info = cli(a, &["COMMAND", "INFO", "incr"]);
    assert!(info.starts_with("incr\n2\nwrite\ndenyoom\nfast\n1\n1\n1"), "{info}");
    assert_eq!(cli(b, &["GETEX", "s"]), "aXcdef");
    // SET's conditions, GETSET, GETDEL.
    assert_eq!(cli(a, &["SET", "lock", "t1", "NX"]), "OK");
    assert_eq!(cli(b, &["SET", "lock", "t2", "NX"]), "");
    assert_eq!(cli(a, &["SETNX", "lock", "t2"]), "0");
    assert_eq!(cli(a, &["SET", "lock", "t3", "XX", "GET"]), "t1");
    assert_eq!(cli(a, &["GETSET", "lock", "t4"]), "t3");
    assert_eq!(cli(b, &["GETDEL", "lock"]), "t4");
    assert_eq!(cli(a, &["EXISTS", "lock"]), "0");
    assert_eq!(cli(a, &["SET", "lock", "t1", "NX", "XX"]), "ERR syntax error");
    assert!(cli(a, &["SET", "lock", "t1", "NX", "PX", "30000"]).contains("not supported yet"));
    // Several keys.
    assert_eq!(cli(a, &["MSET", "a", "1", "b", "2", "c", "3"]), "OK");
    assert_eq!(cli(b, &["MGET", "a", "b", "nosuch", "c"]), "1\n2\n\n3");
    assert_eq!(cli(a, &["EXISTS", "a", "b", "nosuch"]), "2");
    assert_eq!(cli(a, &["DEL", "a", "b", "nosuch"]), "2");
    assert_eq!(cli(a, &["UNLINK", "c"]), "1");
    // A pipeline mixing single- and multi-key commands: replies come in request order, and
    // each command sees the effects of those before it on the connection.
    let mut pipeline = Vec::new();
    for words in [
        &["SET", "p1", "1"][..],
        &["MGET", "p1", "p2"],
        &["MSET", "p2", "2", "p3", "3"],
        &["INCR", "p1"],
        &["MGET", "p1", "p2", "p3"],
        &["DEL", "p1", "p2", "p3"],
        &["EXISTS", "p1", "p2", "p3"],
    ] {
        pipeline.extend(request(words));
    }
    let (replies, _) = raw_exchange(a, &pipeline, 7);
    let bulks = |items: &[Option<&str>]| {
        RespValue::array(
            items.iter().map(|i| i.map_or(RespValue::null_bulk(), RespValue::bulk)).collect(),
        )
    };
    assert_eq!(
        replies,
        vec![
            RespValue::ok(),
            bulks(&[Some("1"), None]),
            RespValue::ok(),
            RespValue::Integer(2),
            bulks(&[Some("2"), Some("2"), Some("3")]),
            RespValue::Integer(3),
            RespValue::Integer(0),
        ]
    );
    // MSETNX is atomic in one partition and refused across partitions.
    let partition = |key: &str| kvstore_app::partition::partition_of(key.as_bytes(), 3);
    let apart = (0..100).map(|i| format!("x{i}")).find(|k| partition(k) != partition("x")).unwrap();
    let together =
        (0..100).map(|i| format!("x{i}")).find(|k| partition(k) == partition("x")).unwrap();
    assert_eq!(
        cli(a, &["MSETNX", "x", "1", &apart, "2"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(cli(a, &["MSETNX", "x", "1", &together, "2"]), "1");
    assert_eq!(cli(b, &["MSETNX", "x", "9", &together, "9"]), "0");
    assert_eq!(cli(b, &["MGET", "x", &together]), "1\n2");
    // Keys with one hash tag share a partition, whatever the rest of the key.
    assert_eq!(
        cli(a, &["MSETNX", "{user:7}:name", "ada", "{user:7}:mail", "a@b", "user:7", "u"]),
        "1"
    );
    assert_eq!(cli(b, &["MSETNX", "{user:7}:name", "bob", "{user:7}:age", "9"]), "0");
    assert_eq!(cli(b, &["MGET", "{user:7}:name", "{user:7}:age"]), "ada"); // then an empty line (nil), trimmed
                                                                           // ...and several of them are read and removed in one operation.
    assert_eq!(cli(a, &["EXISTS", "{user:7}:name", "{user:7}:mail", "{user:7}:age"]), "2");
    assert_eq!(cli(a, &["SET", "{user:7}:tmp", "t"]), "OK");
    assert_eq!(cli(b, &["DEL", "{user:7}:tmp", "{user:7}:tmp", "{user:7}:none"]), "1");
    // The whole keyspace.
    let mut expected: Vec<String> = (0..60).map(|i| format!("key:{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for key in &expected {
        mset.extend([key.clone(), "v".to_string()]);
    }
    assert_eq!(cli(a, &mset.iter().map(String::as_str).collect::<Vec<_>>()), "OK");
    // counter, float, max, s, x, together, the three of user 7, and the 60.
    assert_eq!(cli(b, &["DBSIZE"]), "69");
    expected.sort();
    let sorted = |text: String| {
        let mut keys: Vec<String> = text.lines().map(str::to_owned).collect();
        keys.sort();
        keys
    };
    assert_eq!(sorted(cli(a, &["KEYS", "key:*"])), expected);
    assert_eq!(sorted(cli(b, &["--scan", "--pattern", "key:*"])), expected);
    assert_eq!(sorted(cli(b, &["--scan"])).len(), 69);
    // Connections.
    let mut victim = TcpStream::connect(a).unwrap();
    victim.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    victim.write_all(&request(&["CLIENT", "SETNAME", "victim"])).unwrap();
    victim.write_all(&request(&["CLIENT", "ID"])).unwrap();
    let mut parser = ReplyParser::default();
    let mut buf = [0u8; 1024];
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let n = victim.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        parser.feed(&buf[..n]);
        while let Some(v) = parser.next_value().unwrap() {
            replies.push(v);
        }
    }
    let RespValue::Integer(id) = replies[1] else { panic!("CLIENT ID: {replies:?}") };
    let list = cli(a, &["CLIENT", "LIST"]);
    let line = list.lines().find(|l| l.contains("name=victim")).unwrap_or_else(|| panic!("{list}"));
    assert!(line.starts_with(&format!("id={id} addr=127.0.0.1:")), "{line}");
    assert!(line.contains(" cmd=client|id "), "{line}");
    assert_eq!(cli(a, &["CLIENT", "KILL", "ID", &id.to_string()]), "1");
    assert!(matches!(victim.read(&mut buf), Ok(0)), "the killed connection is closed");
    assert_eq!(cli(a, &["CLIENT", "KILL", "ID", &id.to_string()]), "0");
    assert_eq!(cli(a, &["CLIENT", "KILL", "127.0.0.1:1"]), "ERR No such client");
    let time = cli(a, &["TIME"]);
    let seconds: u64 = time.lines().next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    assert!(seconds.abs_diff(now.as_secs()) < 60, "{time}");
    assert_eq!(cli(a, &["FLUSHDB"]), "OK");
    assert_eq!(cli(b, &["DBSIZE"]), "0");

    // The same through redis-py's own methods, in RESP3 and RESP2.
    if !installed(runs(Command::new("python3").args(["-c", "import redis"])), "redis-py") {
        return;
    }
    let out = Command::new("python3")
        .args(["-c", REDIS_PY_STRINGS_SCRIPT, &a.port().to_string(), &b.port().to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// redis-py's methods for the string and key commands. Prints `ok` at the end.
const REDIS_PY_STRINGS_SCRIPT: &str = r#"
import sys, time, redis
ports = [int(p) for p in sys.argv[1:]]
for protocol in (3, 2):
    r = redis.Redis(host="127.0.0.1", port=ports[0], protocol=protocol)
    other = redis.Redis(host="127.0.0.1", port=ports[1], protocol=protocol)
    p = f"py{protocol}:"
    assert r.incr(p + "n") == 1
    assert other.incrby(p + "n", 41) == 42
    assert r.decr(p + "n") == 41
    assert r.incrbyfloat(p + "f", 0.1) == 0.1
    assert r.incrbyfloat(p + "f", 0.2) == 0.3
    assert r.append(p + "s", "ab") == 2 and r.append(p + "s", "cd") == 4
    assert r.strlen(p + "s") == 4 and r.getrange(p + "s", 1, 2) == b"bc"
    assert r.setrange(p + "s", 6, "z") == 7 and other.get(p + "s") == b"abcd\x00\x00z"
    assert r.set(p + "lock", "a", nx=True) is True
    assert r.set(p + "lock", "b", nx=True) is None
    assert r.setnx(p + "lock", "b") is False
    assert r.set(p + "lock", "c", xx=True, get=True) == b"a"
    assert r.getset(p + "lock", "d") == b"c"
    assert other.getdel(p + "lock") == b"d" and r.getdel(p + "lock") is None
    assert r.type(p + "s") in (b"string", "string") and r.type(p + "lock") in (b"none", "none")
    try:
        r.incr(p + "s")
        raise AssertionError("INCR of a string was accepted")
    except redis.ResponseError as e:
        assert str(e) == "value is not an integer or out of range", e
    keys = [f"{p}k{i}" for i in range(30)]
    assert r.mset({k: i for i, k in enumerate(keys)}) is True
    assert other.mget(keys[:3] + [p + "none"]) == [b"0", b"1", b"2", None]
    assert r.exists(*keys) == 30
    assert sorted(r.keys(p + "k*")) == sorted(k.encode() for k in keys)
    assert sorted(other.scan_iter(match=p + "k*", count=4)) == sorted(k.encode() for k in keys)
    assert r.delete(*keys[:10]) == 10 and r.unlink(*keys[10:]) == 20
    assert r.dbsize() == other.dbsize() == 3  # n, f, s
    r.client_setname(f"py{protocol}")
    assert r.client_getname() in (f"py{protocol}", f"py{protocol}".encode())
    me = r.client_id()
    clients = r.client_list()  # this node's connections only
    assert any(c["id"] == str(me) and c["name"] == f"py{protocol}" for c in clients), clients
    victim = redis.Redis(host="127.0.0.1", port=ports[0], protocol=protocol)
    victim.ping()
    assert r.client_kill_filter(_id=victim.client_id()) == 1
    seconds, micros = r.time()
    assert abs(seconds - time.time()) < 60 and 0 <= micros < 1000000
    assert r.flushall() is True and other.dbsize() == 0
print("ok")
"#;
