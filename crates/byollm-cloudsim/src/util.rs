//! Small helpers: randomness, percent-encoding, XML escaping, timestamps.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use time::OffsetDateTime;
use time::macros::format_description;

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // SystemRandom reads the OS generator; a failure there leaves zeros, which
    // only makes an emulator's ids less unique.
    let _ = SystemRandom::new().fill(&mut buf);
    buf
}

/// `n` random characters from `alphabet`.
pub fn random_chars(n: usize, alphabet: &[u8]) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| char::from(alphabet[usize::from(b) % alphabet.len()]))
        .collect()
}

/// Upper-case letters and digits: the alphabet of IAM unique ids and access keys.
pub const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The alphabet of secret access keys.
pub const SECRET_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A random UUID (version 4) string, the shape of AWS request ids.
pub fn uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`). Invalid
/// escapes are kept literally, as most servers do.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let s = if plus_is_space {
        std::borrow::Cow::Owned(s.replace('+', " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// SigV4's URI encoding: every byte except `A-Z a-z 0-9 - _ . ~` as `%XX`
/// (upper-case hex), `/` included.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses `a=b&c=d` (form or query string) into decoded pairs, in order.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// ISO-8601 in UTC with seconds, the way STS and IAM write timestamps
/// (`2014-10-24T23:00:23Z`).
pub fn iso8601(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The random `"p"` padding real Bedrock adds to event payloads (aws-facts §5.4),
/// of a length that varies with `seed`.
pub fn padding(seed: usize) -> &'static str {
    const P: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = 4 + (seed * 7) % (P.len() - 4);
    &P[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_encoding() {
        assert_eq!(percent_decode("a%3Ab+c%2", true), "a:b c%2");
        assert_eq!(percent_decode("%", false), "%");
        assert_eq!(uri_encode("a:b/c d~"), "a%3Ab%2Fc%20d~");
        assert_eq!(
            parse_form("Action=GetRole&RoleName=x%2By&Empty="),
            vec![
                ("Action".to_owned(), "GetRole".to_owned()),
                ("RoleName".to_owned(), "x+y".to_owned()),
                ("Empty".to_owned(), String::new())
            ]
        );
        assert_eq!(iso8601(1_414_191_623), "2014-10-24T23:00:23Z");
        assert_eq!(uuid().len(), 36);
    }
}
