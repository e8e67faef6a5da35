//! An OpenAI-compatible completions endpoint as an evaluation target (`kiln serve`, llama.cpp's
//! server, vLLM, TGI, a hosted API): HTTP or HTTPS through `ureq` (rustls; the system's root
//! certificates, or `--ca-cert` for a private CA or a self-signed server), the usual proxy
//! variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`; loopback endpoints never go
//! through a proxy unless `--proxy` names one), an API key as a bearer token. Every request has
//! a total deadline (`timeout`: connect, TLS, send and the whole answer) and a cap on the
//! answer's size, so a server that hangs, drips or floods costs one sample, not the run; 429 and
//! 5xx answers are retried a bounded number of times with exponential backoff (or the server's
//! `Retry-After`, capped). The client is `Send + Sync`: the harness asks from several threads.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// How requests reach an endpoint, besides its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Total time one request may take (connect, TLS, send, the whole answer).
    pub timeout: Duration,
    /// PEM file of the certificate authority (or the self-signed certificate) to trust instead
    /// of the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Proxy URL (`http://host:port`, `socks5://...` not supported); `None`: from the
    /// environment, except for loopback endpoints.
    pub proxy: Option<String>,
    /// Extra attempts after a 429 or 5xx answer.
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one (capped at [`MAX_BACKOFF`]).
    pub backoff: Duration,
}

/// Longest wait between two attempts (also the cap on a server's `Retry-After`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { timeout: Duration::from_secs(300), ca_cert: None, proxy: None, retries: 3, backoff: Duration::from_secs(1) }
    }
}

/// Where completions come from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    scheme: &'static str,
    host: String,
    port: u16,
    base: String,
    api_key: Option<String>,
    opts: ClientOptions,
    /// The proxy requests go through, for messages.
    proxy: Option<String>,
    agent: ureq::Agent,
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/base]` with the default [`ClientOptions`] and `timeout`.
    pub fn parse(url: &str, api_key: Option<String>, timeout: Duration) -> Result<Self, EvalError> {
        Self::connect(url, api_key, &ClientOptions { timeout, ..ClientOptions::default() })
    }

    /// Parses `http[s]://host[:port][/base]` (a trailing `/v1` is dropped: paths are added per
    /// API) and sets up the client: TLS roots, proxy, deadline. Bad URLs, certificate files and
    /// proxy URLs are named here, before any request.
    pub fn connect(url: &str, api_key: Option<String>, opts: &ClientOptions) -> Result<Self, EvalError> {
        let bad = |m: &str| EvalError::Endpoint(format!("{url}: {m}"));
        let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
            ("http", r, 80)
        } else if let Some(r) = url.strip_prefix("https://") {
            ("https", r, 443)
        } else {
            return Err(bad("the endpoint must start with http:// or https://"));
        };
        let (authority, base) =
            rest.split_once('/').map(|(a, b)| (a, format!("/{}", b.trim_end_matches('/')))).unwrap_or((rest, String::new()));
        // `host`, `host:port`, `[v6]`, `[v6]:port`.
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !(authority.starts_with('[') && authority.ends_with(']')) => {
                (h.to_string(), p.parse().map_err(|_| bad("the port is not a number"))?)
            }
            _ => (authority.to_string(), default_port),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let base = base.trim_end_matches("/v1").to_string();
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || host == "[::1]";
        let proxy = match &opts.proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| EvalError::Endpoint(format!("--proxy {p}: {e} (give http://HOST:PORT)")))?),
            None if loopback => None,
            None => ureq::Proxy::try_from_env(),
        };
        let proxy_name = proxy.as_ref().map(|p| p.uri().to_string());
        let roots = match &opts.ca_cert {
            Some(f) => ureq::tls::RootCerts::Specific(std::sync::Arc::new(read_certificates(f)?)),
            None => ureq::tls::RootCerts::PlatformVerifier,
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .proxy(proxy)
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .user_agent(format!("kiln/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self { scheme, host, port, base, api_key, opts: opts.clone(), proxy: proxy_name, agent: config.into() })
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
        format!("{}://{}:{}{}", self.scheme, self.host, self.port, self.base)
    }

    /// POSTs `body` to `path`; retries 429 and 5xx answers ([`ClientOptions::retries`]).
    fn post(&self, path: &str, body: &str) -> Result<Value, EvalError> {
        let url = format!("{}{path}", self.url());
        let err = |m: String| EvalError::Endpoint(format!("{url}: {m}"));
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.agent.post(&url).header("Content-Type", "application/json");
            if let Some(k) = &self.api_key {
                req = req.header("Authorization", format!("Bearer {k}"));
            }
            let mut resp = req.send(body).map_err(|e| err(self.explain(e)))?;
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
            let text = resp.body_mut().with_config().limit(MAX_RESPONSE_BYTES as u64).read_to_string().map_err(|e| err(self.explain(e)))?;
            if status == 200 {
                return serde_json::from_str(&text).map_err(|e| err(format!("the response is not JSON ({e}): {}", excerpt(&text))));
            }
            let retryable = status == 429 || (500..600).contains(&status);
            if retryable && attempt <= self.opts.retries {
                let wait = retry_after
                    .map(Duration::from_secs)
                    .unwrap_or_else(|| self.opts.backoff.saturating_mul(1 << (attempt - 1).min(16)))
                    .min(MAX_BACKOFF);
                tracing::debug!(status, attempt, wait_s = wait.as_secs_f64(), "endpoint busy or failing: retrying");
                std::thread::sleep(wait);
                continue;
            }
            let tries = if attempt > 1 { format!(" (after {attempt} attempts)") } else { String::new() };
            return Err(err(format!("HTTP {status}{tries}: {}", excerpt(&text))));
        }
    }

    /// A transport error in words, with what to do where there is something to do.
    fn explain(&self, e: ureq::Error) -> String {
        let via = self.proxy.as_ref().map(|p| format!(" through proxy {p}")).unwrap_or_default();
        match e {
            ureq::Error::Timeout(_) => format!("no complete answer within {:?} (--request-timeout)", self.opts.timeout),
            ureq::Error::BodyExceedsLimit(_) => format!("the answer is over {MAX_RESPONSE_BYTES} bytes"),
            ureq::Error::Rustls(e) => format!(
                "TLS with {} failed: {e}; if its certificate is self-signed or from a private authority, pass that certificate with --ca-cert FILE (PEM)",
                self.host
            ),
            ureq::Error::Tls(e) => format!("TLS with {} failed: {e}", self.host),
            ureq::Error::HostNotFound => format!("cannot resolve {}{via}", self.host),
            ureq::Error::ConnectProxyFailed(m) => format!("the proxy {} refused the connection: {m}", self.proxy.clone().unwrap_or_default()),
            // rustls reports a failed handshake (an unknown issuer, a wrong name, an expired
            // certificate) as InvalidData I/O.
            ureq::Error::Io(io) if self.scheme == "https" && io.kind() == std::io::ErrorKind::InvalidData => format!(
                "TLS with {} failed: {io}; if its certificate is self-signed or from a private authority, pass that certificate with --ca-cert FILE (PEM)",
                self.host
            ),
            ureq::Error::Io(io) if self.proxy.is_some() => format!("cannot connect{via}: {io} (check HTTPS_PROXY/HTTP_PROXY/--proxy)"),
            ureq::Error::Io(io) => format!("cannot connect: {io}"),
            ureq::Error::Protocol(p) => format!("not an HTTP response ({p})"),
            other => other.to_string(),
        }
    }
}

/// The certificates of a PEM file (`--ca-cert`).
fn read_certificates(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, EvalError> {
    let bad = |m: String| EvalError::Endpoint(format!("--ca-cert {}: {m}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| bad(format!("not a PEM file ({e})")))? {
            ureq::tls::PemItem::Certificate(c) => certs.push(c.to_owned()),
            _ => continue,
        }
    }
    if certs.is_empty() {
        return Err(bad("no certificate (-----BEGIN CERTIFICATE-----) in it".into()));
    }
    Ok(certs)
}

fn excerpt(s: &str) -> String {
    s.chars().take(200).collect()
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
        let e = Endpoint::parse("https://api.example.com/v1", None, Duration::from_secs(1)).unwrap();
        assert_eq!((e.scheme, e.port, e.url().as_str()), ("https", 443, "https://api.example.com:443"));
        for bad in ["ftp://x", "http://:80", "http://h:port", "127.0.0.1:8080"] {
            let err = Endpoint::parse(bad, None, Duration::from_secs(1)).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
