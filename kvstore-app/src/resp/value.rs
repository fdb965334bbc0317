//! [`RespValue`]: one RESP2 value, and its encoder.

/// One RESP2 value: what the server sends back, and what the [`ReplyParser`] reads.
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

    /// Appends the wire encoding of this value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            RespValue::SimpleString(text) => encode_line(b'+', text, out),
            RespValue::Error(text) => encode_line(b'-', text, out),
            RespValue::Integer(n) => {
                out.push(b':');
                push_decimal(*n, out);
                out.extend_from_slice(b"\r\n");
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
                    element.encode(out);
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
