//! The AWS query protocol shared by IAM and STS: form/query parameters in,
//! XML out (aws-facts §1.1, §1.4).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AwsError;
use crate::util::{uuid, xml_escape};

/// IAM's XML namespace.
pub const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
/// STS's XML namespace.
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Decoded query parameters (query string and form body together).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-flattened list: `<name>.member.N` (N from 1), in index order.
    pub fn list(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.member.");
        let mut items: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let idx = k.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                Some((idx, v.clone()))
            })
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// A list of structures: `<name>.member.N.<field>`, as maps in index order.
    pub fn struct_list(&self, name: &str, fields: &[&str]) -> Vec<Vec<Option<String>>> {
        let prefix = format!("{name}.member.");
        let mut idx: Vec<u32> = self
            .0
            .iter()
            .filter_map(|(k, _)| {
                let rest = k.strip_prefix(&prefix)?;
                rest.split_once('.')?.0.parse::<u32>().ok()
            })
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| {
                fields
                    .iter()
                    .map(|f| self.get(&format!("{prefix}{i}.{f}")).map(str::to_owned))
                    .collect()
            })
            .collect()
    }
}

/// Operations whose output shape is an empty structure with a result wrapper:
/// IAM sends `<{Op}Result/>` and clients expect it (the AWS CLI fails without it).
const OPS_WITH_EMPTY_RESULT: [&str; 1] = ["UpdateRole"];

/// A successful query-protocol response: `<{Op}Response><{Op}Result>…</…>
/// <ResponseMetadata><RequestId>…` (`result` is the inner XML, may be empty).
pub fn ok(ns: &str, op: &str, result: &str, request_id: &str) -> Response {
    let body = if result.is_empty() && OPS_WITH_EMPTY_RESULT.contains(&op) {
        format!(
            "<{op}Response xmlns=\"{ns}\">\n  <{op}Result/>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</{op}Response>\n"
        )
    } else if result.is_empty() {
        format!(
            "<{op}Response xmlns=\"{ns}\">\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</{op}Response>\n"
        )
    } else {
        format!(
            "<{op}Response xmlns=\"{ns}\">\n  <{op}Result>\n{result}  </{op}Result>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</{op}Response>\n"
        )
    };
    xml_response(StatusCode::OK, body, request_id)
}

/// The query error envelope: `ErrorResponse > Error{Type,Code,Message}` with
/// `RequestId` as a sibling of `Error` (aws-facts §1.4).
pub fn error(ns: &str, err: &AwsError) -> Response {
    let request_id = uuid();
    let kind = if err.is_sender() {
        "Sender"
    } else {
        "Receiver"
    };
    let body = format!(
        "<ErrorResponse xmlns=\"{ns}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        xml_escape(&err.code),
        xml_escape(&err.message)
    );
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    xml_response(status, body, &request_id)
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// `<Name>escaped</Name>` on its own indented line.
pub fn el(indent: usize, name: &str, value: &str) -> String {
    format!(
        "{:indent$}<{name}>{}</{name}>\n",
        "",
        xml_escape(value),
        indent = indent
    )
}
