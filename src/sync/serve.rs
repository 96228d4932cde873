//! A small HTTP/1.1 server for the layout (spec §5a), bounded in every dimension a peer
//! controls: connections at once, the request's head and body, and the time a connection may
//! take in all. One request per connection (`Connection: close`); requests are parsed by
//! `httparse`. What to answer is the [`Handler`]'s business.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bounds of a [`Server`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are closed at once.
    pub connections: usize,
    /// The request line and headers.
    pub head_bytes: usize,
    /// A request body.
    pub body_bytes: usize,
    /// A connection's whole life: reading the request and writing the answer.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 32,
            head_bytes: 8 * 1024,
            body_bytes: 4 * 1024,
            deadline: Duration::from_secs(5),
        }
    }
}

/// A request as the handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    /// `GET` or `POST` (others are answered 405 before the handler).
    pub method: &'a str,
    /// The path, without the leading `/` and without a query.
    pub path: &'a str,
    /// The body (empty for `GET`).
    pub body: &'a [u8],
    /// Who connected.
    pub peer: SocketAddr,
}

/// An answer.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// Its media type (`application/json` unless a handler says otherwise).
    pub content_type: &'static str,
}

impl Response {
    /// `200` with `body`.
    pub fn ok(body: Vec<u8>) -> Response {
        Response {
            status: 200,
            body,
            content_type: "application/json",
        }
    }

    /// A status with a one-line text body.
    pub fn status(status: u16, text: &str) -> Response {
        Response {
            status,
            body: format!("{text}\n").into_bytes(),
            content_type: "application/json",
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// What answers requests.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`.
    fn handle(&self, request: &Request<'_>) -> Response;
}

/// A server on zero or more addresses, changed with [`Server::listen_on`]; it stops with
/// `stop`.
pub struct Server {
    wanted: Arc<Mutex<Vec<SocketAddr>>>,
    bound: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Server {
    /// Starts the accept thread (listening nowhere until [`Server::listen_on`]).
    pub fn spawn(handler: Arc<dyn Handler>, limits: Limits, stop: Arc<AtomicBool>) -> Server {
        let wanted: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let bound: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let (w, b) = (wanted.clone(), bound.clone());
        std::thread::spawn(move || accept_loop(&handler, limits, &stop, &w, &b));
        Server { wanted, bound }
    }

    /// Listens on exactly `addrs` from now on (addresses not yet on an interface are retried
    /// every second).
    pub fn listen_on(&self, addrs: Vec<SocketAddr>) {
        if let Ok(mut w) = self.wanted.lock() {
            *w = addrs;
        }
    }

    /// The addresses listened on now (as [`Listening::now`]).
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.listening().now()
    }

    /// A handle that tells from another thread where the server listens now.
    pub fn listening(&self) -> Listening {
        Listening {
            wanted: self.wanted.clone(),
            bound: self.bound.clone(),
        }
    }
}

/// Where a [`Server`] listens, read from any thread.
pub struct Listening {
    wanted: Arc<Mutex<Vec<SocketAddr>>>,
    bound: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Listening {
    /// The addresses bound and still wanted: one the server has been told to leave counts as
    /// gone at once, before its accept thread closes it.
    pub fn now(&self) -> Vec<SocketAddr> {
        let wanted = self.wanted.lock().map(|w| w.clone()).unwrap_or_default();
        self.bound
            .lock()
            .map(|b| b.iter().filter(|a| wanted.contains(a)).copied().collect())
            .unwrap_or_default()
    }
}

fn accept_loop(
    handler: &Arc<dyn Handler>,
    limits: Limits,
    stop: &AtomicBool,
    wanted: &Mutex<Vec<SocketAddr>>,
    bound: &Mutex<Vec<SocketAddr>>,
) {
    let mut listeners: Vec<(SocketAddr, TcpListener)> = Vec::new();
    let mut last_bind = Instant::now() - Duration::from_secs(10);
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let want = wanted.lock().map(|w| w.clone()).unwrap_or_default();
        let have: Vec<SocketAddr> = listeners.iter().map(|(a, _)| *a).collect();
        if have != want {
            listeners.retain(|(a, _)| want.contains(a));
            if last_bind.elapsed() >= Duration::from_secs(1) {
                last_bind = Instant::now();
                for a in &want {
                    if listeners.iter().any(|(b, _)| b == a) {
                        continue;
                    }
                    if let Ok(l) = TcpListener::bind(a)
                        && l.set_nonblocking(true).is_ok()
                    {
                        listeners.push((*a, l));
                    }
                }
                listeners.sort_by_key(|(a, _)| want.iter().position(|w| w == a));
            }
            if let Ok(mut b) = bound.lock() {
                *b = listeners.iter().map(|(a, _)| *a).collect();
            }
        }
        if listeners.is_empty() {
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        let mut fds: Vec<rustix::event::PollFd<'_>> = listeners
            .iter()
            .map(|(_, l)| rustix::event::PollFd::new(l, rustix::event::PollFlags::IN))
            .collect();
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 250_000_000,
        };
        if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) == 0 {
            continue;
        }
        drop(fds);
        for (_, l) in &listeners {
            // Everything waiting now; a refused one is closed at once.
            while let Ok((stream, peer)) = l.accept() {
                if active.load(Ordering::Relaxed) >= limits.connections {
                    drop(stream);
                    continue;
                }
                let slot = Slot::take(&active);
                let handler = handler.clone();
                // A thread that cannot start drops its closure, and with it the slot.
                let _ = std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let _slot = slot;
                        serve_one(handler.as_ref(), limits, stream, peer);
                    });
            }
        }
    }
}

/// One of the connections at once, given back when dropped (however its thread ends).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        active.fetch_add(1, Ordering::Relaxed);
        Slot(active.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads one request within the deadline and writes its answer.
fn serve_one(handler: &dyn Handler, limits: Limits, mut stream: TcpStream, peer: SocketAddr) {
    let deadline = Instant::now() + limits.deadline;
    let response = match read_request(&mut stream, limits, deadline) {
        Ok((method, path, body)) => match method.as_str() {
            "GET" | "POST" => handler.handle(&Request {
                method: &method,
                path: &path,
                body: &body,
                peer,
            }),
            _ => Response::status(405, "GET or POST only"),
        },
        Err(Some(r)) => r,
        Err(None) => return,
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&response.body);
    // The deadline bounds the whole answer, not each write: a reader that takes a little at
    // a time is cut off when it runs out.
    let mut rest = &out[..];
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
            return;
        }
        match stream.write(&rest[..rest.len().min(16 * 1024)]) {
            Ok(0) | Err(_) => return,
            Ok(n) => rest = &rest[n..],
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The method, the path (no leading `/`, no query) and the body; `Err(Some)` is an answer to
/// give, `Err(None)` a connection to drop (time or the peer ran out).
fn read_request(
    stream: &mut TcpStream,
    limits: Limits,
    deadline: Instant,
) -> Result<(String, String, Vec<u8>), Option<Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (method, path, body_len, head_len) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(None);
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let mut body_len = 0usize;
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(Some(Response::status(411, "give a Content-Length")));
                    }
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body_len = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or_else(|| Some(Response::status(400, "bad Content-Length")))?;
                    }
                }
                if body_len > limits.body_bytes {
                    return Err(Some(Response::status(413, "body too large")));
                }
                let path = req.path.unwrap_or("/");
                let path = path.split('?').next().unwrap_or("");
                break (
                    req.method.unwrap_or("").to_owned(),
                    path.trim_start_matches('/').to_owned(),
                    body_len,
                    head_len,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() <= limits.head_bytes => {}
            Ok(httparse::Status::Partial) => {
                return Err(Some(Response::status(431, "request head too large")));
            }
            Err(_) => return Err(Some(Response::status(400, "not an HTTP/1.1 request"))),
        }
    };
    let mut body = buf.split_off(head_len);
    while body.len() < body_len {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(body_len);
    Ok((method, path, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, r: &Request<'_>) -> Response {
            Response::ok(format!("{} {} {}", r.method, r.path, r.body.len()).into_bytes())
        }
    }

    fn start(limits: Limits) -> (Server, SocketAddr, Arc<AtomicBool>) {
        start_with(Arc::new(Echo), limits)
    }

    /// A server with `handler` on a free loopback port, listening.
    fn start_with(
        handler: Arc<dyn Handler>,
        limits: Limits,
    ) -> (Server, SocketAddr, Arc<AtomicBool>) {
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server::spawn(handler, limits, stop.clone());
        // A free port: bind, note it, let it go.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        server.listen_on(vec![addr]);
        let t = Instant::now();
        while server.bound().is_empty() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(server.bound(), vec![addr]);
        (server, addr, stop)
    }

    #[test]
    fn an_address_let_go_is_not_reported_as_listened_on() {
        let (server, addr, stop) = start_with(Arc::new(Echo), Limits::default());
        let listening = server.listening();
        assert_eq!(listening.now(), vec![addr]);
        server.listen_on(Vec::new());
        // At once, before the accept thread closes the socket.
        assert!(listening.now().is_empty());
        assert!(server.bound().is_empty());
        stop.store(true, Ordering::Relaxed);
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.write_all(request).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn requests_are_bounded_in_size_and_time() {
        let limits = Limits {
            connections: 2,
            head_bytes: 512,
            body_bytes: 16,
            deadline: Duration::from_millis(600),
        };
        let (_server, addr, stop) = start(limits);
        let ok = exchange(addr, b"GET /rn/v1/head?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("GET rn/v1/head 0"), "{ok}");
        let post = exchange(
            addr,
            b"POST /rn/v1/notify HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert!(post.ends_with("POST rn/v1/notify 5"), "{post}");
        let big = exchange(
            addr,
            b"POST /n HTTP/1.1\r\nContent-Length: 17\r\n\r\n01234567890123456",
        );
        assert!(big.starts_with("HTTP/1.1 413 "), "{big}");
        let chunked = exchange(
            addr,
            b"POST /n HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(chunked.starts_with("HTTP/1.1 411 "), "{chunked}");
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(600));
        let head = exchange(addr, long.as_bytes());
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        let put = exchange(addr, b"PUT /x HTTP/1.1\r\n\r\n");
        assert!(put.starts_with("HTTP/1.1 405 "), "{put}");
        // Slowloris: a request never finished is cut at the deadline, answered nothing.
        let t = Instant::now();
        let slow = exchange(addr, b"GET /rn/v1/head HTTP/1.1\r\n");
        assert_eq!(slow, "");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        // Two slow connections fill the server; a third is closed at once, unanswered.
        let hold: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let refused = exchange(addr, b"GET /rn/v1/head HTTP/1.1\r\n\r\n");
        assert_eq!(refused, "");
        drop(hold);
        std::thread::sleep(Duration::from_millis(800));
        let again = exchange(addr, b"GET /rn/v1/head HTTP/1.1\r\n\r\n");
        assert!(again.starts_with("HTTP/1.1 200 "), "{again}");
        stop.store(true, Ordering::Relaxed);
    }

    /// Answers 32 MiB to every request.
    struct Big;

    impl Handler for Big {
        fn handle(&self, _: &Request<'_>) -> Response {
            Response::ok(vec![b'x'; 32 << 20])
        }
    }

    #[test]
    fn a_reader_that_takes_a_little_at_a_time_is_cut_at_the_deadline() {
        let limits = Limits {
            connections: 1,
            deadline: Duration::from_millis(600),
            ..Limits::default()
        };
        let (_server, addr, stop) = start_with(Arc::new(Big), limits);
        // The one connection allowed reads 4 KiB every 20 ms: each write makes progress, so
        // only a deadline over the whole answer ends it.
        let trickle = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /big HTTP/1.1\r\n\r\n").expect("write");
            let mut buf = [0u8; 4096];
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        std::thread::sleep(Duration::from_millis(1500));
        // Its slot is free again while it still reads: another request is answered.
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(b"GET /big HTTP/1.1\r\n\r\n").expect("write");
        let mut first = [0u8; 15];
        let got = s.read_exact(&mut first).map(|_| first);
        assert_eq!(
            got.ok().as_ref().map(|b| &b[..]),
            Some(&b"HTTP/1.1 200 OK"[..])
        );
        stop.store(true, Ordering::Relaxed);
        trickle.join().expect("the reader ends");
    }
}
