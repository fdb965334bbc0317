//! [`ReplyParser`]: the client side of RESP, for the load generator and tests.

use super::{
    find_header_end, find_line_end, parse_i64, RespError, RespValue, STATUS_LINE_BYTES_MAX,
};

/// Turns a stream of bytes from a server into [`RespValue`]s.
///
/// Incremental like the [`RequestParser`](super::RequestParser): [`feed`](Self::feed) what
/// arrived, then call [`next_value`](Self::next_value) until it returns `Ok(None)`. Arrays are
/// built on an explicit stack, so nesting is bounded by `depth_max` rather than by the thread's
/// stack, and an announced array or bulk length allocates nothing until its contents arrive.
#[derive(Debug)]
pub struct ReplyParser {
    bulk_bytes_max: usize,
    depth_max: usize,
    buf: Vec<u8>,
    pos: usize,
    /// Arrays being filled, innermost last: (elements still expected, elements so far).
    stack: Vec<(usize, Vec<RespValue>)>,
    failed: Option<RespError>,
}

/// The initial capacity of an array, whatever length was announced.
const ELEMENTS_PREALLOCATED_MAX: usize = 16;

impl Default for ReplyParser {
    /// Bulk strings up to 512 MiB, nesting up to 64 levels.
    fn default() -> Self {
        ReplyParser::new(512 * 1024 * 1024, 64)
    }
}

impl ReplyParser {
    /// A parser refusing bulk strings longer than `bulk_bytes_max` and arrays nested deeper than
    /// `depth_max` (a flat array has depth 1).
    pub fn new(bulk_bytes_max: usize, depth_max: usize) -> Self {
        ReplyParser {
            bulk_bytes_max,
            depth_max,
            buf: Vec::new(),
            pos: 0,
            stack: Vec::new(),
            failed: None,
        }
    }

    /// Appends bytes received from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        super::request::make_room(&mut self.buf, &mut self.pos);
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete value, `Ok(None)` if more bytes are needed, or the protocol error that
    /// ends this connection (returned again on every later call).
    pub fn next_value(&mut self) -> Result<Option<RespValue>, RespError> {
        super::request::latched_step(self, |p| &mut p.failed, Self::parse, Self::free_input)
    }

    /// Frees the input after an error: the connection is over.
    fn free_input(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
        self.stack = Vec::new();
    }

    fn parse(&mut self) -> Result<Option<RespValue>, RespError> {
        loop {
            let Some(mut value) = self.parse_scalar_or_open_array()? else {
                return Ok(None);
            };
            // Attach the value to the innermost open array, closing every array it completes.
            loop {
                let Some((remaining, elements)) = self.stack.last_mut() else {
                    return Ok(Some(value));
                };
                elements.push(value);
                *remaining -= 1;
                if *remaining > 0 {
                    break;
                }
                let (_, elements) = self.stack.pop().unwrap_or_default();
                value = RespValue::Array(Some(elements));
            }
        }
    }

    /// Parses one header (and bulk body). Returns a complete value, or `None` both when more
    /// bytes are needed and when a non-empty array was opened — in the latter case `parse`
    /// loops on, as the stack grew and bytes may remain.
    fn parse_scalar_or_open_array(&mut self) -> Result<Option<RespValue>, RespError> {
        loop {
            let Some(&kind) = self.buf.get(self.pos) else {
                return Ok(None);
            };
            let end = match kind {
                b'+' | b'-' => find_line_end(&self.buf, self.pos, STATUS_LINE_BYTES_MAX)?,
                _ => find_header_end(&self.buf, self.pos)?,
            };
            let Some(cr) = end else {
                return Ok(None);
            };
            let line = &self.buf[self.pos + 1..cr];
            let after_line = cr + 2;
            let value = match kind {
                b'+' | b'-' => {
                    let text = std::str::from_utf8(line).map_err(|_| RespError::InvalidUtf8)?;
                    let text = text.to_owned();
                    if kind == b'+' {
                        RespValue::SimpleString(text)
                    } else {
                        RespValue::Error(text)
                    }
                }
                b':' => RespValue::Integer(parse_i64(line).ok_or(RespError::InvalidInteger)?),
                b'$' => {
                    let len = parse_i64(line).ok_or(RespError::InvalidBulkLength)?;
                    if len == -1 {
                        RespValue::BulkString(None)
                    } else if len < 0 {
                        return Err(RespError::InvalidBulkLength);
                    } else if len as u64 > self.bulk_bytes_max as u64 {
                        return Err(RespError::BulkTooLarge {
                            len: len as u64,
                            limit: self.bulk_bytes_max,
                        });
                    } else {
                        let len = len as usize;
                        if self.buf.len() - after_line < len + 2 {
                            return Ok(None);
                        }
                        let end = after_line + len;
                        if &self.buf[end..end + 2] != b"\r\n" {
                            return Err(RespError::MissingCrlf);
                        }
                        let bytes = self.buf[after_line..end].to_vec();
                        self.pos = end + 2;
                        return Ok(Some(RespValue::BulkString(Some(bytes))));
                    }
                }
                b'*' => {
                    let count = parse_i64(line).ok_or(RespError::InvalidMultibulkLength)?;
                    match count {
                        -1 => RespValue::Array(None),
                        0 => RespValue::Array(Some(Vec::new())),
                        n if n < 0 => return Err(RespError::InvalidMultibulkLength),
                        n => {
                            if self.stack.len() >= self.depth_max {
                                return Err(RespError::NestingTooDeep { limit: self.depth_max });
                            }
                            let n = usize::try_from(n)
                                .map_err(|_| RespError::InvalidMultibulkLength)?;
                            let elements = Vec::with_capacity(n.min(ELEMENTS_PREALLOCATED_MAX));
                            self.stack.push((n, elements));
                            self.pos = after_line;
                            continue;
                        }
                    }
                }
                other => {
                    return Err(RespError::UnexpectedByte {
                        expected: "a RESP type byte",
                        found: other,
                    })
                }
            };
            self.pos = after_line;
            return Ok(Some(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_replies_parse_back() {
        let value = RespValue::array(vec![
            RespValue::ok(),
            RespValue::array(vec![RespValue::Integer(-3), RespValue::null_bulk()]),
            RespValue::null_array(),
            RespValue::array(vec![]),
            RespValue::error("ERR x"),
            RespValue::bulk(&b"a\r\nb"[..]),
        ]);
        let mut parser = ReplyParser::default();
        parser.feed(&value.to_bytes());
        assert_eq!(parser.next_value(), Ok(Some(value)));
        assert_eq!(parser.next_value(), Ok(None));
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let mut parser = ReplyParser::new(1024, 3);
        parser.feed(b"*1\r\n*1\r\n*1\r\n:1\r\n");
        assert!(parser.next_value().unwrap().is_some());
        parser.feed(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n");
        assert_eq!(parser.next_value(), Err(RespError::NestingTooDeep { limit: 3 }));
    }

    #[test]
    fn malformed_replies_are_errors() {
        for (input, error) in [
            (
                &b"?\r\n"[..],
                RespError::UnexpectedByte { expected: "a RESP type byte", found: b'?' },
            ),
            (b":1.5\r\n", RespError::InvalidInteger),
            (b"$-2\r\n", RespError::InvalidBulkLength),
            (b"*-2\r\n", RespError::InvalidMultibulkLength),
            (b"$1\r\nab\r\n", RespError::MissingCrlf),
            (b"+\xff\r\n", RespError::InvalidUtf8),
            (b"$2000\r\n", RespError::BulkTooLarge { len: 2000, limit: 1024 }),
        ] {
            let mut parser = ReplyParser::new(1024, 8);
            parser.feed(input);
            assert_eq!(parser.next_value(), Err(error));
        }
    }

    #[test]
    fn a_huge_announced_array_allocates_only_what_arrives() {
        let mut parser = ReplyParser::default();
        parser.feed(b"*4000000000\r\n:1\r\n");
        assert_eq!(parser.next_value(), Ok(None));
        assert!(parser.stack[0].1.capacity() <= ELEMENTS_PREALLOCATED_MAX);
    }

    #[test]
    fn long_error_and_status_lines_are_replies_not_protocol_errors() {
        let text = format!("ERR unknown command '{}', with args beginning with: ", "x".repeat(200));
        let mut parser = ReplyParser::default();
        parser.feed(format!("-{text}\r\n+{}\r\n", "y".repeat(1000)).as_bytes());
        assert_eq!(parser.next_value(), Ok(Some(RespValue::Error(text))));
        assert_eq!(parser.next_value(), Ok(Some(RespValue::SimpleString("y".repeat(1000)))));
        // Still bounded: a line without an end is refused once over the limit.
        let mut parser = ReplyParser::default();
        parser.feed(&vec![b'+'; STATUS_LINE_BYTES_MAX + 1]);
        assert_eq!(parser.next_value(), Err(RespError::HeaderTooLong));
    }
}
