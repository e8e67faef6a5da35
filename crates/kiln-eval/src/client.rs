//! An OpenAI-compatible completions endpoint as an evaluation target (`kiln serve`, llama.cpp's
//! server, vLLM, ...): plain HTTP/1.1 over a socket, no TLS (serve locally, or put a proxy in
//! front), requests one at a time. Every request has a total deadline (`timeout`: connect, send
//! and the whole answer) and a cap on the answer's size, so a server that hangs, drips or
//! floods costs one sample, not the run.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::EvalError;

/// Largest HTTP answer read (a completion of 500 tokens is a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Which fill-in-the-middle API an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FimApi {
    /// OpenAI `/v1/completions` with a `suffix` field.
    Suffix,
    /// llama.cpp `POST /infill`.
    Infill,
}

/// Sampling settings of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    /// 0: greedy.
    pub temperature: f64,
    /// Nucleus sampling (unset: the server's default, 1 for `/infill`).
    pub top_p: Option<f64>,
    /// The server's sampling seed (unset: none sent).
    pub seed: Option<u64>,
}

impl Sampling {
    fn apply(&self, body: &mut Value) {
        body["temperature"] = json!(self.temperature);
        if let Some(p) = self.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(s) = self.seed {
            body["seed"] = json!(s);
        }
    }
}

/// Where completions come from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    base: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl Endpoint {
    /// Parses `http://host[:port][/base]`.
    pub fn parse(url: &str, api_key: Option<String>, timeout: Duration) -> Result<Self, EvalError> {
        let bad = |m: &str| EvalError::Endpoint(format!("{url}: {m}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// endpoints are supported (serve locally, or put a TLS proxy in front)"))?;
        let (authority, base) =
            rest.split_once('/').map(|(a, b)| (a, format!("/{}", b.trim_end_matches('/')))).unwrap_or((rest, String::new()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("the port is not a number"))?),
            None => (authority.to_string(), 80),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let base = base.trim_end_matches("/v1").to_string();
        Ok(Self { host, port, base, api_key, timeout })
    }

    /// One completion of `prompt` (`/v1/completions`), `max_tokens` at most, cut by the
    /// server at `stop` (and again here: not every server honours every stop string).
    pub fn complete(&self, prompt: &str, max_tokens: usize, stop: &[&str]) -> Result<String, EvalError> {
        self.complete_sampled(prompt, max_tokens, stop, &Sampling::default())
    }

    /// [`Endpoint::complete`] with `sampling` (temperature 0 is greedy).
    pub fn complete_sampled(&self, prompt: &str, max_tokens: usize, stop: &[&str], sampling: &Sampling) -> Result<String, EvalError> {
        // OpenAI allows at most 4 stop strings; send the first 4, cut the rest here.
        let mut body = json!({"prompt": prompt, "max_tokens": max_tokens, "stop": &stop[..stop.len().min(4)]});
        sampling.apply(&mut body);
        let v = self.post("/v1/completions", &body.to_string())?;
        let text = self.text_at(&v, "choices[0].text", |v| v["choices"][0]["text"].as_str())?;
        let cut = stop.iter().filter_map(|s| text.find(s)).min().unwrap_or(text.len());
        Ok(text[..cut].to_string())
    }

    /// One greedy fill-in-the-middle completion between `prefix` and `suffix`, through
    /// OpenAI's `suffix` field (kiln serve, Ollama; llama.cpp and vLLM refuse it).
    pub fn complete_fim(&self, prefix: &str, suffix: &str, max_tokens: usize) -> Result<String, EvalError> {
        self.complete_fim_with(FimApi::Suffix, prefix, suffix, max_tokens, &Sampling::default())
    }

    /// A fill-in-the-middle completion through `api`: OpenAI's `suffix` field, or llama.cpp's
    /// `POST /infill` (`input_prefix`, `input_suffix`, `n_predict`; answer in `content`).
    pub fn complete_fim_with(
        &self,
        api: FimApi,
        prefix: &str,
        suffix: &str,
        max_tokens: usize,
        sampling: &Sampling,
    ) -> Result<String, EvalError> {
        match api {
            FimApi::Suffix => {
                let mut body = json!({"prompt": prefix, "suffix": suffix, "max_tokens": max_tokens});
                sampling.apply(&mut body);
                let v = self.post("/v1/completions", &body.to_string())?;
                self.text_at(&v, "choices[0].text", |v| v["choices"][0]["text"].as_str()).map(String::from)
            }
            FimApi::Infill => {
                // llama.cpp's sampling defaults (top_k 40, top_p 0.95, temperature 0.8) are
                // overridden explicitly; the prompt cache is off so each answer is a cold run.
                let mut body =
                    json!({"input_prefix": prefix, "input_suffix": suffix, "n_predict": max_tokens, "top_k": 0, "cache_prompt": false});
                sampling.apply(&mut body);
                if body.get("top_p").is_none() {
                    body["top_p"] = json!(1.0);
                }
                let v = self.post("/infill", &body.to_string())?;
                self.text_at(&v, "content", |v| v["content"].as_str()).map(String::from)
            }
        }
    }

    fn text_at<'v>(&self, v: &'v Value, field: &str, get: impl Fn(&'v Value) -> Option<&'v str>) -> Result<&'v str, EvalError> {
        get(v).ok_or_else(|| EvalError::Endpoint(format!("{}: no {field} in the response: {}", self.url(), excerpt(&v.to_string()))))
    }

    fn url(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.base)
    }

    fn post(&self, path: &str, body: &str) -> Result<Value, EvalError> {
        let err = |m: String| EvalError::Endpoint(format!("{}{path}: {m}", self.url()));
        let deadline = Instant::now() + self.timeout;
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| err(format!("cannot resolve: {e}")))?
            .next()
            .ok_or_else(|| err("no address".into()))?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| err(format!("cannot connect: {e}")))?;
        s.set_write_timeout(Some(self.timeout)).map_err(|e| err(e.to_string()))?;
        let auth = self.api_key.as_ref().map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        let head = format!(
            "POST {}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{auth}\r\n",
            self.base,
            self.host,
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).map_err(|e| err(format!("sending: {e}")))?;
        // Read until the server closes, within the deadline and the size cap.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(err(format!("no complete answer within {:?} (--request-timeout)", self.timeout)));
            }
            s.set_read_timeout(Some(left)).map_err(|e| err(e.to_string()))?;
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(err(format!("no complete answer within {:?} (--request-timeout)", self.timeout)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(e.to_string())),
            }
            if raw.len() > MAX_RESPONSE_BYTES {
                return Err(err(format!("the answer is over {MAX_RESPONSE_BYTES} bytes")));
            }
        }
        let text = String::from_utf8_lossy(&raw);
        let (headers, body) = text.split_once("\r\n\r\n").ok_or_else(|| err(format!("not an HTTP response: {}", excerpt(&text))))?;
        let status: u16 = headers
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err(format!("not an HTTP response: {}", excerpt(headers))))?;
        let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
        if status != 200 {
            return Err(err(format!("HTTP {status}: {}", excerpt(&body))));
        }
        serde_json::from_str(&body).map_err(|e| err(format!("the response is not JSON ({e}): {}", excerpt(&body))))
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(200).collect()
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_named() {
        let e = Endpoint::parse("http://127.0.0.1:8080", None, Duration::from_secs(1)).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.base.as_str()), ("127.0.0.1", 8080, ""));
        let e = Endpoint::parse("http://localhost:9000/v1/", None, Duration::from_secs(1)).unwrap();
        assert_eq!((e.port, e.base.as_str()), (9000, ""));
        let e = Endpoint::parse("http://h/proxy/v1", None, Duration::from_secs(1)).unwrap();
        assert_eq!((e.port, e.base.as_str()), (80, "/proxy"));
        for bad in ["https://x", "http://:80", "http://h:port"] {
            let err = Endpoint::parse(bad, None, Duration::from_secs(1)).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
