//! `application/vnd.amazon.eventstream` framing (aws-facts §5.6): big-endian
//! prelude (total length, headers length, CRC32 of those 8 bytes), headers,
//! payload, CRC32 of everything before it. Only string headers (type 7) are
//! written, which is all Bedrock sends.

/// Encodes one message.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(255)];
        h.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        h.extend_from_slice(name);
        h.push(7);
        let value = &value.as_bytes()[..value.len().min(usize::from(u16::MAX))];
        h.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        h.extend_from_slice(value);
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&u32::try_from(h.len()).unwrap_or(u32::MAX).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An event message (`:message-type event`).
pub fn event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// A modeled exception message (`:message-type exception`, `:exception-type`
/// the lowerCamel union member, payload `{"message": …}`).
pub fn exception(exception_type: &str, message: &str) -> Vec<u8> {
    let payload = serde_json::json!({ "message": message }).to_string();
    encode(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload.as_bytes(),
    )
}

/// One decoded message: (headers, payload, bytes used).
pub type Decoded = (Vec<(String, String)>, Vec<u8>, usize);

/// Decodes one message from the front of `buf`, checking both CRCs. For tests
/// and tools.
pub fn decode(buf: &[u8]) -> Result<Decoded, String> {
    let short = || "truncated message".to_owned();
    let be32 = |at: usize| -> Result<u32, String> {
        let b = buf.get(at..at + 4).ok_or_else(short)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let total = usize::try_from(be32(0)?).map_err(|e| e.to_string())?;
    let hlen = usize::try_from(be32(4)?).map_err(|e| e.to_string())?;
    if total < 16 + hlen || buf.len() < total {
        return Err(short());
    }
    if crc32fast::hash(&buf[..8]) != be32(8)? {
        return Err("prelude CRC mismatch".into());
    }
    if crc32fast::hash(&buf[..total - 4]) != be32(total - 4)? {
        return Err("message CRC mismatch".into());
    }
    let section = &buf[12..12 + hlen];
    let mut headers = vec![];
    let mut i = 0;
    while i < section.len() {
        let n = usize::from(*section.get(i).ok_or_else(short)?);
        let name = section.get(i + 1..i + 1 + n).ok_or_else(short)?;
        i += 1 + n;
        let ty = *section.get(i).ok_or_else(short)?;
        if ty != 7 {
            return Err(format!("unsupported header type {ty}"));
        }
        let len = section.get(i + 1..i + 3).ok_or_else(short)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let value = section.get(i + 3..i + 3 + len).ok_or_else(short)?;
        i += 3 + len;
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok((headers, buf[12 + hlen..total - 4].to_vec(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = event("messageStart", br#"{"role":"assistant"}"#);
        let (h, p, used) = decode(&m).unwrap();
        assert_eq!(used, m.len());
        assert_eq!(h[0], (":event-type".to_owned(), "messageStart".to_owned()));
        assert_eq!(p, br#"{"role":"assistant"}"#);
        let mut bad = m.clone();
        bad[20] ^= 1;
        assert!(decode(&bad).is_err());
        for cut in 0..m.len() {
            assert!(decode(&m[..cut]).is_err());
        }
    }
}
