//! TLS on the RESP client port of a real `kvstore node` process (one node, one partition),
//! with certificates minted here: redis-cli `--tls` and redis-py `ssl=True` work, with and
//! without client certificates as `--tls-auth-clients` says; plaintext clients and garbage get
//! nothing and the node serves on.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// CA, server and client certificates as PEM files in a temporary directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn mint(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("kvstore-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(DnType::CommonName, "kvstore test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for (who, eku) in [
            ("server", ExtendedKeyUsagePurpose::ServerAuth),
            ("client", ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            // redis-py checks the host name: the server certificate names 127.0.0.1 too.
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![eku];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.join(format!("{who}.pem")), cert.pem()).unwrap();
            common::write_secret_file(&dir.join(format!("{who}.key")), key.serialize_pem().trim());
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-node cluster whose client port speaks TLS; killed on drop.
struct TlsNode {
    child: Child,
    client: SocketAddr,
    data: PathBuf,
}

impl TlsNode {
    fn start(pki: &Pki, auth_clients: &str) -> TlsNode {
        let ports = common::free_ports(2);
        let peer = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        let client = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let data = pki.dir.join("data");
        let child = Command::new(env!("CARGO_BIN_EXE_kvstore"))
            .args(["node", "--peer", &peer.to_string(), "--client", &client.to_string()])
            .args(["--data-dir", &data.display().to_string(), "--expect", "1"])
            .args(["--partitions", "1", "--replication", "1", "--insecure"])
            .args(["--tls-cert-file", &pki.file("server.pem")])
            .args(["--tls-key-file", &pki.file("server.key")])
            .args(["--tls-ca-cert-file", &pki.file("ca.pem")])
            .args(["--tls-auth-clients", auth_clients])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kvstore node");
        let node = TlsNode { child, client, data };
        // Ready once a TLS client's SET is answered.
        let deadline = Instant::now() + Duration::from_secs(30);
        let with_cert = ["--cert", &pki.file("client.pem"), "--key", &pki.file("client.key")];
        while redis_cli(pki, node.client, &with_cert, &["SET", "ready", "1"]).0 != "OK" {
            assert!(Instant::now() < deadline, "the node never answered over TLS");
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Runs `redis-cli --tls --cacert ca.pem` with `extra` options and `command`; returns its
/// trimmed stdout and stderr.
fn redis_cli(pki: &Pki, addr: SocketAddr, extra: &[&str], command: &[&str]) -> (String, String) {
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert", &pki.file("ca.pem"), "-h", "127.0.0.1"])
        .args(["-p", &addr.port().to_string()])
        .args(extra)
        .args(command)
        .output()
        .expect("run redis-cli");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (text(&out.stdout), text(&out.stderr))
}

const REDIS_PY: &str = r#"
import sys, redis
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
kw = dict(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca, socket_timeout=10)
if cert:
    kw.update(ssl_certfile=cert, ssl_keyfile=key)
for proto in (2, 3):
    r = redis.Redis(protocol=proto, **kw)
    assert r.set("py%d" % proto, "v%d" % proto)
    assert r.get("py%d" % proto) == b"v%d" % proto
print("ok")
"#;

fn redis_py(pki: &Pki, addr: SocketAddr, with_cert: bool) -> (bool, String) {
    let (cert, key) = if with_cert {
        (pki.file("client.pem"), pki.file("client.key"))
    } else {
        Default::default()
    };
    let out = Command::new("python3")
        .args(["-c", REDIS_PY, &addr.port().to_string(), &pki.file("ca.pem"), &cert, &key])
        .output()
        .expect("run python3");
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && all.trim() == "ok", all)
}

/// A plaintext RESP client gets no reply (the server waits for a ClientHello and closes).
fn plaintext_gets_no_reply(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(!String::from_utf8_lossy(&reply).contains("PONG"), "plaintext was served");
}

#[test]
fn redis_cli_and_redis_py_speak_tls_with_optional_client_certificates() {
    let pki = Pki::mint("optional");
    let node = TlsNode::start(&pki, "optional");
    assert_eq!(redis_cli(&pki, node.client, &[], &["SET", "greeting", "hello"]).0, "OK");
    assert_eq!(redis_cli(&pki, node.client, &[], &["GET", "greeting"]).0, "hello");
    for with_cert in [false, true] {
        let (ok, output) = redis_py(&pki, node.client, with_cert);
        assert!(ok, "redis-py ssl=True (client certificate: {with_cert}):\n{output}");
    }
    plaintext_gets_no_reply(node.client);
    let mut garbage = TcpStream::connect(node.client).unwrap();
    garbage.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0]).unwrap();
    // Without the CA, redis-cli refuses the server's certificate.
    let out = Command::new("redis-cli")
        .args(["--tls", "-h", "127.0.0.1", "-p", &node.client.port().to_string(), "PING"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PONG"));
    assert_eq!(redis_cli(&pki, node.client, &[], &["GET", "greeting"]).0, "hello", "serves on");
}

#[test]
fn tls_auth_clients_yes_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::mint("required");
    let node = TlsNode::start(&pki, "yes");
    let (out, err) = redis_cli(&pki, node.client, &[], &["GET", "ready"]);
    assert_ne!(out, "1", "served without a client certificate ({err})");
    let (ok, _) = redis_py(&pki, node.client, false);
    assert!(!ok, "redis-py was served without a client certificate");
    let with_cert = ["--cert", &pki.file("client.pem"), "--key", &pki.file("client.key")];
    assert_eq!(redis_cli(&pki, node.client, &with_cert, &["GET", "ready"]).0, "1");
    let (ok, output) = redis_py(&pki, node.client, true);
    assert!(ok, "redis-py with a client certificate:\n{output}");
    // A certificate from another CA is refused.
    let other = Pki::mint("other-ca");
    let foreign = ["--cert", &other.file("client.pem"), "--key", &other.file("client.key")];
    assert_ne!(redis_cli(&pki, node.client, &foreign, &["GET", "ready"]).0, "1");
}

#[test]
fn a_node_refuses_to_start_with_unusable_client_tls_files() {
    let missing = Path::new("/nonexistent/server.pem").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["node", "--peer", "127.0.0.1:1", "--client", "127.0.0.1:2", "--expect", "1"])
        .args(["--data-dir", "/nonexistent/data", "--insecure"])
        .args(["--tls-cert-file", &missing, "--tls-key-file", &missing])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("client port TLS") && stderr.contains(&missing), "{stderr}");
}
