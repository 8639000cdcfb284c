//! JSON-RPC 1.0 as OVSDB uses it (RFC 7047 §4): requests (`method`, `params`, `id`),
//! responses (`result`, `error`, `id`) and notifications (a request whose `id` is null),
//! sent as concatenated JSON texts with no framing; [`Decoder`] finds where each ends.

use serde_json::{json, Value};

use super::Error;

/// The largest JSON text accepted (an initial monitor reply of a big switch is a few MB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// One JSON-RPC message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Vec<Value>,
    },
    Notification {
        method: String,
        params: Vec<Value>,
    },
    /// `error` is null on success.
    Response {
        id: Value,
        result: Value,
        error: Value,
    },
}

impl Message {
    /// Classifies a decoded JSON text.
    pub fn from_json(v: Value) -> Result<Message, Error> {
        let Value::Object(mut o) = v else {
            return Err(Error::Protocol("a message must be an object".into()));
        };
        let id = o.remove("id").unwrap_or(Value::Null);
        if let Some(method) = o.remove("method") {
            let Value::String(method) = method else {
                return Err(Error::Protocol("method must be a string".into()));
            };
            let params = match o.remove("params") {
                Some(Value::Array(p)) => p,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(Error::Protocol(format!("{method}: params must be an array"))),
            };
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { id, method, params }
            });
        }
        match (o.remove("result"), o.remove("error")) {
            (None, None) => Err(Error::Protocol("neither a request nor a response".into())),
            (result, error) => Ok(Message::Response {
                id,
                result: result.unwrap_or(Value::Null),
                error: error.unwrap_or(Value::Null),
            }),
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> Value {
        match self {
            Message::Request { id, method, params } => json!({"id": id, "method": method, "params": params}),
            Message::Notification { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
            Message::Response { id, result, error } => json!({"id": id, "result": result, "error": error}),
        }
    }

    /// Appends the JSON text to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.to_json());
    }
}

/// Splits a byte stream into JSON texts (objects or arrays) without parsing them twice:
/// it tracks nesting, strings and escapes across calls, so each byte is scanned once.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// How far `buf` has been scanned.
    pos: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. After an error the
    /// stream cannot be resynchronised: the caller drops the connection.
    pub fn next_message(&mut self) -> Result<Option<Message>, Error> {
        while self.pos < self.buf.len() {
            let c = self.buf[self.pos];
            self.pos += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if c == b'\\' {
                    self.escaped = true;
                } else if c == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match c {
                b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => {
                    // Whitespace between texts.
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                }
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let text: Vec<u8> = self.buf.drain(..self.pos).collect();
                        self.pos = 0;
                        let v: Value = serde_json::from_slice(&text)
                            .map_err(|e| Error::Protocol(format!("bad JSON: {e}")))?;
                        return Message::from_json(v).map(Some);
                    }
                }
                b'"' if self.depth > 0 => self.in_string = true,
                _ if self.depth == 0 => {
                    return Err(Error::Protocol(format!("unexpected byte {c:#04x} between messages")))
                }
                _ => {}
            }
        }
        if self.buf.len() > MAX_MESSAGE {
            return Err(Error::Protocol(format!("a message longer than {MAX_MESSAGE} bytes")));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        let m = |s: &str| Message::from_json(serde_json::from_str(s).unwrap());
        assert_eq!(
            m(r#"{"id":"echo","method":"echo","params":[]}"#).unwrap(),
            Message::Request { id: json!("echo"), method: "echo".into(), params: vec![] }
        );
        assert_eq!(
            m(r#"{"id":null,"method":"update","params":[null,{}]}"#).unwrap(),
            Message::Notification { method: "update".into(), params: vec![Value::Null, json!({})] }
        );
        assert_eq!(
            m(r#"{"id":3,"result":[{}],"error":null}"#).unwrap(),
            Message::Response { id: json!(3), result: json!([{}]), error: Value::Null }
        );
        assert!(m("[1]").is_err());
        assert!(m(r#"{"id":1}"#).is_err());
        assert!(m(r#"{"id":1,"method":2}"#).is_err());
        assert!(m(r#"{"id":1,"method":"x","params":{}}"#).is_err());
    }

    #[test]
    fn decoder_splits_concatenated_texts_at_any_boundary() {
        let text =
            br#"{"id":"echo","method":"echo","params":["a}\"{"]} {"id":1,"result":{"x":[1,{}]},"error":null}
{"id":null,"method":"update","params":[null,{"Bridge":{}}]}"#;
        for cut in 0..text.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            d.push(&text[..cut]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            d.push(&text[cut..]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(
                got[0],
                Message::Request { id: json!("echo"), method: "echo".into(), params: vec![json!("a}\"{")] }
            );
        }
    }

    #[test]
    fn decoder_refuses_garbage() {
        let mut d = Decoder::new();
        d.push(b"  x{}");
        assert!(d.next_message().is_err());
        let mut d = Decoder::new();
        d.push(b"{\"id\":1,}");
        assert!(d.next_message().is_err());
    }

    #[test]
    fn encode_then_decode() {
        let m =
            Message::Request { id: json!(7), method: "transact".into(), params: vec![json!("Open_vSwitch")] };
        let mut out = Vec::new();
        m.encode(&mut out);
        let mut d = Decoder::new();
        d.push(&out);
        assert_eq!(d.next_message().unwrap(), Some(m));
    }
}
