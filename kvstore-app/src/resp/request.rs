//! [`RequestParser`]: the server side of RESP, incremental and bounded.

use super::{
    find_header_end, parse_i64, InvalidLimits, RespError, RespLimits, UNAUTHENTICATED_ARGS_MAX,
    UNAUTHENTICATED_BULK_BYTES_MAX,
};

/// One client request: the command name and its arguments, as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    args: Vec<Vec<u8>>,
    oversized: Option<Oversized>,
    inline: bool,
}

/// Why a request was marked oversized: the first argument that was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oversized {
    /// Its position in the request (0 is the command name).
    pub arg_index: usize,
    /// Its length in bytes.
    pub len: usize,
    /// The limit it broke: [`RespLimits::bulk_bytes_max`] when the argument alone is too large,
    /// else what was left of [`RespLimits::request_bytes_max`].
    pub limit: usize,
}

impl Request {
    /// A well-formed request with these arguments, as if sent as an array of bulk strings.
    pub fn new(args: Vec<Vec<u8>>) -> Self {
        Request { args, oversized: None, inline: false }
    }

    /// The arguments; the first is the command name. Never empty for a parsed request. In an
    /// oversized request, the argument that broke the limit and all after it are empty.
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    /// The arguments, by value.
    pub fn into_args(self) -> Vec<Vec<u8>> {
        self.args
    }

    /// Set when an argument was too large to keep: its bytes were read and dropped, and the
    /// request should be answered with an error (the connection stays usable).
    pub fn oversized(&self) -> Option<Oversized> {
        self.oversized
    }

    /// Whether the request came as an inline command line rather than an array.
    pub fn is_inline(&self) -> bool {
        self.inline
    }
}

/// Turns a stream of bytes from one client connection into [`Request`]s.
///
/// Feed it whatever the socket gave ([`feed`](Self::feed)), then call
/// [`next_request`](Self::next_request) until it returns `Ok(None)`. Memory held is bounded by
/// the incomplete request (at most [`RespLimits::request_bytes_max`] of arguments plus the bytes
/// of one bulk string still arriving) and whatever was fed and not yet parsed; the bytes of an
/// oversized argument are dropped as they arrive, in `feed` itself when nothing else is
/// buffered.
#[derive(Debug)]
pub struct RequestParser {
    limits: RespLimits,
    buf: Vec<u8>,
    /// Bytes of `buf` before this index are consumed.
    pos: usize,
    state: State,
    failed: Option<RespError>,
    /// Whether the connection authenticated; until it does, requests are bounded by
    /// [`UNAUTHENTICATED_ARGS_MAX`] and [`UNAUTHENTICATED_BULK_BYTES_MAX`].
    authenticated: bool,
}

#[derive(Debug)]
enum State {
    /// Between requests.
    Idle,
    /// Inside an inline command; `scanned` bytes after `pos` hold no `\n`.
    Inline { scanned: usize },
    /// Inside an array request.
    Multibulk(Multibulk),
}

#[derive(Debug)]
struct Multibulk {
    /// Arguments announced.
    expected: usize,
    /// Arguments read so far (kept, or empty placeholders once oversized).
    args: Vec<Vec<u8>>,
    /// Bytes of the arguments kept.
    kept_bytes: usize,
    oversized: Option<Oversized>,
    bulk: Bulk,
}

#[derive(Debug)]
enum Bulk {
    /// Expecting `$len\r\n`.
    Header,
    /// Waiting for `len` bytes and `\r\n`, to keep them.
    Data { len: usize },
    /// Dropping `remaining` more bytes of an oversized argument, then `\r\n`.
    Discard { remaining: usize },
    /// Expecting the `\r\n` after a dropped argument.
    Trailer,
}

/// Below this many consumed bytes the buffer is not compacted (moving bytes costs more than it
/// saves).
const COMPACT_BYTES_MIN: usize = 4096;

/// Makes room in a parser's input `buf`, of which `pos` bytes are parsed, before new bytes are
/// appended: a fully parsed buffer is emptied (and `true` returned); a parsed prefix of at
/// least [`COMPACT_BYTES_MIN`] bytes and half the buffer is dropped. Both parsers feed this
/// way, so neither buffer grows with the connection's history.
pub(super) fn make_room(buf: &mut Vec<u8>, pos: &mut usize) -> bool {
    if *pos == buf.len() {
        buf.clear();
        *pos = 0;
        return true;
    }
    if *pos >= COMPACT_BYTES_MIN && *pos * 2 >= buf.len() {
        buf.drain(..*pos);
        *pos = 0;
    }
    false
}

/// One step of a parser whose first error ends its connection: a parser that failed returns
/// its error again; a new error is kept in `failed` and `free_input` drops the input.
pub(super) fn latched_step<P, T>(
    parser: &mut P,
    failed: fn(&mut P) -> &mut Option<RespError>,
    parse: fn(&mut P) -> Result<Option<T>, RespError>,
    free_input: fn(&mut P),
) -> Result<Option<T>, RespError> {
    if let Some(error) = failed(parser) {
        return Err(error.clone());
    }
    let result = parse(parser);
    if let Err(error) = &result {
        *failed(parser) = Some(error.clone());
        free_input(parser);
    }
    result
}

/// The initial capacity of an argument list, whatever count was announced: the list grows only
/// as arguments actually arrive.
const ARGS_PREALLOCATED_MAX: usize = 8;

impl Default for RequestParser {
    /// A parser with [`RespLimits::default`].
    fn default() -> Self {
        Self::with_valid_limits(RespLimits::default())
    }
}

impl RequestParser {
    /// A parser with these limits, once they are [validated](RespLimits::validate).
    pub fn new(limits: RespLimits) -> Result<Self, InvalidLimits> {
        limits.validate()?;
        Ok(Self::with_valid_limits(limits))
    }

    fn with_valid_limits(limits: RespLimits) -> Self {
        RequestParser {
            limits,
            buf: Vec::new(),
            pos: 0,
            state: State::Idle,
            failed: None,
            authenticated: true,
        }
    }

    /// Tells the parser whether its connection has authenticated (a new parser assumes it
    /// has). Before it has, an array of more than [`UNAUTHENTICATED_ARGS_MAX`] elements or a
    /// bulk string longer than [`UNAUTHENTICATED_BULK_BYTES_MAX`] is a protocol error, as in
    /// Redis. It applies to headers parsed from now on: call it before asking for the request
    /// after the one that authenticated.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.authenticated = authenticated;
    }

    /// The limits in force.
    pub fn limits(&self) -> &RespLimits {
        &self.limits
    }

    /// Bytes fed and held, not yet returned as part of a request (a partial request included).
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether the parser is between requests with nothing buffered (a clean place for the peer
    /// to hang up).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && self.buffered_bytes() == 0
    }

    /// Appends bytes received from the client. After a protocol error the bytes are ignored.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if make_room(&mut self.buf, &mut self.pos) {
            // Drop an oversized argument's bytes straight from the input: they never get
            // buffered, however large the argument.
            if let State::Multibulk(Multibulk { bulk: Bulk::Discard { remaining }, .. }) =
                &mut self.state
            {
                let dropped = (*remaining).min(bytes.len());
                *remaining -= dropped;
                bytes = &bytes[dropped..];
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete request, `Ok(None)` if more bytes are needed, or the protocol error
    /// that ends this connection (returned again on every later call).
    pub fn next_request(&mut self) -> Result<Option<Request>, RespError> {
        latched_step(self, |p| &mut p.failed, Self::parse, Self::free_input)
    }

    /// Frees the input after an error: the connection is over.
    fn free_input(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
        self.state = State::Idle;
    }

    fn parse(&mut self) -> Result<Option<Request>, RespError> {
        loop {
            let step = match &mut self.state {
                State::Idle => self.start_request()?,
                State::Inline { .. } => self.parse_inline()?,
                State::Multibulk(_) => self.parse_multibulk()?,
            };
            match step {
                Step::NeedMore => return Ok(None),
                Step::Continue => {}
                Step::Done(request) => return Ok(Some(request)),
            }
        }
    }

    /// Decides, from the first byte, which kind of request follows.
    fn start_request(&mut self) -> Result<Step, RespError> {
        let Some(&first) = self.buf.get(self.pos) else {
            return Ok(Step::NeedMore);
        };
        if first != b'*' {
            self.state = State::Inline { scanned: 0 };
            return Ok(Step::Continue);
        }
        let Some(cr) = find_header_end(&self.buf, self.pos)? else {
            return Ok(Step::NeedMore);
        };
        let count =
            parse_i64(&self.buf[self.pos + 1..cr]).ok_or(RespError::InvalidMultibulkLength)?;
        self.pos = cr + 2;
        // `*0` and the null array `*-1` carry no command; Redis skips them silently.
        if count <= 0 {
            return if count >= -1 {
                Ok(Step::Continue)
            } else {
                Err(RespError::InvalidMultibulkLength)
            };
        }
        if !self.authenticated && count as u64 > UNAUTHENTICATED_ARGS_MAX as u64 {
            return Err(RespError::UnauthenticatedMultibulkLength);
        }
        if count as u64 > self.limits.args_max as u64 {
            return Err(RespError::TooManyArgs {
                count: count as u64,
                limit: self.limits.args_max,
            });
        }
        let expected = count as usize;
        self.state = State::Multibulk(Multibulk {
            expected,
            args: Vec::with_capacity(expected.min(ARGS_PREALLOCATED_MAX)),
            kept_bytes: 0,
            oversized: None,
            bulk: Bulk::Header,
        });
        Ok(Step::Continue)
    }

    fn parse_inline(&mut self) -> Result<Step, RespError> {
        let State::Inline { scanned } = &mut self.state else {
            unreachable!("parse_inline outside an inline request");
        };
        let from = self.pos + *scanned;
        let Some(offset) = self.buf[from..].iter().position(|&b| b == b'\n') else {
            *scanned = self.buf.len() - self.pos;
            if *scanned > self.limits.inline_bytes_max + 1 {
                return Err(RespError::InlineTooLong { limit: self.limits.inline_bytes_max });
            }
            return Ok(Step::NeedMore);
        };
        let newline = from + offset;
        let mut line = &self.buf[self.pos..newline];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.len() > self.limits.inline_bytes_max {
            return Err(RespError::InlineTooLong { limit: self.limits.inline_bytes_max });
        }
        let words = split_inline(line, self.limits.args_max)?;
        self.pos = newline + 1;
        self.state = State::Idle;
        if words.is_empty() {
            // An empty line (a bare Enter in telnet) is no request.
            return Ok(Step::Continue);
        }
        Ok(Step::Done(self.limit_inline_words(words)))
    }

    /// Applies the argument size limits to an inline request, as they apply to arrays.
    fn limit_inline_words(&self, mut args: Vec<Vec<u8>>) -> Request {
        let mut kept_bytes = 0usize;
        let mut oversized = None;
        for (arg_index, arg) in args.iter_mut().enumerate() {
            if oversized.is_none() {
                let limit = self.arg_limit(kept_bytes);
                if arg.len() > limit {
                    oversized = Some(Oversized { arg_index, len: arg.len(), limit });
                } else {
                    kept_bytes += arg.len();
                    continue;
                }
            }
            *arg = Vec::new();
        }
        Request { args, oversized, inline: true }
    }

    /// The most bytes the next argument may have and still be kept.
    fn arg_limit(&self, kept_bytes: usize) -> usize {
        self.limits.bulk_bytes_max.min(self.limits.request_bytes_max.saturating_sub(kept_bytes))
    }

    fn parse_multibulk(&mut self) -> Result<Step, RespError> {
        let limit_for_next = {
            let State::Multibulk(request) = &self.state else {
                unreachable!("parse_multibulk outside an array request");
            };
            self.arg_limit(request.kept_bytes)
        };
        let protocol_bulk_bytes_max = self.limits.protocol_bulk_bytes_max;
        let authenticated = self.authenticated;
        let State::Multibulk(request) = &mut self.state else {
            unreachable!("parse_multibulk outside an array request");
        };
        match request.bulk {
            Bulk::Header => {
                let Some(&first) = self.buf.get(self.pos) else {
                    return Ok(Step::NeedMore);
                };
                if first != b'$' {
                    return Err(RespError::UnexpectedByte { expected: "'$'", found: first });
                }
                let Some(cr) = find_header_end(&self.buf, self.pos)? else {
                    return Ok(Step::NeedMore);
                };
                let len = parse_i64(&self.buf[self.pos + 1..cr])
                    .filter(|&len| len >= 0)
                    .ok_or(RespError::InvalidBulkLength)? as u64;
                if !authenticated && len > UNAUTHENTICATED_BULK_BYTES_MAX as u64 {
                    return Err(RespError::UnauthenticatedBulkLength);
                }
                if len > protocol_bulk_bytes_max as u64 {
                    return Err(RespError::BulkTooLarge { len, limit: protocol_bulk_bytes_max });
                }
                let len = len as usize;
                self.pos = cr + 2;
                if request.oversized.is_none() && len > limit_for_next {
                    request.oversized = Some(Oversized {
                        arg_index: request.args.len(),
                        len,
                        limit: limit_for_next,
                    });
                }
                request.bulk = if request.oversized.is_some() {
                    Bulk::Discard { remaining: len }
                } else {
                    Bulk::Data { len }
                };
                Ok(Step::Continue)
            }
            Bulk::Data { len } => {
                if self.buf.len() - self.pos < len + 2 {
                    return Ok(Step::NeedMore);
                }
                let end = self.pos + len;
                if &self.buf[end..end + 2] != b"\r\n" {
                    return Err(RespError::MissingCrlf);
                }
                request.args.push(self.buf[self.pos..end].to_vec());
                request.kept_bytes += len;
                self.pos = end + 2;
                Ok(self.finish_argument())
            }
            Bulk::Discard { ref mut remaining } => {
                let dropped = (*remaining).min(self.buf.len() - self.pos);
                self.pos += dropped;
                *remaining -= dropped;
                if *remaining > 0 {
                    return Ok(Step::NeedMore);
                }
                request.bulk = Bulk::Trailer;
                Ok(Step::Continue)
            }
            Bulk::Trailer => {
                if self.buf.len() - self.pos < 2 {
                    return Ok(Step::NeedMore);
                }
                if &self.buf[self.pos..self.pos + 2] != b"\r\n" {
                    return Err(RespError::MissingCrlf);
                }
                self.pos += 2;
                request.args.push(Vec::new());
                Ok(self.finish_argument())
            }
        }
    }

    /// After an argument: the request is done, or the next argument's header follows.
    fn finish_argument(&mut self) -> Step {
        let State::Multibulk(request) = &mut self.state else {
            unreachable!("finish_argument outside an array request");
        };
        if request.args.len() < request.expected {
            request.bulk = Bulk::Header;
            return Step::Continue;
        }
        let State::Multibulk(request) = std::mem::replace(&mut self.state, State::Idle) else {
            unreachable!("checked above");
        };
        Step::Done(Request { args: request.args, oversized: request.oversized, inline: false })
    }
}

enum Step {
    NeedMore,
    Continue,
    Done(Request),
}

/// Splits an inline command line into words the way Redis' `sdssplitargs` does: words are
/// separated by whitespace; `"…"` quotes allow spaces and the escapes `\n \r \t \b \a \\ \"` and
/// `\xHH`; `'…'` quotes allow spaces and `\'`. A closing quote must be followed by whitespace or
/// the end of the line.
fn split_inline(line: &[u8], args_max: usize) -> Result<Vec<Vec<u8>>, RespError> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(words);
        }
        if words.len() == args_max {
            return Err(RespError::TooManyArgs { count: words.len() as u64 + 1, limit: args_max });
        }
        let mut word = Vec::new();
        i = read_word(line, i, &mut word)?;
        words.push(word);
    }
}

/// Reads one word starting at `i` into `word`; returns the index after it.
fn read_word(line: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, RespError> {
    enum Quote {
        None,
        Double,
        Single,
    }
    let mut quote = Quote::None;
    loop {
        match quote {
            Quote::None => match line.get(i) {
                None => return Ok(i),
                Some(&c) if is_space(c) => return Ok(i),
                Some(b'"') => quote = Quote::Double,
                Some(b'\'') => quote = Quote::Single,
                Some(&c) => word.push(c),
            },
            Quote::Double => match line.get(i..) {
                None | Some([]) => return Err(RespError::UnbalancedQuotes),
                Some([b'\\', b'x', hi, lo, ..]) if hex(*hi).is_some() && hex(*lo).is_some() => {
                    word.push(hex(*hi).unwrap_or(0) * 16 + hex(*lo).unwrap_or(0));
                    i += 3;
                }
                Some([b'\\', escaped, ..]) => {
                    word.push(match escaped {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => *other,
                    });
                    i += 1;
                }
                Some([b'"', rest @ ..]) => {
                    return match rest.first() {
                        Some(&c) if !is_space(c) => Err(RespError::UnbalancedQuotes),
                        _ => Ok(i + 1),
                    };
                }
                Some([c, ..]) => word.push(*c),
            },
            Quote::Single => match line.get(i..) {
                None | Some([]) => return Err(RespError::UnbalancedQuotes),
                Some([b'\\', b'\'', ..]) => {
                    word.push(b'\'');
                    i += 1;
                }
                Some([b'\'', rest @ ..]) => {
                    return match rest.first() {
                        Some(&c) if !is_space(c) => Err(RespError::UnbalancedQuotes),
                        _ => Ok(i + 1),
                    };
                }
                Some([c, ..]) => word.push(*c),
            },
        }
        i += 1;
    }
}

/// C's `isspace` in the "C" locale, which `sdssplitargs` uses.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::RespValue;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Request>, RespError> {
        let mut parser = RequestParser::default();
        parser.feed(input);
        let mut requests = Vec::new();
        while let Some(request) = parser.next_request()? {
            requests.push(request);
        }
        Ok(requests)
    }

    fn first_error(input: &[u8]) -> RespError {
        parse_all(input).expect_err("input should be refused")
    }

    #[test]
    fn unauthenticated_connections_get_redis_pre_auth_bounds() {
        let unauthenticated = |input: &[u8]| {
            let mut parser = RequestParser::default();
            parser.set_authenticated(false);
            parser.feed(input);
            parser.next_request()
        };
        let eleven = format!("*11\r\n{}", "$1\r\na\r\n".repeat(11));
        assert_eq!(
            unauthenticated(eleven.as_bytes()),
            Err(RespError::UnauthenticatedMultibulkLength)
        );
        let big = format!("*2\r\n$4\r\nAUTH\r\n$16385\r\n{}\r\n", "x".repeat(16385));
        let error = unauthenticated(big.as_bytes()).unwrap_err();
        assert_eq!(error, RespError::UnauthenticatedBulkLength);
        assert_eq!(
            error.to_reply(),
            RespValue::error("ERR Protocol error: unauthenticated bulk length")
        );
        // At the bounds, and once authenticated, the same requests parse.
        let ten = format!("*10\r\n{}", "$1\r\na\r\n".repeat(10));
        assert_eq!(unauthenticated(ten.as_bytes()).unwrap().unwrap().args().len(), 10);
        let at_bound = format!("*2\r\n$4\r\nAUTH\r\n$16384\r\n{}\r\n", "x".repeat(16384));
        assert!(unauthenticated(at_bound.as_bytes()).unwrap().is_some());
        assert_eq!(parse_all(eleven.as_bytes()).unwrap().len(), 1);
        assert_eq!(parse_all(big.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn inline_words_split_like_sdssplitargs() {
        let line = br#"  SET  "a b\x41\n" 'it\'s' plain"#;
        let words = split_inline(line, 10).unwrap();
        assert_eq!(
            words,
            vec![b"SET".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec(), b"plain".to_vec()]
        );
        assert_eq!(split_inline(b"\"\"", 10).unwrap(), vec![Vec::<u8>::new()]);
        assert_eq!(split_inline(b"a\"b c\"", 10).unwrap(), vec![b"ab c".to_vec()]);
        assert_eq!(split_inline(b"\"\\xZZ\"", 10).unwrap(), vec![b"xZZ".to_vec()]);
    }

    #[test]
    fn inline_quotes_must_balance_and_close_before_a_space() {
        for bad in [&b"GET \"k"[..], b"GET 'k", b"GET \"k\"x", b"GET 'k'x", b"GET \"k\\"] {
            assert_eq!(split_inline(bad, 10), Err(RespError::UnbalancedQuotes));
        }
    }

    #[test]
    fn inline_commands_end_at_lf_with_or_without_cr() {
        let requests = parse_all(b"PING\r\nGET k\n\r\n\nECHO \"a b\"\r\n").unwrap();
        let got: Vec<_> = requests.iter().map(|r| r.args().to_vec()).collect();
        assert_eq!(got, vec![args(&["PING"]), args(&["GET", "k"]), args(&["ECHO", "a b"])]);
        assert!(requests.iter().all(Request::is_inline));
    }

    #[test]
    fn empty_and_null_arrays_are_skipped_like_redis() {
        let requests = parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].args(), args(&["PING"]));
        assert!(!requests[0].is_inline());
    }

    #[test]
    fn malformed_arrays_are_protocol_errors() {
        assert_eq!(first_error(b"*-2\r\n"), RespError::InvalidMultibulkLength);
        assert_eq!(first_error(b"*x\r\n"), RespError::InvalidMultibulkLength);
        assert_eq!(first_error(b"*\r\n"), RespError::InvalidMultibulkLength);
        assert_eq!(first_error(b"*01\r\n"), RespError::InvalidMultibulkLength);
        assert_eq!(first_error(b"*1\rX"), RespError::MissingCrlf);
        assert_eq!(
            first_error(b"*1\r\n:1\r\n"),
            RespError::UnexpectedByte { expected: "'$'", found: b':' }
        );
        assert_eq!(first_error(b"*1\r\n$-1\r\n"), RespError::InvalidBulkLength);
        assert_eq!(first_error(b"*1\r\n$1x\r\n"), RespError::InvalidBulkLength);
        assert_eq!(first_error(b"*1\r\n$1\r\nab\r\n"), RespError::MissingCrlf);
        assert_eq!(first_error(b"*1111111111111111111111111111"), RespError::HeaderTooLong);
        assert_eq!(first_error(b"*1025\r\n"), RespError::TooManyArgs { count: 1025, limit: 1024 });
        assert_eq!(
            first_error(b"*1\r\n$536870913\r\n"),
            RespError::BulkTooLarge { len: 536_870_913, limit: 512 << 20 }
        );
    }

    #[test]
    fn an_error_is_sticky_and_frees_the_buffer() {
        let mut parser = RequestParser::default();
        parser.feed(b"*1\r\n$4\r\nPING\r\n*-5\r\n*1\r\n$4\r\nPING\r\n");
        assert!(parser.next_request().unwrap().is_some());
        assert_eq!(parser.next_request(), Err(RespError::InvalidMultibulkLength));
        parser.feed(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(parser.next_request(), Err(RespError::InvalidMultibulkLength));
        assert_eq!(parser.buffered_bytes(), 0);
    }

    #[test]
    fn an_overlong_inline_line_is_refused_before_its_end_arrives() {
        let mut parser = RequestParser::default();
        parser.feed(&vec![b'a'; 64 * 1024]);
        assert_eq!(parser.next_request(), Ok(None));
        parser.feed(b"bb");
        assert_eq!(parser.next_request(), Err(RespError::InlineTooLong { limit: 64 * 1024 }));
    }

    #[test]
    fn an_inline_line_of_exactly_the_limit_is_accepted() {
        let limits = RespLimits { inline_bytes_max: 10, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser.feed(b"GET 123456\r\n");
        assert_eq!(parser.next_request().unwrap().unwrap().args(), args(&["GET", "123456"]));
        parser.feed(b"GET 1234567\r\n");
        assert_eq!(parser.next_request(), Err(RespError::InlineTooLong { limit: 10 }));
    }

    #[test]
    fn too_many_inline_words_is_a_protocol_error() {
        let limits = RespLimits { args_max: 3, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser.feed(b"a b c\r\na b c d\r\n");
        assert_eq!(parser.next_request().unwrap().unwrap().args().len(), 3);
        assert_eq!(parser.next_request(), Err(RespError::TooManyArgs { count: 4, limit: 3 }));
    }

    #[test]
    fn an_oversized_argument_is_dropped_as_it_arrives_and_the_connection_survives() {
        let limits = RespLimits { bulk_bytes_max: 16, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n");
        assert_eq!(parser.next_request(), Ok(None));
        for _ in 0..10 {
            parser.feed(&[b'v'; 100]);
            assert_eq!(parser.next_request(), Ok(None));
            assert_eq!(parser.buffered_bytes(), 0, "dropped bytes must not be buffered");
        }
        parser.feed(b"\r\n*1\r\n$4\r\nPING\r\n");
        let request = parser.next_request().unwrap().unwrap();
        assert_eq!(request.oversized(), Some(Oversized { arg_index: 2, len: 1000, limit: 16 }));
        assert_eq!(request.args(), args(&["SET", "k", ""]));
        assert_eq!(parser.next_request().unwrap().unwrap().args(), args(&["PING"]));
    }

    #[test]
    fn feed_drops_oversized_bytes_without_buffering_them() {
        let limits = RespLimits { bulk_bytes_max: 16, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser.feed(b"*2\r\n$3\r\nSET\r\n$100000\r\n");
        assert_eq!(parser.next_request(), Ok(None));
        parser.feed(&vec![0u8; 99_990]);
        assert_eq!(parser.buffered_bytes(), 0);
        parser.feed(b"0123456789\r\n");
        let request = parser.next_request().unwrap().unwrap();
        assert_eq!(request.oversized().map(|o| o.arg_index), Some(1));
    }

    #[test]
    fn the_oversized_argument_must_still_end_with_crlf() {
        let limits = RespLimits { bulk_bytes_max: 2, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser.feed(b"*1\r\n$3\r\nabcXY");
        assert_eq!(parser.next_request(), Err(RespError::MissingCrlf));
    }

    #[test]
    fn the_request_byte_budget_marks_later_arguments_oversized() {
        let limits =
            RespLimits { bulk_bytes_max: 8, request_bytes_max: 10, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser.feed(b"*4\r\n$3\r\nCAS\r\n$1\r\nk\r\n$8\r\n12345678\r\n$1\r\nx\r\n");
        let request = parser.next_request().unwrap().unwrap();
        assert_eq!(request.oversized(), Some(Oversized { arg_index: 2, len: 8, limit: 6 }));
        assert_eq!(request.args(), args(&["CAS", "k", "", ""]));
    }

    #[test]
    fn oversized_inline_words_are_marked_too() {
        let limits = RespLimits { bulk_bytes_max: 4, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser.feed(b"SET k 12345 x\r\n");
        let request = parser.next_request().unwrap().unwrap();
        assert_eq!(request.oversized(), Some(Oversized { arg_index: 2, len: 5, limit: 4 }));
        assert_eq!(request.args(), args(&["SET", "k", "", ""]));
    }

    #[test]
    fn a_huge_announced_count_or_length_allocates_nothing_up_front() {
        let mut parser = RequestParser::default();
        parser.feed(b"*1024\r\n$536870912\r\nabc");
        assert_eq!(parser.next_request(), Ok(None));
        let State::Multibulk(request) = &parser.state else { panic!("not in an array") };
        assert!(request.args.capacity() <= ARGS_PREALLOCATED_MAX);
        assert!(parser.buf.capacity() < 1024);
    }

    #[test]
    fn a_partially_consumed_buffer_is_compacted() {
        let mut parser = RequestParser::default();
        let mut input = Vec::new();
        for _ in 0..1000 {
            input.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        }
        parser.feed(&input);
        for _ in 0..999 {
            parser.next_request().unwrap().unwrap();
        }
        parser.feed(b"*1\r\n$4\r\nPING\r\n");
        assert!(parser.pos < COMPACT_BYTES_MIN);
        assert_eq!(parser.buffered_bytes(), 28);
        assert!(parser.next_request().unwrap().is_some());
        assert!(parser.next_request().unwrap().is_some());
        assert!(parser.is_idle());
    }
}
