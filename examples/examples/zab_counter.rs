//! A replicated counter on the standalone Zab API, across three processes on loopback.
//!
//! ```text
//! cargo run --release -p examples --example zab_counter -- --listen 127.0.0.1:7301 --increments 50
//! cargo run --release -p examples --example zab_counter -- --listen 127.0.0.1:7302 --increments 50
//! cargo run --release -p examples --example zab_counter -- --listen 127.0.0.1:7303 --increments 50
//! ```
//!
//! (`--members` defaults to those three addresses; add `--data-dir DIR` to keep each member's
//! log on disk, so that a killed member recovers from its own files.) Each process proposes its increments, prints
//! its role as it changes and the counter as transactions are delivered; all three end with the
//! same total. Stop one (even the leader) and the other two go on; start it again and it catches
//! up from the others.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use zab_components::component::ZabStatus;
use zab_components::facade::{ProposeError, Zab, ZabCallback, ZabOptions};
use zab_components::protocol::Zxid;
use zab_components::storage::{SimDisk, ZabStorage};
use zab_components::wal::{FileStorage, WalOptions};

/// The secret the example's members share (see `main`).
const EXAMPLE_SECRET: &[u8] = b"zab-counter example secret, 32+ bytes";

#[derive(Parser, Debug)]
#[command(about = "A replicated counter on Zab")]
struct Args {
    /// This member's address.
    #[arg(long)]
    listen: SocketAddr,
    /// Every member's address, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303"
    )]
    members: Vec<SocketAddr>,
    /// Increments this member proposes.
    #[arg(long, default_value_t = 10)]
    increments: u64,
    /// Pause between increments.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Keep the log in this directory (a durable write-ahead log); without it, in memory.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Keep running this long after the last increment, printing deliveries.
    #[arg(long, default_value_t = 5)]
    linger_secs: u64,
}

/// The replicated state: a counter, and who we are for the printout.
struct Counter {
    me: SocketAddr,
    value: u64,
}

impl ZabCallback for Counter {
    fn deliver(&mut self, zxid: Zxid, payload: &[u8]) {
        let by = u64::from_le_bytes(payload.try_into().unwrap_or([0; 8]));
        self.value += by;
        println!("{}: counter = {} (zxid {}:{})", self.me, self.value, zxid.epoch.0, zxid.counter);
    }
    fn status(&mut self, status: ZabStatus) {
        println!("{}: {status:?}", self.me);
    }
    fn get_state(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(&self.value.to_le_bytes())
    }
    fn set_state(&mut self, input: Option<&mut dyn Read>) -> std::io::Result<()> {
        let mut b = [0u8; 8];
        self.value = match input {
            Some(r) => {
                r.read_exact(&mut b)?;
                u64::from_le_bytes(b)
            }
            None => 0,
        };
        Ok(())
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let counter = Counter { me: args.listen, value: 0 };
    // With a data directory, a restarted member recovers from its own log; in memory, it
    // catches up from the others.
    let storage: Box<dyn ZabStorage> = match &args.data_dir {
        Some(dir) => match FileStorage::open(dir, WalOptions::default()) {
            Ok(s) => Box::new(s),
            Err(e) => {
                eprintln!("{}: cannot open the log in {}: {e}", args.listen, dir.display());
                std::process::exit(1);
            }
        },
        None => Box::new(SimDisk::new()),
    };
    // The example's members share a built-in secret: enough on loopback, never in production,
    // where the secret is 32 random bytes kept in a file only the service can read.
    let security = kompics_net::PeerSecurity::shared_secret("zab-counter", EXAMPLE_SECRET)
        .expect("a valid secret");
    let zab =
        Zab::start(ZabOptions::new(args.listen, args.members.clone(), security), storage, counter)
            .expect("start the Zab node");
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while done < args.increments && Instant::now() < deadline {
        match zab.propose(1u64.to_le_bytes().to_vec()).committed(Duration::from_secs(5)) {
            Ok(_) => {
                done += 1;
                std::thread::sleep(Duration::from_millis(args.interval_ms));
            }
            Err(ProposeError::NotLeader { .. } | ProposeError::TooManyOutstanding) => {
                // No leader yet (the others may not be up): retry shortly.
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                eprintln!("{}: increment not known to have committed: {e}", args.listen);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    println!("{}: proposed {done} increments; lingering {} s", args.listen, args.linger_secs);
    std::thread::sleep(Duration::from_secs(args.linger_secs));
    zab.shutdown();
}
