//! A registry that misbehaves on purpose, and traps that count connections which must never be
//! made. The first path segment after `/v2/` picks the fault (`/v2/status-503/app/...`), so one
//! server serves every fault at once. Written on raw TCP: the faults (a body cut short, one
//! larger than promised, an answer that never comes) are what an HTTP framework prevents.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every fault the registry plays, by the repository prefix that selects it.
pub const FAULTS: &[&str] = &[
    "status-500",
    "status-502",
    "status-503",
    "throttled",
    "throttled-for-long",
    "truncated",
    "oversized",
    "oversized-declared",
    "redirect-loop",
    "redirect-to-metadata",
    "redirect-to-loopback",
    "redirect-to-loopback-name",
    "slow-within-timeout",
    "slow-past-timeout",
];

/// Largest body portcullis reads for a manifest (`images::registry`), and more.
const OVERSIZED: usize = 5 * 1024 * 1024;

pub struct FaultRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl FaultRegistry {
    /// Starts on its own thread and runtime; redirects of `redirect-to-loopback` go to
    /// `loopback_trap`, those of `redirect-to-loopback-name` to `name_trap` (`name:port`).
    pub fn start(loopback_trap: &str, name_trap: &str) -> FaultRegistry {
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let targets = Arc::new(Targets {
            own: addr.clone(),
            loopback_trap: loopback_trap.to_string(),
            name_trap: name_trap.to_string(),
        });
        let counted = connections.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(stream, targets.clone()));
                }
            });
        });
        FaultRegistry { addr, connections }
    }
}

struct Targets {
    own: String,
    loopback_trap: String,
    name_trap: String,
}

/// Answers one request (each connection is closed after it).
async fn serve(mut stream: TcpStream, targets: Arc<Targets>) {
    let Some(path) = request_path(&mut stream).await else {
        return;
    };
    let fault = path
        .trim_start_matches("/v2/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let head = |status: &str, headers: &str| format!("HTTP/1.1 {status}\r\n{headers}Connection: close\r\n\r\n");
    let empty = |status: &str, headers: &str| head(status, &format!("{headers}Content-Length: 0\r\n"));
    let redirect = |to: &str| empty("307 Temporary Redirect", &format!("Location: http://{to}{path}\r\n"));
    let answer = match fault.as_str() {
        "status-500" => empty("500 Internal Server Error", ""),
        "status-502" => empty("502 Bad Gateway", ""),
        "status-503" => empty("503 Service Unavailable", ""),
        "throttled" => empty("429 Too Many Requests", "Retry-After: 1\r\n"),
        "throttled-for-long" => empty("429 Too Many Requests", "Retry-After: 3600\r\n"),
        "truncated" => {
            let mut answer = head(
                "200 OK",
                "Content-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: 1000\r\n",
            );
            answer.push_str(r#"{"schemaVersion":2,"manif"#);
            answer
        }
        "oversized" => {
            // No length: the body runs until the connection closes.
            let _ = stream
                .write_all(head("200 OK", "Content-Type: application/vnd.oci.image.index.v1+json\r\n").as_bytes())
                .await;
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..OVERSIZED / chunk.len() {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            return;
        }
        "oversized-declared" => head("200 OK", &format!("Content-Length: {OVERSIZED}\r\n")),
        "redirect-loop" => redirect(&targets.own),
        "redirect-to-metadata" => redirect("169.254.169.254"),
        "redirect-to-loopback" => redirect(&targets.loopback_trap),
        "redirect-to-loopback-name" => redirect(&targets.name_trap),
        "slow-within-timeout" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            empty("404 Not Found", "")
        }
        "slow-past-timeout" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            empty("404 Not Found", "")
        }
        _ => empty("404 Not Found", ""),
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The path of the request on `stream` (its head read up to the blank line).
async fn request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.ok().filter(|n| *n > 0)?;
        head.extend_from_slice(&buffer[..read]);
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    let line = String::from_utf8_lossy(&head).lines().next()?.to_string();
    line.split(' ').nth(1).map(str::to_string)
}

/// A listener that must never be connected to: it accepts and counts, and answers nothing.
pub struct Trap {
    /// `ip:port` (IPv6 in brackets).
    pub addr: SocketAddr,
    listener: StdListener,
}

impl Trap {
    pub fn bind(ip: std::net::IpAddr) -> Trap {
        let listener = StdListener::bind(SocketAddr::new(ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        Trap {
            addr: listener.local_addr().unwrap(),
            listener,
        }
    }

    /// Connections made to it so far (each accepted and closed by this call).
    pub fn connections(&self) -> usize {
        std::iter::from_fn(|| self.listener.accept().ok()).count()
    }
}

/// A name other than `localhost` that this machine resolves to a loopback address, from
/// `/etc/hosts` (Debian names the host there as 127.0.1.1, container runtimes as 127.0.0.1 or
/// `ip6-localhost`): what a rebinding or poisoned record looks like to portcullis.
pub fn loopback_name() -> (String, std::net::IpAddr) {
    use std::net::ToSocketAddrs;
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let names = hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split_whitespace().skip(1).map(str::to_string).collect::<Vec<_>>());
    for name in names {
        if name == "localhost" || name.ends_with(".localhost") {
            continue;
        }
        let resolved = (name.as_str(), 0)
            .to_socket_addrs()
            .map(|a| a.collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(address) = resolved
            .first()
            .filter(|_| resolved.iter().all(|a| a.ip().is_loopback()))
        {
            return (name, address.ip());
        }
    }
    panic!("no name other than localhost in /etc/hosts resolves to loopback only on this machine:\n{hosts}");
}
