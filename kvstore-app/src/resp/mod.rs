//! The Redis serialization protocol: values, an encoder for RESP2 and RESP3, and incremental
//! parsers that are safe on hostile input.
//!
//! - [`RespValue`] is one value; [`RespValue::encode`] appends its RESP2 wire form to a buffer,
//!   [`RespValue::encode_in`] its form in a [`Protocol`] (a connection speaks RESP3 after
//!   `HELLO 3`, as redis-py 8 asks on connect; requests are the same in both).
//! - [`RequestParser`] is the server side: fed bytes as they arrive, it yields [`Request`]s, in
//!   both forms clients use: arrays of bulk strings (redis-cli, redis-benchmark, redis-py) and
//!   inline commands (`PING\r\n` typed into telnet). Pipelined requests come out one by one, and
//!   a request may be split across feeds at any byte.
//! - [`ReplyParser`] is the client side (the load generator, tests): it reads any RESP2 value.
//!
//! Every bound is in [`RespLimits`]. Two kinds of bad input are told apart:
//!
//! - an argument larger than [`RespLimits::bulk_bytes_max`] (but within the hard cap
//!   [`RespLimits::protocol_bulk_bytes_max`]) is well-formed but too large: its bytes are dropped
//!   as they arrive, never buffered, and the request comes out marked [`Request::oversized`], so
//!   the server can answer `-ERR … too large` and keep the connection;
//! - malformed input is a [`RespError`]; the server answers `-ERR Protocol error: …`
//!   ([`RespError::to_reply`]) and closes the connection, as Redis does. After an error the
//!   parser keeps returning it.
//!
//! Neither parser panics on any input, and neither allocates in proportion to a length the peer
//! claims before the bytes themselves arrive.
//!
//! ```
//! use kvstore_app::resp::{RequestParser, RespValue};
//!
//! let mut parser = RequestParser::default();
//! parser.feed(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nPI");
//! assert_eq!(parser.next_request().unwrap().unwrap().args(), [b"GET".to_vec(), b"k".to_vec()]);
//! assert_eq!(parser.next_request().unwrap().unwrap().args(), [b"PING".to_vec()]);
//! assert_eq!(parser.next_request().unwrap(), None); // the third is not complete yet
//! parser.feed(b"NG\r\n");
//! assert_eq!(parser.next_request().unwrap().unwrap().args(), [b"PING".to_vec()]);
//!
//! assert_eq!(RespValue::simple("PONG").to_bytes(), b"+PONG\r\n");
//! ```

mod reply;
mod request;
mod value;

use std::fmt;

pub use reply::ReplyParser;
pub use request::{Oversized, Request, RequestParser};
pub use value::{encode_request, Protocol, RespValue};

/// The most arguments of one request before the connection authenticated (Redis' bound: `AUTH`
/// and `HELLO 3 AUTH user pass SETNAME name` fit), so that an unauthenticated client cannot
/// make the node hold large requests.
pub const UNAUTHENTICATED_ARGS_MAX: usize = 10;

/// The longest argument before the connection authenticated, in bytes (Redis' bound).
pub const UNAUTHENTICATED_BULK_BYTES_MAX: usize = 16 * 1024;

/// The bounds of the RESP parsers. Every field has a default, documented on it; a server should
/// keep `bulk_bytes_max` in step with the value size limit of its commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// The most arguments (array elements, or inline words) in one request. More is a protocol
    /// error. Default 1024.
    pub args_max: usize,
    /// The largest argument kept, in bytes. A larger one (within `protocol_bulk_bytes_max`) is
    /// discarded as it arrives and the request is marked oversized. Default 1 MiB.
    pub bulk_bytes_max: usize,
    /// The most argument bytes kept for one request, all arguments together; arguments past it
    /// are discarded and the request is marked oversized. This bounds the memory one request
    /// holds (`args_max × bulk_bytes_max` would be 1 GiB). Default 4 MiB.
    pub request_bytes_max: usize,
    /// The longest inline command line, in bytes, without its line ending. Longer is a protocol
    /// error. Default 64 KiB (as Redis).
    pub inline_bytes_max: usize,
    /// The hard cap on any bulk length a peer may announce. Larger is a protocol error.
    /// Default 512 MiB (as Redis' `proto-max-bulk-len`).
    pub protocol_bulk_bytes_max: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            args_max: 1024,
            bulk_bytes_max: 1024 * 1024,
            request_bytes_max: 4 * 1024 * 1024,
            inline_bytes_max: 64 * 1024,
            protocol_bulk_bytes_max: 512 * 1024 * 1024,
        }
    }
}

impl RespLimits {
    /// Checks that the limits are usable together: all positive, and
    /// `bulk_bytes_max ≤ request_bytes_max` and `bulk_bytes_max ≤ protocol_bulk_bytes_max`.
    pub fn validate(&self) -> Result<(), InvalidLimits> {
        let problem = if self.args_max == 0 {
            "args_max must be at least 1"
        } else if self.bulk_bytes_max == 0 {
            "bulk_bytes_max must be at least 1"
        } else if self.inline_bytes_max == 0 {
            "inline_bytes_max must be at least 1"
        } else if self.bulk_bytes_max > self.request_bytes_max {
            "bulk_bytes_max must not exceed request_bytes_max"
        } else if self.bulk_bytes_max > self.protocol_bulk_bytes_max {
            "bulk_bytes_max must not exceed protocol_bulk_bytes_max"
        } else {
            return Ok(());
        };
        Err(InvalidLimits(problem))
    }
}

/// [`RespLimits`] that do not fit together; the text says which rule is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidLimits(pub &'static str);

impl fmt::Display for InvalidLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RESP limits: {}", self.0)
    }
}

impl std::error::Error for InvalidLimits {}

/// Malformed RESP input. The connection it came from cannot be resynchronised and should be
/// closed after replying [`RespError::to_reply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A byte that cannot start what comes next (e.g. not `$` where a request argument starts,
    /// or not a RESP type byte where a reply starts).
    UnexpectedByte {
        /// What the parser expected, e.g. `'$'`.
        expected: &'static str,
        /// The byte that came instead.
        found: u8,
    },
    /// An array length that is not a decimal integer, or negative other than the null `-1`.
    InvalidMultibulkLength,
    /// A bulk length that is not a decimal integer, or negative where null is not allowed.
    InvalidBulkLength,
    /// A bulk length above [`RespLimits::protocol_bulk_bytes_max`].
    BulkTooLarge {
        /// The announced length.
        len: u64,
        /// The hard cap.
        limit: usize,
    },
    /// An integer reply that is not a decimal `i64`.
    InvalidInteger,
    /// A line or bulk string not followed by `\r\n`.
    MissingCrlf,
    /// A length or type line longer than any valid one.
    HeaderTooLong,
    /// An inline command line longer than [`RespLimits::inline_bytes_max`].
    InlineTooLong {
        /// The limit.
        limit: usize,
    },
    /// More arguments than [`RespLimits::args_max`].
    TooManyArgs {
        /// The number announced (or counted, for inline commands).
        count: u64,
        /// The limit.
        limit: usize,
    },
    /// An inline command with an unclosed quote, or a closing quote followed by a non-space.
    UnbalancedQuotes,
    /// A reply nested deeper than the [`ReplyParser`]'s depth limit.
    NestingTooDeep {
        /// The limit.
        limit: usize,
    },
    /// A simple string or error line that is not UTF-8 (replies only).
    InvalidUtf8,
    /// More than [`UNAUTHENTICATED_ARGS_MAX`] arguments before the connection authenticated.
    UnauthenticatedMultibulkLength,
    /// An argument longer than [`UNAUTHENTICATED_BULK_BYTES_MAX`] before the connection
    /// authenticated.
    UnauthenticatedBulkLength,
}

impl RespError {
    /// The reply to send before closing the connection: `-ERR Protocol error: …`.
    pub fn to_reply(&self) -> RespValue {
        RespValue::Error(format!("ERR {self}"))
    }
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Protocol error: ")?;
        match self {
            RespError::UnexpectedByte { expected, found } => {
                write!(f, "expected {expected}, got '{}'", found.escape_ascii())
            }
            RespError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            RespError::InvalidBulkLength => f.write_str("invalid bulk length"),
            RespError::BulkTooLarge { len, limit } => {
                write!(f, "invalid bulk length ({len} bytes exceeds the hard limit of {limit})")
            }
            RespError::InvalidInteger => f.write_str("invalid integer"),
            RespError::MissingCrlf => f.write_str("expected CRLF"),
            RespError::HeaderTooLong => f.write_str("too big length or type line"),
            RespError::InlineTooLong { limit } => {
                write!(f, "too big inline request (the limit is {limit} bytes)")
            }
            RespError::TooManyArgs { count, limit } => {
                write!(f, "too many arguments ({count}; the limit is {limit})")
            }
            RespError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            RespError::NestingTooDeep { limit } => {
                write!(f, "reply nested deeper than {limit} levels")
            }
            RespError::InvalidUtf8 => f.write_str("status line is not UTF-8"),
            RespError::UnauthenticatedMultibulkLength => {
                f.write_str("unauthenticated multibulk length")
            }
            RespError::UnauthenticatedBulkLength => f.write_str("unauthenticated bulk length"),
        }
    }
}

impl std::error::Error for RespError {}

/// The longest header line (`*N`, `$N`, `:N`) accepted, type byte included: a sign and 19
/// digits cover every `i64`, and a little slack keeps the error message about the number.
const HEADER_BYTES_MAX: usize = 24;

/// Parses a decimal integer strictly: an optional `-`, then decimal digits without leading
/// zeros (except `0` itself), fitting an `i64`; nothing else (no `+`, no spaces). This is what
/// Redis' `string2ll` accepts: RESP lengths and integers, and the integer arguments and values of
/// the string commands (`INCRBY`, `SETRANGE`, a value `INCR` reads…).
pub fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, magnitude) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    match magnitude {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut value: i64 = 0;
    for &byte in magnitude {
        if !byte.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(byte - b'0');
        value = value.checked_mul(10)?;
        value = if negative { value.checked_sub(digit)? } else { value.checked_add(digit)? };
    }
    Some(value)
}

/// Finds the end of a header line starting at `start` in `buf`: `Ok(Some(cr))` with the index of
/// its `\r`, `Ok(None)` when more bytes are needed, an error when it is too long or `\r` is not
/// followed by `\n`.
fn find_header_end(buf: &[u8], start: usize) -> Result<Option<usize>, RespError> {
    find_line_end(buf, start, HEADER_BYTES_MAX)
}

/// The longest simple-string or error line accepted in a reply, type byte included. Error
/// texts quote commands and name partitions, so they are far longer than a length header.
const STATUS_LINE_BYTES_MAX: usize = 64 * 1024;

/// Like [`find_header_end`], for a line of at most `max` bytes.
fn find_line_end(buf: &[u8], start: usize, max: usize) -> Result<Option<usize>, RespError> {
    let window_end = buf.len().min(start + max);
    match buf[start..window_end].iter().position(|&b| b == b'\r') {
        Some(offset) => {
            let cr = start + offset;
            match buf.get(cr + 1) {
                None => Ok(None),
                Some(b'\n') => Ok(Some(cr)),
                Some(_) => Err(RespError::MissingCrlf),
            }
        }
        None if window_end - start >= max => Err(RespError::HeaderTooLong),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_redis_string2ll_does() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"1a",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad.escape_ascii().to_string());
        }
    }

    #[test]
    fn default_limits_are_valid_and_inconsistent_ones_are_refused() {
        assert_eq!(RespLimits::default().validate(), Ok(()));
        let too_big_bulk = RespLimits { bulk_bytes_max: 8 << 20, ..RespLimits::default() };
        assert!(too_big_bulk.validate().is_err());
        let no_args = RespLimits { args_max: 0, ..RespLimits::default() };
        assert!(no_args.validate().is_err());
    }

    #[test]
    fn protocol_errors_reply_like_redis() {
        assert_eq!(
            RespError::InvalidMultibulkLength.to_reply(),
            RespValue::error("ERR Protocol error: invalid multibulk length")
        );
        assert_eq!(
            RespError::UnexpectedByte { expected: "'$'", found: b'x' }.to_reply(),
            RespValue::error("ERR Protocol error: expected '$', got 'x'")
        );
    }
}
