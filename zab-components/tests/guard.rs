//! The protocol core must stay pure (STYLE.md "Protocols are synchronous state machines",
//! aesthetics.md Part 2): nothing under `src/protocol/` may name the runtime, the network, the
//! clock, threads or an ambient RNG.

use std::fs;
use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 6] = ["kompics", "std::net", "std::time", "std::thread", "mio", "rand::"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn protocol_core_imports_no_io_clock_threads_or_ambient_randomness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protocol");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 10, "found the protocol sources: {files:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable source file");
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            for word in FORBIDDEN {
                if lower.contains(word) {
                    offences.push(format!(
                        "{}:{}: `{word}` in: {line}",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(offences.is_empty(), "the protocol core must stay pure:\n{}", offences.join("\n"));
}
