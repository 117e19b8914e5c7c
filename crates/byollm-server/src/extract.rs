//! Extractors: [`ApiJson`] (the one JSON body reader of every API route: a 400
//! naming the field for any body that fails to parse, that is not a JSON object
//! or that repeats a key at any depth; a 413 for oversized bodies — never
//! axum's default 422), [`IfMatchHeader`], [`query_pairs`] and [`Caller`] (the
//! authenticated principal); and [`with_etag`] for versioned responses.

use std::collections::HashSet;
use std::fmt;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use byollm_core::auth::Principal;
use byollm_core::versioned::{IfMatch, Versioned, etag};

use crate::error::ApiError;

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON object body. An empty body reads as `{}`; any other body must be a
/// JSON object without repeated keys.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_object(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON object body both typed and as sent (for a route that must also see
/// which fields the client named, like a settings `PUT`); read as [`ApiJson`].
#[derive(Debug)]
pub struct ApiJsonDoc<T>(pub T, pub serde_json::Value);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJsonDoc<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_object(req, state).await?;
        let typed = parse_json(&bytes)?;
        Ok(ApiJsonDoc(typed, parse_json(&bytes)?))
    }
}

/// Reads a body that must be one JSON object (an empty body reads as `{}`).
async fn read_object<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::invalid("body", "could not read the request body")
        }
    })?;
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    check_object(&bytes)?;
    Ok(bytes)
}

/// Parses JSON, naming the path of the first field that fails.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde reports a missing field at the parent's path and names the field
        // in the message: name it as the field. (An unknown field's path already
        // ends with the field.)
        let named = message
            .split('`')
            .nth(1)
            .filter(|_| message.starts_with("missing field"));
        let field = match (path.as_str(), named) {
            (".", Some(f)) => f.to_owned(),
            (p, Some(f)) => format!("{p}.{f}"),
            // `?`: the parser stopped before it knew which field it was in.
            (".", None) | ("?", None) => "body".to_owned(),
            (p, None) => p.to_owned(),
        };
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {message}")
        } else {
            message
        };
        ApiError::invalid(field, message)
    })?;
    de.end()
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Refuses a body that is not one JSON object, or that repeats a key in any
/// object (serde would keep one silently, or only typed structs refuse them).
pub fn check_object(bytes: &[u8]) -> Result<(), ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let shape = serde_path_to_error::deserialize::<_, Shape>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut field = match path.as_str() {
            "." | "?" => "body".to_owned(),
            p => p.to_owned(),
        };
        // A repeated key is reported at its object: name the key too.
        let message = inner.to_string();
        if let Some(key) = message
            .strip_prefix(DUPLICATE)
            .and_then(|m| m.split('`').nth(1))
        {
            field = if field == "body" {
                key.to_owned()
            } else {
                format!("{field}.{key}")
            };
        }
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(field, format!("malformed JSON: {inner}"))
        } else {
            ApiError::invalid(field, inner.to_string())
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    if shape != Shape::Object {
        return Err(ApiError::invalid(
            "body",
            "expected a JSON object, e.g. {\"field\": …}",
        ));
    }
    Ok(())
}

/// How a repeated key's error message starts.
const DUPLICATE: &str = "duplicate key ";

/// What a JSON value is, read while refusing repeated keys.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Object,
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<Shape>()?.is_some() {}
        Ok(Shape::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "{DUPLICATE}{}; send each key once",
                    byollm_core::validate::quote(&key)
                )));
            }
            map.next_value_seed(ShapeSeed)?;
        }
        Ok(Shape::Object)
    }
}

struct ShapeSeed;

impl<'de> DeserializeSeed<'de> for ShapeSeed {
    type Value = Shape;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        Shape::deserialize(d)
    }
}

/// The `If-Match` header, if sent (a 400 naming it when it does not parse).
#[derive(Debug, Clone)]
pub struct IfMatchHeader(pub Option<IfMatch>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatchHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let Some(first) = values.next() else {
            return Ok(IfMatchHeader(None));
        };
        if values.next().is_some() {
            return Err(ApiError::invalid(
                "If-Match",
                "sent twice; send one If-Match header",
            ));
        }
        let text = first
            .to_str()
            .map_err(|_| ApiError::invalid("If-Match", "not ASCII; expected an ETag or *"))?;
        IfMatch::parse(text)
            .map(|m| IfMatchHeader(Some(m)))
            .map_err(|e| ApiError::invalid(e.field, e.message))
    }
}

/// A JSON response carrying the resource's `ETag`.
pub fn with_etag<T: serde::Serialize>(status: StatusCode, v: Versioned<T>) -> Response {
    let mut resp = (status, axum::Json(v.value)).into_response();
    if let Ok(tag) = HeaderValue::from_str(&etag(v.version)) {
        resp.headers_mut().insert(header::ETAG, tag);
    }
    resp
}

/// A query string's `key=value` pairs, percent-decoded (`+` is a space); a
/// pair that is not UTF-8 after decoding is a 400 naming its key.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
    };
    raw.unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k).map_err(|_| ApiError::invalid("query", "not UTF-8"))?;
            let value = decode(v).map_err(|_| ApiError::invalid(key.clone(), "not UTF-8"))?;
            Ok((key, value))
        })
        .collect()
}

/// The authenticated caller, put in the request by the auth layer.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(ApiError::unauthenticated)
    }
}
