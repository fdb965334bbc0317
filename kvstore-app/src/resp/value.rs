//! [`RespValue`]: one reply value, and its encoder for RESP2 and RESP3.

/// The protocol version a connection speaks: RESP2 until the client switches with `HELLO 3`.
///
/// The two differ, for what this server sends, only in nulls (`$-1` and `*-1` in RESP2, `_` in
/// RESP3) and maps (a flat array of keys and values in RESP2, `%` in RESP3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RESP2, every client's default.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3` (redis-py 8 and later ask for it on connect).
    Resp3,
}

impl Protocol {
    /// The version number `HELLO` names.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One reply value: what the server sends back, and what the [`ReplyParser`] reads (RESP2).
///
/// Simple strings and errors are lines: a `\r` or `\n` inside them would end the line early and
/// desynchronise the client, so the encoder replaces each with a space (Redis does the same for
/// error texts). Bulk strings carry any bytes.
///
/// [`ReplyParser`]: super::ReplyParser
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RespValue {
    /// `+text\r\n`, e.g. `+OK`.
    SimpleString(String),
    /// `-text\r\n`; by convention the first word is the error code (`ERR`, `NOPROTO`, …).
    Error(String),
    /// `:n\r\n`.
    Integer(i64),
    /// `$len\r\nbytes\r\n`, or the null bulk string `$-1\r\n` for `None`.
    BulkString(Option<Vec<u8>>),
    /// `*count\r\n` followed by the elements, or the null array `*-1\r\n` for `None`.
    Array(Option<Vec<RespValue>>),
    /// Key, value pairs: `%count\r\n` then each key and value in RESP3; in RESP2 the flat array
    /// `*2count\r\n` of keys and values, as Redis sends `HELLO` and `CONFIG GET` replies.
    Map(Vec<(RespValue, RespValue)>),
}

impl RespValue {
    /// `+OK`.
    pub fn ok() -> Self {
        RespValue::SimpleString("OK".to_owned())
    }

    /// A simple string (`+text`).
    pub fn simple(text: impl Into<String>) -> Self {
        RespValue::SimpleString(text.into())
    }

    /// An error reply (`-text`); `text` should start with a code such as `ERR`.
    pub fn error(text: impl Into<String>) -> Self {
        RespValue::Error(text.into())
    }

    /// A non-null bulk string.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Self {
        RespValue::BulkString(Some(bytes.into()))
    }

    /// The null bulk string (`$-1`), Redis' "no such key".
    pub fn null_bulk() -> Self {
        RespValue::BulkString(None)
    }

    /// A non-null array.
    pub fn array(elements: Vec<RespValue>) -> Self {
        RespValue::Array(Some(elements))
    }

    /// The null array (`*-1`).
    pub fn null_array() -> Self {
        RespValue::Array(None)
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, RespValue::Error(_))
    }

    /// Appends the RESP2 encoding of this value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_in(Protocol::Resp2, out);
    }

    /// Appends the encoding of this value in `protocol` to `out`.
    pub fn encode_in(&self, protocol: Protocol, out: &mut Vec<u8>) {
        match self {
            RespValue::SimpleString(text) => encode_line(b'+', text, out),
            RespValue::Error(text) => encode_line(b'-', text, out),
            RespValue::Integer(n) => {
                out.push(b':');
                push_decimal(*n, out);
                out.extend_from_slice(b"\r\n");
            }
            RespValue::BulkString(None) | RespValue::Array(None) if protocol == Protocol::Resp3 => {
                out.extend_from_slice(b"_\r\n");
            }
            RespValue::BulkString(None) => out.extend_from_slice(b"$-1\r\n"),
            RespValue::BulkString(Some(bytes)) => {
                out.push(b'$');
                push_decimal(bytes.len() as i64, out);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            RespValue::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            RespValue::Array(Some(elements)) => {
                out.push(b'*');
                push_decimal(elements.len() as i64, out);
                out.extend_from_slice(b"\r\n");
                for element in elements {
                    element.encode_in(protocol, out);
                }
            }
            RespValue::Map(pairs) => {
                let (kind, count) = match protocol {
                    Protocol::Resp2 => (b'*', pairs.len() * 2),
                    Protocol::Resp3 => (b'%', pairs.len()),
                };
                out.push(kind);
                push_decimal(count as i64, out);
                out.extend_from_slice(b"\r\n");
                for (key, value) in pairs {
                    key.encode_in(protocol, out);
                    value.encode_in(protocol, out);
                }
            }
        }
    }

    /// The wire encoding of this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Encodes a request the way redis-cli and client libraries send it: an array of bulk strings.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.push(b'*');
    push_decimal(args.len() as i64, out);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        push_decimal(arg.len() as i64, out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn encode_line(prefix: u8, text: &str, out: &mut Vec<u8>) {
    out.push(prefix);
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// Writes `n` in decimal without allocating.
fn push_decimal(n: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut magnitude = n.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: RespValue) -> Vec<u8> {
        value.to_bytes()
    }

    #[test]
    fn each_type_encodes_as_redis_does() {
        assert_eq!(encoded(RespValue::ok()), b"+OK\r\n");
        assert_eq!(encoded(RespValue::error("ERR nope")), b"-ERR nope\r\n");
        assert_eq!(encoded(RespValue::Integer(0)), b":0\r\n");
        assert_eq!(encoded(RespValue::Integer(-42)), b":-42\r\n");
        assert_eq!(encoded(RespValue::Integer(i64::MIN)), b":-9223372036854775808\r\n");
        assert_eq!(encoded(RespValue::Integer(i64::MAX)), b":9223372036854775807\r\n");
        assert_eq!(encoded(RespValue::bulk("hé")), b"$3\r\nh\xc3\xa9\r\n");
        assert_eq!(encoded(RespValue::bulk("")), b"$0\r\n\r\n");
        assert_eq!(encoded(RespValue::null_bulk()), b"$-1\r\n");
        assert_eq!(encoded(RespValue::null_array()), b"*-1\r\n");
        assert_eq!(encoded(RespValue::array(vec![])), b"*0\r\n");
        assert_eq!(
            encoded(RespValue::array(vec![RespValue::bulk("a"), RespValue::Integer(1)])),
            b"*2\r\n$1\r\na\r\n:1\r\n"
        );
    }

    #[test]
    fn resp3_differs_in_nulls_and_maps_only() {
        let in3 = |value: RespValue| {
            let mut out = Vec::new();
            value.encode_in(Protocol::Resp3, &mut out);
            out
        };
        assert_eq!(in3(RespValue::null_bulk()), b"_\r\n");
        assert_eq!(in3(RespValue::null_array()), b"_\r\n");
        let map = RespValue::Map(vec![
            (RespValue::bulk("proto"), RespValue::Integer(3)),
            (RespValue::bulk("none"), RespValue::null_bulk()),
        ]);
        assert_eq!(in3(map.clone()), b"%2\r\n$5\r\nproto\r\n:3\r\n$4\r\nnone\r\n_\r\n");
        assert_eq!(encoded(map), b"*4\r\n$5\r\nproto\r\n:3\r\n$4\r\nnone\r\n$-1\r\n");
        // Everything else is the same in both.
        for value in [
            RespValue::ok(),
            RespValue::error("ERR x"),
            RespValue::Integer(-7),
            RespValue::bulk("v"),
            RespValue::array(vec![RespValue::bulk("a"), RespValue::array(vec![])]),
        ] {
            assert_eq!(in3(value.clone()), encoded(value));
        }
    }

    #[test]
    fn line_breaks_inside_simple_strings_and_errors_become_spaces() {
        assert_eq!(encoded(RespValue::error("ERR a\r\nb")), b"-ERR a  b\r\n");
        assert_eq!(encoded(RespValue::simple("x\ny")), b"+x y\r\n");
    }

    #[test]
    fn requests_encode_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_request(&["SET", "k", "v"], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    }
}
