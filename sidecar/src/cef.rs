//! Alarms for SIEMs: CEF inside RFC 5424 syslog (DESIGN §6, sidecar contract "Syslog").
//!
//! - [`cef`] renders an [`Alarm`] as one ArcSight CEF message, escaped per the CEF spec;
//! - [`syslog_5424`] wraps it in an RFC 5424 line: facility local0, severity from the alarm's [`Band`];
//! - [`SyslogSink`] sends lines over UDP (one datagram each) or TCP (RFC 6587 octet counting);
//! - [`parse_cef`] and [`parse_syslog_5424`] read both forms back, for tests.
//!
//! The alarm of DESIGN §6, as `syslog_5424(&cef(&alarm, "0.1.0"), alarm.ts, "gw1", alarm.priority)`:
//!
//! ```text
//! <130>1 2025-11-22T08:00:00.123Z gw1 vigil - alarm - CEF:0|vigil|vigil|0.1.0|forced_entry_confirmed|
//! forced entry confirmed|10|rt=1763798400123 cnt=1 externalId=42 act=critical deviceCustomNumber1Label=priority
//! deviceCustomNumber1=250 cs1Label=door cs1=d-lab cs2Label=area cs2=lab cs4Label=cameras cs4=cam-7 cs5Label=site
//! cs5=hq
//! ```
//!
//! (one line; wrapped here). A rendered message never contains a line break: header fields replace
//! them by spaces, extension values escape them.
//!
//! Delivery is best effort, at most once per [`SyslogSink::send`]: UDP datagrams may be dropped, and a
//! TCP message written just before the receiver goes away can be lost. The alarm journal is the record;
//! syslog is a notification.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use vigil_rules::{Alarm, Band};

/// Syslog facility of every message: local0.
const FACILITY_LOCAL0: u8 = 16;

/// How long a TCP connect may take before the next address (or failure). The OS default is minutes,
/// which would stall the sending thread far longer than a SIEM outage is worth waiting on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a TCP write may block on a receiver that stopped reading; the write then fails and the
/// sink reconnects once.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The CEF message of an alarm:
/// `CEF:0|vigil|vigil|VERSION|<rule id>|<rule name>|<severity>|<extension>`.
///
/// `version` is vigil's version. The name is the rule id with `_` read as spaces; the severity is
/// [`cef_severity`] of the priority. The extension holds, in this order and separated by single spaces:
///
/// | key | value |
/// |---|---|
/// | `rt` | the alarm's `ts` (epoch ms) |
/// | `cnt` | the tailgating excess, else 1 |
/// | `externalId` | the alarm id (journal sequence number) |
/// | `act` | the band: `low`, `medium`, `high`, `critical` |
/// | `deviceCustomNumber1Label=priority deviceCustomNumber1` | the priority, 1..=255 |
/// | `cs1Label=door cs1` | the door, when set |
/// | `cs2Label=area cs2` | the area, when set |
/// | `cs3Label=card cs3` | the card, when set |
/// | `cs4Label=cameras cs4` | the cameras to pop up, comma-joined, when any |
/// | `cs5Label=site cs5` | the site, when set |
/// | `cs6Label=device cs6` | the device, else the camera, when either is set |
///
/// Escaping per the CEF spec: header fields escape `\` and `|` (line breaks become spaces);
/// extension values escape `\`, `=`, line feed (`\n`) and carriage return (`\r`), and leave `|` as is.
pub fn cef(alarm: &Alarm, version: &str) -> String {
    let mut out = String::with_capacity(320);
    out.push_str("CEF:0|vigil|vigil|");
    push_header_field(&mut out, version);
    out.push('|');
    push_header_field(&mut out, &alarm.rule);
    out.push('|');
    push_header_field(&mut out, &alarm.rule.replace('_', " "));
    // A number is never escaped; `write!` to a String cannot fail.
    write!(out, "|{}|", cef_severity(alarm.priority)).ok();

    let mut ext = Extension { out: &mut out, first: true };
    ext.number("rt", alarm.ts);
    ext.number("cnt", alarm.excess.map_or(1, u64::from));
    ext.number("externalId", alarm.id);
    ext.text("act", alarm.band.name());
    ext.text("deviceCustomNumber1Label", "priority");
    ext.number("deviceCustomNumber1", u64::from(alarm.priority));
    ext.labeled("cs1", "door", alarm.door.as_deref());
    ext.labeled("cs2", "area", alarm.area.as_deref());
    ext.labeled("cs3", "card", alarm.card.as_deref());
    if !alarm.cameras.is_empty() {
        ext.labeled("cs4", "cameras", Some(&alarm.cameras.join(",")));
    }
    ext.labeled("cs5", "site", alarm.site.as_deref());
    ext.labeled("cs6", "device", alarm.device.as_deref().or(alarm.camera.as_deref()));
    out
}

/// CEF severity (0..=10) of a priority (1..=255): `(priority × 10 + 127) / 255`, clamped to 0..=10,
/// that is the priority scaled linearly to 0..=10 and rounded to nearest.
///
/// Edges: 1 → 0, 100 (lowest medium) → 4, 150 (lowest high) → 6, 200 (lowest critical) → 8, 255 → 10.
pub fn cef_severity(priority: u8) -> u8 {
    // At most (255 × 10 + 127) / 255 = 10: the clamp only documents the range.
    ((u32::from(priority) * 10 + 127) / 255).min(10) as u8
}

/// The RFC 5424 syslog line `<PRI>1 TIMESTAMP HOSTNAME vigil - alarm - MSG` carrying `cef`.
///
/// - PRI: facility local0 (16) × 8 + the syslog severity of the band of `priority` (the alarm's
///   priority, 1..=255): critical → 2 (crit), high → 3 (err), medium → 4 (warning), low → 5 (notice).
/// - TIMESTAMP: `ts_ms` (epoch ms) in RFC 3339 UTC with milliseconds, `2025-11-22T08:00:00.123Z`;
///   `-` (the NILVALUE) past year 9999, which RFC 3339's four-digit year cannot write.
/// - HOSTNAME: `hostname` with every character outside printable US-ASCII (including spaces) replaced
///   by `_`, cut to 255 characters; `-` when empty.
/// - No PROCID, MSGID `alarm`, no structured data; MSG is `cef` as given, without a BOM.
pub fn syslog_5424(cef: &str, ts_ms: u64, hostname: &str, priority: u8) -> String {
    let pri = FACILITY_LOCAL0 * 8 + syslog_severity(Band::of(priority));
    let mut out = String::with_capacity(cef.len() + 64);
    // `write!` to a String cannot fail.
    write!(out, "<{pri}>1 ").ok();
    push_rfc3339_ms(&mut out, ts_ms);
    out.push(' ');
    push_hostname(&mut out, hostname);
    out.push_str(" vigil - alarm - ");
    out.push_str(cef);
    out
}

/// Syslog severity (RFC 5424 §6.2.1) of a band.
const fn syslog_severity(band: Band) -> u8 {
    match band {
        Band::Critical => 2,
        Band::High => 3,
        Band::Medium => 4,
        Band::Low => 5,
    }
}

/// Appends `ts_ms` as `YYYY-MM-DDThh:mm:ss.mmmZ`, or `-` past year 9999.
fn push_rfc3339_ms(out: &mut String, ts_ms: u64) {
    const MS_PER_DAY: u64 = 86_400_000;
    let (year, month, day) = civil_from_days(ts_ms / MS_PER_DAY);
    if year > 9999 {
        out.push('-');
        return;
    }
    let ms = ts_ms % MS_PER_DAY;
    let (hour, minute, second, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    // `write!` to a String cannot fail.
    write!(out, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z").ok();
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
/// unsigned since epoch milliseconds never precede 1970: shift the epoch to 0000-03-01 so that leap days
/// end each 400-year era and each year, then read era, year of era, day of year and month off it.
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097; // 400-year eras of 146 097 days
    let doe = z - era * 146_097; // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// Appends an RFC 5424 HOSTNAME: printable US-ASCII, at most 255 characters, `-` when empty.
fn push_hostname(out: &mut String, hostname: &str) {
    if hostname.is_empty() {
        out.push('-');
        return;
    }
    out.extend(hostname.chars().take(255).map(|c| if c.is_ascii_graphic() { c } else { '_' }));
}

/// Appends a CEF header field: `\` → `\\`, `|` → `\|`, line breaks → spaces.
fn push_header_field(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Appends a CEF extension value: `\` → `\\`, `=` → `\=`, line feed → `\n`, carriage return → `\r`.
fn push_extension_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Writes `key=value` pairs separated by single spaces.
struct Extension<'a> {
    out: &'a mut String,
    first: bool,
}

impl Extension<'_> {
    /// Starts a pair: the separator, `key`, `suffix` (`""` or `"Label"`) and `=`.
    fn key(&mut self, key: &str, suffix: &str) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        self.out.push_str(key);
        self.out.push_str(suffix);
        self.out.push('=');
    }

    fn number(&mut self, key: &str, value: u64) {
        self.key(key, "");
        // `write!` to a String cannot fail.
        write!(self.out, "{value}").ok();
    }

    fn text(&mut self, key: &str, value: &str) {
        self.key(key, "");
        push_extension_value(self.out, value);
    }

    /// `{key}Label=label {key}=value`, when there is a value.
    fn labeled(&mut self, key: &str, label: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.key(key, "Label");
            push_extension_value(self.out, label);
            self.text(key, value);
        }
    }
}

/// The header fields of a parsed CEF message: vendor, product, version, signature id, name, severity.
pub type CefHeader = Vec<String>;

/// The `(key, value)` pairs of a parsed CEF extension, in order.
pub type CefExtension = Vec<(String, String)>;

/// Number of CEF header fields after the `CEF:N` version.
const HEADER_FIELDS: usize = 6;

/// Parses a CEF message into its header fields and its extension pairs, both unescaped.
///
/// The header fields are the six after the `CEF:N` version: vendor, product, version, signature id,
/// name, severity. In the header `\|` and `\\` are escapes (any other backslash is literal). In the
/// extension a value runs until the next ` key=`, where the key is `[A-Za-z0-9_]+` and the `=` is
/// unescaped; `\\`, `\=`, `\n` (line feed) and `\r` (carriage return) are escapes, and any other
/// escaped character stands for itself (`\|` is `|`).
///
/// `None` when the message does not start with `CEF:` and a numeric version, has fewer than seven
/// `|`-separated header fields, ends its extension in a lone backslash or has text before the first key.
pub fn parse_cef(msg: &str) -> Option<(CefHeader, CefExtension)> {
    let rest = msg.strip_prefix("CEF:")?;
    let mut header = Vec::with_capacity(HEADER_FIELDS);
    let mut field = String::new();
    let mut version = None;
    let mut extension_start = None;
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next_if(|&(_, next)| next == '\\' || next == '|') {
                Some((_, escaped)) => field.push(escaped),
                None => field.push('\\'),
            },
            '|' if version.is_none() => version = Some(std::mem::take(&mut field)),
            '|' => {
                header.push(std::mem::take(&mut field));
                if header.len() == HEADER_FIELDS {
                    extension_start = Some(i + 1);
                    break;
                }
            }
            c => field.push(c),
        }
    }
    let version = version?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let extension = parse_extension(rest.get(extension_start?..)?)?;
    Some((header, extension))
}

/// The pairs of a CEF extension; see [`parse_cef`].
fn parse_extension(ext: &str) -> Option<CefExtension> {
    // Decode escapes first, remembering which characters were escaped: only an unescaped `=` and the
    // unescaped space before a key delimit.
    let mut chars: Vec<(char, bool)> = Vec::with_capacity(ext.len());
    let mut it = ext.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            let escaped = match it.next()? {
                'n' => '\n',
                'r' => '\r',
                other => other,
            };
            chars.push((escaped, true));
        } else {
            chars.push((c, false));
        }
    }
    let is_key_char = |&(c, escaped): &(char, bool)| !escaped && (c.is_ascii_alphanumeric() || c == '_');
    // (key start, position of its `=`) of every ` key=`; any other `=` belongs to a value.
    let mut keys = Vec::new();
    for (eq, &(c, escaped)) in chars.iter().enumerate() {
        if c != '=' || escaped {
            continue;
        }
        let mut start = eq;
        while start > 0 && is_key_char(&chars[start - 1]) {
            start -= 1;
        }
        if start < eq && (start == 0 || chars[start - 1] == (' ', false)) {
            keys.push((start, eq));
        }
    }
    if keys.is_empty() && chars.iter().all(|&c| c == (' ', false)) {
        return Some(Vec::new());
    }
    if keys.first().map(|&(start, _)| start) != Some(0) {
        return None;
    }
    let collect = |range: &[(char, bool)]| range.iter().map(|&(c, _)| c).collect::<String>();
    let pairs = keys
        .iter()
        .enumerate()
        .map(|(k, &(start, eq))| {
            // A value ends at the space before the next key (a key's `=` is never a space, so
            // `next - 1 > eq`), or at the end.
            let end = keys.get(k + 1).map_or(chars.len(), |&(next, _)| next - 1);
            (collect(&chars[start..eq]), collect(&chars[eq + 1..end]))
        })
        .collect();
    Some(pairs)
}

/// The parts of an RFC 5424 syslog line, as [`parse_syslog_5424`] splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// PRI: facility × 8 + severity.
    pub pri: u8,
    /// TIMESTAMP, as written (`-` when absent).
    pub timestamp: &'a str,
    /// HOSTNAME.
    pub hostname: &'a str,
    /// APP-NAME.
    pub app_name: &'a str,
    /// PROCID.
    pub proc_id: &'a str,
    /// MSGID.
    pub msg_id: &'a str,
    /// STRUCTURED-DATA, as written (`-` when absent).
    pub structured_data: &'a str,
    /// MSG, without a leading BOM; empty when absent.
    pub msg: &'a str,
}

/// Splits an RFC 5424 line `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]` into its parts.
///
/// Checks the framing (PRI 0..=191, version 1, non-empty header fields, well-formed bracketed
/// structured data), not the contents of each field. `None` when the framing is off.
pub fn parse_syslog_5424(line: &str) -> Option<SyslogLine<'_>> {
    let (pri, rest) = line.strip_prefix('<')?.split_once('>')?;
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pri = pri.parse::<u8>().ok().filter(|&p| p <= 191)?;
    let mut fields = rest.strip_prefix("1 ")?.splitn(6, ' ');
    let mut next = || fields.next().filter(|f| !f.is_empty());
    let (timestamp, hostname, app_name, proc_id, msg_id) = (next()?, next()?, next()?, next()?, next()?);
    let sd_and_msg = next()?;
    let sd_len = structured_data_len(sd_and_msg)?;
    let (structured_data, msg) = sd_and_msg.split_at(sd_len);
    let msg = match msg {
        "" => "",
        msg => msg.strip_prefix(' ')?,
    };
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(SyslogLine { pri, timestamp, hostname, app_name, proc_id, msg_id, structured_data, msg })
}

/// Length in bytes of the STRUCTURED-DATA at the start of `s`: `-`, or `[...]` elements back to back
/// (`]` closes an element outside a quoted parameter value; `\` escapes inside one).
fn structured_data_len(s: &str) -> Option<usize> {
    if s.starts_with('-') {
        return Some(1);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while bytes.get(i) == Some(&b'[') {
        let (mut quoted, mut escaped) = (false, false);
        loop {
            i += 1;
            match (*bytes.get(i)?, quoted, escaped) {
                (_, true, true) => escaped = false,
                (b'\\', true, false) => escaped = true,
                (b'"', _, false) => quoted = !quoted,
                (b']', false, _) => break,
                _ => {}
            }
        }
        i += 1;
    }
    (i > 0).then_some(i)
}

/// Why the syslog sink could not be set up or could not send.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// The URL is not `udp://HOST:PORT` or `tcp://HOST:PORT`.
    #[error("syslog `{url}`: expected udp://HOST:PORT or tcp://HOST:PORT")]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// HOST:PORT does not parse or does not resolve.
    #[error("syslog `{url}`: bad address: {reason}")]
    Address {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// No address of the target took a connection (TCP), or no socket could be set up for it (UDP).
    #[error("syslog `{url}`: cannot connect: {source}")]
    Connect {
        /// The URL as given.
        url: String,
        /// The last address's error.
        source: io::Error,
    },
    /// Sending failed; over TCP, after one reconnect.
    #[error("syslog `{url}`: send failed: {source}")]
    Send {
        /// The URL as given.
        url: String,
        /// Why.
        source: io::Error,
    },
}

/// Sends syslog lines to one receiver, over UDP or TCP, with blocking std sockets: run it on its own
/// thread.
///
/// - UDP: one datagram per message, from a socket connected to the receiver.
/// - TCP: octet-counting framing (RFC 6587 §3.4.1, `LEN SP MSG`). Before each write the sink checks,
///   without blocking, whether the receiver closed the connection, and reconnects if so; a failed write
///   reconnects once and writes again. Connects time out after 5 s, writes after 5 s.
#[derive(Debug)]
pub struct SyslogSink {
    url: String,
    transport: Transport,
}

#[derive(Debug)]
enum Transport {
    Udp(UdpSocket),
    Tcp {
        /// Every address the target resolved to, for reconnects.
        addrs: Vec<SocketAddr>,
        /// `None` after a failed reconnect: the next send connects first.
        stream: Option<TcpStream>,
        /// The frame being sent, reused across sends.
        frame: Vec<u8>,
    },
}

impl SyslogSink {
    /// Resolves `udp://HOST:PORT` or `tcp://HOST:PORT` (HOST a name, an IPv4 address or a bracketed
    /// IPv6 address; the scheme in any case) and connects to the first address that answers.
    pub fn connect(url: &str) -> Result<SyslogSink, SyslogError> {
        let err_url = || url.to_string();
        let (scheme, host_port) = url.split_once("://").ok_or_else(|| SyslogError::Scheme { url: err_url() })?;
        let tcp = if scheme.eq_ignore_ascii_case("tcp") {
            true
        } else if scheme.eq_ignore_ascii_case("udp") {
            false
        } else {
            return Err(SyslogError::Scheme { url: err_url() });
        };
        let addrs: Vec<SocketAddr> = host_port
            .to_socket_addrs()
            .map_err(|e| SyslogError::Address { url: err_url(), reason: e.to_string() })?
            .collect();
        if addrs.is_empty() {
            return Err(SyslogError::Address { url: err_url(), reason: "resolves to no address".to_string() });
        }
        let transport = if tcp {
            let stream = connect_tcp(&addrs).map_err(|source| SyslogError::Connect { url: err_url(), source })?;
            Transport::Tcp { addrs, stream: Some(stream), frame: Vec::new() }
        } else {
            Transport::Udp(connect_udp(&addrs).map_err(|source| SyslogError::Connect { url: err_url(), source })?)
        };
        Ok(SyslogSink { url: url.to_string(), transport })
    }

    /// Sends one message (a line from [`syslog_5424`], without a trailing newline).
    ///
    /// Over TCP a failed write reconnects once and writes the whole frame again on the new connection;
    /// when that fails too, the error is returned and the next send starts with a reconnect.
    pub fn send(&mut self, msg: &str) -> Result<(), SyslogError> {
        let url = &self.url;
        let send_err = |source| SyslogError::Send { url: url.clone(), source };
        match &mut self.transport {
            Transport::Udp(socket) => match socket.send(msg.as_bytes()) {
                // A connected UDP socket reports an earlier datagram's ICMP "port unreachable" on the
                // next send (the receiver was down); that error is consumed, so try once more.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    socket.send(msg.as_bytes()).map(drop).map_err(send_err)
                }
                sent => sent.map(drop).map_err(send_err),
            },
            Transport::Tcp { addrs, stream, frame } => {
                frame.clear();
                // `write!` to a Vec cannot fail.
                write!(frame, "{} ", msg.len()).ok();
                frame.extend_from_slice(msg.as_bytes());
                if let Some(live) = stream {
                    if !peer_closed(live) && live.write_all(frame).is_ok() {
                        return Ok(());
                    }
                }
                *stream = None;
                let mut fresh =
                    connect_tcp(addrs).map_err(|source| SyslogError::Connect { url: url.clone(), source })?;
                fresh.write_all(frame).map_err(send_err)?;
                *stream = Some(fresh);
                Ok(())
            }
        }
    }
}

/// A UDP socket bound to the unspecified address of the target's family and connected to it.
fn connect_udp(addrs: &[SocketAddr]) -> io::Result<UdpSocket> {
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for &addr in addrs {
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        match UdpSocket::bind(local).and_then(|socket| socket.connect(addr).map(|()| socket)) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A TCP stream to the first address that accepts, with the write timeout set and Nagle off: each
/// frame goes out in one write, and alarms should not wait for the previous segment's ACK.
fn connect_tcp(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// True when the receiver closed the connection (a pending end of stream or error), checked without
/// blocking. A write to such a stream would succeed locally and the message would be lost.
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match stream.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        // Syslog receivers send nothing; if one does, the connection is still open.
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_err() || closed
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    use vigil_rules::EventType;
    use vigil_rules::alarm::Evidence;

    use super::*;

    /// The alarm of DESIGN §6.
    fn design_alarm() -> Alarm {
        Alarm {
            id: 42,
            rule: "forced_entry_confirmed".to_string(),
            key: "d-lab".to_string(),
            ts: 1_763_798_400_123,
            priority: 250,
            band: Band::Critical,
            site: Some("hq".to_string()),
            door: Some("d-lab".to_string()),
            area: Some("lab".to_string()),
            card: None,
            device: None,
            camera: None,
            cameras: vec!["cam-7".to_string()],
            excess: None,
            evidence: vec![Evidence {
                ts: 1_763_798_400_123,
                kind: EventType::DoorForced,
                devices: vec![("door", "d-lab".to_string())],
                card: None,
                count: None,
                direction: None,
            }],
            latency_us: 37,
        }
    }

    /// An alarm whose ids hold every character CEF escapes, and then some.
    fn nasty_alarm() -> Alarm {
        Alarm {
            id: 7,
            rule: "odd|rule\\id_x".to_string(),
            key: "c".to_string(),
            ts: 5,
            priority: 120,
            band: Band::Medium,
            site: Some("site | one".to_string()),
            door: Some("d|lab\\x=1\nline two\r end".to_string()),
            area: Some("a b=c d=e".to_string()),
            card: Some("card = 7  spaces  ".to_string()),
            device: None,
            camera: Some("cam x cs2=evil\\".to_string()),
            cameras: vec!["cam=1".to_string(), "cam 2".to_string()],
            excess: Some(3),
            evidence: Vec::new(),
            latency_us: 0,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|&(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn cef_of_the_design_alarm() {
        let msg = cef(&design_alarm(), "0.1.0");
        assert_eq!(
            msg,
            "CEF:0|vigil|vigil|0.1.0|forced_entry_confirmed|forced entry confirmed|10|rt=1763798400123 cnt=1 \
             externalId=42 act=critical deviceCustomNumber1Label=priority deviceCustomNumber1=250 cs1Label=door \
             cs1=d-lab cs2Label=area cs2=lab cs4Label=cameras cs4=cam-7 cs5Label=site cs5=hq"
        );
        let (header, ext) = parse_cef(&msg).expect("parses");
        assert_eq!(header, ["vigil", "vigil", "0.1.0", "forced_entry_confirmed", "forced entry confirmed", "10"]);
        assert_eq!(ext.len(), 14);
    }

    #[test]
    fn escaping_round_trips() {
        let alarm = nasty_alarm();
        let msg = cef(&alarm, "1.0|beta\\x");
        assert!(!msg.contains('\n') && !msg.contains('\r'), "no raw line breaks: {msg:?}");
        assert!(msg.starts_with("CEF:0|vigil|vigil|1.0\\|beta\\\\x|odd\\|rule\\\\id_x|odd\\|rule\\\\id x|5|"), "{msg}");
        assert!(msg.contains(" cs1=d|lab\\\\x\\=1\\nline two\\r end cs2Label="), "{msg}");

        let (header, ext) = parse_cef(&msg).expect("parses");
        assert_eq!(header, ["vigil", "vigil", "1.0|beta\\x", "odd|rule\\id_x", "odd|rule\\id x", "5"]);
        assert_eq!(
            ext,
            pairs(&[
                ("rt", "5"),
                ("cnt", "3"),
                ("externalId", "7"),
                ("act", "medium"),
                ("deviceCustomNumber1Label", "priority"),
                ("deviceCustomNumber1", "120"),
                ("cs1Label", "door"),
                ("cs1", "d|lab\\x=1\nline two\r end"),
                ("cs2Label", "area"),
                ("cs2", "a b=c d=e"),
                ("cs3Label", "card"),
                ("cs3", "card = 7  spaces  "),
                ("cs4Label", "cameras"),
                ("cs4", "cam=1,cam 2"),
                ("cs5Label", "site"),
                ("cs5", "site | one"),
                ("cs6Label", "device"),
                ("cs6", "cam x cs2=evil\\"),
            ])
        );
    }

    #[test]
    fn header_line_breaks_become_spaces() {
        let mut alarm = design_alarm();
        alarm.rule = "a\r\nb".to_string();
        let (header, _) = parse_cef(&cef(&alarm, "v\n1")).expect("parses");
        assert_eq!(header[2], "v 1");
        assert_eq!(header[3], "a  b");
    }

    #[test]
    fn device_wins_over_camera_and_absent_keys_are_left_out() {
        let mut alarm = design_alarm();
        alarm.device = Some("sensor-3".to_string());
        alarm.camera = Some("cam-9".to_string());
        alarm.door = None;
        alarm.area = None;
        alarm.site = None;
        alarm.cameras.clear();
        let (_, ext) = parse_cef(&cef(&alarm, "0")).expect("parses");
        let keys: Vec<&str> = ext.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["rt", "cnt", "externalId", "act", "deviceCustomNumber1Label", "deviceCustomNumber1", "cs6Label", "cs6"]
        );
        assert_eq!(ext[7].1, "sensor-3");
    }

    #[test]
    fn parse_cef_edge_cases() {
        // Empty values, an escaped space, an unescaped `=` inside a value, `\|` in an extension.
        let (header, ext) = parse_cef("CEF:1|a\\|b|p|v|s|n|3|k1= k2=x\\ y=z k_3=a\\|b").expect("parses");
        assert_eq!(header, ["a|b", "p", "v", "s", "n", "3"]);
        assert_eq!(ext, pairs(&[("k1", ""), ("k2", "x y=z"), ("k_3", "a|b")]));
        // No extension at all, and an extension holding a `|`.
        assert_eq!(
            parse_cef("CEF:0|a|b|c|d|e|0|"),
            Some((vec!["a", "b", "c", "d", "e", "0"].into_iter().map(String::from).collect(), vec![]))
        );
        assert_eq!(parse_cef("CEF:0|a|b|c|d|e|0|msg=x|y").expect("parses").1, pairs(&[("msg", "x|y")]));
        // A lone backslash in the header is literal.
        assert_eq!(parse_cef("CEF:0|a\\b|b|c|d|e|0|").expect("parses").0[0], "a\\b");

        assert_eq!(parse_cef("LEEF:0|a|b|c|d|e|0|"), None, "not CEF");
        assert_eq!(parse_cef("CEF:x|a|b|c|d|e|0|"), None, "version not a number");
        assert_eq!(parse_cef("CEF:0|a|b|c|d|e|0"), None, "six header fields");
        assert_eq!(parse_cef("CEF:0|a|b|c|d|e|0|k=v\\"), None, "lone backslash at the end");
        assert_eq!(parse_cef("CEF:0|a|b|c|d|e|0|junk k=v"), None, "text before the first key");
    }

    #[test]
    fn severity_edges() {
        for (priority, severity) in
            [(0, 0), (1, 0), (99, 4), (100, 4), (149, 6), (150, 6), (199, 8), (200, 8), (255, 10)]
        {
            assert_eq!(cef_severity(priority), severity, "priority {priority}");
        }
        let all: Vec<u8> = (1..=255).map(cef_severity).collect();
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "monotone");
        assert_eq!(all.iter().max(), Some(&10));
    }

    #[test]
    fn rfc3339_timestamps() {
        let ts = |ms| {
            let mut s = String::new();
            push_rfc3339_ms(&mut s, ms);
            s
        };
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(1_763_798_400_123), "2025-11-22T08:00:00.123Z");
        assert_eq!(ts(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(ts(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(ts(4_107_542_400_000), "2100-03-01T00:00:00.000Z", "2100 is not a leap year");
        assert_eq!(ts(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(ts(253_402_300_800_000), "-", "year 10000");
        assert_eq!(ts(u64::MAX), "-");
    }

    #[test]
    fn civil_from_days_matches_counting_days() {
        let leap = |y: u64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..(10_000 - 1970) * 366 {
            if y > 9999 {
                break;
            }
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let month_len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
        assert_eq!(y, 10_000);
    }

    #[test]
    fn syslog_lines() {
        let msg = cef(&design_alarm(), "0.1.0");
        let line = syslog_5424(&msg, 1_763_798_400_123, "gw1", 250);
        assert_eq!(line, format!("<130>1 2025-11-22T08:00:00.123Z gw1 vigil - alarm - {msg}"));
        for (priority, pri) in
            [(255, 130), (200, 130), (199, 131), (150, 131), (149, 132), (100, 132), (99, 133), (1, 133)]
        {
            assert!(syslog_5424("m", 0, "h", priority).starts_with(&format!("<{pri}>1 ")), "priority {priority}");
        }
        assert_eq!(syslog_5424("m", 0, "", 1), "<133>1 1970-01-01T00:00:00.000Z - vigil - alarm - m");
        assert!(syslog_5424("m", 0, "gate house\u{e9}", 1).contains(" gate_house_ vigil "));
        let long = "h".repeat(300);
        let long_line = syslog_5424("m", 0, &long, 1);
        assert_eq!(parse_syslog_5424(&long_line).expect("parses").hostname.len(), 255);

        let parsed = parse_syslog_5424(&line).expect("parses");
        assert_eq!(
            parsed,
            SyslogLine {
                pri: 130,
                timestamp: "2025-11-22T08:00:00.123Z",
                hostname: "gw1",
                app_name: "vigil",
                proc_id: "-",
                msg_id: "alarm",
                structured_data: "-",
                msg: &msg,
            }
        );
    }

    #[test]
    fn parse_syslog_5424_framing() {
        let sd = r#"<165>1 - h app 12 ID47 [ex@1 a="x \] y" b="\"q"][other@2] BOM"#;
        let parsed = parse_syslog_5424(sd).expect("parses");
        assert_eq!(parsed.structured_data, r#"[ex@1 a="x \] y" b="\"q"][other@2]"#);
        assert_eq!(parsed.msg, "BOM");
        assert_eq!(parse_syslog_5424("<1>1 - h a p m -").expect("parses").msg, "");
        assert_eq!(parse_syslog_5424("<13>1 - h a p m - \u{feff}hi").expect("parses").msg, "hi");
        assert_eq!(parse_syslog_5424("<192>1 - h a p m - x"), None, "PRI too large");
        assert_eq!(parse_syslog_5424("<13>2 - h a p m - x"), None, "version 2");
        assert_eq!(parse_syslog_5424("<13>1 - h a p m"), None, "no structured data");
        assert_eq!(parse_syslog_5424("<13>1 - h a p m [x"), None, "unclosed structured data");
        assert_eq!(parse_syslog_5424("<13>1 - h a p m -x"), None, "no space before MSG");
    }

    #[test]
    fn connect_rejects_bad_urls() {
        for url in ["http://127.0.0.1:514", "127.0.0.1:514", "udp:/127.0.0.1:514"] {
            let err = SyslogSink::connect(url).expect_err(url);
            assert!(matches!(err, SyslogError::Scheme { .. }), "{url}: {err}");
            assert!(err.to_string().contains("expected udp://HOST:PORT or tcp://HOST:PORT"), "{err}");
        }
        for url in ["udp://127.0.0.1", "tcp://127.0.0.1:notaport", "udp://127.0.0.1:514/", "udp://"] {
            let err = SyslogSink::connect(url).expect_err(url);
            assert!(matches!(err, SyslogError::Address { .. }), "{url}: {err}");
        }
        // A port nobody listens on: bind one, then free it.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let err = SyslogSink::connect(&url).expect_err("refused");
        assert!(matches!(err, SyslogError::Connect { .. }), "{err}");
        assert!(err.to_string().starts_with(&format!("syslog `{url}`: cannot connect: ")), "{err}");
    }

    fn receive_udp(socket: &UdpSocket) -> String {
        let mut buf = [0u8; 65_536];
        let n = socket.recv(&mut buf).expect("a datagram within the timeout");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn udp_round_trip() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = receiver.local_addr().unwrap().port();
        let mut sink = SyslogSink::connect(&format!("UDP://127.0.0.1:{port}")).unwrap();

        let alarm = nasty_alarm();
        let line = syslog_5424(&cef(&alarm, "0.1.0"), alarm.ts, "gw1", alarm.priority);
        sink.send(&line).unwrap();
        sink.send("second").unwrap();

        let got = receive_udp(&receiver);
        assert_eq!(got, line, "one datagram per message");
        let parsed = parse_syslog_5424(&got).expect("syslog");
        assert_eq!(parsed.pri, 132);
        assert_eq!(parsed.timestamp, "1970-01-01T00:00:00.005Z");
        let (header, ext) = parse_cef(parsed.msg).expect("cef");
        assert_eq!(header[3], "odd|rule\\id_x");
        assert!(ext.contains(&("cs1".to_string(), "d|lab\\x=1\nline two\r end".to_string())));
        assert_eq!(receive_udp(&receiver), "second");
    }

    #[test]
    fn udp_survives_a_receiver_restart() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = receiver.local_addr().unwrap();
        let mut sink = SyslogSink::connect(&format!("udp://{addr}")).unwrap();
        drop(receiver);
        // Nobody listens: the kernel answers "port unreachable", reported on a later send.
        for _ in 0..3 {
            sink.send("lost").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let receiver = UdpSocket::bind(addr).unwrap();
        receiver.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sink.send("back").unwrap();
        // A "lost" the kernel still held for the port would arrive first: skip it.
        let got = std::iter::repeat_with(|| receive_udp(&receiver)).find(|m| m != "lost");
        assert_eq!(got.as_deref(), Some("back"));
    }

    /// Reads one octet-counted frame; `None` at a clean end of stream.
    fn read_frame(reader: &mut impl BufRead) -> Option<String> {
        let mut len = Vec::new();
        reader.read_until(b' ', &mut len).unwrap();
        if len.is_empty() {
            return None;
        }
        assert_eq!(len.pop(), Some(b' '), "LEN SP");
        let len: usize = std::str::from_utf8(&len).unwrap().parse().expect("LEN is a number");
        let mut msg = vec![0u8; len];
        reader.read_exact(&mut msg).unwrap();
        Some(String::from_utf8(msg).unwrap())
    }

    fn accept(listener: &TcpListener) -> BufReader<TcpStream> {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        BufReader::new(stream)
    }

    #[test]
    fn tcp_round_trip_with_octet_counting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut conn = accept(&listener);
            std::iter::from_fn(|| read_frame(&mut conn)).collect::<Vec<_>>()
        });

        let mut sink = SyslogSink::connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let alarm = nasty_alarm();
        // Non-ASCII: LEN counts octets, not characters.
        let line = syslog_5424(&cef(&alarm, "0.1.0-é"), alarm.ts, "gw1", alarm.priority);
        sink.send(&line).unwrap();
        sink.send("").unwrap();
        sink.send("3 spaces   ").unwrap();
        drop(sink);

        let frames = server.join().unwrap();
        assert_eq!(frames, [line.as_str(), "", "3 spaces   "]);
        let parsed = parse_syslog_5424(&frames[0]).expect("syslog");
        let (header, ext) = parse_cef(parsed.msg).expect("cef");
        assert_eq!(header[2], "0.1.0-é");
        assert!(ext.contains(&("cs3".to_string(), "card = 7  spaces  ".to_string())));
    }

    /// Waits until the receiver's close reached the sink's socket, so a test does not race the FIN.
    fn wait_until_closed(sink: &SyslogSink) {
        let Transport::Tcp { stream: Some(stream), .. } = &sink.transport else { panic!("a connected tcp sink") };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !peer_closed(stream) {
            assert!(std::time::Instant::now() < deadline, "close not seen");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn tcp_reconnects_after_the_receiver_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut sink = SyslogSink::connect(&format!("tcp://127.0.0.1:{port}")).unwrap();

        let mut first = accept(&listener);
        sink.send("one").unwrap();
        assert_eq!(read_frame(&mut first).as_deref(), Some("one"));
        drop(first);
        wait_until_closed(&sink);

        sink.send("two").unwrap();
        let mut second = accept(&listener);
        assert_eq!(read_frame(&mut second).as_deref(), Some("two"));

        // With the receiver gone, send fails; once it is back, the next send reconnects.
        drop(second);
        drop(listener);
        wait_until_closed(&sink);
        let err = sink.send("three").expect_err("nobody listens");
        assert!(matches!(err, SyslogError::Connect { .. }), "{err}");
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        sink.send("four").unwrap();
        assert_eq!(read_frame(&mut accept(&listener)).as_deref(), Some("four"));
    }
}
