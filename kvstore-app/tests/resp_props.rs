//! Properties of the RESP parsers against a naive model: whatever the chunking, the same
//! requests come out; no input makes them panic; oversized arguments are never buffered.

use kvstore_app::resp::{
    encode_request, ReplyParser, RequestParser, RespError, RespLimits, RespValue,
};
use proptest::prelude::*;

/// Everything the parser yields for `input` fed in pieces cut at `cuts`: the requests' args and
/// oversized marks, then the error if one ended the stream.
type Outcome = (Vec<(Vec<Vec<u8>>, Option<usize>)>, Option<RespError>);

fn parse_in_pieces(limits: &RespLimits, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut parser = RequestParser::new(limits.clone()).unwrap();
    let mut requests = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort();
    for piece in points.windows(2) {
        parser.feed(&input[piece[0]..piece[1]]);
        loop {
            match parser.next_request() {
                Ok(Some(request)) => requests.push((
                    request.args().to_vec(),
                    request.oversized().map(|oversized| oversized.arg_index),
                )),
                Ok(None) => break,
                Err(error) => return (requests, Some(error)),
            }
        }
    }
    (requests, None)
}

fn small_limits() -> RespLimits {
    RespLimits {
        args_max: 8,
        bulk_bytes_max: 16,
        request_bytes_max: 40,
        inline_bytes_max: 64,
        protocol_bulk_bytes_max: 1000,
    }
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        prop::collection::vec(prop::sample::select(b"ab\r\n$*".to_vec()), 0..6),
    ]
}

fn request() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(arg(), 1..8)
}

/// The model: which argument (if any) the limits refuse first.
fn expected_oversized(limits: &RespLimits, args: &[Vec<u8>]) -> Option<usize> {
    let mut kept = 0;
    for (index, arg) in args.iter().enumerate() {
        let limit = limits.bulk_bytes_max.min(limits.request_bytes_max - kept);
        if arg.len() > limit {
            return Some(index);
        }
        kept += arg.len();
    }
    None
}

proptest! {
    #[test]
    fn pipelined_requests_parse_the_same_however_they_are_split(
        requests in prop::collection::vec(request(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let limits = small_limits();
        let mut input = Vec::new();
        for args in &requests {
            encode_request(args, &mut input);
        }
        let (parsed, error) = parse_in_pieces(&limits, &input, &cuts);
        prop_assert_eq!(error, None);
        prop_assert_eq!(parsed.len(), requests.len());
        for ((args, oversized), sent) in parsed.iter().zip(&requests) {
            let expected = expected_oversized(&limits, sent);
            prop_assert_eq!(*oversized, expected);
            for (index, (got, sent)) in args.iter().zip(sent).enumerate() {
                if expected.is_some_and(|first| index >= first) {
                    prop_assert!(got.is_empty());
                } else {
                    prop_assert_eq!(got, sent);
                }
            }
        }
    }

    #[test]
    fn any_input_gives_the_same_outcome_whatever_the_split_and_never_panics(
        input in prop::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                2 => prop::sample::select(b"*$\r\n0123456789- \"'".to_vec()),
            ],
            0..200,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let limits = small_limits();
        let whole = parse_in_pieces(&limits, &input, &[]);
        let pieces = parse_in_pieces(&limits, &input, &cuts);
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn a_garbage_suffix_never_breaks_the_requests_before_it(
        requests in prop::collection::vec(request(), 1..4),
        garbage in prop::collection::vec(any::<u8>(), 0..50),
    ) {
        let limits = small_limits();
        let mut input = Vec::new();
        for args in &requests {
            encode_request(args, &mut input);
        }
        input.extend_from_slice(&garbage);
        let (parsed, _) = parse_in_pieces(&limits, &input, &[]);
        prop_assert!(parsed.len() >= requests.len());
    }

    #[test]
    fn oversized_arguments_are_dropped_without_buffering(
        len in 17usize..1000,
        chunk in 1usize..64,
    ) {
        let limits = small_limits();
        let mut parser = RequestParser::new(limits).unwrap();
        let mut input = Vec::new();
        encode_request(&[b"SET".to_vec(), b"k".to_vec(), vec![b'v'; len]], &mut input);
        encode_request(&[b"PING".to_vec()], &mut input);
        let mut requests = Vec::new();
        for piece in input.chunks(chunk) {
            parser.feed(piece);
            while let Some(request) = parser.next_request().unwrap() {
                requests.push(request);
            }
            // What is held never exceeds one piece plus the largest header: the value's bytes
            // are dropped as they come.
            prop_assert!(parser.buffered_bytes() <= chunk + 24);
        }
        prop_assert_eq!(requests.len(), 2);
        prop_assert_eq!(requests[0].oversized().map(|o| o.arg_index), Some(2));
        prop_assert_eq!(requests[1].args(), &[b"PING".to_vec()][..]);
    }

    #[test]
    fn inline_words_round_trip_through_double_quotes(
        words in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..10), 1..6),
    ) {
        let mut line = Vec::new();
        for word in &words {
            line.push(b'"');
            for &byte in word {
                line.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
            }
            line.extend_from_slice(b"\" ");
        }
        line.extend_from_slice(b"\r\n");
        let mut limits = small_limits();
        limits.inline_bytes_max = 1024;
        limits.bulk_bytes_max = 40;
        limits.request_bytes_max = 1000;
        let (parsed, error) = parse_in_pieces(&limits, &line, &[]);
        prop_assert_eq!(error, None);
        prop_assert_eq!(&parsed[0].0, &words);
    }
}

fn value() -> impl Strategy<Value = RespValue> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(RespValue::SimpleString),
        "ERR [a-z ]{0,12}".prop_map(RespValue::Error),
        any::<i64>().prop_map(RespValue::Integer),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..20)).prop_map(RespValue::BulkString),
        Just(RespValue::null_array()),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(RespValue::array)
    })
}

proptest! {
    #[test]
    fn replies_round_trip_through_the_reply_parser(
        values in prop::collection::vec(value(), 1..5),
        chunk in 1usize..16,
    ) {
        let mut input = Vec::new();
        for value in &values {
            value.encode(&mut input);
        }
        let mut parser = ReplyParser::default();
        let mut parsed = Vec::new();
        for piece in input.chunks(chunk) {
            parser.feed(piece);
            while let Some(value) = parser.next_value().unwrap() {
                parsed.push(value);
            }
        }
        prop_assert_eq!(parsed, values);
    }

    #[test]
    fn the_reply_parser_never_panics(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut parser = ReplyParser::new(100, 4);
        parser.feed(&input);
        while let Ok(Some(_)) = parser.next_value() {}
    }
}
