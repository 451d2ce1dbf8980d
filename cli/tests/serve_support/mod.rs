//! Support for the black-box tests of `vigil serve`: a server process on 127.0.0.1 with ephemeral
//! ports, a tiny blocking HTTP/1.1 client (chunked bodies included), a Server-Sent Events reader,
//! the `vigil replay` oracle, alarm identities and Prometheus text parsing.
//!
//! Everything here is bounded in time: a broken server fails a test, it never hangs it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The binary under test.
pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// Default allowed lateness of `vigil serve` and `vigil replay` (ms).
pub const LATENESS_MS: u64 = 2_000;

/// How long one HTTP exchange may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client keeps retrying a 503 ("the engine is behind").
pub const BUSY_RETRY_FOR: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Paths and temp dirs

/// `replay-data/samples`.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../replay-data/samples")
}

/// The small hand-written sample building (`d-main`, `d-lab`, `d-server`, `d-dock`, ...).
pub fn sample_site() -> PathBuf {
    samples().join("site.toml")
}

/// The generated demo site (two sites, ~110 k events over 4 days).
pub fn demo_site() -> PathBuf {
    samples().join("demo/site.toml")
}

/// The default rule pack's TOML.
pub fn default_pack_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/packs/default.toml")
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop unless the test is failing (then
/// it is kept, with the servers' stderr logs, for inspection).
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("vigil-serve-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: keeping {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_millis() as u64
}

/// The text of a log file, at most its last 20 000 characters.
pub fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 20_000 {
        let tail: String = chars[chars.len() - 20_000..].iter().collect();
        format!("...{tail}")
    } else {
        text
    }
}

/// Waits for `child` to exit, at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for pid {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// The server process

static STARTS: AtomicUsize = AtomicUsize::new(0);

/// A running `vigil serve` on 127.0.0.1 with ephemeral ports. Dropping it kills the process.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// The HTTP address from the `listening` line.
    pub http: SocketAddr,
    /// The raw TCP ingest address from the `listening` line.
    pub tcp: Option<SocketAddr>,
    /// The data dir.
    pub dir: PathBuf,
    /// Where the process's stderr goes.
    pub log: PathBuf,
}

impl Server {
    /// `vigil serve --site SITE --listen 127.0.0.1:0 --tcp 127.0.0.1:0 --data-dir DIR --no-live EXTRA...`
    pub fn start(site: &Path, data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(site, data_dir, false, extra)
    }

    /// As [`Server::start`] but with live time (no `--no-live`).
    pub fn start_live(site: &Path, data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(site, data_dir, true, extra)
    }

    fn spawn(site: &Path, data_dir: &Path, live: bool, extra: &[&str]) -> Server {
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        // The stderr log sits next to the data dir, never inside it.
        let parent = data_dir.parent().map_or_else(std::env::temp_dir, Path::to_path_buf);
        std::fs::create_dir_all(&parent).expect("create the data dir's parent");
        let log = parent.join(format!("serve-{}-{n}.stderr", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("create the stderr log");
        let mut cmd = Command::new(VIGIL);
        cmd.arg("serve")
            .arg("--site")
            .arg(site)
            .args(["--listen", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir);
        if !live {
            cmd.arg("--no-live");
        }
        cmd.args(extra)
            .env_remove("VIGIL_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().expect("spawn vigil serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut reader = io::BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the child can never block on a full pipe.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("listening ") => line,
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "vigil serve did not print `listening http=... tcp=...` within 60 s (got {other:?}, exit {status:?}); \
                     stderr:\n{}",
                    read_log(&log)
                );
            }
        };
        let Some((http, tcp)) = parse_listening(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cannot parse the listening line {line:?}; stderr:\n{}", read_log(&log));
        };
        assert!(http.ip().is_loopback(), "HTTP listens on {http}, expected 127.0.0.1");
        Server { child: Some(child), http, tcp, dir: data_dir.to_path_buf(), log }
    }

    /// The process's stderr so far.
    pub fn stderr(&self) -> String {
        read_log(&self.log)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }

    /// `kill -9` (SIGKILL on unix), then reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 vigil serve");
            let _ = child.wait();
        }
    }

    /// Waits (at most `timeout`) for the process to exit on its own; its status, `None` if it
    /// did not (then it is killed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("a running server");
        let status = wait_timeout(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// SIGTERM; the process must exit with status 0 within 30 s.
    pub fn terminate(&mut self) {
        let mut child = self.child.take().expect("a running server");
        let pid = child.id().to_string();
        let sent = match Command::new("kill").arg("-TERM").arg(&pid).status() {
            Ok(status) => status.success(),
            // No kill(1) binary: the shell's builtin.
            Err(_) => Command::new("sh").arg("-c").arg(format!("kill -TERM {pid}")).status().is_ok_and(|s| s.success()),
        };
        assert!(sent, "could not send SIGTERM to {pid}");
        // Graceful: it drains what is queued and checkpoints first, which a loaded machine slows.
        match wait_timeout(&mut child, Duration::from_secs(120)) {
            Some(status) => {
                assert!(status.success(), "after SIGTERM vigil serve exited with {status}; stderr:\n{}", self.stderr())
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vigil serve did not exit within 120 s of SIGTERM; stderr:\n{}", self.stderr());
            }
        }
    }

    /// GET `path` (no token).
    pub fn get(&self, path: &str) -> Response {
        request(self.http, "GET", path, &[], b"")
    }

    /// POST `body` to `path` (no token).
    pub fn post(&self, path: &str, body: &[u8]) -> Response {
        request(self.http, "POST", path, &[], body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `listening http=ADDR tcp=ADDR|-` → (http, tcp).
pub fn parse_listening(line: &str) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let mut words = line.split_whitespace();
    if words.next()? != "listening" {
        return None;
    }
    let (mut http, mut tcp) = (None, None);
    for word in words {
        if let Some(a) = word.strip_prefix("http=") {
            http = Some(a.parse::<SocketAddr>().ok()?);
        } else if let Some(a) = word.strip_prefix("tcp=") {
            tcp = Some(if a == "-" { None } else { Some(a.parse::<SocketAddr>().ok()?) });
        }
    }
    Some((http?, tcp?))
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client

/// A response: status, headers (names lower-cased) and body (de-chunked).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response {} is not JSON ({e}): {}", self.status, preview(&self.text())))
    }
}

/// At most 2 000 characters of `text`.
pub fn preview(text: &str) -> String {
    if text.chars().count() > 2_000 {
        let head: String = text.chars().take(2_000).collect();
        format!("{head}... ({} bytes)", text.len())
    } else {
        text.to_string()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads what is available (at least one byte) into `buf`; 0 at end of stream. Fails with
/// `TimedOut` once `deadline` passes.
fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the response did not arrive in time"));
        }
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match s.read(&mut tmp) {
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return Ok(n);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Incremental decoder of `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub struct Chunked {
    pub ended: bool,
}

impl Chunked {
    /// Moves every complete chunk at the front of `raw` into `out`.
    pub fn feed(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<()> {
        while !self.ended {
            let Some(eol) = find(raw, b"\r\n") else { return Ok(()) };
            let size_line = String::from_utf8_lossy(&raw[..eol]).into_owned();
            let hex = size_line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(hex, 16).map_err(|_| invalid(format!("bad chunk size line {size_line:?}")))?;
            if size == 0 {
                // Trailers, if any, are ignored.
                self.ended = true;
                raw.drain(..eol + 2);
                return Ok(());
            }
            if raw.len() < eol + 2 + size + 2 {
                return Ok(());
            }
            out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
            raw.drain(..eol + 2 + size + 2);
        }
        Ok(())
    }
}

/// Reads a response head and, when `with_body`, its whole body. Without the body, whatever was
/// read past the head is returned raw in `body`.
fn read_response(s: &mut TcpStream, deadline: Instant, with_body: bool) -> io::Result<Response> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if read_more(s, &mut buf, deadline)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed before the end of the response head ({} bytes)", buf.len()),
            ));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = buf.split_off(end + 4);
    let mut resp = Response { status, headers, body: Vec::new() };
    if !with_body {
        resp.body = rest;
        return Ok(resp);
    }
    let chunked = resp.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = resp.header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
    if chunked {
        let mut decoder = Chunked::default();
        let mut body = Vec::new();
        loop {
            decoder.feed(&mut rest, &mut body)?;
            if decoder.ended {
                break;
            }
            if read_more(s, &mut rest, deadline)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a chunked body"));
            }
        }
        resp.body = body;
    } else if let Some(n) = length {
        while rest.len() < n {
            if read_more(s, &mut rest, deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {} of {n} body bytes", rest.len()),
                ));
            }
        }
        rest.truncate(n);
        resp.body = rest;
    } else if status / 100 != 1 && status != 204 && status != 304 {
        loop {
            match read_more(s, &mut rest, deadline) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(e),
            }
        }
        resp.body = rest;
    }
    Ok(resp)
}

fn send_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<(TcpStream, io::Result<()>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    let _ = s.set_nodelay(true);
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    // A server may answer (413, 401) and close before reading the whole body: keep the write
    // error, and still try to read the answer.
    let written = s.write_all(&req);
    Ok((s, written))
}

/// One request on a fresh connection (`Connection: close`); the whole response.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let deadline = Instant::now() + HTTP_TIMEOUT;
    let (mut s, written) = send_request(addr, method, path, headers, body)?;
    match read_response(&mut s, deadline, true) {
        Ok(r) => Ok(r),
        Err(e) => Err(written.err().unwrap_or(e)),
    }
}

/// As [`try_request`], panicking on a transport error.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// One request; reads only the status line and headers (for endpoints that stream).
pub fn request_head(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let deadline = Instant::now() + HTTP_TIMEOUT;
    let (mut s, written) =
        send_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    match read_response(&mut s, deadline, false) {
        Ok(r) => r,
        Err(e) => panic!("{method} {path} on {addr}: {} (write: {written:?})", e),
    }
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

/// One SSE event.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

/// An open `GET /v1/alarms/stream`.
#[derive(Debug)]
pub struct Sse {
    stream: TcpStream,
    raw: Vec<u8>,
    text: Vec<u8>,
    chunked: Option<Chunked>,
    eof: bool,
}

impl Sse {
    /// Opens `path` (e.g. `/v1/alarms/stream` or `/v1/alarms/stream?after=5`) with extra `headers`
    /// (e.g. `Last-Event-ID`); asserts 200 and `text/event-stream`.
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect for SSE");
        let _ = s.set_nodelay(true);
        s.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("send the SSE request");
        let resp = read_response(&mut s, deadline, false).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status, 200, "GET {path}: {}", resp.text());
        let ctype = resp.header("content-type").unwrap_or("");
        assert!(ctype.starts_with("text/event-stream"), "GET {path}: content-type {ctype:?}");
        let chunked = resp.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let mut sse =
            Sse { stream: s, raw: resp.body, text: Vec::new(), chunked: chunked.then(Chunked::default), eof: false };
        sse.decode();
        sse
    }

    fn decode(&mut self) {
        let mut plain = Vec::new();
        match self.chunked.as_mut() {
            Some(dec) => {
                if dec.feed(&mut self.raw, &mut plain).is_err() {
                    self.eof = true;
                }
                if dec.ended {
                    self.eof = true;
                }
            }
            None => plain = std::mem::take(&mut self.raw),
        }
        // CRLF line ends become LF (JSON data never holds a raw CR).
        self.text.extend(plain.iter().copied().filter(|&b| b != b'\r'));
    }

    fn take_frame(&mut self) -> Option<Frame> {
        loop {
            let end = find(&self.text, b"\n\n")?;
            let block: Vec<u8> = self.text.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block[..end]).into_owned();
            let mut frame = Frame { id: None, event: String::new(), data: String::new() };
            let (mut any, mut has_data) = (false, false);
            for line in block.split('\n') {
                if line.is_empty() || line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "id" => {
                        frame.id = value.trim().parse().ok();
                        any = true;
                    }
                    "event" => {
                        frame.event = value.to_string();
                        any = true;
                    }
                    "data" => {
                        if has_data {
                            frame.data.push('\n');
                        }
                        frame.data.push_str(value);
                        has_data = true;
                        any = true;
                    }
                    _ => {}
                }
            }
            if any {
                return Some(frame);
            }
        }
    }

    /// The next event (comments such as `: keepalive` skipped); `None` at the end of the stream or
    /// when `deadline` passes.
    pub fn next_frame(&mut self, deadline: Instant) -> Option<Frame> {
        let mut tmp = vec![0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            if self.eof || Instant::now() >= deadline {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let _ =
                self.stream.set_read_timeout(Some(left.clamp(Duration::from_millis(1), Duration::from_millis(250))));
            match self.stream.read(&mut tmp) {
                Ok(0) => self.eof = true,
                Ok(n) => self.raw.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => self.eof = true,
            }
            self.decode();
        }
    }

    /// Up to `n` alarm events as (SSE id, alarm JSON), within `timeout`. Asserts `event: alarm`,
    /// a numeric id, JSON data whose `"id"` equals the SSE id.
    pub fn read_alarms(&mut self, n: usize, timeout: Duration) -> Vec<(u64, Value)> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let Some(frame) = self.next_frame(deadline) else { break };
            assert_eq!(frame.event, "alarm", "SSE event type: {frame:?}");
            let id = frame.id.unwrap_or_else(|| panic!("SSE alarm without a numeric `id:`: {frame:?}"));
            let v: Value = serde_json::from_str(&frame.data)
                .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {}", preview(&frame.data)));
            assert_eq!(v["id"].as_u64(), Some(id), "the alarm's \"id\" is the SSE id: {v}");
            out.push((id, v));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Ingest and alarms over the API

/// NDJSON body of `lines` (each followed by `\n`).
pub fn body_of(lines: &[String]) -> String {
    let mut body = lines.join("\n");
    body.push('\n');
    body
}

/// POST /v1/events, retrying 503 ("the engine is behind") for up to two minutes.
pub fn post_events(addr: SocketAddr, body: &[u8], headers: &[(&str, &str)]) -> io::Result<Response> {
    let deadline = Instant::now() + BUSY_RETRY_FOR;
    loop {
        let r = try_request(addr, "POST", "/v1/events", headers, body)?;
        if r.status == 503 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        return Ok(r);
    }
}

/// True when an ingest answer accepted `n` lines and listed no late or rejected line.
pub fn is_clean(answer: &Value, n: usize) -> bool {
    answer["accepted"].as_u64() == Some(n as u64)
        && answer["late"].as_array().is_some_and(Vec::is_empty)
        && answer["rejected"].as_array().is_some_and(Vec::is_empty)
}

/// Posts `lines`; asserts 200 with every line accepted. Returns the answer.
pub fn post_ok(srv: &Server, lines: &[String]) -> Value {
    let r = post_events(srv.http, body_of(lines).as_bytes(), &[]).expect("POST /v1/events");
    assert_eq!(r.status, 200, "POST /v1/events of {} lines: {}", lines.len(), preview(&r.text()));
    let v = r.json();
    assert!(is_clean(&v, lines.len()), "expected all {} lines accepted, got {}", lines.len(), preview(&v.to_string()));
    v
}

/// POST /v1/advance?to=`to`; asserts 200. Returns the answer.
pub fn advance(srv: &Server, to: u64) -> Value {
    let r = srv.post(&format!("/v1/advance?to={to}"), b"");
    assert_eq!(r.status, 200, "POST /v1/advance?to={to}: {}", r.text());
    r.json()
}

/// Writes `payload` to the raw TCP port, shuts down the write side and reads every answer line.
/// Returns (the per-line error lines, the summary line).
pub fn tcp_ingest(addr: SocketAddr, payload: &[u8]) -> (Vec<Value>, Value) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect to the TCP port");
    // The server answers nothing until the summary when every line is clean: allow a slow ingest.
    stream.set_read_timeout(Some(Duration::from_secs(300))).expect("read timeout");
    stream.set_write_timeout(Some(Duration::from_secs(300))).expect("write timeout");
    let mut reading = stream.try_clone().expect("clone the TCP stream");
    // Read concurrently: the server may answer lines while we still write.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = reading.read_to_end(&mut out);
        read.map(|_| out)
    });
    stream.write_all(payload).expect("write NDJSON to the TCP port");
    stream.shutdown(Shutdown::Write).expect("shut down the write side");
    let out = reader.join().expect("the TCP reader thread").expect("read the TCP answers until the server closes");
    let text = String::from_utf8(out).expect("TCP answers are UTF-8");
    let mut values: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("TCP answer line is not JSON ({e}): {l}")))
        .collect();
    let summary = values.pop().unwrap_or_else(|| panic!("no summary line from the TCP port; got {text:?}"));
    assert!(summary.get("accepted").is_some(), "the last TCP line is the summary: {summary}");
    (values, summary)
}

/// Every journaled alarm, paging GET /v1/alarms?after=..&limit=1000 through `next`.
pub fn all_alarms(srv: &Server) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = 0u64;
    loop {
        let path = format!("/v1/alarms?after={after}&limit=1000");
        let r = srv.get(&path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        let v = r.json();
        let page = v["alarms"].as_array().unwrap_or_else(|| panic!("GET {path}: no alarms array: {v}")).clone();
        let next = v["next"].as_u64().unwrap_or_else(|| panic!("GET {path}: no numeric next: {v}"));
        if page.is_empty() {
            assert_eq!(next, after, "GET {path}: an empty page keeps next = after");
            return out;
        }
        let last = page.last().and_then(|a| a["id"].as_u64()).unwrap_or_else(|| panic!("alarm without id: {v}"));
        assert_eq!(next, last, "GET {path}: next is the last id returned");
        assert!(next > after, "GET {path}: no progress");
        out.extend(page);
        after = next;
    }
}

/// Polls the journal until it holds `expected` alarms and stays so for 300 ms, or 180 s pass.
/// Returns what it holds then (the caller compares).
pub fn wait_for_alarms(srv: &Server, expected: usize) -> Vec<Value> {
    // Generous: a loaded 2-core debug run may still be working off a queued backlog.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let alarms = all_alarms(srv);
        if alarms.len() == expected {
            std::thread::sleep(Duration::from_millis(300));
            let again = all_alarms(srv);
            if again.len() == expected || Instant::now() >= deadline {
                return again;
            }
            continue;
        }
        if alarms.len() > expected || Instant::now() >= deadline {
            return alarms;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The journal ids are exactly 1..=N in order.
pub fn assert_consecutive_ids(alarms: &[Value]) {
    let ids: Vec<Option<u64>> = alarms.iter().map(|a| a["id"].as_u64()).collect();
    let want: Vec<Option<u64>> = (1..=alarms.len() as u64).map(Some).collect();
    assert_eq!(ids, want, "journal ids must be 1..=N without gaps");
}

// ---------------------------------------------------------------------------------------------
// Identities and the replay oracle

/// (rule, ts, [door, card, area, device, camera, site]); a missing key is `None`.
pub type Identity = (String, u64, [Option<String>; 6]);

pub fn identity(v: &Value) -> Identity {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    (
        s("rule").unwrap_or_else(|| panic!("alarm without rule: {v}")),
        v["ts"].as_u64().unwrap_or_else(|| panic!("alarm without integer ts: {v}")),
        [s("door"), s("card"), s("area"), s("device"), s("camera"), s("site")],
    )
}

pub fn show(id: &Identity) -> String {
    let names = ["door", "card", "area", "device", "camera", "site"];
    let keys: Vec<String> =
        names.iter().zip(&id.2).filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}={v}"))).collect();
    format!("{} @{} {}", id.0, id.1, keys.join(" "))
}

/// The journal's alarms are, as identities, exactly `want` (a multiset; none twice).
pub fn assert_same_alarms(got: &[Value], want: &[Identity], what: &str) {
    let mut got: Vec<Identity> = got.iter().map(identity).collect();
    got.sort();
    let twice: Vec<String> = got.windows(2).filter(|w| w[0] == w[1]).map(|w| show(&w[0])).collect();
    assert!(twice.is_empty(), "{what}: alarms journaled twice: {twice:#?}");
    let mut want = want.to_vec();
    want.sort();
    if got != want {
        let missing: Vec<String> = want.iter().filter(|x| got.binary_search(x).is_err()).take(30).map(show).collect();
        let extra: Vec<String> = got.iter().filter(|x| want.binary_search(x).is_err()).take(30).map(show).collect();
        panic!(
            "{what}: the journal holds {} alarms, the replay oracle {}\nmissing: {missing:#?}\nunexpected: {extra:#?}",
            got.len(),
            want.len()
        );
    }
}

/// Runs `vigil replay --site SITE --alarms OUT EVENTS` and returns the alarms as identities.
pub fn replay_oracle(site: &Path, events: &Path, out: &Path) -> Vec<Identity> {
    let run = Command::new(VIGIL)
        .arg("replay")
        .arg("--site")
        .arg(site)
        .arg("--alarms")
        .arg(out)
        .arg(events)
        .env_remove("VIGIL_TOKEN")
        .output()
        .expect("run vigil replay");
    assert!(run.status.success(), "vigil replay failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let text = std::fs::read_to_string(out).expect("read the replay's alarms");
    let mut ids: Vec<Identity> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            identity(
                &serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("replay alarm is not JSON ({e}): {l}")),
            )
        })
        .collect();
    ids.sort();
    ids
}

/// The demo events and their replay oracle, computed once per test binary.
#[derive(Debug)]
pub struct Demo {
    /// Non-empty event lines, in file (= ts) order.
    pub lines: Vec<String>,
    /// Their `ts`.
    pub ts: Vec<u64>,
    pub max_ts: u64,
    /// `vigil replay`'s alarms.
    pub oracle: Vec<Identity>,
}

static DEMO: OnceLock<Demo> = OnceLock::new();

pub fn demo() -> &'static Demo {
    DEMO.get_or_init(|| {
        let events = samples().join("demo/events.ndjson");
        let text = std::fs::read_to_string(&events).expect("read the demo events");
        let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
        let ts: Vec<u64> = lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("demo line is not JSON ({e}): {l}"));
                v["ts"].as_u64().unwrap_or_else(|| panic!("demo line without integer ts: {l}"))
            })
            .collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "the demo events are in ts order");
        let max_ts = ts.iter().copied().max().expect("demo events");
        let dir = TempDir::new("oracle");
        let oracle = replay_oracle(&demo_site(), &events, &dir.join("alarms.ndjson"));
        assert!(oracle.len() >= 20, "the demo replay should raise dozens of alarms, got {}", oracle.len());
        Demo { lines, ts, max_ts, oracle }
    })
}

/// A copy of the first heartbeat line with `ts` = 1: valid, and late as soon as anything was
/// accepted, so it reads the watermark without touching the engine.
pub fn probe_line(lines: &[String]) -> String {
    let line = lines.iter().find(|l| l.contains("\"heartbeat\"")).expect("a heartbeat line");
    let mut v: Value = serde_json::from_str(line).expect("JSON");
    v["ts"] = Value::from(1u64);
    v.to_string()
}

/// Posts the probe line and returns the watermark its `late` entry reports.
pub fn probe_watermark(srv: &Server, probe: &str) -> u64 {
    let r = post_events(srv.http, format!("{probe}\n").as_bytes(), &[]).expect("POST the probe");
    assert_eq!(r.status, 200, "probe: {}", r.text());
    let v = r.json();
    assert_eq!(v["accepted"].as_u64(), Some(0), "the probe (ts 1) must be late: {v}");
    let late = v["late"].as_array().unwrap_or_else(|| panic!("no late array: {v}"));
    assert_eq!(late.len(), 1, "the probe (ts 1) must be late: {v}");
    assert_eq!(late[0]["line"].as_u64(), Some(1), "{v}");
    assert_eq!(late[0]["ts"].as_u64(), Some(1), "{v}");
    late[0]["watermark"].as_u64().unwrap_or_else(|| panic!("late entry without watermark: {v}"))
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (series, rest) = match line.find('{') {
                Some(open) => {
                    let close = line[open..].find('}')? + open;
                    (&line[..=close], &line[close + 1..])
                }
                None => {
                    let sp = line.find(char::is_whitespace)?;
                    (&line[..sp], &line[sp..])
                }
            };
            let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
            let (name, labels) = match series.find('{') {
                Some(open) => (&series[..open], parse_labels(&series[open + 1..series.len() - 1])),
                None => (series, BTreeMap::new()),
            };
            Some(Sample { name: name.to_string(), labels, value })
        })
        .collect()
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}

/// GET /metrics, parsed.
pub fn metrics(srv: &Server) -> Vec<Sample> {
    let r = srv.get("/metrics");
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
    parse_metrics(&r.text())
}

/// The sum of every series of `name` (which must exist).
pub fn metric_sum(samples: &[Sample], name: &str) -> u64 {
    let found: Vec<&Sample> = samples.iter().filter(|s| s.name == name).collect();
    assert!(!found.is_empty(), "/metrics has no {name}");
    found.iter().map(|s| s.value).sum::<f64>().round() as u64
}

/// The sum of the series of `name` whose label `key` is `value` (which must exist).
pub fn metric_where(samples: &[Sample], name: &str, key: &str, value: &str) -> u64 {
    let found: Vec<&Sample> =
        samples.iter().filter(|s| s.name == name && s.labels.get(key).map(String::as_str) == Some(value)).collect();
    assert!(!found.is_empty(), "/metrics has no {name}{{{key}=\"{value}\"}}");
    found.iter().map(|s| s.value).sum::<f64>().round() as u64
}
