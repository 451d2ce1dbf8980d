//! The network side: HTTP API (axum on hyper, with a header-read timeout against slowloris), the
//! raw TCP NDJSON listener, Server-Sent Events, bearer-token guard.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::core::{Core, CoreError, DEFAULT_SOURCE, IngestReport, LineIn, split_lines, valid_source_name};
use crate::metrics::EngineReading;

/// Limits and guards of the network side.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Bearer token (`None`: no auth).
    pub token: Option<String>,
    /// Largest request body.
    pub max_body: usize,
    /// Longest line.
    pub max_line: usize,
    /// Time allowed to send the request headers (slowloris).
    pub header_timeout: Duration,
    /// Time allowed to send a whole body.
    pub body_timeout: Duration,
}

#[derive(Clone)]
struct App {
    core: Arc<Core>,
    net: Arc<NetConfig>,
    /// Turns true when the sidecar stops: SSE streams end.
    stop: watch::Receiver<bool>,
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    json(status, serde_json::json!({ "error": msg }).to_string())
}

fn core_error(e: CoreError) -> Response {
    match e {
        CoreError::Busy => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "the engine is behind; retry");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        CoreError::Stopping => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        CoreError::Unavailable(m)
        | CoreError::Engine(vigil_engine::EngineError::Checkpoint(vigil_engine::CheckpointError::Unavailable(m))) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, &m);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        CoreError::Rules(m) | CoreError::Refused(m) => {
            json(StatusCode::BAD_REQUEST, serde_json::json!({ "errors": [m] }).to_string())
        }
        CoreError::Engine(vigil_engine::EngineError::Swap(m)) => {
            json(StatusCode::CONFLICT, serde_json::json!({ "errors": [m] }).to_string())
        }
        other => {
            tracing::error!(error = %other, "request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string())
        }
    }
}

/// Constant-time comparison (no early exit on the first differing byte).
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.net.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// The HTTP routes.
fn router(app: App) -> Router {
    let guarded = Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/advance", post(post_advance))
        .route("/v1/checkpoint", post(post_checkpoint))
        .route("/v1/rules", post(post_rules))
        .route("/v1/sources", get(get_sources))
        .route("/v1/sources/{name}", axum::routing::delete(delete_source))
        .route("/v1/alarms", get(get_alarms))
        .route("/v1/alarms/stream", get(get_stream))
        .route("/metrics", get(get_metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new().route("/healthz", get(healthz)).merge(guarded).with_state(app)
}

/// `ok` while serving; 503 with the reason once stopping (after a failure, or shutting down).
async fn healthz(State(app): State<App>) -> Response {
    if let Some(why) = app.core.failure().borrow().clone() {
        return error(StatusCode::SERVICE_UNAVAILABLE, &format!("failed: {why}"));
    }
    if app.core.stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    "ok\n".into_response()
}

async fn read_body(app: &App, body: Body) -> Result<axum::body::Bytes, Response> {
    match tokio::time::timeout(app.net.body_timeout, axum::body::to_bytes(body, app.net.max_body)).await {
        Err(_) => Err(error(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time")),
        Ok(Err(_)) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body exceeds {} bytes (--max-body-bytes)", app.net.max_body),
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    source: Option<String>,
}

/// The source a post names (`X-Vigil-Source`, else `?source=`, else the default), or why not.
fn source_of(headers: &HeaderMap, q: EventsQuery) -> Result<String, String> {
    let name = match headers.get("x-vigil-source") {
        Some(v) => v.to_str().map(str::to_owned).map_err(|_| "X-Vigil-Source is not ASCII".to_owned())?,
        None => q.source.unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
    };
    if valid_source_name(&name) {
        Ok(name)
    } else {
        Err(format!("source name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"))
    }
}

async fn post_events(State(app): State<App>, headers: HeaderMap, Query(q): Query<EventsQuery>, body: Body) -> Response {
    let source = match source_of(&headers, q) {
        Ok(s) => s,
        Err(why) => return json(StatusCode::BAD_REQUEST, serde_json::json!({ "errors": [why] }).to_string()),
    };
    let bytes = match read_body(&app, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let core = app.core.clone();
    let max_line = app.net.max_line;
    let r = tokio::task::spawn_blocking(move || {
        let lines = split_lines(&bytes, max_line);
        core.ingest(&source, &lines)
    })
    .await;
    match r {
        Ok(Ok(report)) => json(StatusCode::OK, serde_json::to_string(&report).unwrap_or_default()),
        Ok(Err(e)) => core_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct AdvanceQuery {
    to: u64,
}

async fn post_advance(State(app): State<App>, Query(q): Query<AdvanceQuery>) -> Response {
    let core = app.core.clone();
    match tokio::task::spawn_blocking(move || core.advance(q.to)).await {
        Ok(Ok(w)) => json(StatusCode::OK, serde_json::json!({ "watermark": w }).to_string()),
        Ok(Err(e)) => core_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The open sources and their watermarks.
async fn get_sources(State(app): State<App>) -> Response {
    let core = app.core.clone();
    match tokio::task::spawn_blocking(move || (core.sources(), core.watermark())).await {
        Ok((sources, watermark)) => {
            let list: Vec<_> =
                sources.iter().map(|(name, w)| serde_json::json!({ "source": name, "watermark": w })).collect();
            json(StatusCode::OK, serde_json::json!({ "watermark": watermark, "sources": list }).to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Ends a source (a panel taken out of service): its watermark no longer holds the others back.
/// Posting under its name later opens it again, at the sidecar watermark.
async fn delete_source(State(app): State<App>, Path(name): Path<String>) -> Response {
    let core = app.core.clone();
    let n = name.clone();
    match tokio::task::spawn_blocking(move || core.end_source(&n)).await {
        Ok(Ok(true)) => json(StatusCode::OK, serde_json::json!({ "closed": name }).to_string()),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, &format!("no open source {name:?}")),
        Ok(Err(e)) => core_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn post_checkpoint(State(app): State<App>) -> Response {
    let core = app.core.clone();
    match tokio::task::spawn_blocking(move || core.checkpoint()).await {
        Ok(Ok((offset, seq))) => {
            json(StatusCode::OK, serde_json::json!({ "ingest_offset": offset, "journal_seq": seq }).to_string())
        }
        Ok(Err(e)) => core_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn post_rules(State(app): State<App>, body: Body) -> Response {
    let bytes = match read_body(&app, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(text) = String::from_utf8(bytes.to_vec()) else {
        return json(StatusCode::BAD_REQUEST, serde_json::json!({ "errors": ["the pack is not UTF-8"] }).to_string());
    };
    let core = app.core.clone();
    match tokio::task::spawn_blocking(move || core.swap_rules(&text)).await {
        Ok(Ok(r)) => json(
            StatusCode::OK,
            serde_json::json!({ "at_ms": r.at_ms, "kept": r.kept, "started": r.started, "removed": r.removed })
                .to_string(),
        ),
        Ok(Err(CoreError::Rules(m))) => {
            let errors: Vec<&str> = m.lines().collect();
            json(StatusCode::BAD_REQUEST, serde_json::json!({ "errors": errors }).to_string())
        }
        Ok(Err(e)) => core_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn get_alarms(State(app): State<App>, Query(q): Query<PageQuery>) -> Response {
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1_000).min(100_000);
    let core = app.core.clone();
    match tokio::task::spawn_blocking(move || core.alarms_after(after, limit)).await {
        Ok(Ok(page)) => {
            let next = page.alarms.last().map_or(after, |(s, _)| *s);
            let mut body = String::from("{\"alarms\":[");
            for (i, (_, a)) in page.alarms.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(a);
            }
            body.push_str(&format!("],\"next\":{next},\"first\":{}}}", page.first));
            json(StatusCode::OK, body)
        }
        Ok(Err(e)) => core_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    after: Option<u64>,
}

/// SSE: everything after `Last-Event-ID` (or `?after=`) from the journal, then live. A stream that
/// falls behind the live channel catches up from the journal, so it never skips an alarm.
async fn get_stream(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.after)
        .unwrap_or(0);
    // Subscribe before reading the journal: nothing journaled in between is missed.
    let rx = app.core.live.subscribe();
    let state = (app.core.clone(), rx, app.stop.clone(), after, std::collections::VecDeque::<(u64, Arc<str>)>::new());
    let s = stream::unfold(state, |(core, mut rx, mut stop, mut last, mut queue)| async move {
        loop {
            if *stop.borrow() {
                // The sidecar stops: end the stream (the console resumes with Last-Event-ID).
                return None;
            }
            if let Some((seq, line)) = queue.pop_front() {
                last = seq;
                let ev = SseEvent::default().id(seq.to_string()).event("alarm").data(line.as_ref());
                return Some((Ok(ev), (core, rx, stop, last, queue)));
            }
            let c = core.clone();
            let page = tokio::task::spawn_blocking(move || c.alarms_after(last, 1_000)).await.ok()?.ok()?;
            if page.first > last + 1 {
                // Retention deleted alarms this console has not seen: say so, once, then go on.
                let gap = format!("{{\"after\":{last},\"first\":{}}}", page.first);
                last = page.first - 1;
                return Some((Ok(SseEvent::default().event("gap").data(gap)), (core, rx, stop, last, queue)));
            }
            if !page.alarms.is_empty() {
                queue.extend(page.alarms);
                continue;
            }
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                _ = stop.changed() => {}
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keepalive"))
}

async fn get_metrics(State(app): State<App>) -> Response {
    let core = app.core.clone();
    let text = tokio::task::spawn_blocking(move || {
        let (watermark, processed, _late, queue_depth) = core.engine_state();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let sources = core.sources();
        core.metrics.render(EngineReading { watermark, processed, queue_depth, now_ms, sources })
    })
    .await
    .unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], text)
        .into_response()
}

/// The next connection, or `None` once `stop` changes. Accept errors (out of file descriptors)
/// are logged and retried after a pause instead of ending the listener.
async fn accept(listener: &TcpListener, stop: &mut watch::Receiver<bool>) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return None,
        }
    }
}

/// How long a stopping server waits for requests in progress to be answered.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves HTTP on `listener` until `stop` turns true; then stops listening, lets every request
/// in progress finish and be answered (so whatever was logged was acknowledged), and returns.
pub async fn serve_http(listener: TcpListener, core: Arc<Core>, net: NetConfig, mut stop: watch::Receiver<bool>) {
    let header_timeout = net.header_timeout;
    let app_core = core.clone();
    let app = router(App { core, net: Arc::new(net), stop: stop.clone() });
    let mut conns = tokio::task::JoinSet::new();
    while let Some((stream, peer)) = accept(&listener, &mut stop).await {
        let svc = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        conns.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended");
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    drain(conns, &app_core, "http").await;
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits up to [`DRAIN`] for `conns` to finish, then refuses all input (an aborted request still
/// waiting for the ingest lock must not be logged unanswered) and aborts the rest.
async fn drain(mut conns: tokio::task::JoinSet<()>, core: &Core, what: &str) {
    let left = conns.len();
    if tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await.is_err() {
        core.refuse_input();
        tracing::warn!(
            connections = conns.len(),
            of = left,
            "{what} connections still busy after {DRAIN:?}; closing them"
        );
        conns.abort_all();
    }
}

/// Serves the raw TCP NDJSON port until `stop` turns true; then every connection finishes the
/// batch it holds, sends its summary and closes (see [`tcp_connection`]).
pub async fn serve_tcp(listener: TcpListener, core: Arc<Core>, max_line: usize, mut stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    while let Some((stream, peer)) = accept(&listener, &mut stop).await {
        let core = core.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            if let Err(e) = tcp_connection(stream, core, max_line, stop).await {
                tracing::info!(%peer, error = %e, "tcp ingest connection ended");
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    drain(conns, &core, "tcp").await;
}

/// One TCP ingest connection: lines in, one JSON line per rejected or late line back, a summary
/// when the client shuts down its side. Reading stops while the engine is behind (the client's
/// writes then block: backpressure). When the sidecar stops, the lines read so far are ingested
/// and the summary says `"stopped":true`; `"lines"` is how many lines it accounts for, so the
/// client resends from the next one.
async fn tcp_connection(
    stream: TcpStream,
    core: Arc<Core>,
    max_line: usize,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // This connection is a source of its own, ended with it.
    let source = core.connection_source();
    let result = tcp_stream(stream, &core, &source, max_line, &mut stop).await;
    // Usually ended already, right after the summary; not when the connection broke.
    end_connection_source(&core, &source).await;
    result
}

/// Ends a connection's source (idempotent; once stopping, the restart ends it).
async fn end_connection_source(core: &Arc<Core>, source: &str) {
    let (c, source) = (core.clone(), source.to_owned());
    let _ = tokio::task::spawn_blocking(move || match c.end_source(&source) {
        Ok(_) | Err(CoreError::Stopping) => {}
        Err(e) => tracing::warn!(%source, error = %e, "could not end the connection's source"),
    })
    .await;
}

async fn tcp_stream(
    stream: TcpStream,
    core: &Arc<Core>,
    source: &str,
    max_line: usize,
    stop: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(256 * 1024, rd);
    let mut totals = (0u64, 0u64, 0u64);
    let mut line_no = 0u64;
    let (mut eof, mut cut_short) = (false, false);
    while !eof {
        // Gather what is readable now (at most ~1 MiB) into owned lines.
        let mut batch: Vec<(u64, Option<Vec<u8>>, usize)> = Vec::new();
        let mut bytes = 0usize;
        loop {
            let mut line = Vec::new();
            // A line cut short by the stop is not accounted for: the client resends it.
            let read = tokio::select! {
                r = read_line_limited(&mut reader, &mut line, max_line) => Some(r?),
                () = stopped(stop) => None,
            };
            let Some((n, too_long)) = read else {
                (eof, cut_short) = (true, true);
                break;
            };
            if n == 0 {
                eof = true;
                break;
            }
            line_no += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            bytes += line.len();
            batch.push((line_no, (!too_long).then_some(line), n));
            if bytes > 1 << 20 || batch.len() >= 8_192 || reader.buffer().is_empty() {
                break;
            }
        }
        if batch.is_empty() {
            continue;
        }
        let report = loop {
            let c = core.clone();
            let b = batch.clone();
            let src = source.to_owned();
            let r = tokio::task::spawn_blocking(move || {
                let lines: Vec<LineIn<'_>> =
                    b.iter().map(|(no, l, n)| LineIn { no: *no, bytes: l.as_deref(), len: *n }).collect();
                c.ingest(&src, &lines)
            })
            .await
            .map_err(std::io::Error::other)?;
            match r {
                Ok(rep) => break rep,
                Err(CoreError::Busy) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) => {
                    // `lines`: what this connection accounted for before this batch.
                    let before = batch.first().map_or(line_no, |b| b.0 - 1);
                    let msg = serde_json::json!({ "error": e.to_string(), "lines": before }).to_string();
                    wr.write_all(format!("{msg}\n").as_bytes()).await?;
                    return linger_close(wr, reader).await;
                }
            }
        };
        write_errors(&mut wr, &report).await?;
        totals.0 += report.accepted;
        totals.1 += report.late.len() as u64;
        totals.2 += report.rejected.len() as u64;
    }
    let mut summary =
        serde_json::json!({ "accepted": totals.0, "late": totals.1, "rejected": totals.2, "lines": line_no });
    if cut_short {
        summary["stopped"] = true.into();
    }
    let summary = summary.to_string();
    wr.write_all(format!("{summary}\n").as_bytes()).await?;
    // The stream is over: its watermark must not hold the others back while we linger.
    end_connection_source(core, source).await;
    linger_close(wr, reader).await
}

/// Closes our side, then reads and discards what the client still sends (at most 2 s): closing
/// with unread input would make the kernel reset the connection and drop our last answer.
async fn linger_close(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<()> {
    wr.shutdown().await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), tokio::io::copy(&mut reader, &mut tokio::io::sink())).await;
    Ok(())
}

async fn write_errors(wr: &mut tokio::net::tcp::OwnedWriteHalf, r: &IngestReport) -> std::io::Result<()> {
    let mut out = String::new();
    for x in &r.rejected {
        out.push_str(&serde_json::json!({ "line": x.line, "reason": x.reason, "detail": x.detail }).to_string());
        out.push('\n');
    }
    for x in &r.late {
        let detail = format!("ts {} is below the watermark {}", x.ts, x.watermark);
        out.push_str(&serde_json::json!({ "line": x.line, "reason": "late", "detail": detail }).to_string());
        out.push('\n');
    }
    if !out.is_empty() {
        wr.write_all(out.as_bytes()).await?;
    }
    Ok(())
}

/// Reads one line (with its `\n`) keeping at most `max + 1` bytes: returns (bytes consumed, too
/// long). A line longer than `max` is consumed whole but not kept.
async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok((consumed, too_long));
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long {
            out.extend_from_slice(&buf[..take]);
            let content = out.len() - usize::from(out.last() == Some(&b'\n'));
            if content > max {
                too_long = true;
                out.clear();
            }
        }
        r.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_compares() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3cres"));
        assert!(!same(b"s3cret", b"s3cret!"));
        assert!(!same(b"", b"x"));
        assert!(same(b"", b""));
    }

    #[tokio::test]
    async fn long_lines_are_consumed_but_not_kept() {
        let data = b"short\nthis line is far too long\nok".to_vec();
        let mut r = BufReader::with_capacity(4, &data[..]);
        let mut got = Vec::new();
        loop {
            let mut line = Vec::new();
            let (n, long) = read_line_limited(&mut r, &mut line, 8).await.unwrap();
            if n == 0 {
                break;
            }
            got.push((String::from_utf8(line).unwrap(), long, n));
        }
        assert_eq!(
            got,
            vec![("short\n".to_string(), false, 6), (String::new(), true, 26), ("ok".to_string(), false, 2)]
        );
    }
}
