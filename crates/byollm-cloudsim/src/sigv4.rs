//! SigV4 verification of `Authorization: AWS4-HMAC-SHA256 …` requests
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).
//!
//! Rules kept here: the canonical URI is the wire path with each segment
//! URI-encoded *again* (every service but S3, aws-facts §5.1); the canonical
//! query is decoded, re-encoded strictly and sorted; headers are lower-cased,
//! trimmed, inner whitespace collapsed and sorted; `host` must be signed; the
//! payload hash is `x-amz-content-sha256` when sent (and must then match the
//! body) else SHA-256 of the body; the request time may be at most 15 minutes
//! away from the emulator's clock. Presigned query-string auth is not supported.

use std::fmt;

use aws_lc_rs::{digest, hmac};
use axum::http::HeaderMap;

use crate::util::{percent_decode, uri_encode};

/// How far a request's `X-Amz-Date` may be from now (AWS: 15 minutes).
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigInfo {
    /// The access key id.
    pub access_key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service (signing name).
    pub service: String,
    /// Signed header names, lower-case, as listed.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// No `Authorization` header.
    Missing,
    /// The header could not be parsed.
    Malformed(String),
    /// The request time is too far from now.
    Expired(String),
    /// The signature does not match.
    Mismatch,
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigError::Missing => f.write_str("missing authentication token"),
            SigError::Malformed(m) | SigError::Expired(m) => f.write_str(m),
            SigError::Mismatch => f.write_str(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details.",
            ),
        }
    }
}

/// Parses the `Authorization` header; `Ok(None)` when there is none.
pub fn parse_authorization(headers: &HeaderMap) -> Result<Option<SigInfo>, SigError> {
    let Some(value) = headers.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| SigError::Malformed("Authorization header is not ASCII".to_owned()))?;
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(SigError::Malformed(
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm".to_owned(),
        ));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(SigError::Malformed(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
             parameters"
                .to_owned(),
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = scope.as_slice() else {
        return Err(SigError::Malformed(format!(
            "Credential should be scoped to a valid region, not '{credential}'"
        )));
    };
    if *terminator != "aws4_request" {
        return Err(SigError::Malformed(
            "Credential should be scoped with a valid terminator: 'aws4_request'".to_owned(),
        ));
    }
    Ok(Some(SigInfo {
        access_key_id: (*key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed.split(';').map(str::to_lowercase).collect(),
        signature: signature.to_owned(),
    }))
}

/// The request parts a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path exactly as on the wire (percent-encoded once).
    pub raw_path: &'a str,
    /// The raw query string (without `?`), possibly empty.
    pub raw_query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// Verifies `info` over `req` with `secret`, at `now` (Unix seconds).
pub fn verify(req: Signed<'_>, info: &SigInfo, secret: &str, now: i64) -> Result<(), SigError> {
    let amz_date = header_str(req.headers, "x-amz-date")
        .ok_or_else(|| SigError::Malformed("Missing X-Amz-Date header".to_owned()))?;
    let request_time = parse_amz_date(amz_date).ok_or_else(|| {
        SigError::Malformed(format!("Invalid X-Amz-Date header value '{amz_date}'"))
    })?;
    if !amz_date.starts_with(&info.date) {
        return Err(SigError::Malformed(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{}', from '{amz_date}'.",
            info.date,
            &amz_date[..8.min(amz_date.len())]
        )));
    }
    if (request_time - now).abs() > MAX_SKEW_SECS {
        return Err(SigError::Expired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now - MAX_SKEW_SECS),
            format_amz_date(now)
        )));
    }
    if !info.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    let body_hash = hex::encode(digest::digest(&digest::SHA256, req.body));
    let payload_hash = match header_str(req.headers, "x-amz-content-sha256") {
        Some("UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_owned(),
        Some(h) if h.eq_ignore_ascii_case(&body_hash) => body_hash,
        Some(_) => {
            return Err(SigError::Malformed(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_owned(),
            ));
        }
        None => body_hash,
    };
    let canonical = canonical_request(req, &info.signed_headers, &payload_hash);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        info.date, info.region, info.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    );
    let key = signing_key(secret, &info.date, &info.region, &info.service);
    let expected = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        string_to_sign.as_bytes(),
    );
    let given = hex::decode(&info.signature).map_err(|_| SigError::Mismatch)?;
    let same = aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), &given).is_ok();
    if same {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

/// The SigV4 signing key.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut k = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        k = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k), part.as_bytes())
            .as_ref()
            .to_vec();
    }
    k
}

/// The canonical request.
pub fn canonical_request(req: Signed<'_>, signed_headers: &[String], payload_hash: &str) -> String {
    let uri = canonical_uri(req.raw_path);
    let query = canonical_query(req.raw_query);
    let mut sorted: Vec<&String> = signed_headers.iter().collect();
    sorted.sort();
    let mut headers = String::new();
    for name in &sorted {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| canonical_header_value(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    let signed: Vec<&str> = sorted.iter().map(|s| s.as_str()).collect();
    format!(
        "{}\n{uri}\n{query}\n{headers}\n{}\n{payload_hash}",
        req.method,
        signed.join(";")
    )
}

/// The wire path with every segment encoded once more (non-S3 rule).
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_owned();
    }
    raw_path
        .split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k, false)),
                uri_encode(&percent_decode(v, false)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_header_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses `YYYYMMDDTHHMMSSZ` to Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Formats Unix seconds as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(unix: i64) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Signs a request the way an SDK does (for the emulator's own tests and for
/// callers without an SDK): returns the headers to add (`x-amz-date`,
/// `authorization`, and `x-amz-security-token` when given).
pub fn sign(
    req: Signed<'_>,
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    service: &str,
    now: i64,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now);
    let date = amz_date[..8].to_owned();
    let mut headers = req.headers.clone();
    let mut extra = vec![];
    if let Ok(v) = amz_date.parse() {
        headers.insert("x-amz-date", v);
    }
    extra.push(("x-amz-date".to_owned(), amz_date.clone()));
    if let Some(t) = session_token {
        if let Ok(v) = t.parse() {
            headers.insert("x-amz-security-token", v);
        }
        extra.push(("x-amz-security-token".to_owned(), t.to_owned()));
    }
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    let payload_hash = hex::encode(digest::digest(&digest::SHA256, req.body));
    let signed_req = Signed {
        headers: &headers,
        ..req
    };
    let canonical = canonical_request(signed_req, &names, &payload_hash);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    );
    let key = signing_key(secret, &date, region, service);
    let sig = hex::encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        sts.as_bytes(),
    ));
    extra.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={sig}",
            names.join(";")
        ),
    ));
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uri_double_encodes() {
        assert_eq!(
            canonical_uri("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"),
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/invoke"
        );
        assert_eq!(canonical_uri("/"), "/");
    }

    /// The AWS documentation's example (GET IAM ListUsers) signing key and
    /// signature.
    #[test]
    fn aws_documented_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        headers.insert("host", "iam.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let req = Signed {
            method: "GET",
            raw_path: "/",
            raw_query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let info = SigInfo {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "iam".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".into(),
        };
        let now = parse_amz_date("20150830T123600Z").unwrap();
        verify(req, &info, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", now).unwrap();
        assert_eq!(verify(req, &info, "wrong", now), Err(SigError::Mismatch));
        assert!(matches!(
            verify(
                req,
                &info,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                now + 3600
            ),
            Err(SigError::Expired(_))
        ));
    }
}
