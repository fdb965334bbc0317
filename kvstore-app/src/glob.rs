//! Redis' glob patterns (its `stringmatchlen`): `*` (any run), `?` (any byte), `[abc]`,
//! `[^abc]`, `[a-z]` and `\` escapes. `KEYS` and `SCAN … MATCH` match case-sensitively, as
//! Redis does; `CONFIG GET` case-insensitively.
//!
//! The matcher is greedy with one backtrack point (the last `*`), so hostile patterns
//! (`*a*a*a…b`) take time linear in pattern × text, not exponential as naive recursion would:
//! a `KEYS` pattern comes from any client and is matched against every key.

/// Whether `text` matches `pattern`, byte for byte.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    matches(pattern, text, false)
}

/// Whether `text` matches `pattern`, ignoring ASCII case.
pub fn glob_match_nocase(pattern: &[u8], text: &[u8]) -> bool {
    matches(pattern, text, true)
}

fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                backtrack = Some((p, t));
                p += 1;
                continue;
            }
            if let Some(next) = match_one(pattern, p, text[t], nocase) {
                p = next;
                t += 1;
                continue;
            }
        }
        match backtrack {
            Some((star, start)) => {
                backtrack = Some((star, start + 1));
                p = star + 1;
                t = start + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

/// Matches one text byte against the pattern element at `p` (not `*`); returns the index after
/// the element on a match.
fn match_one(pattern: &[u8], p: usize, byte: u8, nocase: bool) -> Option<usize> {
    let same = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => same(pattern[p + 1], byte).then_some(p + 2),
        b'[' => {
            let mut i = p + 1;
            let negated = pattern.get(i) == Some(&b'^');
            if negated {
                i += 1;
            }
            let mut matched = false;
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    matched |= same(pattern[i + 1], byte);
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']'
                {
                    let (low, high) =
                        (pattern[i].min(pattern[i + 2]), pattern[i].max(pattern[i + 2]));
                    let in_range = |b: u8| (low..=high).contains(&b);
                    matched |= if nocase {
                        in_range(byte.to_ascii_lowercase()) || in_range(byte.to_ascii_uppercase())
                    } else {
                        in_range(byte)
                    };
                    i += 3;
                } else {
                    matched |= same(pattern[i], byte);
                    i += 1;
                }
            }
            // An unclosed class ends with the pattern, as in Redis' stringmatchlen.
            (matched != negated).then_some((i + 1).min(pattern.len()))
        }
        literal => same(literal, byte).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_patterns_are_case_sensitive_and_config_patterns_are_not() {
        let yes = |pattern: &str, text: &str| glob_match(pattern.as_bytes(), text.as_bytes());
        assert!(yes("user:*", "user:1"));
        assert!(!yes("user:*", "USER:1"));
        assert!(yes("h?llo", "hallo"));
        assert!(yes("h[ae]llo", "hello"));
        assert!(!yes("h[^e]llo", "hello"));
        assert!(yes("h[a-b]llo", "hbllo"));
        assert!(!yes("h[a-b]llo", "hBllo"));
        assert!(yes("h\\*", "h*"));
        assert!(!yes("h\\*", "hx"));
        assert!(glob_match_nocase(b"h[a-b]llo", b"hBllo"));
        assert!(glob_match_nocase(b"SAVE", b"save"));
    }
}
