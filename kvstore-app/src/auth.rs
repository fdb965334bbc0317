//! Client authentication on the RESP port, with Redis' `requirepass` semantics.
//!
//! A node started with a password ([`ClientAuth::with_password`]) has one user, `default`,
//! whose password it is. A new connection is unauthenticated; [`ClientAuth::admit`] decides,
//! command by command, what it may do:
//!
//! - `AUTH password`, `AUTH default password` and `HELLO 2|3 AUTH default password` check the
//!   password and, when it matches, authenticate the connection;
//! - before that, only `AUTH`, `HELLO`, `QUIT` and `RESET` run; every other known command gets
//!   [`NOAUTH`] (unknown commands and wrong argument counts are refused before this gate, so they
//!   keep their own errors, as in Redis), and `HELLO` without `AUTH` gets [`NOAUTH_HELLO`];
//! - wrong credentials get [`WRONGPASS`], whatever the user name; a failed `AUTH` on an
//!   authenticated connection leaves it authenticated (Redis 6+).
//!
//! Without a password every connection starts authenticated, `AUTH default anything` succeeds
//! (Redis' `nopass` default user) and `AUTH password` gets [`NO_PASSWORD_CONFIGURED`], the
//! exact text redis-py matches on.
//!
//! Passwords are compared in time that depends only on the length of what the client sent,
//! never on how much of it matches, so a client cannot find the password byte by byte from
//! response times. They are never printed: [`Password`]'s `Debug` is redacted.
//!
//! The parser applies tighter bounds before authentication (see
//! [`RequestParser::set_authenticated`](crate::resp::RequestParser::set_authenticated)), so an
//! unauthenticated client cannot make the node buffer megabytes.
//!
//! ```
//! use kvstore_app::auth::{Admission, ClientAuth, Password, NOAUTH};
//! use kvstore_app::command::Command;
//! use kvstore_app::resp::RespValue;
//!
//! let auth = ClientAuth::with_password(Password::new(b"s3cret".to_vec()));
//! let get = Command::Get { key: b"k".to_vec() };
//! assert_eq!(auth.admit(get, false), Admission::Refuse(RespValue::error(NOAUTH)));
//! let login = Command::Auth { user: None, password: Password::new(b"s3cret".to_vec()) };
//! assert!(matches!(auth.admit(login, false), Admission::Authenticated(_)));
//! ```

use std::fmt;
use std::path::Path;

use crate::command::Command;
use crate::resp::RespValue;

/// The reply to a command refused before authentication.
pub const NOAUTH: &str = "NOAUTH Authentication required.";

/// The reply to `HELLO` without `AUTH` on an unauthenticated connection.
pub const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already \
    authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
    authenticate the client and select the RESP protocol version at the same time";

/// The reply to wrong credentials.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// The reply to `AUTH password` when the node has no password.
pub const NO_PASSWORD_CONFIGURED: &str = "ERR AUTH <password> called without any password \
    configured for the default user. Are you sure your configuration is correct?";

/// The one user name, as in Redis without ACLs.
pub const DEFAULT_USER: &[u8] = b"default";

/// The environment variable `kvstore node` and `kvstore demo` read the password from when
/// neither `--requirepass` nor `--requirepass-file` is given.
pub const REQUIREPASS_ENV: &str = "KVSTORE_REQUIREPASS";

/// A secret: bytes that are compared and sent, never shown (`Debug` prints `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    /// Wraps the secret's bytes.
    pub fn new(bytes: Vec<u8>) -> Password {
        Password(bytes)
    }

    /// The secret's bytes, for sending it (`AUTH`); never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether `candidate` is this password, in time that depends on `candidate`'s length
    /// only: every byte of it is compared (against this password repeated), and the length
    /// difference is folded into the same accumulator instead of returning early.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let secret = &self.0;
        if secret.is_empty() {
            return candidate.is_empty();
        }
        let mut difference = (secret.len() ^ candidate.len()) as u64;
        for (i, &byte) in candidate.iter().enumerate() {
            difference |= u64::from(byte ^ secret[i % secret.len()]);
        }
        // Keeps the optimizer from turning the loop into an early exit.
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What [`ClientAuth::admit`] makes of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Handle the command; the connection's authentication does not change.
    Run(Command),
    /// The command's credentials are right: mark the connection authenticated (and switch the
    /// parser to its normal limits), then handle the command (`AUTH` replies `+OK`).
    Authenticated(Command),
    /// Send this error and do not run the command.
    Refuse(RespValue),
}

/// A node's client-authentication setting: no password, or the `default` user's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientAuth {
    password: Option<Password>,
}

impl ClientAuth {
    /// No authentication: every connection may run every command.
    pub fn none() -> ClientAuth {
        ClientAuth { password: None }
    }

    /// Connections must authenticate with this password first.
    pub fn with_password(password: Password) -> ClientAuth {
        ClientAuth { password: Some(password) }
    }

    /// The password, if there is one (for the node's own clients, e.g. `kvstore demo`'s).
    pub fn password(&self) -> Option<&Password> {
        self.password.as_ref()
    }

    /// Whether new connections start unauthenticated.
    pub fn is_required(&self) -> bool {
        self.password.is_some()
    }

    /// Checks `user` (none for one-argument `AUTH`) and `password`; the error is the reply.
    pub fn check(&self, user: Option<&[u8]>, password: &[u8]) -> Result<(), RespValue> {
        let wrong = || Err(RespValue::error(WRONGPASS));
        if user.is_some_and(|user| user != DEFAULT_USER) {
            return wrong();
        }
        match &self.password {
            Some(expected) if expected.matches(password) => Ok(()),
            Some(_) => wrong(),
            // Redis' passwordless default user takes any password given with its name...
            None if user.is_some() => Ok(()),
            // ... but a bare `AUTH password` is most likely a misconfigured client.
            None => Err(RespValue::error(NO_PASSWORD_CONFIGURED)),
        }
    }

    /// Whether `command` may run on a connection that is (or is not yet) `authenticated`, and
    /// whether it authenticates it. See the [module documentation](self).
    pub fn admit(&self, command: Command, authenticated: bool) -> Admission {
        let credentials = match &command {
            Command::Auth { user, password } => Some((user.as_deref(), password.expose())),
            // An unsupported version is refused (`-NOPROTO`) before the credentials are looked
            // at, as Redis does.
            Command::Hello { protocol: Some(2 | 3), auth: Some((user, password)), .. } => {
                Some((Some(user.as_slice()), password.expose()))
            }
            _ => None,
        };
        if let Some((user, password)) = credentials {
            return match self.check(user, password) {
                Ok(()) => Admission::Authenticated(command),
                Err(reply) => Admission::Refuse(reply),
            };
        }
        if authenticated {
            return Admission::Run(command);
        }
        match command {
            Command::Hello { protocol: Some(2 | 3), .. }
            | Command::Hello { protocol: None, .. } => {
                Admission::Refuse(RespValue::error(NOAUTH_HELLO))
            }
            Command::Hello { .. } | Command::Quit | Command::Reset => Admission::Run(command),
            _ => Admission::Refuse(RespValue::error(NOAUTH)),
        }
    }
}

/// Where a node's password comes from, in order: `--requirepass` (`flag`), `--requirepass-file`
/// (`file`), or the environment variable [`REQUIREPASS_ENV`] (`env`, its value if set).
///
/// A file holds the password on its first line (a trailing line break is not part of it). An
/// empty password is an error rather than "no password", so a truncated file cannot silently
/// open the node. A file that the group or others may read is used, with a warning.
pub fn load_requirepass(
    flag: Option<String>,
    file: Option<&Path>,
    env: Option<String>,
) -> Result<ClientAuth, String> {
    let (bytes, source) = match (flag, file, env) {
        (Some(_), Some(_), _) => {
            return Err("give at most one of --requirepass and --requirepass-file".into())
        }
        (Some(flag), None, _) => (flag.into_bytes(), "--requirepass".to_owned()),
        (None, Some(path), _) => (read_password_file(path)?, path.display().to_string()),
        (None, None, Some(env)) => (env.into_bytes(), REQUIREPASS_ENV.to_owned()),
        (None, None, None) => return Ok(ClientAuth::none()),
    };
    if bytes.is_empty() {
        return Err(format!("the client password from {source} is empty"));
    }
    Ok(ClientAuth::with_password(Password::new(bytes)))
}

/// The first line of the password file at `path`, warning if others may read the file.
fn read_password_file(path: &Path) -> Result<Vec<u8>, String> {
    let error = |e: std::io::Error| format!("password file {}: {e}", path.display());
    let metadata = std::fs::metadata(path).map_err(error)?;
    if let Some(mode) = too_open_mode(&metadata) {
        log::warn!(
            "password file {} can be read by other users (mode {mode:o}); chmod 600 it",
            path.display()
        );
    }
    let mut bytes = std::fs::read(path).map_err(error)?;
    if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(end);
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

/// The file's permission bits if the group or others may read (or write) it.
#[cfg(unix)]
fn too_open_mode(metadata: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn too_open_mode(_metadata: &std::fs::Metadata) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    fn password(text: &str) -> Password {
        Password::new(text.as_bytes().to_vec())
    }

    fn auth(user: Option<&str>, pass: &str) -> Command {
        Command::Auth { user: user.map(|u| u.as_bytes().to_vec()), password: password(pass) }
    }

    fn hello(protocol: i64, user: &str, pass: &str) -> Command {
        Command::Hello {
            protocol: Some(protocol),
            auth: Some((user.as_bytes().to_vec(), password(pass))),
            client_name: None,
        }
    }

    fn refused(text: &str) -> Admission {
        Admission::Refuse(RespValue::error(text))
    }

    #[test]
    fn passwords_match_only_exactly() {
        let secret = password("abc");
        assert!(secret.matches(b"abc"));
        for wrong in [&b""[..], b"ab", b"abcabc", b"abd", b"ABC", b"abc\0"] {
            assert!(!secret.matches(wrong), "{wrong:?}");
        }
        assert!(password("").matches(b""));
        assert_eq!(format!("{secret:?}"), "Password(<redacted>)");
        let config = ClientAuth::with_password(secret);
        assert!(!format!("{config:?}").contains("abc"));
    }

    #[test]
    fn before_auth_only_auth_hello_quit_and_reset_run() {
        let auth_on = ClientAuth::with_password(password("pw"));
        let get = Command::Get { key: b"k".to_vec() };
        assert_eq!(auth_on.admit(get.clone(), false), refused(NOAUTH));
        assert_eq!(auth_on.admit(Command::Ping(None), false), refused(NOAUTH));
        assert_eq!(auth_on.admit(Command::Info(None), false), refused(NOAUTH));
        assert_eq!(auth_on.admit(Command::Quit, false), Admission::Run(Command::Quit));
        assert_eq!(auth_on.admit(Command::Reset, false), Admission::Run(Command::Reset));
        let bare_hello = Command::Hello { protocol: Some(3), auth: None, client_name: None };
        assert_eq!(auth_on.admit(bare_hello.clone(), false), refused(NOAUTH_HELLO));
        let no_version = Command::Hello { protocol: None, auth: None, client_name: None };
        assert_eq!(auth_on.admit(no_version, false), refused(NOAUTH_HELLO));
        // An unsupported version is for the command to refuse (-NOPROTO), auth or not.
        let hello_4 = Command::Hello { protocol: Some(4), auth: None, client_name: None };
        assert_eq!(auth_on.admit(hello_4.clone(), false), Admission::Run(hello_4));
        // Once authenticated, everything runs.
        assert_eq!(auth_on.admit(get.clone(), true), Admission::Run(get.clone()));
        assert_eq!(auth_on.admit(bare_hello.clone(), true), Admission::Run(bare_hello));
        // Without a password, connections start authenticated.
        assert_eq!(ClientAuth::none().admit(get.clone(), true), Admission::Run(get));
    }

    #[test]
    fn auth_and_hello_auth_check_the_default_users_password() {
        let auth_on = ClientAuth::with_password(password("pw"));
        for command in [auth(None, "pw"), auth(Some("default"), "pw"), hello(3, "default", "pw")] {
            assert_eq!(
                auth_on.admit(command.clone(), false),
                Admission::Authenticated(command.clone())
            );
        }
        for command in [
            auth(None, "nope"),
            auth(Some("default"), "PW"),
            auth(Some("alice"), "pw"),
            hello(2, "default", "pw "),
            hello(3, "Default", "pw"),
        ] {
            assert_eq!(auth_on.admit(command.clone(), false), refused(WRONGPASS), "{command:?}");
            // A failed AUTH does not log an authenticated connection out: Refuse changes nothing.
            assert_eq!(auth_on.admit(command, true), refused(WRONGPASS));
        }
    }

    #[test]
    fn without_a_password_auth_behaves_as_redis_nopass_default_user() {
        let open = ClientAuth::none();
        assert!(!open.is_required());
        assert_eq!(open.admit(auth(None, "x"), true), refused(NO_PASSWORD_CONFIGURED));
        let named = auth(Some("default"), "anything");
        assert_eq!(open.admit(named.clone(), true), Admission::Authenticated(named));
        assert_eq!(open.admit(auth(Some("bob"), "x"), true), refused(WRONGPASS));
        let hello = hello(3, "default", "whatever");
        assert_eq!(open.admit(hello.clone(), true), Admission::Authenticated(hello));
    }

    #[test]
    fn the_password_comes_from_one_source_and_must_not_be_empty() {
        let scratch = TempDir::new("auth-sources");
        let dir = scratch.path();
        let file = dir.join("pass");
        std::fs::write(&file, "from-file\r\nsecond line\n").unwrap();
        let expect = |text: &str| Ok(ClientAuth::with_password(password(text)));
        assert_eq!(load_requirepass(None, None, None), Ok(ClientAuth::none()));
        assert_eq!(load_requirepass(Some("flag".into()), None, Some("env".into())), expect("flag"));
        assert_eq!(load_requirepass(None, Some(&file), Some("env".into())), expect("from-file"));
        assert_eq!(load_requirepass(None, None, Some("env".into())), expect("env"));
        assert!(load_requirepass(Some("a".into()), Some(&file), None).is_err());
        assert!(load_requirepass(None, None, Some(String::new())).unwrap_err().contains("empty"));
        std::fs::write(&file, "\n").unwrap();
        assert!(load_requirepass(None, Some(&file), None).unwrap_err().contains("empty"));
        let missing = dir.join("missing");
        assert!(load_requirepass(None, Some(&missing), None).unwrap_err().contains("missing"));
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_readable_by_others_is_flagged() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = TempDir::new("auth-mode");
        let dir = scratch.path();
        let file = dir.join("pass");
        std::fs::write(&file, "pw").unwrap();
        let set_mode = |mode| std::fs::set_permissions(&file, PermissionsExt::from_mode(mode));
        set_mode(0o600).unwrap();
        assert_eq!(too_open_mode(&std::fs::metadata(&file).unwrap()), None);
        set_mode(0o644).unwrap();
        assert_eq!(too_open_mode(&std::fs::metadata(&file).unwrap()), Some(0o644));
        set_mode(0o640).unwrap();
        assert_eq!(too_open_mode(&std::fs::metadata(&file).unwrap()), Some(0o640));
    }
}
