//! The `kvstore` binary with a client password (issue 13, item 6): read from a file, never
//! printed, and a file that other users may read is warned about. `kvstore demo --workload`
//! also shows that the demo's own clients (its status check and load) authenticate: without
//! the password they would get `-NOAUTH` and the demo would fail.

use std::process::Command;

#[test]
fn the_demo_reads_its_password_from_a_file_and_never_prints_it() {
    let dir = std::env::temp_dir().join(format!("kvstore-cli-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let secret = "s3cret-that-must-not-leak";
    let file = dir.join("requirepass");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["demo", "--client-port", "0", "--peer-port", "0", "--workers", "2"])
        .args(["--workload", "1", "--duration", "2"])
        .arg("--requirepass-file")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "debug")
        .env_remove(kvstore_app::auth::REQUIREPASS_ENV)
        .output()
        .expect("run kvstore demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "leaked:\n{stdout}\n{stderr}");
    assert!(stdout.contains("--askpass"), "{stdout}");
    assert!(stdout.contains("errors      none"), "the workload authenticated:\n{stdout}");
    #[cfg(unix)]
    assert!(stderr.contains("can be read by other users (mode 644)"), "{stderr}");
}

#[test]
fn an_empty_password_file_is_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("kvstore-cli-empty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("requirepass");
    std::fs::write(&file, "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["demo", "--client-port", "0", "--peer-port", "0", "--duration", "1"])
        .arg("--requirepass-file")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("run kvstore demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is empty"), "{stderr}");
    assert!(!dir.join("data").exists(), "nothing started");
    let _ = std::fs::remove_dir_all(&dir);
}
